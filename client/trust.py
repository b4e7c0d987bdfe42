"""What this device verified of a pad's chain, and the checks a relay's answers must pass.

Theory of operation
-------------------
The relay is untrusted.  Its sequence numbers and the head it names at the
end of a history are routing hints; what a client believes it derives from
envelopes it verified: every patch names its parent by hash under the
channel signature, so the height of a patch (patches from genesis) is fixed
by the chain itself, and a snapshot signs the height of the patch it follows.

**The remembered point.**  Per pad, the client remembers the highest
``(height, id)`` it has verified (:attr:`Trust.remembered`), moved forward
only and kept by the front end across runs (the SDK's ``head.json``, the
page's browser storage).  The session keeps its chain *fast-forward only*
(:attr:`client.chain.Chain.fast_forward`): the head only ever moves to a
descendant, so a branch served beside the line is never shown and is a
``fork``.

**At the end of every catch-up** (the HISTORY_END of a subscription or a
resume), :meth:`Trust.caught_up` checks that the chain held extends the
remembered point:

* the remembered patch is held and the head descends from it: verified;
* it is held, and the head does not descend from it: ``fork``;
* it is not held and the head is lower: ``rollback`` (the relay serves an
  older history than this device saw, whatever numbers it claims);
* it is not held, the head is as high or higher, and the chain held reaches
  down to that height: another patch sits there: ``fork``;
* it is not held because the session joined from a snapshot above it: the
  patches between are read again (:class:`DescentProof`) and must chain from
  the remembered patch to the snapshot's; a mismatch is a ``fork``, a
  history that stops short is ``withheld``, and a history trimmed away
  cannot be checked (``unverified``: protocol version 2's consistency
  proofs close that window, docs/PROTOCOL.md §11).

A relay that names a head *below* the remembered height admits a rollback.
A pad in ``rollback``, ``fork`` or ``withheld`` is *suspect*
(:attr:`Trust.suspect`): its status never reads "saved", the remembered point
stays where it was, and the chain it shows never leaves the verified line.
It stays suspect until it is opened again (a relay caught lying once is
not believed again in the same session; the next opening checks afresh
against the remembered point, which did not move).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import crypto
from client.chain import Chain, Node
from client.events import AlarmKind

#: The alarms that make a pad suspect (see the module docstring).
SUSPECT = frozenset({AlarmKind.ROLLBACK, AlarmKind.FORK, AlarmKind.WITHHELD})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a check: an alarm to raise (``kind``, ``detail``) or a proof to run."""

    kind: AlarmKind | None = None
    detail: str = ""
    prove: bool = False


OK = Verdict()


def _short(patch_id: bytes) -> str:
    return patch_id.hex()[:16]


class Trust:
    """The remembered point and the checks against it.  See the module docstring.

    Args:
        remembered: ``(height, id)`` of the highest head a previous run verified.
    """

    def __init__(self, remembered: tuple[int, bytes] | None) -> None:
        if remembered is not None and remembered[0] <= 0:
            remembered = None
        self.remembered = remembered
        self.verified = remembered is None  # the chain held extends the remembered point
        self.suspect: AlarmKind | None = None

    def caught_up(self, chain: Chain[Any], claimed_seq: int) -> Verdict:
        """A history ended with the relay claiming head ``claimed_seq``: check it."""
        head = chain.best
        verdict = self._extends(chain, head)
        if verdict is OK and self.remembered is not None and claimed_seq < self.remembered[0]:
            verdict = Verdict(
                AlarmKind.ROLLBACK,
                f"the relay says its history ends at patch {claimed_seq}, but this device "
                f"verified patch {self.remembered[0]} of this pad",
            )
        self.settle(verdict, head)
        return verdict

    def settle(self, verdict: Verdict, head: Node[Any]) -> None:
        """Take a check's outcome: verified (and remember ``head``), or suspect."""
        if verdict is OK:
            self.verified = True
            self.advance(head)
        elif verdict.kind in SUSPECT:
            self.suspect = verdict.kind

    def _extends(self, chain: Chain[Any], head: Node[Any]) -> Verdict:
        if self.remembered is None:
            return OK
        height, patch_id = self.remembered
        node = chain.nodes.get(patch_id)
        if node is not None:
            if chain.descends(head, node):
                return OK
            return Verdict(
                AlarmKind.FORK,
                f"the relay serves a history that leaves patch {height} "
                f"({_short(patch_id)}), which this device verified",
            )
        if head.height < height:
            return Verdict(
                AlarmKind.ROLLBACK,
                f"the relay serves {head.height} patches of this pad, but this device "
                f"verified {height}: it rolled the pad back",
            )
        there = chain.at_height(head, height)
        if there is not None:
            return Verdict(
                AlarmKind.FORK,
                f"the relay serves patch {_short(there.id)} at height {height}, where this "
                f"device verified {_short(patch_id)}: another branch",
            )
        return Verdict(prove=True)

    def advance(self, head: Node[Any]) -> None:
        """The head moved; remember it if the line is verified (forward only)."""
        if not self.verified or self.suspect is not None:
            return
        if self.remembered is None or head.height > self.remembered[0]:
            self.remembered = (head.height, head.id)

    def raise_suspect(self, kind: AlarmKind) -> None:
        """An alarm found elsewhere (a stray branch, a head beacon) makes the pad suspect."""
        if kind in SUSPECT:
            self.suspect = kind


class DescentProof:
    """The patches between the remembered point and a snapshot above it, read again.

    Each must carry a valid channel signature and name the one before as its
    parent, from the remembered patch up to the snapshot's patch.

    Args:
        keys: the pad's keys (the channel signature is checked with them).
        start: ``(height, id)``: the remembered point.
        target: ``(height, id)``: the patch the snapshot follows.
    """

    def __init__(
        self, keys: crypto.PadKeys, start: tuple[int, bytes], target: tuple[int, bytes]
    ) -> None:
        self.keys = keys
        self.height, self.last = start
        self.target = target
        self.broken: str | None = None

    @property
    def done(self) -> bool:
        """The chain reached the snapshot's patch."""
        return self.broken is None and (self.height, self.last) == self.target

    def take(self, envelope: bytes) -> None:
        """The next patch of the history (in order)."""
        if self.broken is not None or self.height >= self.target[0]:
            return
        try:
            header = crypto.parse_header(envelope)
            crypto.verify_channel_signature(envelope, self.keys.verify_key)
        except crypto.IntegrityError as error:
            self.broken = f"a patch of the history does not verify: {error}"
            return
        if header.ref != self.last:
            self.broken = (
                f"patch {self.height + 1} of the history does not follow patch "
                f"{self.height} ({_short(self.last)})"
            )
            return
        self.height += 1
        self.last = hashlib.sha256(envelope).digest()
        if self.height == self.target[0] and self.last != self.target[1]:
            self.broken = (
                f"the history reaches patch {self.height} as {_short(self.last)}, but the "
                f"snapshot follows {_short(self.target[1])}"
            )

    def verdict(self) -> Verdict:
        """After the history ended: verified, a fork, or withheld."""
        start = f"patch {self.target[0]}"
        if self.broken is not None:
            return Verdict(
                AlarmKind.FORK,
                f"the pad the relay serves does not continue "
                f"the one this device verified: {self.broken}",
            )
        if not self.done:
            return Verdict(
                AlarmKind.WITHHELD,
                f"the relay did not serve the history from patch {self.height} up to the "
                f"snapshot at {start}, so it cannot be checked",
            )
        return OK


__all__ = ["OK", "SUSPECT", "DescentProof", "Trust", "Verdict"]

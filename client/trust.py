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
  relay names the ids of the patches between (PROOF, trimmed ones too), and
  appended to the Merkle mountain range remembered with the point they must
  give the peaks the snapshot signs (:class:`DescentProof`,
  :mod:`wire.mmr`); otherwise ``fork``, and ids it does not name are
  ``withheld``.  A point remembered without peaks, or a snapshot that signs
  none, cannot be checked that way: ``unverified`` (said, then accepted).

A relay that names a head *below* the remembered height admits a rollback.
A pad in ``rollback``, ``fork`` or ``withheld`` is *suspect*
(:attr:`Trust.suspect`): its status never reads "saved", the remembered point
stays where it was, and the chain it shows never leaves the verified line.
It stays suspect until it is opened again (a relay caught lying once is
not believed again in the same session; the next opening checks afresh
against the remembered point, which did not move).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from client.chain import Chain, Node
from client.events import AlarmKind
from wire import mmr

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
        anchor: the Merkle mountain range at that point, if it was kept.
    """

    def __init__(
        self, remembered: tuple[int, bytes] | None, anchor: mmr.Peaks | None = None
    ) -> None:
        if remembered is not None and remembered[0] <= 0:
            remembered = None
        self.remembered = remembered
        self.anchor = anchor if remembered is not None else None
        self.verified = remembered is None  # the chain held extends the remembered point
        self.suspect: AlarmKind | None = None

    def caught_up(
        self, chain: Chain[Any], claimed_seq: int, claimed_id: bytes | None = None
    ) -> Verdict:
        """A history ended with the relay claiming head ``(claimed_seq, claimed_id)``:
        check what we hold, and the claim where it contradicts what we verified."""
        head = chain.best
        verdict = self._extends(chain, head)
        there = chain.at_height(head, claimed_seq) if claimed_id is not None else None
        if verdict is OK and there is not None and claimed_seq > 0 and there.id != claimed_id:
            verdict = Verdict(
                AlarmKind.FORK,
                f"the relay names patch {_short(claimed_id or b'')} as its head at number "
                f"{claimed_seq}, where this device verified {_short(there.id)}: another branch",
            )
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
            self.anchor = head.peaks

    def raise_suspect(self, kind: AlarmKind) -> None:
        """An alarm found elsewhere (a stray branch, a head beacon) makes the pad suspect."""
        if kind in SUSPECT:
            self.suspect = kind


class DescentProof:
    """The nodes between the remembered point and a snapshot above it, named by the relay.

    Appended to the peaks remembered with the point, they must give exactly
    the peaks the snapshot signs (:func:`wire.mmr.extends_by_nodes`): then
    the snapshot's chain runs through the remembered patch, whatever was
    trimmed.  The relay answers in pages (:data:`wire.frames.MAX_PROOF_NODES`
    nodes each): ids where it still holds them, the root of each whole block
    of 256 it trimmed, the root of each group of 65,536 aged.  When the
    remembered point lies inside a block (or an aged group) the relay keeps
    only as a root, the relay answers from its start instead (once, at the
    first page); the proof then starts from the peaks at that multiple of
    256 (65,536) (:func:`wire.mmr.prefix`), so what this device verified
    after it is covered by that root, not checked id by id (docs/SECURITY.md
    says so).  A group ages only once it ends ``mmr.AGED_AFTER`` ids below
    the floor, so a relay that answers from a group's start for a group
    nearer the target is not believed.

    Args:
        start: ``(height, id)``: the remembered point.
        anchor: the peaks remembered with it.
        target: ``(height, peaks)`` the snapshot signs.
    """

    def __init__(
        self, start: tuple[int, bytes], anchor: mmr.Peaks, target: tuple[int, mmr.Peaks]
    ) -> None:
        self.start = start
        self.anchor = anchor
        self.target = target
        self.base: tuple[mmr.Peaks, int] = (anchor, start[0])  # where the nodes start
        self.nodes: list[tuple[int, bytes]] = []
        self.next_from = start[0]  # the height the nodes so far reach
        self.stalled = False  # the relay named no more nodes before the target

    @property
    def complete(self) -> bool:
        """Every node up to the target is in, or the relay stopped naming them."""
        return self.stalled or self.next_from >= self.target[0]

    def take(self, from_seq: int, data: bytes) -> None:
        """One PROOF page (nodes covering the patches after ``from_seq``)."""
        try:
            nodes = mmr.unpack_nodes(data)
        except ValueError:
            nodes = []
        if from_seq != self.next_from and not self.nodes:
            self._rebase_at(from_seq)
        if from_seq != self.next_from or not nodes:
            self.stalled = True
            return
        for level, node in nodes:
            if self.next_from >= self.target[0]:
                break
            self.nodes.append((level, node))
            self.next_from += 1 << level

    def _rebase_at(self, from_seq: int) -> None:
        """The relay answered from ``from_seq`` below the remembered point: accept
        it if that starts the point's block, or its group once aged (the group
        ends at least ``mmr.AGED_AFTER`` ids below the target: a relay cannot
        claim a recent group aged)."""
        height = self.start[0]
        for level in (mmr.BLOCK_LEVEL, mmr.GROUP_LEVEL):
            peaks, start = mmr.prefix(self.anchor, height, level)
            end = start + (1 << level)
            recent = level == mmr.GROUP_LEVEL and end + mmr.AGED_AFTER > self.target[0]
            if from_seq == start < height and not recent:
                self.base, self.next_from = (peaks, start), start
                return

    def verdict(self) -> Verdict:
        """Verified, a fork, or withheld."""
        height, patch_id = self.start
        if self.next_from < self.target[0]:
            return Verdict(
                AlarmKind.WITHHELD,
                f"the relay did not name the patches between patch {height}, which this "
                f"device verified, and the snapshot at {self.target[0]}, so it cannot be checked",
            )
        if not self._folds():
            return Verdict(
                AlarmKind.FORK,
                f"the snapshot at patch {self.target[0]} does not descend from patch {height} "
                f"({_short(patch_id)}), which this device verified: another branch",
            )
        return OK

    def _folds(self) -> bool:
        """Whether the nodes lead from the base to the target's peaks, passing
        through the remembered peaks when they reach its height exactly."""
        peaks, height = self.base
        try:
            for level, node in self.nodes:
                peaks, height = mmr.append_node(peaks, height, level, node)
                if height == self.start[0] and peaks != self.anchor:
                    return False
        except ValueError:
            return False
        return (height, peaks) == (self.target[0], self.target[1])


__all__ = ["OK", "SUSPECT", "DescentProof", "Trust", "Verdict"]

"""Our own work on its way to the chain: the open patch and the in-flight pipeline.

Theory of operation
-------------------
Local edits compose into the **open** patch.  :meth:`Outbox.seal_open` seals
it, all of it, into **in-flight** patches, each parented on the one before,
the first on the head; an open patch too large for one envelope
(``max_patch_bytes``) is split into several.  The engine seals when a patch
sealed now would be sent at once (:attr:`Outbox.room`), and whenever the
write-ahead log is read (:meth:`client.engine.Engine.unacknowledged`): so a
burst typed while the pipeline is full leaves as one patch, sealed once,
when an acknowledgement makes room, and yet the front end's log holds every
edit as soon as it is made, so a crash right after an edit returns loses
nothing (issue 11's crash suite).
The in-flight patches followed by the open patch are the uncommitted work
``U`` (:meth:`Outbox.uncommitted`), which the engine keeps mapping its
authoritative document to the view.

Sealed is not sent: :meth:`Outbox.release` hands out :class:`SendPatch`
events, at most :attr:`Outbox.depth` patches at the relay at once (see there
why that is 1 under contention).  With ``pace_ms`` (the SDK's), a writer
that types while a patch of ours is at the relay keeps a pace: its patches
leave at most one per ``pace_ms`` (:meth:`Outbox.paced`), each carrying
everything typed meanwhile; an edit made while nothing of ours is at the
relay leaves at once.  When the pipeline is full, the open patch
is folded into the last sealed patch if that one was never handed out (the
log sealed it, offline, or beyond the depth), so typing past the pipeline
re-seals one patch rather than adding a patch per keystroke.  After a
reconnect :meth:`Outbox.resend` hands them out again, same bytes, same ids.

When our first in-flight patch lands as the next node of the chain, it simply
leaves (:meth:`Outbox.landed`).  Whenever anything else happens (someone
else's patch lands first, a fork switch, a refusal) the in-flight patches can
no longer land, as their parents are off the head: they are **superseded** and
everything is squashed into the open patch (:meth:`Outbox.squash`), to be
sealed afresh on the new head.  Only the author ever re-seals its own work.
A superseded patch is still recognised by id (:meth:`Outbox.own`) if it does
land after all (federated relays), so nothing is applied twice.  A refusal
names the relay's head: if we lack it, sending waits (:attr:`Outbox.awaiting`)
until the head moves or the connection is new; what is typed meanwhile is
still sealed, on the head we hold, for the log (superseded once the head
moves).  A refusal supersedes the refused patch and those after it, never
those before it, which wait for their own answers (one sent again after
YIELD may still land: :meth:`Outbox.refused`); the work is sealed again
after them and sent once the head moves.

The write-ahead log (:mod:`client.recovery`) holds the in-flight patches, and
from a squash until all the squashed work is sealed again, the superseded
patches instead (:attr:`Outbox.carried`, with the document they were made
on): so an edit leaves the log only when a patch carrying it is acknowledged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from client.chain import Node
from client.doctype import DocType
from client.payload import PATCH, Codec, Payload, Sealed, claim, encode

if TYPE_CHECKING:
    from client.recovery import Base, Log

D = TypeVar("D")
P = TypeVar("P")

#: The pieces of a large edit at the relay at once (:attr:`Outbox.depth`).
BURST = 32


@dataclass(frozen=True, slots=True)
class SendPatch:
    """Send this sealed patch to the relay (again, after a reconnect)."""

    sealed: Sealed


@dataclass(slots=True)
class Own(Generic[P]):
    """A patch we sealed that is not (yet) a node of the chain."""

    sealed: Sealed
    parent: bytes
    payload: Payload[P]
    piece: bool = False  # one of the pieces a large edit was sealed in


class Outbox(Generic[D, P]):
    """The open patch, the in-flight patches, and what to send.

    Args:
        doctype: the document type.
        codec: seals the patches.
        emit: where :class:`SendPatch` events go (the engine's events).
        pipeline: how many patches may be in flight at once (k).
        hash_every: heights at which a patch carries the full document hash.
        max_patch_bytes: patches larger than this are split (about; JSON size).
        clock: milliseconds since the epoch, written into each patch we seal.
        pace_ms: an edit made while a patch of ours is at the relay leaves
            this long after the last patch left, at the soonest (0: at once,
            as the pipeline allows; needs ``clock``).  See :meth:`paced`.
    """

    def __init__(
        self,
        doctype: DocType[D, P],
        codec: Codec,
        emit: Callable[[SendPatch], None],
        *,
        pipeline: int,
        hash_every: int,
        max_patch_bytes: int,
        clock: Callable[[], int] | None,
        session: bytes,
        pace_ms: int = 0,
    ) -> None:
        self.doctype = doctype
        self.codec = codec
        self.emit = emit
        self.pipeline = pipeline
        self.hash_every = hash_every
        self.max_patch_bytes = max_patch_bytes
        self.clock = clock
        self.inflight: list[Own[P]] = []
        self.open: P = doctype.identity()
        self.awaiting: bytes | None = None  # a head the relay named that we lack
        self._superseded: OrderedDict[bytes, Own[P]] = OrderedDict()
        self._calm = 4 * pipeline  # our patches landed in a row since anyone else's
        self._sent = 0  # how many of the in-flight patches were handed out to send
        # The log while squashed work waits to be sealed again (see the module
        # docstring); ``where`` says what the head and its document are.
        self.carried: Log[D] | None = None
        self.where: Callable[[], Base[D]] | None = None
        self.held = False  # recovery is probing: seal nothing yet
        self.session = session  # stamped with :attr:`counter` into every patch sealed
        self.counter = 0
        self.pace_ms = pace_ms if clock is not None else 0
        self._pacing = False  # what waits was typed while ours was at the relay
        self._left_ms = 0  # when the last patch was handed out (with ``pace_ms``)

    # --- reading ---------------------------------------------------------

    @property
    def empty(self) -> bool:
        """True when there is no uncommitted work."""
        return not self.inflight and self.doctype.is_identity(self.open)

    def unacknowledged(self) -> list[Sealed]:
        """What the write-ahead log holds: the sealed patches not yet on the chain,
        oldest first, or the superseded ones while their work is being sealed again."""
        if self.carried is not None:
            return list(self.carried[1])
        return [own.sealed for own in self.inflight]

    def uncommitted(self) -> P:
        """The in-flight patches and the open patch, composed."""
        work = self.doctype.identity()
        for own in self.inflight:
            work = self.doctype.compose(work, own.payload.patch)
        return self.doctype.compose(work, self.open)

    def own(self, patch_id: bytes) -> Own[P] | None:
        """Our patch ``patch_id``, in flight or superseded; ``None`` if not ours."""
        for own in self.inflight:
            if own.sealed.id == patch_id:
                return own
        return self._superseded.get(patch_id)

    @property
    def depth(self) -> int:
        """How many sealed patches may be at the relay at once: ``pipeline``, or 1
        under contention.

        While other sessions' patches keep landing, a deep pipeline starves
        them: their rebased patch is stale on arrival because ours, parented
        on our own, are already queued at the relay.  With one sent at a time
        each round is a fair race (we re-seal on the broadcast, not on the
        refusal).  Sealing is not limited by it, so what is typed still
        reaches the write-ahead log.  Full depth comes
        back after ``4 * pipeline`` of our own patches land with nobody
        else's in between.

        The pieces of a large edit go :data:`BURST` at a time (or
        ``pipeline``, if more): they were
        sealed together, holding them back gains nothing, and a shallow
        pipeline would wait for a round trip of the relay every ``pipeline``
        pieces.
        """
        if self.others_writing:
            return 1
        waiting = self.inflight[self._sent] if self._sent < len(self.inflight) else None
        burst = waiting is not None and waiting.piece
        return max(BURST, self.pipeline) if burst else self.pipeline

    @property
    def others_writing(self) -> bool:
        """Whether other sessions' patches landed among our last ``4 * pipeline``."""
        return self._calm < 4 * self.pipeline

    @property
    def room(self) -> bool:
        """True when a patch sealed now would be sent at once: every sealed patch
        was handed out, fewer than :attr:`depth` are at the relay, no refusal
        waits for a head we lack, and the pace allows (:meth:`paced`)."""
        handed_out = self._sent == len(self.inflight)
        return self.awaiting is None and handed_out and self._sent < self.depth and self.paced()

    def edited(self) -> None:
        """A local edit went into the open patch: made while one of ours is at
        the relay, it keeps the pace (:meth:`paced`)."""
        if self._sent and self.pace_ms:
            self._pacing = True

    def paced(self) -> bool:
        """Whether the pace lets the next patch leave now: nothing waiting was
        typed while ours was at the relay, or ``pace_ms`` passed since the last
        patch left.

        Each patch costs its sender, the relay and every reader a fixed amount
        (a seal, signature checks, a write, an acknowledgement: about a
        millisecond in all, bench ``sdk_trace``) however few keys it carries.
        A writer typing faster than the relay answers would otherwise send one
        patch per acknowledgement, a few keys each; kept to the pace, it sends
        one per ``pace_ms`` carrying all it typed meanwhile.  A person, whose
        keys each leave before the next is typed, never waits, nor does a
        program that waits for "saved" before its next edit.
        """
        return not self._pacing or self._step_over()

    def _step_over(self) -> bool:
        """Whether ``pace_ms`` passed since our last patch left."""
        assert self.clock is not None
        return self.clock() >= self._left_ms + self.pace_ms

    def pace_deadline_ms(self) -> int | None:
        """When the pace lets waiting work leave (``None``: nothing waits for
        the pace, or only an answer can make room)."""
        if not self._pacing or self.awaiting is not None or self._sent >= self.depth:
            return None
        if self._sent == len(self.inflight) and self.doctype.is_identity(self.open):
            return None  # nothing waits after all (typed and undone)
        return self._left_ms + self.pace_ms

    def would_wait(self) -> bool:
        """Whether an edit made now would wait (not be sent at once)."""
        if self.awaiting is not None or self._sent >= self.depth:
            return True  # a refusal waits for a head, or the pipeline is full
        if self._sent < len(self.inflight):
            return True  # sealed patches wait to be handed out
        if not (self._sent or self._pacing) or not self.pace_ms:
            return False
        return not self._step_over()  # it would keep the pace

    # --- sealing and sending ---------------------------------------------

    def seal_open(self, head: Node[Payload[P]], auth: Callable[[], D], view: D) -> None:
        """Seal the whole open patch on ``head`` (whose document is ``auth()``, asked
        only when needed); ``view`` is the document after all the work."""
        if self.held:
            return
        if self.doctype.is_identity(self.open):
            self.carried = None  # nothing left to seal again: all of it is on the chain
            return
        if self.pipeline - len(self.inflight) <= 0 and len(self.inflight) > self._sent:
            # Past the pipeline: fold the open patch into the last sealed one,
            # which never left this process, so the log still holds every edit.
            last = self.inflight.pop()
            self.open = self.doctype.compose(last.payload.patch, self.open)
        # All of it is sealed, past the pipeline and while a refusal waits
        # for a head we lack (the engine asks only when it can be sent or the
        # log is read): the pipeline and the depth limit only what is handed
        # out (:meth:`release`).
        # Characters per piece: up to 4 bytes of UTF-8 each, and room for the
        # payload's framing (size, hash, brackets: under 128 bytes).
        budget = max(1, (self.max_patch_bytes - 128) // 4)
        pieces, rest = self.doctype.split(self.open, budget, 1 << 30)
        if len(pieces) == 1 and self.doctype.is_identity(rest):
            self._seal(head, self.open, view)  # the usual case: the whole open patch
        else:
            # A large edit in pieces: the document after each piece is built
            # only where a digest is due (or its size depends on it), from
            # the pieces since the last one; so sealing stays linear in the
            # edit instead of one whole-document splice per piece.
            doc = self._tip(auth())
            size = self.doctype.size(doc)
            behind: list[P] = []  # sealed since ``doc`` was built
            for piece in pieces:
                change = self.doctype.size_change(piece)
                height = head.height + len(self.inflight) + 1
                if change is None or height % self.hash_every == 0:
                    doc = self.doctype.apply_all(doc, [*behind, piece])
                    behind, size = [], self.doctype.size(doc)
                    self._seal(head, piece, doc, piece=True)
                else:
                    behind.append(piece)
                    size += change
                    self._seal(head, piece, None, size, piece=True)
        self.open = rest
        if self.doctype.is_identity(rest):
            self.carried = None  # the squashed work is all in the new patches

    def _tip(self, auth: D) -> D:
        doc = auth
        for own in self.inflight:
            doc = self.doctype.apply(doc, own.payload.patch)
        return doc

    def _seal(
        self,
        head: Node[Payload[P]],
        patch: P,
        result: D | None,
        size: int | None = None,
        *,
        piece: bool = False,
    ) -> None:
        height = head.height + len(self.inflight) + 1
        now = self.clock() if self.clock is not None else None
        self.counter += 1  # never two patches under one (session, counter)
        stamp = (self.session, self.counter)
        payload = claim(self.doctype, patch, result, height, self.hash_every, now, stamp, size)
        parent = self.inflight[-1].sealed.id if self.inflight else head.id
        sealed = self.codec.seal(PATCH, parent, encode(self.doctype, payload), height=height)
        self.inflight.append(Own(sealed, parent, payload, piece))

    def release(self) -> None:
        """Hand out sealed patches to send, up to :attr:`depth` at the relay at once."""
        if self.awaiting is not None:
            return  # sealed on a head the relay already refused: wait for its head
        while self._sent < min(self.depth, len(self.inflight)):
            if not self.paced():
                return
            self.emit(SendPatch(self.inflight[self._sent].sealed))
            self._sent += 1
            if self.pace_ms:
                assert self.clock is not None
                self._left_ms = self.clock()
                # Keeping the pace: one patch per step, until what waited is out.
                self._pacing = self._pacing and self._sent < len(self.inflight)

    def resend(self) -> None:
        """After a reconnect: send the in-flight patches again, same bytes, same ids."""
        self.awaiting = None
        self._sent = 0
        self._pacing = False  # a new connection: what was sealed goes at once
        self.release()

    def adopt(self, pending: list[Own[P]]) -> None:
        """Take ``pending`` (parented on the head, each on the one before) in flight."""
        self.inflight = pending
        self._sent = 0
        self._pacing = False
        self.release()

    # --- what became of them ---------------------------------------------

    def landed(self, patch_id: bytes) -> Own[P] | None:
        """If ``patch_id`` is our first in-flight patch, take it out and return it."""
        if not self.inflight or self.inflight[0].sealed.id != patch_id:
            return None
        self._sent = max(0, self._sent - 1)
        return self.inflight.pop(0)

    def committed(self, patch_id: bytes) -> None:
        """Our patch ``patch_id`` is on the best chain."""
        self._calm += 1
        self._superseded.pop(patch_id, None)

    def contended(self) -> None:
        """Someone else's patch landed: send one at a time for a while (:attr:`depth`)."""
        self._calm = 0

    def refused(self, patch_id: bytes) -> bool:
        """The relay refused ``patch_id``: squash it and the patches after it,
        unless it is no longer in flight.

        The in-flight patches before it stay in flight, and in the log, as
        they were sent: a refusal says nothing final about them.  Each waits
        for its own answer, and one turned away for now (YIELD, RATE_LIMITED)
        goes out again, the same bytes, and may land yet: squashed, its work
        would be logged again in a patch on its parent, and a process killed
        before its ACK would take that work back over it once more (the
        crash suite doubled a token so).  The squashed work is sealed again
        after them, and sent once the head moves (:attr:`awaiting`: nothing
        can land before they do).

        Returns:
            True if work was squashed (``patch_id`` was in flight).
        """
        at = next((n for n, own in enumerate(self.inflight) if own.sealed.id == patch_id), None)
        if at is None:
            return False
        self.squash(keep=at)
        self.awaiting = self.inflight[-1].sealed.id if self.inflight else None
        return True

    def superseded(self, patch_id: bytes) -> bool:
        """Whether ``patch_id`` is ours and its work was sealed again since (its
        parent is no longer the head: sending its bytes again is moot)."""
        return patch_id in self._superseded

    def supersede(self, own: Own[P]) -> None:
        """Remember ``own`` by id, should it land after all."""
        self._superseded[own.sealed.id] = own
        while len(self._superseded) > 4096:
            self._superseded.popitem(last=False)

    def squash(self, keep: int = 0) -> None:
        """Supersede the in-flight patches (but the first ``keep``): their work
        goes back into the open patch.

        The log keeps them (:attr:`carried`) until that work is sealed again.
        """
        if self.inflight[keep:] and self.carried is None:
            base = self.where() if self.where is not None else None
            if base is not None and base.parent != self.inflight[0].parent:
                base = None  # not made on the head (our own patch judged invalid)
            self.carried = (base, [own.sealed for own in self.inflight])
        self.inflight, dropped = self.inflight[:keep], self.inflight[keep:]
        work = self.doctype.identity()
        for own in dropped:
            work = self.doctype.compose(work, own.payload.patch)
            self.supersede(own)
        self.open = self.doctype.compose(work, self.open)
        self._sent = min(self._sent, keep)
        self._pacing = False  # sealed afresh on the new head, at once


__all__ = ["Outbox", "Own", "SendPatch"]

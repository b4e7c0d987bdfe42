"""The session engine: blindpad's sans-I/O core.

Theory of operation
-------------------
An :class:`Engine` is one session's view of one pad.  It does no I/O, reads no
clock and makes no random choice: front ends (the asyncio SDK, the browser,
the simulator, the tests) feed it local edits and what the relay said, and
drain from :meth:`Engine.events` what to send and what to show.  Sealing and
opening envelopes is delegated to an injected :class:`Codec`, and everything
about the document to an injected :class:`~client.doctype.DocType`.

It keeps the authoritative document ``auth`` (the result of the best chain),
our uncommitted work ``U`` (sealed in-flight patches, then the open patch
absorbing keystrokes) and the ``view`` the user sees, with ``U`` always
mapping ``auth`` to ``view``.  Every change of the best chain is walked node
by node keeping that invariant; whenever our in-flight patches can no longer
land as sealed, all the work is squashed into the open patch and sealed
afresh on the new head.

The parts
---------
The engine is the surface; each part is a module with its own theory:

* :mod:`client.payload`: the codec seam (:class:`Codec`, :class:`Sealed`,
  :class:`Opened`), the patch payload format, and the integrity claims
  (size, hash) every patch makes and every reader checks;
* :mod:`client.outbox`: the open patch, the in-flight pipeline and its send
  depth, superseding, squashing and resending;
* :mod:`client.replica`: the chain (:mod:`client.chain`), ``auth`` and
  ``view``, and the walk from one head to the next;
* :mod:`client.rebase`: carrying the work across someone else's patch, or
  our own, in a way that survives fork switches;
* :mod:`client.snapshots`: when to make a snapshot, loading one to join,
  checking someone else's against our document.

The engine itself turns what the relay says into those parts' terms: it
opens envelopes, tracks relay sequence numbers, and takes back our own
sealed patches after a restart (:meth:`Engine.adopt`; how, and what a
write-ahead log must keep, is :mod:`client.recovery`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from client.chain import GENESIS, Chain, Node
from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind
from client.outbox import Outbox, Own, SendPatch
from client.payload import PATCH, SESSION_LEN, SNAPSHOT, Codec, Opened, Payload, Sealed, decode
from client.recovery import Base, Recovery, adopt, probed
from client.replica import Committed, RemoteChange, Replica, Reverted
from client.snapshots import SendSnapshot, Snapshots

D = TypeVar("D")
P = TypeVar("P")

#: What :meth:`Engine.events` returns; each event is defined beside what emits it.
Event = SendPatch | SendSnapshot | RemoteChange[P] | Committed | Reverted | Alarm


class LocalError(Exception):
    """The caller misused the engine (an edit that does not apply, a read-only pad...)."""


class Engine(Generic[D, P]):
    """One session on one pad.  See the module docstring for the theory.

    Args:
        doctype: the document type (``client.doctype.TEXT``).
        codec: seals and opens envelopes.
        writer: False for a view-only session: edits raise, nothing is sealed.
        pipeline: how many patches may be in flight at once (k).
        pace_ms: an edit made while one of ours is at the relay leaves this
            long after our last patch left, at the soonest
            (:meth:`client.outbox.Outbox.paced`; 0, the default: at once, as
            the pipeline allows; needs ``clock``).
        hash_every: heights at which a patch carries the full document hash.
        max_patch_bytes: patches larger than this are split (about; JSON size).
        min_snapshot_bytes: never make a snapshot before this many bytes of patches.
        max_orphans: patches with an unknown parent kept waiting; past it, the
            oldest is dropped with an :class:`Alarm`.
        max_depth: how far below the head the chain is kept (deepest fork followed).
        clock: milliseconds since the epoch, written into each patch we seal
            (history shows it); ``None`` writes no time.
        session: this writer session's id (:data:`client.payload.SESSION_LEN`
            bytes, stamped with a counter into every patch it seals); random
            when ``None``.  Never shared by two running engines.
    """

    def __init__(
        self,
        doctype: DocType[D, P],
        codec: Codec,
        *,
        writer: bool = True,
        pipeline: int = 4,
        hash_every: int = 64,
        max_patch_bytes: int = 48 * 1024,
        min_snapshot_bytes: int = 16 * 1024,
        max_orphans: int = 1024,
        max_depth: int = 1000,
        clock: Callable[[], int] | None = None,
        session: bytes | None = None,
        pace_ms: int = 0,
    ) -> None:
        if pipeline < 1 or hash_every < 1:
            raise ValueError("pipeline and hash_every must be at least 1")
        self.doctype = doctype
        self.codec = codec
        self.writer = writer
        self.pipeline = pipeline
        self.hash_every = hash_every
        self.last_seq = 0  # every relay sequence number up to this one has been seen
        self._seqs_ahead: set[int] = set()
        self._events: list[Event[P]] = []
        self.outbox = Outbox(
            doctype,
            codec,
            self.emit,
            pipeline=pipeline,
            hash_every=hash_every,
            max_patch_bytes=max_patch_bytes,
            clock=clock,
            session=session if session is not None else os.urandom(SESSION_LEN),
            pace_ms=pace_ms,
        )
        self.snapshots = Snapshots(
            doctype, codec, self.emit, writer=writer, min_bytes=min_snapshot_bytes, clock=clock
        )
        self.replica = Replica(
            doctype,
            self.outbox,
            self.snapshots,
            self.emit,
            hash_every=hash_every,
            max_orphans=max_orphans,
            max_depth=max_depth,
        )
        self.snapshots.hw = lambda: self.replica.hw
        self.outbox.where = self._where
        self.recovery: Recovery[D, P] | None = None

    # --- reading state ---------------------------------------------------

    @property
    def chain(self) -> Chain[Payload[P]]:
        """The patches received (:class:`~client.chain.Chain`)."""
        return self.replica.chain

    @property
    def head(self) -> Node[Payload[P]]:
        """The tip of the best chain."""
        return self.replica.head

    @property
    def auth(self) -> D:
        """The authoritative document: the result of the best chain."""
        return self.replica.auth

    @property
    def view(self) -> D:
        """What the user sees: ``auth`` with all our uncommitted work."""
        return self.replica.view

    @view.setter
    def view(self, doc: D) -> None:
        self.replica.view = doc

    @property
    def open(self) -> P:
        """The patch absorbing keystrokes, on top of the in-flight ones."""
        return self.outbox.open

    @open.setter
    def open(self, patch: P) -> None:
        self.outbox.open = patch

    @property
    def inflight(self) -> list[Own[P]]:
        """Our sealed patches not yet on the best chain, oldest first."""
        return self.outbox.inflight

    @property
    def depth(self) -> int:
        """How many sealed patches may be at the relay at once (see ``Outbox.depth``)."""
        return self.outbox.depth

    @property
    def others_writing(self) -> bool:
        """Whether other writers' patches are landing among ours (``Outbox.others_writing``)."""
        return self.outbox.others_writing

    @property
    def awaited_head(self) -> bytes | None:
        """The head a refusal named that we do not hold yet, or ``None``.

        While it is set, nothing new is sealed; it clears when the head moves
        at all, or on :meth:`resend`.
        """
        return self.outbox.awaiting

    @property
    def missing(self) -> str | None:
        """What the relay named or owes that we do not hold, in words, or ``None``.

        The head a refusal named, a sequence number below one received (a
        gap), or the parent of a received patch (an orphan).  The session
        re-reads from :attr:`last_seq` when it stays missing
        (:class:`client.relayside.Watchdog`).
        """
        if self.outbox.awaiting is not None:
            awaited = self.outbox.awaiting.hex()[:16]
            if self.outbox.own(self.outbox.awaiting) is not None:
                return f"an answer to our patch {awaited}, which a refusal left waiting"
            return f"the head {awaited} a refusal named"
        if self._skipped:
            return f"patch number {self.last_seq + 1} (number {max(self._seqs_ahead)} arrived)"
        if self.chain.orphans:
            orphan = next(iter(self.chain.orphans.values()))
            return f"the parent {orphan.parent.hex()[:16]} of a patch it sent"
        return None

    @property
    def gap(self) -> bool:
        """A sequence number was skipped, or a patch's parent never came: the
        relay owes something it has already shown it has."""
        return self._skipped or bool(self.chain.orphans)

    @property
    def _skipped(self) -> bool:
        """A sequence number below one received never came, and our chain does
        not cover it (an ACK of ours whose predecessor's ACK was lost proves
        that one stored too: no loss)."""
        return bool(self._seqs_ahead) and max(self._seqs_ahead) > self.head.height

    @property
    def recovering(self) -> bool:
        """True while adopted patches wait for the relay to say which landed."""
        return self.recovery is not None

    @property
    def saved(self) -> bool:
        """True when every local edit is on the best chain (and none is being recovered)."""
        return self.outbox.empty and self.recovery is None

    @property
    def height(self) -> int:
        """Patches from genesis to the head."""
        return self.head.height

    def events(self) -> list[Event[P]]:
        """Take the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def unacknowledged(self) -> list[Sealed]:
        """The write-ahead log: the sealed patches not yet on the chain, oldest
        first (those sent and those waiting for room at the relay), or while
        squashed or recovered work waits to be sealed again, the patches that
        carried it (:mod:`client.recovery`).

        A front end keeps them in its write-ahead log with :meth:`log_base`
        (and hands both to :meth:`adopt` after a restart).  Asking seals the
        open patch first (nothing is handed out to send), so the log holds
        every edit made so far.
        """
        self.outbox.seal_open(self.head, lambda: self.auth, self.view)
        return self.outbox.unacknowledged()

    def log_base(self) -> Base[D] | None:
        """The document the first of :meth:`unacknowledged` was made on (``None``:
        nothing logged, or unknown).  Front ends write it when its ``parent``
        changes, not on every log write (it is the whole document)."""
        if self.outbox.carried is not None:
            return self.outbox.carried[0]
        return self._where() if self.outbox.inflight else None

    def _where(self) -> Base[D]:
        return Base(self.head.id, self.head.height, self.auth)

    def uncommitted(self) -> P:
        """Everything not yet on the chain, as one patch from ``auth`` to ``view``."""
        return self.outbox.uncommitted()

    # --- local edits -----------------------------------------------------

    def edit(self, patch: P) -> None:
        """Apply a local edit, expressed on :attr:`view`.

        Raises:
            LocalError: the session is read-only or ``patch`` does not apply.
        """
        if not self.writer:
            raise LocalError("this session is read-only (opened with a view link)")
        try:
            view = self.doctype.apply(self.view, patch)
        except InvalidPatch as error:
            raise LocalError(f"edit does not apply to the current text: {error}") from error
        self.open = self.doctype.compose(self.open, patch)
        self.view = view
        self.outbox.edited()

    def flush(self, *, send: bool = True) -> None:
        """Seal the open patch into in-flight patches and hand them out, when they can go.

        Online (``send``), the open patch is sealed when a patch sealed now
        would be sent at once (:attr:`Outbox.room`); while the pipeline is
        full, edits stay in the open patch and leave composed, sealed once,
        when an acknowledgement makes room: one seal for a burst of edits
        instead of one per edit.  ``send=False`` (offline) seals all of it
        without handing anything out.  Either way the write-ahead log misses
        no edit: :meth:`unacknowledged` seals the open patch before answering.
        """
        if send:
            self.outbox.release()
            if not self.outbox.room:
                return
        self.outbox.seal_open(self.head, lambda: self.auth, self.view)
        if send:
            self.outbox.release()

    # --- what the relay says ---------------------------------------------

    def receive(self, data: bytes, seq: int | None = None) -> None:
        """A sealed patch or snapshot from the relay (history or broadcast)."""
        try:
            opened = self.codec.open(data)
        except ValueError as error:
            self._alarm(AlarmKind.UNREADABLE, f"not an envelope: {error}")
            return
        self._note_seq(seq)
        if opened.kind == SNAPSHOT:
            self.replica.settle(opened.ref)  # the check walks back through inverses
            self.snapshots.check(opened, self.chain, self.head, self.auth, len(data))
            return
        if opened.kind != PATCH:
            self._alarm(AlarmKind.UNREADABLE, f"unexpected envelope kind {opened.kind}")
            return
        parent = self.chain.nodes.get(opened.ref)
        if opened.height is not None and parent is not None and opened.height != parent.height + 1:
            # Signed by an editor's session at another height: junk, a no-op for all.
            wrong = f"signed at height {opened.height}, on a parent at {parent.height}"
            opened = dataclasses.replace(opened, content=None, error=wrong)
        self.replica.add(opened.id, opened.ref, self._decode(opened), len(data))

    def check_snapshot(self, data: bytes) -> tuple[bytes, int, str] | None:
        """A snapshot someone just stored (sent live): compare it with our text at its patch.

        Returns:
            ``(snapshot id, height of its patch, what differs)`` when it does
            not match (an alarm was raised), else ``None`` (it matched, or we
            do not hold its patch and cannot tell).
        """
        try:
            opened = self.codec.open(data)
        except ValueError as error:
            self._alarm(AlarmKind.UNREADABLE, f"not a snapshot of this pad: {error}")
            return None
        if opened.kind != SNAPSHOT:
            self._alarm(AlarmKind.UNREADABLE, f"unexpected envelope kind {opened.kind}")
            return None
        self.replica.settle(opened.ref)  # the check walks back through inverses
        problem = self.snapshots.check(opened, self.chain, self.head, self.auth, len(data))
        node = self.chain.nodes.get(opened.ref)
        if problem is None or node is None:
            return None
        return opened.id, node.height, problem

    def acked(self, patch_id: bytes, seq: int | None = None) -> None:
        """The relay stored our patch ``patch_id`` (under ``seq``)."""
        self._note_seq(seq)
        if self.recovery is not None and self.recovery.expects(patch_id):
            probed(self, patch_id, stored=True)
            return
        own = self.outbox.own(patch_id)
        if own is not None and patch_id not in self.chain:
            self.replica.add(patch_id, own.parent, own.payload, len(own.sealed.data))

    def refused(self, patch_id: bytes, head: bytes | None = None) -> None:
        """The relay refused our patch because its parent is not the head ``head``.

        The refused patch and those after it are squashed into the open patch
        (those before it wait for their own answers: :meth:`Outbox.refused`);
        it is sealed again once we hold the head and they landed.  Refusals of patches already
        superseded are ignored.  Any refusal of a recovery probe means the
        relay never stored it (:mod:`client.recovery`).
        """
        if self.recovery is not None and self.recovery.expects(patch_id):
            probed(self, patch_id, stored=False)
            return
        if self.outbox.refused(patch_id) and head is not None and head not in self.chain:
            self.outbox.awaiting = head

    def adopt(self, sealed: list[bytes], bases: Sequence[Base[D]] = ()) -> list[bytes]:
        """Take back our own sealed patches after a restart (write-ahead recovery).

        Call it once history has been loaded and before any local edit, with
        the patches the previous process logged, oldest first, and the base(s)
        logged with them.  :mod:`client.recovery` says how: resent, rebased,
        or probed (:attr:`recovering` until the relay answers) and merged.

        Returns:
            The ids of the patches found already on the chain.

        Raises:
            LocalError: the engine has local work, or a patch is not one of
                ours to adopt (does not open, does not chain).
        """
        if not self.saved:
            raise LocalError("adopt before any local edit")
        landed, pending = _split_log(self, sealed)
        return landed + adopt(self, pending, list(bases))

    def resend(self) -> None:
        """After a reconnect: send the in-flight patches (or probes) again, same bytes."""
        self.outbox.resend()
        for probe in self.recovery.probes() if self.recovery is not None else []:
            self.emit(SendPatch(probe))

    def at_rest(self, *, head_author: bool) -> bool:
        """The pad is quiet: snapshot the head if its tail is long
        (:meth:`client.snapshots.Snapshots.at_rest`), never while our own
        work is in flight (it would land after).  ``head_author``: only if
        the head is our patch.  Returns whether a :class:`SendSnapshot` was made."""
        head = self.head
        if not self.saved or (head_author and not head.mine):
            return False
        return self.snapshots.at_rest(head, lambda: self.auth)

    def compaction(self) -> tuple[Sealed, Sealed] | None:
        """An owner trim: a snapshot of the head and a trim at the same patch
        (``None`` for an empty pad: nothing to trim).

        Send the snapshot first and the trim once the relay stored it (the
        relay trims only at a stored snapshot).  The head is the relay's
        (our unacknowledged work is not in it and stays ours).

        Raises:
            LocalError: a view-only engine.
        """
        if not self.writer:
            raise LocalError("a view link cannot trim the pad")
        head = self.head
        if head.height == 0:
            return None
        return self.snapshots.seal(head, self.auth), self.snapshots.seal_trim(head)

    def set_retention(self, keep_pct: int) -> Sealed | None:
        """Set the pad's retention record (:mod:`client.snapshots`): compactions
        keep older snapshots within ``keep_pct`` % of the newest one's bytes.

        Returns:
            A snapshot of the head carrying the record, to send (``None`` for
            an empty pad: the record rides its first snapshot).

        Raises:
            LocalError: a view-only engine.
        """
        if not self.writer:
            raise LocalError("a view link cannot change the pad's retention")
        known = self.snapshots.retention
        clock = self.snapshots.clock
        now = max(clock() if clock is not None else 0, known[1] + 1 if known is not None else 0)
        self.snapshots.retention = (keep_pct, now)
        head = self.head
        return None if head.height == 0 else self.snapshots.seal(head, self.auth)

    def load_snapshot(self, data: bytes, seq: int = 0) -> None:
        """Start from a snapshot (a fresh engine only): its patch (number ``seq``) is the root.

        Raises:
            LocalError: the engine already holds patches.
            InvalidPatch: the snapshot does not open, decode or verify.
        """
        if len(self.chain.nodes) > 1 or not self.saved:
            raise LocalError("load_snapshot is only for a fresh engine")
        root, contents = self.snapshots.load(data)
        self.replica.load(root, contents.height, contents.doc, contents.peaks, contents.hw)
        self.last_seq = seq

    # --- helpers ---------------------------------------------------------

    def _note_seq(self, seq: int | None) -> None:
        if seq is None or seq <= self.last_seq:
            return
        self._seqs_ahead.add(seq)
        while self.last_seq + 1 in self._seqs_ahead:
            self.last_seq += 1
            self._seqs_ahead.remove(self.last_seq)

    def _decode(self, opened: Opened) -> Payload[P] | None:
        if opened.content is None:
            self._alarm(AlarmKind.INVALID_PATCH, opened.error or "failed to open", opened.id)
            return None
        own = self.outbox.own(opened.id)
        if own is not None:
            return own.payload  # the very payload we sealed (see Replica._apply_node)
        try:
            return decode(self.doctype, opened.content)
        except (InvalidPatch, ValueError) as error:
            self._alarm(AlarmKind.INVALID_PATCH, f"malformed payload: {error}", opened.id)
            return None

    def emit(self, event: Event[P]) -> None:
        """Queue ``event`` for :meth:`events` (the parts and recovery report through it)."""
        self._events.append(event)

    def _alarm(self, kind: AlarmKind, detail: str, patch_id: bytes | None = None) -> None:
        self._events.append(Alarm(kind, detail, patch_id))

    def check_invariants(self) -> None:
        """Assert the engine's invariants (for tests and the simulator): O(document)."""
        doc = self.doctype
        assert doc.apply(self.auth, self.uncommitted()) == self.view, "view != auth + work"
        parent = self.head.id
        for own in self.inflight:
            assert own.parent == parent, "in-flight patches do not chain from the head"
            parent = own.sealed.id
        assert self.chain.best is self.head, "the head is not the best tip"


def _split_log(engine: Engine[D, P], sealed: list[bytes]) -> tuple[list[bytes], list[Own[P]]]:
    """The ids of logged patches already on the chain (with those before them),
    and the rest as our own patches, for :meth:`Engine.adopt`."""
    landed: list[bytes] = []
    pending: list[Own[P]] = []
    for data in sealed:
        opened = engine.codec.open(data)
        payload = None if opened.kind != PATCH else engine._decode(opened)
        if payload is None:
            raise LocalError("cannot adopt a sealed patch that does not open as a patch")
        if opened.id in engine.chain:  # it landed, and so did those before it
            landed += [own.sealed.id for own in pending] + [opened.id]
            pending = []
        elif pending and opened.ref != pending[-1].sealed.id:
            raise LocalError("adopted patches must each be parented on the one before")
        else:
            pending.append(Own(Sealed(opened.id, data), opened.ref, payload))
    return landed, pending


__all__ = [
    "GENESIS",
    "PATCH",
    "SNAPSHOT",
    "Alarm",
    "AlarmKind",
    "Base",
    "Codec",
    "Committed",
    "Engine",
    "Event",
    "LocalError",
    "Opened",
    "Payload",
    "RemoteChange",
    "Reverted",
    "Sealed",
    "SendPatch",
    "SendSnapshot",
]

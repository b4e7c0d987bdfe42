"""The session engine: blindpad's sans-I/O core.

Theory of operation
-------------------
An :class:`Engine` is one session's view of one pad.  It does no I/O, reads no
clock and makes no random choice: front ends (the asyncio SDK, the browser,
the simulator, the tests) feed it local edits and what the relay said, and
drain from :meth:`Engine.events` what to send and what to show.  Sealing and
opening envelopes is delegated to an injected :class:`Codec`, and everything
about the document to an injected :class:`~client.doctype.DocType`.

State::

    auth   the authoritative document: the result of the best chain
    inflight  sealed patches sent but not yet on the best chain, each parented
           on the one before, the first on the head (at most ``pipeline``)
    open   the patch absorbing keystrokes, on top of the in-flight ones
    view   what the user sees = apply(auth, inflight..., open)

The uncommitted work ``U`` is the composition of the in-flight patches and the
open patch: it always maps ``auth`` to ``view``.  Every change of the best
chain (:mod:`client.chain`) is walked node by node, keeping that invariant:

* **own patch applied** (the usual acknowledgement): if it is the first
  in-flight patch, it simply moves from ``U`` to ``auth``; nothing is
  transformed and the view does not change (the *fast path*).  Otherwise
  ``U := simplify(compose(invert(p), U))``: the view still does not change.
* **someone else's patch X applied**: ``U := transform(U, X)``; the view
  changes by ``transform(X, U)`` (reported as a :class:`RemoteChange`).
* **own patch reverted** (a fork switch): ``U := compose(p, U)``, so the work
  is put back and will be sent again; the view does not change.
* **someone else's patch reverted**: as applying its inverse.

Whenever a step leaves the fast path, the in-flight patches can no longer land
(their parents are off the head): they are *superseded* and everything
unacknowledged is squashed into the open patch, to be sealed afresh on the new
head.  Only the author ever re-seals its own work.  A superseded patch is still
recognised by id if it does land after all (federated relays), so nothing is
applied twice.  A refusal from the relay (stale parent) does the same squash.

Forks
-----
A single relay never forks; federated relays or direct peer sync do, and a
fork switch walks back to the common ancestor and forward again.  Crossing
someone else's patch by plain transform is lossy (a delete it already made
is absorbed; an insert inside text it removes loses its anchor), and a fork
switch may cross the same patch back and forth.  So the engine records, per
patch of someone else, the pair of works that corresponded across it last
time, and when it crosses again it restores the counterpart and rebases only
the edits made since (:meth:`Engine._cross`).  Our own patch landing on the
best chain cancels its additions against the work and applies its removals
like a remote change (:meth:`Engine._land_own`).  The simulator's forking
world (tests/sim.py) holds every session to an exact oracle with one
documented exception, inherent in revert-and-resend: a delete of text whose
insert was on a losing fork, made by a session that saw that insert
reverted, may be void when the inserting author sends the text again.  And,
as DESIGN.md says, work on a losing fork whose author is gone is lost until
deterministic merges replace revert-and-resend.

Integrity
---------
Each patch's payload carries the size of the document it produces (checked on
every patch, O(1)) and, when its height is a multiple of ``hash_every``, the
SHA-256 of that document (O(document), so amortised to O(document /
hash_every) per patch: 22 ms per 10 MB every 64 patches is 0.35 ms a patch,
less than the one splice each patch costs).  A patch that does not decode,
does not apply, or whose size or hash disagrees is invalid: a deterministic
no-op for every client (it keeps its place in the chain), reported as an
:class:`Alarm`.  Snapshots carry the full hash and are compared by live
clients with their own document.

Snapshots
---------
A snapshot is the document after an existing patch X, sealed beside the chain.
The author of X makes one when the sealed bytes of the patches since the last
snapshot reach the document's size (at least ``min_snapshot_bytes``); any
writer makes one at twice that, in case the author is gone.  A joining client
starts from the latest snapshot (:meth:`Engine.load_snapshot`).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from client.chain import GENESIS, Chain, DeepFork, Node, Pending
from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind

D = TypeVar("D")
P = TypeVar("P")

PATCH = 1
SNAPSHOT = 2


# --- the codec seam --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed envelope and its id."""

    id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope opened by a :class:`Codec`.

    ``content`` is ``None`` when the envelope was readable enough to place
    (its id, kind and ref are known) but failed to open (bad signature,
    undecryptable...); ``error`` then says why.
    """

    id: bytes
    kind: int
    ref: bytes
    content: bytes | None
    error: str | None = None
    author: bytes | None = None


class Codec(Protocol):
    """Seals and opens envelopes; the engine's only way to the cryptography."""

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        """Seal ``content`` of ``kind`` under ``ref`` (parent, or snapshot's patch)."""
        ...

    def open(self, data: bytes) -> Opened:
        """Open an envelope; raise ``ValueError`` if even its header is unreadable."""
        ...


# --- events ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendPatch:
    """Send this sealed patch to the relay (again, after a reconnect)."""

    sealed: Sealed


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Send this sealed snapshot of the document after patch ``of``."""

    sealed: Sealed
    of: bytes


@dataclass(frozen=True, slots=True)
class RemoteChange(Generic[P]):
    """The view changed by ``patch`` (in the coordinates of the view before it)."""

    patch: P


@dataclass(frozen=True, slots=True)
class Committed:
    """One of our patches is on the best chain."""

    id: bytes


@dataclass(frozen=True, slots=True)
class Reverted:
    """A fork switch took patch ``id`` off the best chain (``mine``: one of ours)."""

    id: bytes
    mine: bool


Event = SendPatch | SendSnapshot | RemoteChange[P] | Committed | Reverted | Alarm


class LocalError(Exception):
    """The caller misused the engine (an edit that does not apply, a read-only pad...)."""


# --- payloads --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload(Generic[P]):
    """A decoded patch with the integrity values its author claimed."""

    patch: P
    size: int
    digest: bytes | None
    time: int | None = None  # the author's clock at sealing, ms since the epoch (a claim)


@dataclass(slots=True)
class _Own(Generic[P]):
    """A patch we sealed that is not (yet) a node of the chain."""

    sealed: Sealed
    parent: bytes
    payload: Payload[P]


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Engine(Generic[D, P]):
    """One session on one pad.  See the module docstring for the theory.

    Args:
        doctype: the document type (``client.doctype.TEXT``).
        codec: seals and opens envelopes.
        writer: False for a view-only session: edits raise, nothing is sealed.
        pipeline: how many patches may be in flight at once (k).
        hash_every: heights at which a patch carries the full document hash.
        max_patch_bytes: patches larger than this are split (about; JSON size).
        min_snapshot_bytes: never make a snapshot before this many bytes of patches.
        max_orphans: patches with an unknown parent kept waiting; past it, the
            oldest is dropped with an :class:`Alarm`.
        max_depth: how far below the head the chain is kept (deepest fork followed).
        clock: milliseconds since the epoch, written into each patch we seal
            (history shows it); ``None`` writes no time.
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
    ) -> None:
        if pipeline < 1 or hash_every < 1:
            raise ValueError("pipeline and hash_every must be at least 1")
        self.doctype = doctype
        self.codec = codec
        self.writer = writer
        self.pipeline = pipeline
        self.hash_every = hash_every
        self.max_patch_bytes = max_patch_bytes
        self.min_snapshot_bytes = min_snapshot_bytes
        self.clock = clock
        self.chain: Chain[Payload[P]] = Chain(max_orphans=max_orphans, max_depth=max_depth)
        self.head: Node[Payload[P]] = self.chain.best
        self.auth: D = doctype.empty()
        self.view: D = self.auth
        self.inflight: list[_Own[P]] = []
        self.open: P = doctype.identity()
        self.last_seq = 0  # every relay sequence number up to this one has been seen
        self._seqs_ahead: set[int] = set()
        self._superseded: OrderedDict[bytes, _Own[P]] = OrderedDict()
        self._awaiting: bytes | None = None  # a head the relay named that we lack
        self._events: list[Event[P]] = []
        self._snapshot_height = 0
        self._bytes_since_snapshot = 0
        self._calm = 4 * pipeline  # our patches landed in a row since anyone else's
        self._sent = 0  # how many of the in-flight patches were handed out to send
        # Per node of someone else: the works that corresponded across it the
        # last time we crossed it, (without it, with it); see _cross.
        self._crossings: dict[bytes, tuple[P, P]] = {}

    # --- reading state ---------------------------------------------------

    @property
    def saved(self) -> bool:
        """True when every local edit is on the best chain."""
        return not self.inflight and self.doctype.is_identity(self.open)

    @property
    def height(self) -> int:
        """Patches from genesis to the head."""
        return self.head.height

    def events(self) -> list[Event[P]]:
        """Take the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def unacknowledged(self) -> list[Sealed]:
        """The sealed patches not yet on the chain, oldest first: those sent and
        those waiting for room at the relay (:attr:`depth`).

        A front end keeps them in its write-ahead log (and hands them to
        :meth:`adopt` after a restart); the open patch is not among them.
        """
        return [own.sealed for own in self.inflight]

    def uncommitted(self) -> P:
        """Everything not yet on the chain, as one patch from ``auth`` to ``view``."""
        work = self.doctype.identity()
        for own in self.inflight:
            work = self.doctype.compose(work, own.payload.patch)
        return self.doctype.compose(work, self.open)

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

    def flush(self) -> None:
        """Seal the open patch into in-flight patches, as far as the pipeline allows."""
        self._seal_open()
        self._release()

    def _seal_open(self) -> None:
        if self._awaiting is not None or self.doctype.is_identity(self.open):
            return
        free = self.pipeline - len(self.inflight)
        if free <= 0:
            return
        # Characters per piece: up to 4 bytes of UTF-8 each, and room for the
        # payload's framing (size, hash, brackets: under 128 bytes).
        budget = max(1, (self.max_patch_bytes - 128) // 4)
        pieces, rest = self.doctype.split(self.open, budget, free)
        if len(pieces) == 1 and self.doctype.is_identity(rest):
            self._seal(self.open, self.view)  # the usual case: the whole open patch
            self.open = rest
            return
        doc = self._tip()
        for piece in pieces:
            doc = self.doctype.apply(doc, piece)
            self._seal(piece, doc)
        self.open = rest

    def _tip(self) -> D:
        doc = self.auth
        for own in self.inflight:
            doc = self.doctype.apply(doc, own.payload.patch)
        return doc

    def _seal(self, patch: P, result: D) -> None:
        height = self.head.height + len(self.inflight) + 1
        digest = self.doctype.digest(result) if height % self.hash_every == 0 else None
        now = self.clock() if self.clock is not None else None
        payload = Payload(patch, self.doctype.size(result), digest, now)
        parent = self.inflight[-1].sealed.id if self.inflight else self.head.id
        sealed = self.codec.seal(PATCH, parent, self._encode(payload))
        self.inflight.append(_Own(sealed, parent, payload))

    def _encode(self, payload: Payload[P]) -> bytes:
        body: dict[str, object] = {
            "o": self.doctype.patch_to_wire(payload.patch),
            "n": payload.size,
        }
        if payload.digest is not None:
            body["h"] = payload.digest.hex()
        if payload.time is not None:
            body["t"] = payload.time
        return _dumps(body)

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
            self._check_snapshot(opened)
            return
        if opened.kind != PATCH:
            self._alarm(AlarmKind.UNREADABLE, f"unexpected envelope kind {opened.kind}")
            return
        self._add(opened.id, opened.ref, self._decode(opened), len(data))

    def acked(self, patch_id: bytes, seq: int | None = None) -> None:
        """The relay stored our patch ``patch_id`` (under ``seq``)."""
        self._note_seq(seq)
        own = self._own(patch_id)
        if own is not None and patch_id not in self.chain:
            self._add(patch_id, own.parent, own.payload, len(own.sealed.data))

    def refused(self, patch_id: bytes, head: bytes | None = None) -> None:
        """The relay refused our patch because its parent is not the head ``head``.

        Everything unacknowledged is squashed into the open patch; it is sealed
        again on the head once we hold it.  Refusals of patches already
        superseded are ignored.
        """
        if not any(own.sealed.id == patch_id for own in self.inflight):
            return
        self._squash()
        if head is not None and head not in self.chain:
            self._awaiting = head

    def adopt(self, sealed: list[bytes]) -> list[bytes]:
        """Take back our own sealed patches after a restart (write-ahead recovery).

        Call it once history has been loaded and before any local edit, with
        the patches the previous process sealed and had not seen
        acknowledged, oldest first (each parented on the one before).  Those
        already on the chain count as acknowledged.  The rest are sent again
        with the same bytes (same ids: the relay acknowledges a copy it
        already stored) while they still chain from the head; if the head
        has moved past their parent, they are combined, rebased onto it and
        sealed afresh, like refused work.

        Returns:
            The ids of the patches found already on the chain.

        Raises:
            LocalError: the engine has local work, or a patch is not one of
                ours to adopt (does not open, does not chain, parent unknown).
        """
        if not self.saved:
            raise LocalError("adopt before any local edit")
        landed: list[bytes] = []
        pending: list[_Own[P]] = []
        for data in sealed:
            opened = self.codec.open(data)
            payload = None if opened.kind != PATCH else self._decode(opened)
            if payload is None:
                raise LocalError("cannot adopt a sealed patch that does not open as a patch")
            if opened.id in self.chain:
                landed.append(opened.id)
            elif pending and opened.ref != pending[-1].sealed.id:
                raise LocalError("adopted patches must each be parented on the one before")
            else:
                pending.append(_Own(Sealed(opened.id, data), opened.ref, payload))
        if not pending:
            return landed
        if pending[0].parent == self.head.id:
            self.inflight = pending
            self.view = self.doctype.apply(self.auth, self.uncommitted())
            self._sent = 0
            self._release()
            return landed
        base = self.chain.nodes.get(pending[0].parent)
        if base is None or not base.on_chain:
            raise LocalError("cannot rebase adopted patches: their parent is not on the chain")
        doc = self.doctype
        work = doc.identity()
        for own in pending:
            work = doc.compose(work, own.payload.patch)
            self._supersede(own)
        for node in self._path_after(base):
            if node.patch is not None and node.inverse is not None:
                work = doc.transform(work, node.patch.patch)
        self.open = work
        self.view = doc.apply(self.auth, work)
        return landed

    def _path_after(self, ancestor: Node[Payload[P]]) -> list[Node[Payload[P]]]:
        """The best chain's nodes after ``ancestor``, oldest first.

        Raises:
            LookupError: ``ancestor`` is not on the kept part of the best chain.
        """
        path: list[Node[Payload[P]]] = []
        for node in self.chain.ancestors(self.head):
            if node is ancestor:
                return list(reversed(path))
            path.append(node)
        raise LookupError("node is not on the best chain")

    def resend(self) -> None:
        """After a reconnect: send the in-flight patches again, same bytes, same ids."""
        self._awaiting = None
        self._sent = 0
        self._release()

    def _release(self) -> None:
        """Hand out sealed patches to send, up to :attr:`depth` at the relay at once."""
        while self._sent < min(self.depth, len(self.inflight)):
            self._events.append(SendPatch(self.inflight[self._sent].sealed))
            self._sent += 1

    def _note_seq(self, seq: int | None) -> None:
        if seq is None or seq <= self.last_seq:
            return
        self._seqs_ahead.add(seq)
        while self.last_seq + 1 in self._seqs_ahead:
            self.last_seq += 1
            self._seqs_ahead.remove(self.last_seq)

    def _own(self, patch_id: bytes) -> _Own[P] | None:
        for own in self.inflight:
            if own.sealed.id == patch_id:
                return own
        return self._superseded.get(patch_id)

    def _decode(self, opened: Opened) -> Payload[P] | None:
        if opened.content is None:
            self._alarm(AlarmKind.INVALID_PATCH, opened.error or "failed to open", opened.id)
            return None
        own = self._own(opened.id)
        if own is not None:
            return own.payload
        try:
            body = json.loads(opened.content.decode("utf-8"))
            if not isinstance(body, dict) or set(body) - {"o", "n", "h", "t"}:
                raise InvalidPatch("payload must be an object with keys o, n, maybe h and t")
            size, digest, when = body.get("n"), body.get("h"), body.get("t")
            if type(size) is not int or size < 0:
                raise InvalidPatch("payload size n must be a non-negative integer")
            if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
                raise InvalidPatch("payload hash h must be 64 hex digits")
            if when is not None and (type(when) is not int or when < 0):
                raise InvalidPatch("payload time t must be a non-negative integer")
            patch = self.doctype.patch_from_wire(body.get("o"))
            return Payload(patch, size, bytes.fromhex(digest) if digest else None, when)
        except (InvalidPatch, ValueError) as error:
            self._alarm(AlarmKind.INVALID_PATCH, f"malformed payload: {error}", opened.id)
            return None

    # --- the chain -------------------------------------------------------

    def _add(self, patch_id: bytes, parent: bytes, payload: Payload[P] | None, size: int) -> None:
        # A patch built on one of ours whose ack we never got proves ours was
        # stored: connect ours first (and its own unacknowledged parents).
        lineage: list[_Own[P]] = []
        ancestor = parent
        while not self.chain.knows(ancestor) and (own := self._own(ancestor)) is not None:
            lineage.append(own)
            ancestor = own.parent
        for own in reversed(lineage):
            self._connect(own.sealed.id, own.parent, own.payload, len(own.sealed.data))
        self._connect(patch_id, parent, payload, size)

    def _connect(
        self, patch_id: bytes, parent: bytes, payload: Payload[P] | None, size: int
    ) -> None:
        mine = self._own(patch_id) is not None
        connected, evicted = self.chain.add(Pending(patch_id, parent, payload, size, mine))
        for orphan in evicted:
            self._alarm(
                AlarmKind.ORPHAN_OVERFLOW,
                f"dropped a patch waiting for parent {orphan.parent.hex()[:16]}",
                orphan.id,
            )
        if connected and self.chain.best is not self.head:
            self._move_to(self.chain.best)
            self._release()
            # The head moved: seal the waiting work on it, even if it is not
            # yet the head the relay named (at worst refused once more, naming
            # it again); waiting for that exact id could wait forever.
            self._awaiting = None

    def _move_to(self, target: Node[Payload[P]]) -> None:
        try:
            revert, forward = self.chain.path(self.head, target)
        except DeepFork as error:
            self._alarm(AlarmKind.DEEP_FORK, str(error), target.id)
            self.chain.best = self.head
            return
        steps = 0
        if not revert:
            while steps < len(forward) and self._fast_forward(forward[steps]):
                steps += 1
        if revert or steps < len(forward):
            self._slow_path(revert, forward[steps:])
        self.head = target
        self.chain.prune()
        if len(self._crossings) > len(self.chain.nodes):
            kept = self.chain.nodes
            self._crossings = {k: v for k, v in self._crossings.items() if k in kept}

    def _fast_forward(self, node: Node[Payload[P]]) -> bool:
        """Apply our own first in-flight patch; False if ``node`` is not that patch."""
        if not self.inflight or self.inflight[0].sealed.id != node.id:
            return False
        own = self.inflight.pop(0)
        self._sent = max(0, self._sent - 1)
        # With nothing else uncommitted the new authoritative text *is* the
        # view: share it instead of splicing the same change into a copy.
        result = self.view if self.saved else None
        if self._apply_node(node, result=result, ours=own.payload is node.patch) is not None:
            self._committed(node)
            return True
        # Our own patch was judged invalid (a no-op for everyone): keep its
        # work and seal everything again on the new head.
        work = self.doctype.compose(own.payload.patch, self.uncommitted())
        self._supersede(own)
        self._squash()
        self.open = work
        return True

    def _slow_path(self, revert: list[Node[Payload[P]]], forward: list[Node[Payload[P]]]) -> None:
        doc = self.doctype
        self._squash()
        work = self.open
        delta = doc.identity()
        for node in revert:
            origin = self.auth
            self._unapply_node(node)
            self._events.append(Reverted(node.id, node.mine))
            if node.patch is None or self.auth is origin:
                continue  # an invalid patch: a no-op both ways
            if node.mine:
                work = doc.compose(node.patch.patch, work)  # our work goes back, view unchanged
            else:
                step = doc.invert(node.patch.patch, self.auth)
                work, seen = self._cross(node, work, origin, step, forward=False)
                delta = doc.compose(delta, seen)
        for node in forward:
            origin = self.auth
            inverse = self._apply_node(node)
            if inverse is None or node.patch is None:
                continue
            if node.mine:
                work, seen = self._land_own(node.patch.patch, inverse.patch, work)
                self._committed(node)
            else:
                work, seen = self._cross(node, work, origin, node.patch.patch, forward=True)
                self._maybe_snapshot(node, own=False)
                self._calm = 0  # someone else is writing: see depth
            delta = doc.compose(delta, seen)
        self.open = work
        if doc.is_identity(delta):
            return
        # With no work of our own the view is the authoritative document:
        # share it rather than splicing the same change into a second copy.
        self.view = self.auth if doc.is_identity(work) else doc.apply(self.view, delta)
        self._events.append(RemoteChange(delta))

    def _cross(
        self, node: Node[Payload[P]], work: P, origin: D, step: P, *, forward: bool
    ) -> tuple[P, P]:
        """Rebase ``work`` (on ``origin``) across someone else's patch; return (work, view change).

        ``step`` moves ``auth`` from ``origin`` across ``node``: its patch when
        applying it, its inverse when reverting it.  Plain OT would transform
        the work over ``step``; but transforming is lossy (a delete the patch
        already made is absorbed, an insert inside text the step removes
        loses its anchor), and a fork switch may cross the same node back and
        forth.  So for each node we remember the two works that corresponded
        across it the last time, ``(without, with)``.  Crossing again, we
        restore the counterpart and rebase only the edits made since, over
        the *bridge* between the two recorded views.  With no record (both
        empty) this is exactly the plain transform.
        """
        doc = self.doctype
        empty = doc.identity()
        without, with_ = self._crossings.get(node.id, (empty, empty))
        here, there = (without, with_) if forward else (with_, without)
        if doc.is_identity(here):
            since, bridge = work, doc.compose(step, there)
        else:
            # Minimal diffs between the actual views: a composed patch would
            # delete and re-add the recorded text, and an edit made since
            # would then miss the "new" copy.
            recorded = doc.apply(origin, here)
            since = doc.diff(recorded, doc.apply(origin, work))
            bridge = doc.diff(recorded, doc.apply(doc.apply(origin, step), there))
        rebased = doc.compose(there, doc.transform(since, bridge))
        seen = doc.transform(bridge, since)
        record = (work, rebased) if forward else (rebased, work)
        if doc.is_identity(record[0]) and doc.is_identity(record[1]):
            self._crossings.pop(node.id, None)
        else:
            self._crossings[node.id] = record
        return rebased, seen

    def _land_own(self, patch: P, inverse: P, work: P) -> tuple[P, P]:
        """Our own patch landed while we had other work; return (work, view change).

        Its additions cancel against the work (where we put them back when
        they fell off), so they are not added twice: the work is reduced to a
        minimal diff from ``auth`` to the view.  Its removals are applied
        like someone else's: text the work still removes is removed once,
        and text the work no longer removes (because a fork switch voided our
        delete) goes from the view too, rather than being added back by us.
        """
        doc = self.doctype
        removals, additions = doc.separate(patch)
        seen = doc.transform(removals, work)
        work = doc.transform(work, removals)
        middle = doc.apply(doc.apply(self.auth, inverse), removals)
        work = doc.compose(doc.invert(additions, middle), work)
        # The copy we put back may have drifted from where the patch adds it
        # (a fork switch moves it); a minimal diff finds them to be the same.
        return doc.diff(self.auth, doc.apply(self.auth, work)), seen

    def _supersede(self, own: _Own[P]) -> None:
        self._superseded[own.sealed.id] = own
        while len(self._superseded) > 4096:
            self._superseded.popitem(last=False)

    def _squash(self) -> None:
        self.open = self.uncommitted()
        for own in self.inflight:
            self._supersede(own)
        self.inflight = []
        self._sent = 0

    def _apply_node(
        self, node: Node[Payload[P]], *, result: D | None = None, ours: bool = False
    ) -> Payload[P] | None:
        """Apply ``node`` to ``auth`` if valid; return its inverse (None: a no-op).

        ``result``, when given, is the document the patch is known to produce
        (the view, for our own patch with nothing else pending).  ``ours``: the
        payload is one we sealed, whose hash we computed from that very text.
        """
        node.on_chain = True
        self._bytes_since_snapshot += node.content_size
        payload = node.patch
        if payload is None:
            return None
        try:
            produced = self.doctype.apply(self.auth, payload.patch) if result is None else result
            problem = self._integrity_problem(node, payload, produced, ours)
        except InvalidPatch as error:
            problem = f"does not apply: {error}"
        if problem is not None:
            self._alarm(AlarmKind.INVALID_PATCH, problem, node.id)
            node.patch = None  # the same verdict on every client, now and on re-apply
            return None
        inverse = Payload(self.doctype.invert(payload.patch, self.auth), 0, None)
        node.inverse = inverse
        self.auth = produced
        return inverse

    def _integrity_problem(
        self, node: Node[Payload[P]], payload: Payload[P], doc: D, ours: bool
    ) -> str | None:
        if self.doctype.size(doc) != payload.size:
            return f"size mismatch: patch says {payload.size}, result has {self.doctype.size(doc)}"
        if node.height % self.hash_every == 0:
            if payload.digest is None:
                return f"missing document hash at height {node.height}"
            if not ours and self.doctype.digest(doc) != payload.digest:
                return f"document hash mismatch at height {node.height}"
        return None

    def _unapply_node(self, node: Node[Payload[P]]) -> None:
        node.on_chain = False
        self._bytes_since_snapshot -= node.content_size
        if node.inverse is not None:
            self.auth = self.doctype.apply(self.auth, node.inverse.patch)
            node.inverse = None

    @property
    def depth(self) -> int:
        """How many sealed patches may be at the relay at once: ``pipeline``, or 1
        under contention.

        While other sessions' patches keep landing, a deep pipeline starves
        them: their rebased patch is stale on arrival because ours, parented
        on our own, are already queued at the relay.  With one sent at a time
        each round is a fair race (we re-seal on the broadcast, not on the
        refusal).  Sealing is not limited by it (up to ``pipeline`` patches),
        so what is typed still reaches the write-ahead log.  Full depth comes
        back after ``4 * pipeline`` of our own patches land with nobody
        else's in between.
        """
        return self.pipeline if self._calm >= 4 * self.pipeline else 1

    def _committed(self, node: Node[Payload[P]]) -> None:
        self._calm += 1
        self._superseded.pop(node.id, None)
        self._events.append(Committed(node.id))
        self._maybe_snapshot(node, own=True)

    # --- snapshots -------------------------------------------------------

    def load_snapshot(self, data: bytes, seq: int = 0) -> None:
        """Start from a snapshot (a fresh engine only): its patch (number ``seq``) is the root.

        Raises:
            LocalError: the engine already holds patches.
            InvalidPatch: the snapshot does not open, decode or verify.
        """
        if len(self.chain.nodes) > 1 or not self.saved:
            raise LocalError("load_snapshot is only for a fresh engine")
        opened = self.codec.open(data)
        if opened.kind != SNAPSHOT or opened.content is None:
            raise InvalidPatch(f"not a valid snapshot: {opened.error or 'wrong kind'}")
        height, doc = self._decode_snapshot(opened.content)
        self.chain = Chain[Payload[P]](
            root=opened.ref,
            root_height=height,
            max_orphans=self.chain.max_orphans,
            max_depth=self.chain.max_depth,
        )
        self.head = self.chain.best
        self.auth = self.view = doc
        self._snapshot_height = height
        self._bytes_since_snapshot = 0
        self.last_seq = seq

    def _decode_snapshot(self, content: bytes) -> tuple[int, D]:
        try:
            body = json.loads(content.decode("utf-8"))
        except ValueError as error:
            raise InvalidPatch(f"snapshot is not JSON: {error}") from error
        if not isinstance(body, dict) or set(body) != {"height", "doc", "h"}:
            raise InvalidPatch("snapshot must be an object with keys height, doc and h")
        height, digest = body["height"], body["h"]
        if type(height) is not int or height < 0 or not isinstance(digest, str):
            raise InvalidPatch("snapshot height or hash has the wrong type")
        doc = self.doctype.doc_from_wire(body["doc"])
        if self.doctype.digest(doc).hex() != digest:
            raise InvalidPatch("snapshot hash does not match its document")
        return height, doc

    def _check_snapshot(self, opened: Opened) -> None:
        node = self.chain.nodes.get(opened.ref)
        if node is None or not node.on_chain or opened.content is None:
            return  # a snapshot of a patch we do not hold: nothing to compare
        try:
            height, doc = self._decode_snapshot(opened.content)
        except InvalidPatch as error:
            self._alarm(AlarmKind.SNAPSHOT_MISMATCH, f"bad snapshot: {error}", opened.id)
            return
        ours = self._doc_at(node)
        if height != node.height or self.doctype.digest(doc) != self.doctype.digest(ours):
            self._alarm(
                AlarmKind.SNAPSHOT_MISMATCH,
                f"snapshot of {node.id.hex()[:16]} differs from our document",
                opened.id,
            )
            return
        if node.height > self._snapshot_height:
            self._bytes_since_snapshot = sum(n.content_size for n in self._path_after(node))
            self._snapshot_height = node.height

    def _doc_at(self, node: Node[Payload[P]]) -> D:
        """The authoritative document right after ``node`` (on the best chain)."""
        doc = self.auth
        for step in reversed(self._path_after(node)):
            if step.inverse is not None:
                doc = self.doctype.apply(doc, step.inverse.patch)
        return doc

    def _maybe_snapshot(self, node: Node[Payload[P]], *, own: bool) -> None:
        threshold = max(self.min_snapshot_bytes, self.doctype.size(self.auth))
        if not self.writer or self._bytes_since_snapshot < threshold * (1 if own else 2):
            return
        body = {
            "height": node.height,
            "doc": self.doctype.doc_to_wire(self.auth),
            "h": self.doctype.digest(self.auth).hex(),
        }
        sealed = self.codec.seal(SNAPSHOT, node.id, _dumps(body))
        self._events.append(SendSnapshot(sealed, node.id))
        self._snapshot_height = node.height
        self._bytes_since_snapshot = 0

    # --- helpers ---------------------------------------------------------

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


__all__ = [
    "GENESIS",
    "PATCH",
    "SNAPSHOT",
    "Alarm",
    "AlarmKind",
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

"""The replica: the best chain, the document it produces, and the walk between heads.

Theory of operation
-------------------
A :class:`Replica` holds what one session knows of a pad::

    chain  the patches received, as a tree (:mod:`client.chain`)
    head   the best chain's tip
    auth   the authoritative document: the result of the best chain
    view   what the user sees = apply(auth, inflight..., open)

The in-flight patches and the open patch belong to the :mod:`outbox
<client.outbox>`; composed they are the uncommitted work ``U``, which always
maps ``auth`` to ``view``.  Every change of the best chain is walked node by
node, keeping that invariant:

* **own patch applied** (the usual acknowledgement): if it is the first
  in-flight patch, it simply moves from ``U`` to ``auth``; nothing is
  transformed and the view does not change (the *fast path*, see below for
  how ``auth`` follows without a splice per patch).  Otherwise
  ``U := simplify(compose(invert(p), U))``: the view still does not change.
* **someone else's patch X applied**: ``U := transform(U, X)``; the view
  changes by ``transform(X, U)`` (reported as a :class:`RemoteChange`).
* **own patch reverted** (a fork switch): ``U := compose(p, U)``, so the work
  is put back and will be sent again; the view does not change.
* **someone else's patch reverted**: as applying its inverse.

Whenever a step leaves the fast path, the in-flight patches can no longer land
(their parents are off the head): the outbox squashes them into the open
patch, to be sealed afresh on the new head.  How the work crosses a patch,
exactly and across fork switches, is :mod:`client.rebase`'s business.

**Deferred acknowledgements.**  A large edit is sealed into many patches;
applying each one's acknowledgement to ``auth`` would be one whole-document
splice per patch (quadratic in the edit).  So on the fast path our own patch
is not applied at once: it joins ``ahead`` (:meth:`Replica.auth` applies
them, composed, in one splice when something asks), and when it was the last
of our work ``auth`` simply becomes the view, which is that document.  Its
size claim is checked from the sizes (:meth:`DocType.size_change`), as every
reader checks it; its hash we computed when sealing (as for every own patch).
Its inverse, which needs the document before it, is computed at once when
that document is at hand (the first of a run), else owed: a *window* keeps
the document before the run and its nodes, and :meth:`Replica.settle`
replays it when an inverse is needed (reverting it in a fork switch, walking
back to check a snapshot); a window whose nodes all left the chain is
dropped.  Nothing is ever owed for someone else's patch: it needs ``auth``,
which is then built first.

Applying a node checks its integrity claims (:mod:`client.payload`); a node
that fails is invalid: ``node.patch`` becomes ``None``, the same verdict on
every client, and it stays a no-op forever after.  Each node applied or
reverted also moves the count of bytes since the last snapshot
(:mod:`client.snapshots`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from client.chain import Chain, DeepFork, Node, Pending
from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind
from client.outbox import Outbox, Own
from client.payload import Payload, integrity_problem
from client.rebase import Rebaser
from client.snapshots import STORED_ROW_BYTES, Snapshots
from wire import mmr

D = TypeVar("D")
P = TypeVar("P")


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


class Replica(Generic[D, P]):
    """The chain, the head, ``auth`` and ``view``, kept in step.

    Args:
        doctype: the document type.
        outbox: our uncommitted work (read and rewritten by the walk).
        snapshots: told of every node applied, reverted and committed.
        emit: where the walk's events go (the engine's events).
        hash_every: heights at which a patch carries the full document hash.
        max_orphans: patches with an unknown parent kept waiting.
        max_depth: how far below the head the chain is kept.
    """

    def __init__(
        self,
        doctype: DocType[D, P],
        outbox: Outbox[D, P],
        snapshots: Snapshots[D, P],
        emit: Callable[[RemoteChange[P] | Committed | Reverted | Alarm], None],
        *,
        hash_every: int,
        max_orphans: int,
        max_depth: int,
    ) -> None:
        self.doctype = doctype
        self.outbox = outbox
        self.snapshots = snapshots
        self.emit = emit
        self.hash_every = hash_every
        self.rebaser = Rebaser(doctype)
        self.chain: Chain[Payload[P]] = Chain(max_orphans=max_orphans, max_depth=max_depth)
        self.head: Node[Payload[P]] = self.chain.best
        self._auth: D = doctype.empty()  # ``auth`` before the patches in ``_ahead``
        self._ahead: list[Node[Payload[P]]] = []  # own nodes landed, not yet applied
        self._size = 0  # doctype.size(auth), while ``_ahead`` is not empty
        # Own nodes whose inverse is owed: (the document before nodes[0], nodes).
        self._windows: list[tuple[D, list[Node[Payload[P]]]]] = []
        self._window: list[Node[Payload[P]]] | None = None  # the one ``_ahead`` extends
        self.view: D = self._auth
        # The high-water table of the best chain: writer session -> (its highest
        # counter, the height of that patch).  See client.snapshots.
        self.hw: dict[bytes, tuple[int, int]] = {}

    @property
    def auth(self) -> D:
        """The authoritative document (our landed patches applied now, if deferred)."""
        if self._ahead:
            patches = [node.patch.patch for node in self._ahead if node.patch is not None]
            self._auth = self.doctype.apply_all(self._auth, patches)
            self._ahead, self._window = [], None
        return self._auth

    @auth.setter
    def auth(self, doc: D) -> None:
        self._auth, self._ahead, self._window = doc, [], None

    def settle(self, since: bytes | None = None) -> None:
        """Compute the inverses still owed (with ``since``: only if one is owed
        on the best chain after that patch)."""
        if since is not None:
            node = self.chain.nodes.get(since)
            if node is None or not node.on_chain:
                return
            if all(nodes[-1].height <= node.height for _, nodes in self._windows):
                return
        for base, nodes in self._windows:
            doc = base
            for step in nodes:
                assert step.patch is not None  # deferred nodes are valid ones
                if step.inverse is None:
                    step.inverse = Payload(self.doctype.invert(step.patch.patch, doc), 0, None)
                doc = self.doctype.apply(doc, step.patch.patch)
        self._windows, self._window = [], None

    def load(
        self,
        root: bytes,
        height: int,
        doc: D,
        peaks: mmr.Peaks | None = None,
        hw: dict[bytes, tuple[int, int]] | None = None,
    ) -> None:
        """Start over from ``doc``, the document after patch ``root`` at ``height``
        (``peaks``: the Merkle mountain range there, when the snapshot says;
        ``hw``: its high-water table)."""
        self.chain = Chain[Payload[P]](
            root=root,
            root_height=height,
            root_peaks=peaks,
            max_orphans=self.chain.max_orphans,
            max_depth=self.chain.max_depth,
            fast_forward=self.chain.fast_forward,
        )
        self.head = self.chain.best
        self.auth = self.view = doc
        self._windows = []
        self.hw = dict(hw or {})

    def add(self, patch_id: bytes, parent: bytes, payload: Payload[P] | None, size: int) -> None:
        """A patch (``size`` sealed bytes; ``payload`` None if invalid) joins the chain."""
        # A patch built on one of ours whose ack we never got proves ours was
        # stored: connect ours first (and its own unacknowledged parents).
        lineage: list[Own[P]] = []
        ancestor = parent
        while not self.chain.knows(ancestor) and (own := self.outbox.own(ancestor)) is not None:
            lineage.append(own)
            ancestor = own.parent
        for own in reversed(lineage):
            self._connect(own.sealed.id, own.parent, own.payload, len(own.sealed.data))
        self._connect(patch_id, parent, payload, size)

    def _connect(
        self, patch_id: bytes, parent: bytes, payload: Payload[P] | None, size: int
    ) -> None:
        mine = self.outbox.own(patch_id) is not None
        # What it costs stored (toward the snapshot cadence, client.snapshots).
        cost = size + STORED_ROW_BYTES
        connected, evicted = self.chain.add(Pending(patch_id, parent, payload, cost, mine))
        for orphan in evicted:
            self._alarm(
                AlarmKind.ORPHAN_OVERFLOW,
                f"dropped a patch waiting for parent {orphan.parent.hex()[:16]}",
                orphan.id,
            )
        if connected and self.chain.best is not self.head:
            self._move_to(self.chain.best)
            self.outbox.release()
            # The head moved: seal the waiting work on it, even if it is not
            # yet the head the relay named (at worst refused once more, naming
            # it again); waiting for that exact id could wait forever.
            self.outbox.awaiting = None

    # --- the walk --------------------------------------------------------

    def _move_to(self, target: Node[Payload[P]]) -> None:
        try:
            revert, forward = self.chain.path(self.head, target)
        except DeepFork as error:
            self._alarm(AlarmKind.DEEP_FORK, str(error), target.id)
            self.chain.best = self.head
            return
        if revert:
            self.settle()  # reverting needs every inverse
        steps = 0
        if not revert:
            while steps < len(forward) and self._fast_forward(forward[steps]):
                steps += 1
        if revert or steps < len(forward):
            self._slow_path(revert, forward[steps:])
        self.head = target
        self.chain.prune()
        self.rebaser.prune(self.chain.nodes)
        self._windows = [w for w in self._windows if w[1][-1].id in self.chain.nodes]

    def _fast_forward(self, node: Node[Payload[P]]) -> bool:
        """Apply our own first in-flight patch; False if ``node`` is not that patch."""
        own = self.outbox.landed(node.id)
        if own is None:
            return False
        if own.payload is node.patch and self._defer(node, own.payload):
            self._committed(node)
            return True
        # With nothing else uncommitted the new authoritative text *is* the
        # view: share it instead of splicing the same change into a copy.
        result = self.view if self.outbox.empty else None
        if self._apply_node(node, result=result, ours=own.payload is node.patch) is not None:
            self._committed(node)
            return True
        # Our own patch was judged invalid (a no-op for everyone): keep its
        # work and seal everything again on the new head.
        work = self.doctype.compose(own.payload.patch, self.outbox.uncommitted())
        self.outbox.supersede(own)
        self.outbox.squash()
        self.outbox.open = work
        return True

    def _defer(self, node: Node[Payload[P]], payload: Payload[P]) -> bool:
        """Land our own ``payload`` (the one we sealed) without applying it yet;
        False (nothing done) when its size change depends on the document or
        its claims are wrong: then it is applied as any other patch."""
        change = self.doctype.size_change(payload.patch)
        if change is None:
            return False
        size = (self._size if self._ahead else self.doctype.size(self._auth)) + change
        claims = integrity_problem(
            self.doctype, payload, None, node.height, self.hash_every, True, size=size
        )
        if claims is not None:
            return False
        node.on_chain = True
        self.snapshots.bytes_since += node.content_size
        self._high_water(node, payload)
        if not self._ahead:
            node.inverse = Payload(self.doctype.invert(payload.patch, self._auth), 0, None)
        else:
            if self._window is None:
                self._window = list(self._ahead)
                self._windows.append((self._auth, self._window))
            self._window.append(node)
        if self.outbox.empty:
            self.auth = self.view  # nothing else uncommitted: the view *is* that document
        else:
            self._ahead.append(node)
            self._size = size
        return True

    def _slow_path(self, revert: list[Node[Payload[P]]], forward: list[Node[Payload[P]]]) -> None:
        doc = self.doctype
        self.outbox.squash()
        work = self.outbox.open
        delta = doc.identity()
        for node in revert:
            origin = self.auth
            self._unapply_node(node)
            self.emit(Reverted(node.id, node.mine))
            if node.patch is None or self.auth is origin:
                continue  # an invalid patch: a no-op both ways
            if node.mine:
                work = doc.compose(node.patch.patch, work)  # our work goes back, view unchanged
            else:
                step = doc.invert(node.patch.patch, self.auth)
                work, seen = self.rebaser.cross(node.id, work, origin, step, forward=False)
                delta = doc.compose(delta, seen)
        for node in forward:
            origin = self.auth
            inverse = self._apply_node(node)
            if inverse is None or node.patch is None:
                continue
            if node.mine:
                work, seen = self.rebaser.land_own(
                    self.auth, node.patch.patch, inverse.patch, work
                )
                self._committed(node)
            else:
                step = node.patch.patch
                work, seen = self.rebaser.cross(node.id, work, origin, step, forward=True)
                self.snapshots.maybe_make(node, lambda: self.auth, own=False)
                self.outbox.contended()  # someone else is writing: see Outbox.depth
            delta = doc.compose(delta, seen)
        self.outbox.open = work
        if doc.is_identity(delta):
            return
        # With no work of our own the view is the authoritative document:
        # share it rather than splicing the same change into a second copy.
        self.view = self.auth if doc.is_identity(work) else doc.apply(self.view, delta)
        self.emit(RemoteChange(delta))

    def _apply_node(
        self, node: Node[Payload[P]], *, result: D | None = None, ours: bool = False
    ) -> Payload[P] | None:
        """Apply ``node`` to ``auth`` if valid; return its inverse (None: a no-op).

        ``result``, when given, is the document the patch is known to produce
        (the view, for our own patch with nothing else pending).  ``ours``: the
        payload is one we sealed, whose hash we computed from that very text.
        """
        node.on_chain = True
        self.snapshots.bytes_since += node.content_size
        payload = node.patch
        if payload is None:
            return None
        self._high_water(node, payload)
        try:
            produced = self.doctype.apply(self.auth, payload.patch) if result is None else result
            problem = integrity_problem(
                self.doctype, payload, produced, node.height, self.hash_every, ours
            )
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

    def _high_water(self, node: Node[Payload[P]], payload: Payload[P]) -> None:
        if payload.session is not None and payload.counter is not None:
            before = self.hw.get(payload.session)
            node.hw_undo = (payload.session, before)
            if before is None or payload.counter > before[0]:
                self.hw[payload.session] = (payload.counter, node.height)

    def _unapply_node(self, node: Node[Payload[P]]) -> None:
        node.on_chain = False
        self.snapshots.bytes_since -= node.content_size
        if node.hw_undo is not None:
            session, before = node.hw_undo
            if before is None:
                self.hw.pop(session, None)
            else:
                self.hw[session] = before
            node.hw_undo = None
        if node.inverse is not None:
            self.auth = self.doctype.apply(self.auth, node.inverse.patch)
            node.inverse = None

    def _committed(self, node: Node[Payload[P]]) -> None:
        self.outbox.committed(node.id)
        self.emit(Committed(node.id))
        self.snapshots.maybe_make(node, lambda: self.auth, own=True, ahead=self._ahead_bytes)

    def _ahead_bytes(self, limit: int) -> bool:
        """Whether our own patches still in flight (they land next) exceed ``limit``
        sealed bytes (counted only that far: a large edit is many patches)."""
        total = 0
        for own in self.outbox.inflight:
            total += len(own.sealed.data)
            if total > limit:
                return True
        return False

    def _alarm(self, kind: AlarmKind, detail: str, patch_id: bytes | None = None) -> None:
        self.emit(Alarm(kind, detail, patch_id))


__all__ = ["Committed", "RemoteChange", "Replica", "Reverted"]

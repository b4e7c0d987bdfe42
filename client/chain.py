"""The patch DAG and the best-chain rule: pure bookkeeping, no document.

Theory of operation
-------------------
Every patch names its parent by id, so the patches a client holds form a tree
rooted at the channel's genesis (the all-zero id) or, for a client that joined
from a snapshot, at the snapshot's patch.  A patch whose parent is unknown is
an *orphan*: it waits, in a bounded buffer, until its parent arrives.

The **best chain** ends at the best tip: the connected node with the greatest
height (patches from the root), ties broken by the lowest id (bytewise).  That
is a total order on nodes, so every client holding the same set of patches
picks the same chain whatever order the patches arrived in, including among
descendants of a fork; and since heights only grow, the best tip can be kept
up to date in O(1) per new node.

Ids are opaque bytes to this module (the envelope layer makes them: a hash of
the sealed bytes).  Nodes further than ``max_depth`` below the best tip are
forgotten: a fork deeper than that cannot be followed (a single relay never
forks; federated relays resolve forks within seconds), and memory stays
proportional to ``max_depth``, not to the history.

Every node carries the Merkle mountain range of the ids up to it
(:mod:`wire.mmr`), continued from the root's (empty at genesis; a
snapshot's signed peaks when the session joined from one).

**Fast-forward only.**  A session talking to one relay (or one site of
relays sharing a store) sets :attr:`Chain.fast_forward`: the relay's history
is one line, so the best tip only ever moves to a *descendant* of the current
one.  A patch that connects anywhere else (a second child of a patch, a
branch below the head) is a fork the relay served: it is kept aside in
:attr:`Chain.strays` for the session to raise the alarm, and it never
changes the text.  The simulator, which models forks, leaves it off.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from wire import mmr

P = TypeVar("P")

#: The parent id of the first patch of every channel.
GENESIS = bytes(32)


@dataclass(eq=False, slots=True)
class Node(Generic[P]):
    """A patch connected to the root.

    ``patch`` is ``None`` for an invalid patch: it holds its place in the chain
    (others may build on it) but changes nothing.  ``inverse`` is set while the
    node is applied to the authoritative document, so it can be reverted
    (for our own patch it may be owed a while: see ``Replica.settle``).
    """

    id: bytes
    parent: bytes
    height: int
    patch: P | None
    content_size: int = 0  # sealed bytes and the row that stores them (snapshot cadence)
    mine: bool = False
    inverse: P | None = None
    on_chain: bool = False
    peaks: mmr.Peaks | None = None  # the MMR of the ids up to here (None: unknown)
    # While applied: the writer session it raised in the high-water table and
    # that session's entry before (None: new), so reverting it restores it.
    hw_undo: tuple[bytes, tuple[int, int] | None] | None = None


@dataclass(frozen=True, slots=True)
class Pending(Generic[P]):
    """A patch waiting for its parent (an orphan)."""

    id: bytes
    parent: bytes
    patch: P | None
    content_size: int
    mine: bool = False


@dataclass
class Chain(Generic[P]):
    """The known nodes, the orphans, and the best tip."""

    root: bytes = GENESIS
    root_height: int = 0
    root_peaks: mmr.Peaks | None = mmr.EMPTY  # a snapshot's root: the peaks it signs
    max_orphans: int = 1024
    max_depth: int = 1000
    fast_forward: bool = False
    nodes: dict[bytes, Node[P]] = field(default_factory=dict)
    orphans: OrderedDict[bytes, Pending[P]] = field(default_factory=OrderedDict)
    waiting: dict[bytes, list[bytes]] = field(default_factory=dict)  # parent -> orphan ids
    strays: list[Node[P]] = field(default_factory=list)  # fast-forward: forks seen, for the caller
    best: Node[P] = field(init=False)

    def __post_init__(self) -> None:
        root = Node[P](
            self.root, GENESIS, self.root_height, None, on_chain=True, peaks=self.root_peaks
        )
        self.nodes[self.root] = root
        self.best = root

    def __contains__(self, patch_id: bytes) -> bool:
        return patch_id in self.nodes

    def knows(self, patch_id: bytes) -> bool:
        """True if ``patch_id`` is a node or a waiting orphan."""
        return patch_id in self.nodes or patch_id in self.orphans

    def add(self, pending: Pending[P]) -> tuple[list[Node[P]], list[Pending[P]]]:
        """Add a patch; connect it and every orphan waiting on it.

        Returns:
            ``(connected, evicted)``: the nodes that joined the tree (in an order
            where parents come first) and the orphans dropped because the orphan
            buffer was full (oldest first).
        """
        if self.knows(pending.id):
            return [], []
        if pending.parent not in self.nodes:
            self.orphans[pending.id] = pending
            self.waiting.setdefault(pending.parent, []).append(pending.id)
            evicted = []
            while len(self.orphans) > self.max_orphans:
                old = self.orphans.popitem(last=False)[1]
                siblings = self.waiting[old.parent]
                siblings.remove(old.id)
                if not siblings:
                    del self.waiting[old.parent]
                evicted.append(old)
            return [], evicted
        connected = []
        queue = [pending]
        while queue:
            item = queue.pop()
            parent = self.nodes[item.parent]
            node = Node(
                item.id, item.parent, parent.height + 1, item.patch, item.content_size, item.mine
            )
            if parent.peaks is not None:
                node.peaks = mmr.append(parent.peaks, parent.height, node.id)
            self.nodes[node.id] = node
            connected.append(node)
            if self.fast_forward and not self.descends(node, self.best):
                self.strays.append(node)
            elif self.better(node, self.best):
                self.best = node
            queue += [self.orphans.pop(i) for i in self.waiting.pop(node.id, [])]
        return connected, []

    @staticmethod
    def better(a: Node[P], b: Node[P]) -> bool:
        """True if ``a`` is a better tip than ``b``: higher, or as high with a lower id."""
        return a.height > b.height or (a.height == b.height and a.id < b.id)

    def descends(self, node: Node[P], ancestor: Node[P]) -> bool:
        """True if ``ancestor`` is ``node`` or one of its kept ancestors."""
        if node.parent == ancestor.id or node is ancestor:
            return True
        for kept in self.ancestors(node):
            if kept.height <= ancestor.height:
                return kept is ancestor
        return False

    def at_height(self, tip: Node[P], height: int) -> Node[P] | None:
        """The kept ancestor of ``tip`` at ``height`` (``tip`` itself included), if kept."""
        for kept in self.ancestors(tip):
            if kept.height <= height:
                return kept if kept.height == height else None
        return None

    def path(self, old: Node[P], new: Node[P]) -> tuple[list[Node[P]], list[Node[P]]]:
        """The way from tip ``old`` to tip ``new``.

        Returns:
            ``(revert, apply)``: the nodes to revert, from ``old`` down to (not
            including) the common ancestor, and the nodes to apply from there up
            to ``new``, in order.
        """
        revert: list[Node[P]] = []
        forward: list[Node[P]] = []
        a, b = old, new
        while a is not b:
            if a.height >= b.height and a.id != self.root:
                revert.append(a)
                a = self._parent(a)
            else:
                forward.append(b)
                b = self._parent(b)
        forward.reverse()
        return revert, forward

    def ancestors(self, node: Node[P]) -> Iterator[Node[P]]:
        """``node`` and its ancestors that are still kept, nearest first."""
        current: Node[P] | None = node
        while current is not None:
            yield current
            current = self.nodes.get(current.parent) if current.id != self.root else None

    def path_after(self, tip: Node[P], ancestor: Node[P]) -> list[Node[P]]:
        """The nodes after ``ancestor`` up to ``tip``, oldest first.

        Raises:
            LookupError: ``ancestor`` is not a kept ancestor of ``tip``.
        """
        path: list[Node[P]] = []
        for node in self.ancestors(tip):
            if node is ancestor:
                return list(reversed(path))
            path.append(node)
        raise LookupError("node is not on the best chain")

    def _parent(self, node: Node[P]) -> Node[P]:
        parent = self.nodes.get(node.parent)
        if parent is None or node.id == self.root:
            raise DeepFork(f"the fork at {node.id.hex()[:16]} goes below the kept history")
        return parent

    def prune(self) -> None:
        """Forget nodes more than ``max_depth`` below the best tip.

        Runs in O(nodes) once every ``max_depth`` patches.  A fork that
        branched off below the new root can no longer be followed (see
        :class:`DeepFork`).
        """
        if self.best.height - self.nodes[self.root].height <= 2 * self.max_depth:
            return
        new_root = self.best
        for _ in range(self.max_depth):
            new_root = self.nodes[new_root.parent]
        self.nodes = {k: n for k, n in self.nodes.items() if n.height > new_root.height}
        self.nodes[new_root.id] = new_root
        new_root.inverse = None
        self.root = new_root.id


class DeepFork(Exception):
    """A fork branches off below the oldest node kept; it cannot be followed."""

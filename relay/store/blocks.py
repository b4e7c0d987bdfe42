"""What a trim keeps of the history it removes, and which checkpoints it keeps.

Pure functions shared by every backend (:mod:`relay.store.base` is the
interface; this module is arithmetic on ids and sizes, no I/O).

Theory of operation
-------------------
**Nodes instead of tombstones.**  A trim at X (seq x) deletes the patches
numbered 1..x, but a client that verified some patch below x still has to
check that the snapshot at X descends from it (PROTOCOL.md §11).  The relay
keeps, of the deleted ids, exactly what the Merkle mountain range needs for
that: for every whole *block* of ``BLOCK`` (256) ids (leaves b*256+1 ..
b*256+256) the block's root (:func:`wire.mmr.block_root`, a level-8 node),
and for the block that the floor cuts (x % 256 != 0) the ids of its first
part, at most 255 of them, until a later trim completes that block and they
become its root.  So the history below the floor costs 32 bytes per 256
patches plus at most 8,160 bytes, whatever its length.

:class:`BlockFolder` does the folding, streaming: a trim feeds it the ids
the relay still holds of the cut block (the *partial* ids kept by the
previous trim) and then every patch it deletes, in seq order; it holds at
most one block of ids and hands back the new roots and the new partial ids.
A missing id (never in normal operation: the deleted patches are always
floor+1..x; possible only in a store migrated from tombstones with a hole)
leaves its block without a root and the partial ids at their contiguous
prefix, so a proof stops there rather than name a wrong node.

:func:`proof_nodes` answers PROOF_REQUEST from what a backend read: the
roots of a window of blocks, the partial ids and a slice of the live ids.
Nodes cover the leaves ``start+1`` onwards, contiguously: level 0 (an id)
where the relay holds the id, level 8 where it holds only the block's root.
``start`` is the asked ``from_seq``, except when ``from_seq`` lies strictly
inside a block kept only as a root: then the answer starts at that block's
first leaf (``from_seq // 256 * 256``) and a client continues from its peaks
there (:func:`wire.mmr.prefix`).  A node never reaches past ``to_seq``: the
answer stops before it instead.

**Retention** (:func:`retained`): a trim at X keeps every snapshot at seq
>= x and thins the older ones (the checkpoints), walking them newest to
oldest: one is kept if its distance to x is at least twice that of the
checkpoint kept before it (the first one always qualifies) and the kept
checkpoints' bytes with its own stay within ``keep_pct`` % of the newest
snapshot's bytes.  The kept ones lie at roughly doubling distances below x;
``keep_pct`` 0 keeps none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from wire import mmr

#: Leaves per block (a level-``mmr.BLOCK_LEVEL`` subtree).
BLOCK = 1 << mmr.BLOCK_LEVEL
#: Bytes of one id or root.
HASH = 32


def split_ids(data: bytes) -> list[bytes]:
    """32-byte ids from their concatenation."""
    return [data[i : i + HASH] for i in range(0, len(data) - len(data) % HASH, HASH)]


class BlockFolder:
    """Folds the ids a trim deletes into block roots and the cut block's first ids.

    Args:
        floor: the floor before the trim (0: nothing trimmed yet).
        partial: the ids kept of the floor's block (leaves ``floor // 256 * 256 + 1``
            onwards, contiguous; ``floor % 256`` of them unless a hole was migrated).
    """

    def __init__(self, floor: int, partial: Sequence[bytes]) -> None:
        self._block = floor // BLOCK
        self._ids = list(partial)
        self._whole = len(self._ids) == floor % BLOCK  # no hole so far in this block
        #: ``(block number, root)`` of every block the deleted ids completed.
        self.roots: list[tuple[int, bytes]] = []

    def add(self, seq: int, patch_id: bytes) -> None:
        """One deleted patch, in seq order."""
        block = (seq - 1) // BLOCK
        if block != self._block:  # a new block begins (the last one was done or broken)
            self._block, self._ids = block, []
            self._whole = (seq - 1) % BLOCK == 0
        if not self._whole or seq != block * BLOCK + len(self._ids) + 1:
            self._whole = False  # a hole: this block gets no root
            return
        self._ids.append(bytes(patch_id))
        if len(self._ids) == BLOCK:
            self.roots.append((block, mmr.block_root(self._ids)))
            self._ids, self._whole = [], False

    def partial(self, floor: int) -> list[bytes]:
        """The ids to keep once ``floor`` is the new floor: those of its block's
        first part (empty when the floor ends a block)."""
        if floor % BLOCK == 0 or self._block != (floor - 1) // BLOCK:
            return []
        return self._ids[: floor % BLOCK]


def fold(
    floor: int, partial: Sequence[bytes], deleted: Iterable[tuple[int, bytes]], new_floor: int
) -> tuple[list[tuple[int, bytes]], list[bytes]]:
    """The roots completed and the partial ids kept when a trim moves ``floor``
    to ``new_floor``, deleting the ``(seq, id)`` patches ``deleted`` (in seq order)."""
    folder = BlockFolder(floor, partial)
    for seq, patch_id in deleted:
        folder.add(seq, patch_id)
    return folder.roots, folder.partial(new_floor)


def pack_roots(
    last: tuple[int, bytes] | None, roots: Iterable[tuple[int, bytes]], per_row: int
) -> dict[int, bytes]:
    """The rows of packed roots to write (first block -> concatenated roots) when
    ``roots`` (in block order) join a channel whose last row is ``last``.

    Rows hold consecutive blocks' roots, at most ``per_row`` of them: the last
    row is filled first, and a new one begins when it is full or after a hole.
    """
    start, packed = last if last is not None else (0, b"")
    rows: dict[int, bytes] = {}
    for block, root in roots:
        count = len(packed) // HASH
        if not packed or block != start + count or count >= per_row:
            start, packed = block, b""
        packed += root
        rows[start] = packed
    return rows


def proof_window(from_seq: int, max_nodes: int) -> tuple[int, int]:
    """The block numbers ``[first, last]`` whose roots a proof from ``from_seq`` may use."""
    first = from_seq // BLOCK
    return first, first + max_nodes


def proof_nodes(
    from_seq: int,
    to_seq: int,
    max_nodes: int,
    *,
    floor: int,
    roots: Mapping[int, bytes],
    partial: Sequence[bytes],
    live_after: int,
    live: Sequence[bytes],
) -> tuple[int, list[tuple[int, bytes]]]:
    """PROOF's ``(start, nodes)``: see the module docstring.

    Args:
        from_seq: the asked start.
        to_seq: the asked end, already at most the head.
        max_nodes: the most nodes to name.
        floor: the channel's floor.
        roots: block number -> root, for (at least) the blocks of
            :func:`proof_window` that are kept.
        partial: the ids kept of the floor's block.
        live_after: ``live`` holds the ids of the live patches ``live_after + 1`` on.
        live: those ids (as many as the answer may need).
    """
    pos = from_seq
    if pos % BLOCK and pos // BLOCK in roots:  # inside a block kept only as a root
        pos = pos // BLOCK * BLOCK
    start = pos
    partial_first = floor // BLOCK * BLOCK + 1
    nodes: list[tuple[int, bytes]] = []
    while len(nodes) < max_nodes and pos < to_seq:
        root = roots.get(pos // BLOCK) if pos % BLOCK == 0 else None
        if root is not None:
            if pos + BLOCK > to_seq:
                break  # the node would cover past what was asked
            nodes.append((mmr.BLOCK_LEVEL, root))
            pos += BLOCK
            continue
        leaf = pos + 1
        if leaf > floor:
            index = leaf - live_after - 1
        else:
            index = -1
            if partial_first <= leaf < partial_first + len(partial):
                nodes.append((0, partial[leaf - partial_first]))
                pos += 1
                continue
        if not 0 <= index < len(live):
            break  # not known here: fewer nodes than asked
        nodes.append((0, live[index]))
        pos += 1
    return start, nodes


def retained(x_seq: int, keep_pct: int, older: Iterable[tuple[int, int]], newest: int) -> set[int]:
    """The seqs of the checkpoints a trim at ``x_seq`` keeps.

    Args:
        x_seq: the trim's X.
        keep_pct: the share of ``newest`` the kept checkpoints' bytes may reach.
        older: ``(x_seq, bytes)`` of the snapshots below ``x_seq``, in any order.
        newest: the bytes of the channel's newest snapshot.
    """
    kept: set[int] = set()
    total = 0
    last: int | None = None  # the distance of the checkpoint kept last
    for seq, size in sorted(older, reverse=True):
        distance = x_seq - seq
        if last is not None and distance < 2 * last:
            continue
        if (total + size) * 100 > keep_pct * newest:
            continue
        kept.add(seq)
        total += size
        last = distance
    return kept


__all__ = [
    "BLOCK",
    "HASH",
    "BlockFolder",
    "fold",
    "pack_roots",
    "proof_nodes",
    "proof_window",
    "retained",
    "split_ids",
]

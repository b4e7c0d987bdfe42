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
patches plus at most 8,160 bytes.

**Old roots age.**  32 bytes per 256 patches still grows with the history (a
million patches: 125 KB, more than many texts).  So block roots stay only
for the newest history: once a whole *group* of :data:`GROUP_BLOCKS` (256)
blocks ends at least :data:`RECENT_BLOCKS` blocks (65,536 patches) below the
floor's block, its 256 roots are replaced by the group's root, a level-16
node (:func:`age`): the same Merkle tree, 32 bytes per 65,536 patches.  A
client whose remembered point lies inside an aged group proves descent from
the group's start (PROTOCOL.md §11), as inside a block.  Rows: a backend
packs consecutive roots of one level per row; a row of group roots is keyed
by its first group's first block and its bytes start with the level
(:func:`pack_rows`, :func:`unpack_rows`; ``len % 32 == 1``), so no backend's
schema changed.

:class:`BlockFolder` does the folding, streaming: a trim feeds it the ids
the relay still holds of the cut block (the *partial* ids kept by the
previous trim) and then every patch it deletes, in seq order; it holds at
most one block of ids and hands back the new roots and the new partial ids.
A missing id (never in normal operation: the deleted patches are always
floor+1..x; possible only in a store migrated from tombstones with a hole)
leaves its block without a root and the partial ids at their contiguous
prefix, so a proof stops there rather than name a wrong node.

:func:`proof_nodes` answers PROOF_REQUEST from what a backend read: the
group and block roots, the partial ids and a slice of the live ids.
Nodes cover the leaves ``start+1`` onwards, contiguously: level 0 (an id)
where the relay holds the id, level 8 where it holds only the block's root,
level 16 where only the group's.  ``start`` is the asked ``from_seq``,
except when ``from_seq`` lies strictly inside a group or block kept only as
a root: then the answer starts at its first leaf and a client continues
from its peaks there (:func:`wire.mmr.prefix`).  A node never reaches past
``to_seq``: the answer stops before it instead.

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
#: Blocks per group (a level-``mmr.GROUP_LEVEL`` subtree).  Read when called,
#: like RECENT_BLOCKS: tests make groups small.
GROUP_BLOCKS = 1 << (mmr.GROUP_LEVEL - mmr.BLOCK_LEVEL)
#: A group ages once it ends at least this many blocks below the floor's block.
RECENT_BLOCKS = mmr.AGED_AFTER // BLOCK


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


def group_level() -> int:
    """The level of a group's root."""
    return mmr.BLOCK_LEVEL + GROUP_BLOCKS.bit_length() - 1


def aged_groups(floor: int) -> int:
    """How many groups (from the first) are old enough to age at ``floor``."""
    return max(0, floor // BLOCK - RECENT_BLOCKS) // GROUP_BLOCKS


def age(roots: Mapping[int, bytes], floor: int) -> dict[int, bytes]:
    """The groups whose block roots age at ``floor``: group number -> its root.

    A group ages when it lies below :func:`aged_groups` and every one of its
    blocks has a root (a block without one, possible only after a migration
    from tombstones with a hole, keeps its group's roots as they are).
    """
    groups: dict[int, bytes] = {}
    old_enough = aged_groups(floor)
    for group in sorted({block // GROUP_BLOCKS for block in roots}):
        if group >= old_enough:
            break
        first = group * GROUP_BLOCKS
        members = [roots.get(block) for block in range(first, first + GROUP_BLOCKS)]
        if all(root is not None for root in members):
            groups[group] = mmr.block_root(root for root in members if root is not None)
    return groups


def aged(
    roots: Mapping[int, bytes], groups: Mapping[int, bytes], floor: int
) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """``(roots, groups)`` once the groups old enough at ``floor`` have aged."""
    new = age(roots, floor)
    if not new:
        return dict(roots), dict(groups)
    kept = {block: root for block, root in roots.items() if block // GROUP_BLOCKS not in new}
    return kept, {**groups, **new}


def age_rows(
    roots: Mapping[int, bytes], groups: Mapping[int, bytes], floor: int, per_row: int
) -> tuple[dict[int, bytes], int] | None:
    """A backend's trim: every row of a channel's roots (:func:`pack_rows`) once
    the groups old enough at ``floor`` have aged, and the bytes that frees;
    ``None`` when nothing ages (the rows stay as they are)."""
    new_roots, new_groups = aged(roots, groups, floor)
    if len(new_groups) == len(groups):
        return None
    freed = HASH * (len(roots) + len(groups) - len(new_roots) - len(new_groups))
    return pack_rows(new_roots, new_groups, per_row), freed


def pack_rows(
    roots: Mapping[int, bytes], groups: Mapping[int, bytes], per_row: int
) -> dict[int, bytes]:
    """Every row of a channel's roots (first block -> bytes): block roots packed
    as :func:`pack_roots` does, group roots likewise, keyed by their first
    group's first block, their bytes led by the group level."""
    rows = pack_roots(None, sorted(roots.items()), per_row)
    level = bytes([group_level()])
    # One byte more than a row of block roots: one root fewer, to fit alike.
    for group, packed in pack_roots(None, sorted(groups.items()), per_row - 1).items():
        rows[group * GROUP_BLOCKS] = level + packed
    return rows


def unpack_rows(rows: Iterable[tuple[int, bytes]]) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """``(block roots, group roots)`` by number from a channel's rows (:func:`pack_rows`)."""
    roots: dict[int, bytes] = {}
    groups: dict[int, bytes] = {}
    for first, data in rows:
        if len(data) % HASH == 1:  # a row of group roots
            groups.update(enumerate(split_ids(data[1:]), first // GROUP_BLOCKS))
        else:
            roots.update(enumerate(split_ids(data), first))
    return roots, groups


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
    groups: Mapping[int, bytes] | None = None,
) -> tuple[int, list[tuple[int, bytes]]]:
    """PROOF's ``(start, nodes)``: see the module docstring.

    Args:
        from_seq: the asked start.
        to_seq: the asked end, already at most the head.
        max_nodes: the most nodes to name.
        floor: the channel's floor.
        roots: block number -> root, of the blocks kept as roots.
        partial: the ids kept of the floor's block.
        live_after: ``live`` holds the ids of the live patches ``live_after + 1`` on.
        live: those ids (as many as the answer may need).
        groups: group number -> root, of the groups kept as roots.
    """
    groups = groups or {}
    level = group_level()
    span = 1 << level  # leaves per group
    pos = from_seq
    if pos % span and pos // span in groups:  # inside a group kept only as a root
        pos = pos // span * span
    elif pos % BLOCK and pos // BLOCK in roots:  # inside a block kept only as a root
        pos = pos // BLOCK * BLOCK
    start = pos
    partial_first = floor // BLOCK * BLOCK + 1
    nodes: list[tuple[int, bytes]] = []
    while len(nodes) < max_nodes and pos < to_seq:
        group = groups.get(pos // span) if pos % span == 0 else None
        if group is not None:
            if pos + span > to_seq:
                break  # the node would cover past what was asked
            nodes.append((level, group))
            pos += span
            continue
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
    "GROUP_BLOCKS",
    "HASH",
    "RECENT_BLOCKS",
    "BlockFolder",
    "age",
    "age_rows",
    "aged",
    "aged_groups",
    "fold",
    "group_level",
    "pack_roots",
    "pack_rows",
    "proof_nodes",
    "retained",
    "split_ids",
    "unpack_rows",
]

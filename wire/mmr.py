"""The Merkle mountain range of a chain's patch ids (docs/PROTOCOL.md §11).

Theory of operation
-------------------
For every height *h* of a pad's chain, the ids of the patches at heights
1..h, in order, are the leaves of a Merkle mountain range: two complete
subtrees of equal size join as ``SHA-256(0x01 ‖ left ‖ right)``, and the
**peaks** are the roots of the complete subtrees left over, largest
(leftmost) first — one per 1 bit of *h*, so at most 64.  Appending an id
costs one hash per trailing 1 bit of the old height (amortised: one).

The peaks at *h* commit to every id up to *h*.  That makes them a proof of
descent that survives a trim: a client that remembers the peaks at the
height it verified can append the ids the relay names after it and must
arrive at the peaks a snapshot above signs (:func:`extends`); a relay that
serves another branch, or an older one, cannot find ids that do, and the
patches themselves may be long gone.  Every node of the client's chain
carries its peaks (:class:`client.chain.Node`), snapshots carry the peaks at
their patch, and the remembered point carries its own.

**Nodes.**  A relay that trims history keeps, per block of
``2**BLOCK_LEVEL`` (256) patches, only the block's root; a proof then names
*nodes*, each the root of an aligned subtree (``level``, ``hash``): level 0
is an id, level 8 a block.  :func:`append_node` appends a whole subtree
at a height that is a multiple of its size (:func:`extend_nodes`,
:func:`extends_by_nodes`); :func:`pack_nodes` and :func:`unpack_nodes` are
PROOF's byte form (``level u8 || hash 32`` each).

Pure functions on tuples of 32-byte hashes; standard library only.  Used by
clients (:mod:`client.chain`, :mod:`client.trust`) and by the relay (the
block roots it keeps in place of trimmed ids).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

Peaks = tuple[bytes, ...]

#: The peaks of the empty chain (height 0).
EMPTY: Peaks = ()


def _join(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def append(peaks: Peaks, height: int, leaf: bytes) -> Peaks:
    """The peaks at ``height + 1``: ``peaks`` (at ``height``) with ``leaf`` appended.

    Raises:
        ValueError: ``peaks`` is not a valid range of ``height`` leaves.
    """
    return append_node(peaks, height, 0, leaf)[0]


def append_node(peaks: Peaks, height: int, level: int, node: bytes) -> tuple[Peaks, int]:
    """Append the root ``node`` of a complete subtree of ``2**level`` leaves.

    Returns the new peaks and height.

    Raises:
        ValueError: ``peaks`` is not a range of ``height`` leaves, or ``height``
            is not a multiple of the subtree's size (it would not be aligned).
    """
    if len(peaks) != height.bit_count():
        raise ValueError(f"{len(peaks)} peaks cannot be a range of {height} ids")
    if not 0 <= level < 64 or height % (1 << level):
        raise ValueError(f"a subtree of 2**{level} ids cannot start after {height}")
    merged = list(peaks)
    size = height >> level
    while size & 1:  # the smallest subtree has the new one's size: join them
        node = _join(merged.pop(), node)
        size >>= 1
    merged.append(node)
    return tuple(merged), height + (1 << level)


def extend_nodes(
    peaks: Peaks, height: int, nodes: Iterable[tuple[int, bytes]]
) -> tuple[Peaks, int]:
    """``peaks`` at ``height`` with every ``(level, root)`` appended in order."""
    for level, node in nodes:
        peaks, height = append_node(peaks, height, level, node)
    return peaks, height


def extends_by_nodes(
    start: Peaks,
    start_height: int,
    nodes: Iterable[tuple[int, bytes]],
    target: Peaks,
    target_height: int,
) -> bool:
    """Whether ``nodes`` lead from the range ``start`` to exactly ``target``."""
    try:
        peaks, height = extend_nodes(start, start_height, nodes)
    except ValueError:
        return False
    return height == target_height and peaks == target


def prefix(peaks: Peaks, height: int, level: int) -> tuple[Peaks, int]:
    """The peaks of the first ``height`` rounded down to a multiple of ``2**level``
    leaves: those of ``peaks`` whose subtrees hold at least ``2**level`` ids."""
    kept = (height >> level).bit_count()
    return peaks[:kept], height >> level << level


def block_root(leaves: Iterable[bytes]) -> bytes:
    """The root of one complete subtree (a power-of-two count of ``leaves``).

    Raises:
        ValueError: the count of leaves is not a power of two.
    """
    peaks, height = extend(EMPTY, 0, leaves)
    if len(peaks) != 1:
        raise ValueError(f"{height} ids are not one complete subtree")
    return peaks[0]


#: The bytes of one node in a PROOF: ``level u8 || hash 32``.
NODE_LEN = 33
#: The level of the roots a relay keeps in place of trimmed ids (blocks of 256).
BLOCK_LEVEL = 8
#: The level of the roots a relay keeps in place of old block roots (groups of
#: 65,536 ids, 256 blocks): a group ages once it ends at least
#: :data:`AGED_AFTER` ids below the floor (PROTOCOL.md §11).
GROUP_LEVEL = 16
AGED_AFTER = 1 << 16


def pack_nodes(nodes: Iterable[tuple[int, bytes]]) -> bytes:
    """PROOF's byte form of ``(level, hash)`` nodes."""
    return b"".join(bytes([level]) + node for level, node in nodes)


def unpack_nodes(data: bytes) -> list[tuple[int, bytes]]:
    """``(level, hash)`` nodes from PROOF's byte form.

    Raises:
        ValueError: not a whole number of 33-byte nodes, or a level above 63.
    """
    if len(data) % NODE_LEN:
        raise ValueError(f"PROOF nodes are {NODE_LEN} bytes each")
    nodes = [(data[i], data[i + 1 : i + NODE_LEN]) for i in range(0, len(data), NODE_LEN)]
    if any(level > 63 for level, _ in nodes):
        raise ValueError("a PROOF node's level is at most 63")
    return nodes


def extend(peaks: Peaks, height: int, leaves: Iterable[bytes]) -> tuple[Peaks, int]:
    """``peaks`` at ``height`` with every leaf appended; the new peaks and height."""
    for leaf in leaves:
        peaks = append(peaks, height, leaf)
        height += 1
    return peaks, height


def of(leaves: Iterable[bytes]) -> Peaks:
    """The peaks of the range of ``leaves`` from height 0."""
    return extend(EMPTY, 0, leaves)[0]


def root(peaks: Peaks, height: int) -> bytes:
    """One hash for the whole range: ``SHA-256(0x02 ‖ height u64 ‖ peaks...)``."""
    return hashlib.sha256(b"\x02" + height.to_bytes(8, "big") + b"".join(peaks)).digest()


def extends(
    start: Peaks, start_height: int, leaves: Iterable[bytes], target: Peaks, target_height: int
) -> bool:
    """Whether ``leaves`` lead from the range ``start`` to exactly ``target``."""
    nodes = ((0, leaf) for leaf in leaves)
    return extends_by_nodes(start, start_height, nodes, target, target_height)


def to_hex(peaks: Peaks) -> list[str]:
    """The peaks as hex strings (JSON: snapshots, the remembered point)."""
    return [peak.hex() for peak in peaks]


def from_hex(items: object, height: int) -> Peaks:
    """Peaks from JSON, checked against ``height``.

    Raises:
        ValueError: not a list of 32-byte hex strings, one per 1 bit of ``height``.
    """
    if not isinstance(items, list) or len(items) != height.bit_count():
        raise ValueError(f"peaks must be a list of {height.bit_count()} hashes")
    peaks = []
    for item in items:
        if not isinstance(item, str) or len(item) != 64:
            raise ValueError("a peak is 64 hex digits")
        peaks.append(bytes.fromhex(item))
    return tuple(peaks)


__all__ = [
    "AGED_AFTER",
    "BLOCK_LEVEL",
    "EMPTY",
    "GROUP_LEVEL",
    "NODE_LEN",
    "Peaks",
    "append",
    "append_node",
    "block_root",
    "extend",
    "extend_nodes",
    "extends",
    "extends_by_nodes",
    "from_hex",
    "of",
    "pack_nodes",
    "prefix",
    "root",
    "to_hex",
    "unpack_nodes",
]

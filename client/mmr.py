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

Pure functions on tuples of 32-byte hashes; standard library only.
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
    if len(peaks) != height.bit_count():
        raise ValueError(f"{len(peaks)} peaks cannot be a range of {height} ids")
    merged = list(peaks)
    node = leaf
    size = height
    while size & 1:  # the smallest subtree has the new leaf's size: join them
        node = _join(merged.pop(), node)
        size >>= 1
    merged.append(node)
    return tuple(merged)


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
    try:
        peaks, height = extend(start, start_height, leaves)
    except ValueError:
        return False
    return height == target_height and peaks == target


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


__all__ = ["EMPTY", "Peaks", "append", "extend", "extends", "from_hex", "of", "root", "to_hex"]

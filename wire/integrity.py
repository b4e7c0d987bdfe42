"""Integrity algorithm 2: a content-defined chunk tree over a text (PROTOCOL.md §10.4).

Theory of operation
-------------------
Version 1's integrity value is SHA-256 of the whole text, so every 64th
patch costs a pass over all of it.  Algorithm 2 hashes a *tree* whose shape
follows the content, so that an edit changes only the hashes along its path:

* **Chunks** (level 0).  A gear value runs over the code points,
  ``gear(i) = (gear(i-1) << 1) + G[cp(i) mod 256]`` in 64-bit arithmetic,
  ``gear(-1) = 0``, never reset.  A chunk ends after code point *i* when
  ``gear(i) mod 1024 = 1023`` and the chunk holds at least
  :data:`MIN_CHUNK` code points, or when it reaches :data:`MAX_CHUNK` (a
  forced end resets nothing); the last chunk ends with the text.  Leaf hash:
  ``SHA-256(0x00 || UTF-8 of the chunk)``.
* **Levels**.  Level *k* + 1 groups the hashes of level *k* in order: a group
  ends after a hash whose last byte mod 16 is 15 once it holds at least two,
  or when it holds :data:`MAX_GROUP`; node hash
  ``SHA-256(0x01 || k+1 u8 || child hashes)``.  At least two a group (but
  the last) means every level has at most half as many hashes, rounded up.
* The **digest** is the single hash of the first level with one hash; the
  empty text's is ``SHA-256(0x00)`` (one empty chunk).

Since ``gear(i) mod 1024`` depends only on the last ten code points (each
step shifts older terms up by one bit), whether a position can end a chunk
is local: an insertion moves the chunk ends after it, unchanged, and the
tree above changes only near it.  That is what makes the value cheap to keep
up to date; this module computes it from scratch.

Finding the chunk ends one code point at a time costs about a tenth of a
microsecond each in CPython, a second for ten million.  :func:`chunk_ends`
finds the candidates (positions with ``gear mod 1024 = 1023``) with a few
big-integer and ``bytes`` operations instead: the ten-term sum is a
convolution, one multiplication of integers whose 24-bit slots hold the
``G`` values; :func:`chunk_ends_slow` is the definition, one code point at
a time, and the tests hold the two equal.  Pure Python, for CPython and
Pyodide alike; the golden vectors (``tests/vectors/integrity.jsonl``) fix
the value byte for byte.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from typing import Protocol

__all__ = [
    "ALG",
    "GEAR",
    "MAX_CHUNK",
    "MAX_GROUP",
    "MIN_CHUNK",
    "Index",
    "Text",
    "chunk_ends",
    "chunk_ends_slow",
    "digest",
    "leaf_hash",
    "node_hash",
]

#: The algorithm number carried beside the digest (``integrity = alg u8 · digest 32``).
ALG = 2
#: The fewest code points a chunk holds (but the last).
MIN_CHUNK = 64
#: The most code points a chunk holds.
MAX_CHUNK = 8192
#: The most hashes one node holds.
MAX_GROUP = 64
#: ``G[j]``: the first 8 bytes of ``SHA-256("blindpad/v2/gear" || j u8)``, big-endian.
GEAR: tuple[int, ...] = tuple(
    int.from_bytes(hashlib.sha256(b"blindpad/v2/gear" + bytes([j])).digest()[:8], "big")
    for j in range(256)
)

_MASK64 = (1 << 64) - 1
_WINDOW = 10  # gear(i) mod 1024 depends on code points i-9 .. i
_SLOT = 3  # bytes per slot in the convolution: sums stay below 1023 * 1023 < 2**24
# Y = sum of 2**k in slot k, k < 10: multiplying the slots of G values by it
# puts sum_k G[cp(i-k)] << k (mod 1024 enough) into slot i.
_KERNEL = sum(1 << (k + 8 * _SLOT * k) for k in range(_WINDOW))
_LOW = bytes(g & 0xFF for g in GEAR)  # G mod 1024, low byte ...
_HIGH = bytes((g >> 8) & 0x3 for g in GEAR)  # ... and its two high bits
_IS_FF = bytes(1 if b == 0xFF else 0 for b in range(256))
_LOW_BITS_3 = bytes(1 if b & 3 == 3 else 0 for b in range(256))


class Text(Protocol):
    """What the chunking reads of a text: its length and ``str`` slices (a
    ``str``, or a rope that reads like one)."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> str: ...


def chunk_ends_slow(text: str) -> list[int]:
    """The chunk ends (exclusive positions, last = ``len(text)``), by the definition."""
    ends: list[int] = []
    gear, start = 0, 0
    for i, char in enumerate(text):
        gear = ((gear << 1) + GEAR[ord(char) & 0xFF]) & _MASK64
        size = i + 1 - start
        if size == MAX_CHUNK or (size >= MIN_CHUNK and gear & 1023 == 1023):
            ends.append(i + 1)
            start = i + 1
    if start < len(text):
        ends.append(len(text))
    return ends


def _candidates(text: Text, begin: int = 0, stop: int | None = None) -> list[int]:
    """Every ``i`` in ``begin .. stop - 1`` with ``gear(i) mod 1024 = 1023``, ascending."""
    stop = len(text) if stop is None else stop
    offset = max(0, begin - _WINDOW + 1)  # the code points gear(begin) depends on
    n = stop - offset
    if stop <= begin:
        return []
    low_bytes = text[offset:stop].encode("utf-32-le", "surrogatepass")[0::4]  # cp mod 256
    slots = bytearray(_SLOT * n)
    slots[0::_SLOT] = low_bytes.translate(_LOW)
    slots[1::_SLOT] = low_bytes.translate(_HIGH)
    sums = (int.from_bytes(slots, "little") * _KERNEL).to_bytes(_SLOT * (n + _WINDOW), "little")
    ones = int.from_bytes(sums[0 : _SLOT * n : _SLOT].translate(_IS_FF), "little")
    ones &= int.from_bytes(sums[1 : _SLOT * n : _SLOT].translate(_LOW_BITS_3), "little")
    if not ones:
        return []
    found = ones.to_bytes(n, "little")
    out: list[int] = []
    at = found.find(1, begin - offset)
    while at >= 0:
        out.append(offset + at)
        at = found.find(1, at + 1)
    return out


def _ends_from(text: Text, start: int, stop: int) -> list[int]:
    """The chunk ends in ``start + 1 .. stop`` when a chunk starts at ``start``
    (the text's end counts only when ``stop`` is it)."""
    ends: list[int] = []
    for i in _candidates(text, start, stop):
        while i + 1 - start > MAX_CHUNK:
            start += MAX_CHUNK
            ends.append(start)
        if i + 1 - start >= MIN_CHUNK:
            ends.append(i + 1)
            start = i + 1
    final = stop == len(text)
    while stop - start > MAX_CHUNK or (not final and stop - start == MAX_CHUNK):
        start += MAX_CHUNK
        ends.append(start)
    if final and start < stop:
        ends.append(stop)
    return ends


def chunk_ends(text: Text) -> list[int]:
    """:func:`chunk_ends_slow`, from the candidates found at C speed."""
    return _ends_from(text, 0, len(text))


def leaf_hash(chunk: str) -> bytes:
    """``SHA-256(0x00 || UTF-8 of the chunk)``."""
    return hashlib.sha256(b"\x00" + chunk.encode("utf-8", "surrogatepass")).digest()


def node_hash(level: int, children: list[bytes]) -> bytes:
    """``SHA-256(0x01 || level u8 || children)``."""
    return hashlib.sha256(bytes((1, level)) + b"".join(children)).digest()


def _groups(hashes: list[bytes]) -> list[list[bytes]]:
    """One level's hashes in groups (see the module docstring)."""
    groups: list[list[bytes]] = []
    group: list[bytes] = []
    for value in hashes:
        group.append(value)
        if len(group) == MAX_GROUP or (len(group) >= 2 and value[-1] % 16 == 15):
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return groups


def _leaves(text: Text, start: int, ends: list[int]) -> list[bytes]:
    """The leaf hashes of the chunks from ``start`` to each of ``ends`` in turn."""
    starts = [start, *ends][: len(ends)]
    return [leaf_hash(text[a:b]) for a, b in zip(starts, ends, strict=True)]


def _root(leaves: list[bytes]) -> bytes:
    """The digest over ``leaves``: level by level up to one hash."""
    if not leaves:
        return leaf_hash("")
    hashes, level = leaves, 0
    while len(hashes) > 1:
        level += 1
        hashes = [node_hash(level, group) for group in _groups(hashes)]
    return hashes[0]


def digest(text: Text) -> bytes:
    """The algorithm-2 digest of ``text`` (32 bytes)."""
    return _root(_leaves(text, 0, chunk_ends(text)))


class Index:
    """The chunk ends and leaf hashes of one text, kept up to date through edits.

    :meth:`replace` redoes only the chunks from the one the edit starts in
    to the first old chunk end, past the edit and its ten code points of
    gear window, that the new text ends a chunk at too: from there on the
    chunks are the old ones, moved.  :meth:`digest` builds the levels above
    the leaves (about one hash in sixteen of theirs).
    """

    __slots__ = ("ends", "leaves")

    def __init__(self, text: Text) -> None:
        self.ends: list[int] = chunk_ends(text)
        self.leaves: list[bytes] = _leaves(text, 0, self.ends)

    def copy(self) -> Index:
        """An index of the same text that :meth:`replace` changes independently."""
        twin = Index.__new__(Index)
        twin.ends, twin.leaves = list(self.ends), list(self.leaves)
        return twin

    def replace(self, text: Text, pos: int, delete: int, insert: int) -> None:
        """``text`` is the text after ``delete`` code points at ``pos`` were
        replaced by ``insert`` code points."""
        self.replace_many(text, [(pos, delete, insert)])

    def replace_many(self, text: Text, edits: list[tuple[int, int, int]]) -> None:
        """``text`` is the text after each ``(pos, delete, insert)`` of ``edits``
        replaced ``delete`` code points by ``insert`` ones; ``pos`` counts in
        ``text``, the edits ascend and do not overlap.  One pass: the lists
        are rebuilt once, however many edits.
        """
        old, old_leaves = self.ends, self.leaves
        ends: list[int] = []
        leaves: list[bytes] = []
        kept = shift = 0  # old ends from ``kept`` on are not yet copied; they move by ``shift``
        index = 0
        while index < len(edits):
            pos, delete, insert = edits[index]
            # Chunk ends up to the edit stand (each depends only on what precedes
            # it); the old text's end is no chunk end once something follows it.
            first = bisect_right(old, pos - shift, kept, max(len(old) - 1, kept))
            ends += [end + shift for end in old[kept:first]]
            leaves += old_leaves[kept:first]
            start = cursor = ends[-1] if ends else 0
            shift += insert - delete
            # Past here no gear window holds an edited code point (conservative:
            # a chunk is longer than the window, so none of its first ten can end it).
            settled = pos + insert + _WINDOW
            fresh: list[int] = []
            rest = len(old)  # the old ends from here on are kept, moved by ``shift``
            span = 2048  # code points read at a time: doubled while nothing settles
            while cursor < len(text) and rest == len(old):
                for end in _ends_from(text, cursor, min(len(text), cursor + span)):
                    fresh.append(end)
                    while index + 1 < len(edits) and end >= edits[index + 1][0]:
                        index += 1  # this chunk reaches the next edit: one region
                        pos, delete, insert = edits[index]
                        shift += insert - delete
                        settled = pos + insert + _WINDOW
                    at = bisect_left(old, end - shift, first)
                    if end >= settled and at < len(old) and old[at] == end - shift:
                        rest = at + 1  # an old end: the chunks after it are the old ones
                        break
                cursor = fresh[-1] if fresh else cursor
                span *= 2
            # Not resumed: the new ends reach the text's end, and no old one is kept.
            ends += fresh
            leaves += _leaves(text, start, fresh)
            kept = rest
            index += 1
        ends += [end + shift for end in old[kept:]]
        leaves += old_leaves[kept:]
        self.ends, self.leaves = ends, leaves

    def digest(self) -> bytes:
        """The algorithm-2 digest of the text."""
        return _root(self.leaves)

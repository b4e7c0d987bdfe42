"""A text whose edits cost the same however long it is (issue 20, item 1).

Theory of operation
-------------------
A Python ``str`` is one block of memory: splicing one character into a 10 MB
text (UCS-4 as soon as it holds an emoji: 28 MB) copies all of it, and the
engine keeps several texts (the authoritative one, the view, the bases of
deferred acknowledgements), so a keystroke in a large pad cost tens of
milliseconds.  A :class:`Rope` is the same text as a tuple of ``str``
*chunks* of at most :data:`MAX_CHUNK` code points, with the running ends of
the chunks beside them:

* :meth:`Rope.apply` finds each operation's chunk by bisection and rebuilds
  only the chunks it touches; the others are shared with the text before, so
  an edit copies O(number of chunks) references and O(chunk) characters,
  never the text.  It is immutable: the text before stays valid.
* Reading is ``str``-like: ``len``, slices (a ``str``), equality with a
  ``str`` or another rope; :meth:`Rope.digest` feeds the chunks' UTF-8 to
  SHA-256 one at a time, so the integrity value is exactly version 1's
  (``SHA-256`` of the whole UTF-8) without building the whole text.
* ``str(rope)`` builds the whole text once and keeps it (the SDK's
  ``pad.text`` is a ``str``).

Texts below :data:`MAX_CHUNK` are one chunk: a splice of one short ``str``,
as before.  Pure Python, for CPython and Pyodide alike.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate
from typing import Any, Protocol

from client.textstream import prefix_len, suffix_len
from wire import integrity

__all__ = ["MAX_CHUNK", "Digests", "Rope", "plain"]

#: The longest chunk, in code points; a longer one is cut into halves.
MAX_CHUNK = 16384


class _Op(Protocol):
    """An operation (:class:`client.textops.Op`): at ``pos``, remove ``delete``
    code points and put ``insert``."""

    @property
    def pos(self) -> int: ...
    @property
    def delete(self) -> int: ...
    @property
    def insert(self) -> str: ...


def _cut(text: str) -> list[str]:
    """``text`` in chunks of about :data:`MAX_CHUNK` // 2 (none empty)."""
    if len(text) <= MAX_CHUNK:
        return [text] if text else []
    step = MAX_CHUNK // 2
    return [text[i : i + step] for i in range(0, len(text), step)]


class Rope:
    """An immutable text in chunks (see the module docstring)."""

    __slots__ = ("_chunks", "_ends", "_text")

    def __init__(self, chunks: Sequence[str] = ()) -> None:
        self._chunks: tuple[str, ...] = tuple(chunks)
        self._ends: tuple[int, ...] = tuple(accumulate(map(len, self._chunks)))
        self._text: str | None = None if len(self._chunks) > 1 else "".join(self._chunks)

    @classmethod
    def of(cls, text: str | Rope) -> Rope:
        """``text`` as a rope (a rope is returned as it is)."""
        return text if isinstance(text, Rope) else cls(_cut(text))

    # --- reading, like a str ------------------------------------------------------

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __str__(self) -> str:
        if self._text is None:
            self._text = "".join(self._chunks)
        return self._text

    def __repr__(self) -> str:
        return f"Rope({len(self)} code points in {len(self._chunks)} chunks)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Rope):
            return self is other or (len(self) == len(other) and str(self) == str(other))
        if isinstance(other, str):
            return len(self) == len(other) and str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __getitem__(self, index: slice) -> str:
        """A slice (step 1) of the text, as a ``str``."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("a rope is read by slices of step 1")
        start, stop, _ = index.indices(len(self))
        if stop <= start:
            return ""
        if self._text is not None:
            return self._text[start:stop]
        first = bisect_right(self._ends, start)
        last = bisect_right(self._ends, stop - 1)
        begin = self._ends[first - 1] if first else 0
        if first == last:
            return self._chunks[first][start - begin : stop - begin]
        end_base = self._ends[last - 1]
        middle = self._chunks[first + 1 : last]
        return "".join(
            (self._chunks[first][start - begin :], *middle, self._chunks[last][: stop - end_base])
        )

    def __getattr__(self, name: str) -> Any:
        """Any other ``str`` method, on the whole text (built once, kept)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(str(self), name)

    def __contains__(self, part: str) -> bool:
        return part in str(self)

    def __iter__(self) -> Iterator[str]:
        for chunk in self._chunks:
            yield from chunk

    def __add__(self, other: str) -> str:
        return str(self) + other

    def __radd__(self, other: str) -> str:
        return other + str(self)

    def chunks(self) -> Iterator[str]:
        """The chunks, in order (their concatenation is the text)."""
        return iter(self._chunks)

    def digest(self) -> bytes:
        """SHA-256 of the text's UTF-8 (lone surrogates pass), chunk by chunk."""
        h = hashlib.sha256()
        for chunk in self._chunks:
            h.update(chunk.encode("utf-8", "surrogatepass"))
        return h.digest()

    # --- editing ----------------------------------------------------------------

    def apply(self, ops: Sequence[_Op]) -> Rope:
        """The text after ``ops``: canonical operations (sorted, separated) in
        this text's coordinates, each within it (the caller checks)."""
        if not ops:
            return self
        if len(ops) == 1 and self._chunks:  # a keystroke: one chunk spliced, if it stays one
            op = ops[0]
            index = min(bisect_right(self._ends, op.pos), len(self._chunks) - 1)
            begin = self._ends[index - 1] if index else 0
            chunk, at = self._chunks[index], op.pos - begin
            if at + op.delete <= len(chunk):
                spliced = chunk[:at] + op.insert + chunk[at + op.delete :]
                small = len(spliced) < MAX_CHUNK // 4 and len(self._chunks) > 1
                if spliced and not small and len(spliced) <= MAX_CHUNK:
                    return Rope((*self._chunks[:index], spliced, *self._chunks[index + 1 :]))
        return self._rebuilt(ops)

    def _rebuilt(self, ops: Sequence[_Op]) -> Rope:
        """:meth:`apply` in general: the runs of chunks the ops touch, rebuilt."""
        if not self._chunks:
            return Rope(_cut("".join(op.insert for op in ops)))
        # Each operation's run of chunks, runs that meet merged: every run is
        # rebuilt from its chunks and its operations, every other chunk kept.
        last_index = len(self._chunks) - 1
        runs: list[tuple[int, int, list[_Op]]] = []
        for op in ops:
            first = min(bisect_right(self._ends, op.pos), last_index)
            stop = op.pos + op.delete
            last = min(bisect_right(self._ends, stop - 1), last_index) if op.delete else first
            if runs and first <= runs[-1][1]:
                a, b, members = runs[-1]
                runs[-1] = (a, max(b, last), [*members, op])
            else:
                runs.append((first, last, [op]))
        # A short run takes in the next chunk (when no run starts there), so
        # chunks that deletions shrank merge instead of piling up.
        for index, (first, last, members) in enumerate(runs):
            begin = self._ends[first - 1] if first else 0
            taken = runs[index + 1][0] if index + 1 < len(runs) else last_index + 1
            after = self._ends[last] - begin + sum(len(o.insert) - o.delete for o in members)
            if after < MAX_CHUNK // 4 and last + 1 < taken:
                runs[index] = (first, last + 1, members)
        chunks: list[str] = []
        kept = 0
        for first, last, members in runs:
            chunks += self._chunks[kept:first]
            begin = self._ends[first - 1] if first else 0
            span = "".join(self._chunks[first : last + 1])
            pieces: list[str] = []
            prev = 0
            for op in members:
                pieces += (span[prev : op.pos - begin], op.insert)
                prev = op.pos - begin + op.delete
            pieces.append(span[prev:])
            chunks += _cut("".join(pieces))
            kept = last + 1
        chunks += self._chunks[kept:]
        return Rope(chunks)


def plain(doc: Any) -> Any:
    """``doc`` with a rope made a ``str`` (any other document as it is)."""
    return str(doc) if isinstance(doc, Rope) else doc


class Digests:
    """Integrity algorithm 2 (:mod:`wire.integrity`) of ropes, each computed
    from one computed before (PROTOCOL.md §10.4).

    A rope shares the chunks an edit did not touch with the rope before it, so
    two versions of a text line up by chunk *identity*: the chunks of the new
    one that the old one holds too, in order, are unchanged, and between them
    lie the edited runs.  :meth:`digest` finds the kept version sharing the
    most chunks with the one asked for, trims each run to the code points that
    differ, replays the runs into a copy of that version's
    :class:`~wire.integrity.Index` and keeps the result.  A keystroke since the
    last digest costs a few chunks of chunking and hashing, not the text; a
    text unrelated to any kept version costs a digest from scratch.  At most
    ``keep`` versions are kept (each holds its text; versions of one text
    share most of it).

    A text that repeats a short stretch over and over has no natural chunk
    ends there: its chunks are cut by size, and an edit moves every such cut
    after it, so the whole rest is chunked again (about eight times the cost
    of SHA-256 over it).  :meth:`digest_unless_by_size` tells a writer so,
    from the nearest kept version, and the writer claims algorithm 1 instead.
    """

    def __init__(self, keep: int = 6) -> None:
        self._keep = keep
        # The newest last: (text, its index, the ids of its chunks, mostly cut by size).
        self._known: list[tuple[Rope, integrity.Index, set[int], bool]] = []

    def _nearest(self, rope: Rope) -> tuple[int, int]:
        """The kept version sharing the most chunks with ``rope`` (its place,
        or -1) and how many it shares (``len(rope)`` chunks + 1: the same text)."""
        best, shared = -1, -1
        for at in range(len(self._known) - 1, -1, -1):  # the newest first
            known, _, ids, _ = self._known[at]
            if known._chunks is rope._chunks or (len(rope._chunks) <= 1 and known == rope):
                return at, len(rope._chunks) + 1
            count = sum(1 for chunk in rope._chunks if id(chunk) in ids)
            if count > shared:
                best, shared = at, count
        return best, shared

    def digest(self, text: str | Rope) -> bytes:
        """The algorithm-2 digest of ``text``."""
        rope = Rope.of(text)
        return self._digest(rope, *self._nearest(rope))

    def digest_unless_by_size(self, text: str | Rope) -> bytes | None:
        """:meth:`digest`, or ``None`` when ``text`` (over 64 KB) is, as far as
        the nearest kept version tells, mostly chunked by size (see above)."""
        rope = Rope.of(text)
        at, shared = self._nearest(rope)
        if len(rope) >= 65536 and at >= 0 and shared > 0 and self._known[at][3]:
            return None
        return self._digest(rope, at, shared)

    def _digest(self, rope: Rope, at: int, shared: int) -> bytes:
        """:meth:`digest` from the nearest kept version (:meth:`_nearest`)."""
        if shared > len(rope._chunks):  # the same text
            self._known.append(self._known.pop(at))
            return self._known[-1][1].digest()
        base = self._known[at] if at >= 0 else None
        small = len(rope._chunks) <= 1 and base is not None and len(base[0]._chunks) <= 1
        if base is None or (shared == 0 and not small):
            index = integrity.Index(rope)  # nothing in common to start from
        else:
            index = _moved(base[0], base[1], rope)
        ids = {id(chunk) for chunk in rope._chunks}  # alive while ``rope`` is kept
        self._known.append((rope, index, ids, _by_size(index.ends)))
        del self._known[: -self._keep]
        return index.digest()


def _by_size(ends: list[int]) -> bool:
    """Whether most chunks end by size (:data:`wire.integrity.MAX_CHUNK`), not by content."""
    cut = sum(1 for a, b in zip([0, *ends], ends, strict=False) if b - a == integrity.MAX_CHUNK)
    return 2 * cut > len(ends)


def _moved(old: Rope, old_index: integrity.Index, new: Rope) -> integrity.Index:
    """``old_index`` (of ``old``), copied and brought to ``new``."""
    where = {id(chunk): at for at, chunk in enumerate(old._chunks)}
    # Anchors: chunks of ``new`` that ``old`` holds, in ``old``'s order; between
    # them, runs of chunks that changed.
    runs: list[tuple[int, int, int, int]] = []  # (old from, old to, new from, new to) in chunks
    old_at = new_at = 0
    for at, chunk in enumerate(new._chunks):
        found = where.get(id(chunk))
        if found is None or found < old_at:
            continue
        if found > old_at or at > new_at:
            runs.append((old_at, found, new_at, at))
        old_at, new_at = found + 1, at + 1
    if old_at < len(old._chunks) or new_at < len(new._chunks):
        runs.append((old_at, len(old._chunks), new_at, len(new._chunks)))
    edits: list[tuple[int, int, int]] = []  # (pos in ``new``, delete, insert), ascending
    for old_from, old_to, new_from, new_to in runs:
        if old_to - old_from == new_to - new_from:  # chunk for chunk: each edited in place
            pairs = zip(range(old_from, old_to), range(new_from, new_to), strict=True)
            spans = [(a, a + 1, b, b + 1) for a, b in pairs]
        else:
            spans = [(old_from, old_to, new_from, new_to)]
        for a, b, c, d in spans:
            pos = new._ends[c - 1] if c else 0
            gone = old[(old._ends[a - 1] if a else 0) : old._ends[b - 1]] if b > a else ""
            came = new[pos : new._ends[d - 1]] if d > c else ""
            head = prefix_len(gone, came)
            tail = suffix_len(gone, came, min(len(gone), len(came)) - head)
            delete, insert = len(gone) - head - tail, len(came) - head - tail
            if delete or insert:
                edits.append((pos + head, delete, insert))
    index = old_index.copy()
    index.replace_many(new, edits)
    return index

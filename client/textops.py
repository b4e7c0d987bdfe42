"""Plain-text operations: the patch algebra of a blindpad text document.

Theory of operation
===================

A document is a Python ``str``. Every position and length is counted in
**code points** (``str`` indices), never in UTF-16 units, so an emoji or a
CJK character is one position and can never be cut in half.

A ``Patch`` is a tuple of ``Op(pos, delete, insert)`` in canonical form
(sorted, strictly separated, non-empty ops): :mod:`client.textpatch` defines
them, checks them and gives their wire form; this module re-exports those
names. ``normalize`` turns loose ops (touching, empty) into canonical form.

Internally a patch is also read as a stream of components over the original
document (:mod:`client.textstream`): a positive ``int`` keeps that many code
points, a negative ``int`` deletes that many, a ``str`` inserts text. An op becomes ``[retain gap,
insert, delete]``: **its insert sits at ``pos``, before the text it deletes**.
``compose`` and ``transform`` walk two such streams in one pass and rebuild a
canonical patch, so their cost is O(ops + inserted text), independent of the
document. ``apply`` is one pass (a join of slices); ``invert`` and
``simplify`` read only the ranges the patch touches.

Transform
---------
``transform(a, b)`` takes two patches made concurrently on the same document
and returns ``a'``, which applies after ``b``. It is defined by one picture
of the merged document: every original code point survives unless ``a`` or
``b`` deletes it; every insert survives, anchored at its op's ``pos``; at one
anchor the inserts go before the original code point there. Case by case:

1. **Inserts at the same position** (pure inserts, or replaces starting
   there): the smaller text (``str`` comparison, by code point) goes first;
   equal texts give the same string either way. The rule does not depend on
   whose patch is "mine" or which arrived first.
2. **A delete whose range receives a concurrent insert** deletes its whole
   original range *around* the insert (the delete is split); the inserted
   text survives and nothing of the range comes back. An insert exactly at
   either boundary of the range survives too: a concurrent delete never
   removes a concurrent insert.
3. **Overlapping deletes** delete the shared text once; each also deletes
   its own non-shared part.
4. **A replace whose range is partly deleted concurrently** keeps its insert
   at its (mapped) position and deletes what is left of its range.
5. **Disjoint ops** just shift by the other patch's length changes.

Because the picture is symmetric, concurrent patches converge (TP1)::

    apply(apply(doc, a), transform(b, a)) == apply(apply(doc, b), transform(a, b))

Laws that do **not** hold (do not build on them):

- TP2: transforming a third patch over ``a`` then ``b'`` may differ from
  over ``b`` then ``a'``. The chain engine needs only TP1, because it
  transforms local work over one agreed order of patches.
- Transform does not commute with compose: ``transform(c, compose(a, b))``
  may differ from ``transform(transform(c, a), b)``. Canonical form merges
  touching ops, which moves an insert's anchor to the start of its op; and
  an insert that ``a`` moved into a collapsed gap meets ``b``'s inserts there
  under rule 1.
- ``compose(a, invert(a, doc))`` applies as the identity but is not the
  empty patch (it deletes and reinserts the same text); ``simplify`` of it
  is empty.
- ``transform`` cannot see the document, so it does not check that ``a``
  and ``b`` fit the same document; ``compose`` likewise trusts that ``b``
  fits ``apply(doc, a)``. ``apply`` and ``check`` catch any misfit later.

Cursors
-------
``transform_position`` maps a caret through a patch. Text inserted exactly at
the caret pushes it only with ``after_insert=True`` (the caret's own typing);
otherwise it stays before remote text. A caret inside a deleted range goes
to where the range was: its start, after that op's insert if
``after_insert``. A caret just after a deleted range ends up after the op's
insert. So a caret follows the code point after it, exactly as text
``transform`` moves that code point, with one deliberate exception: a caret
strictly inside a replaced range lands before the replacement text, while a
concurrent *insert* there lands after it (its anchor lies past the op's).

"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from client.textpatch import (
    InvalidPatch,
    Op,
    Patch,
    check,
    check_op,
    from_bytes,
    from_wire,
    to_bytes,
    to_wire,
    validate,
)
from client.textstream import Builder, Reader, components, prefix_len, suffix_len, width

if TYPE_CHECKING:
    from client.rope import Rope

__all__ = [
    "InvalidPatch",
    "Op",
    "Patch",
    "apply",
    "check",
    "compose",
    "compose_checked",
    "from_bytes",
    "from_wire",
    "invert",
    "normalize",
    "simplify",
    "to_bytes",
    "to_wire",
    "transform",
    "transform_position",
    "transform_selection",
]


# --------------------------------------------------------------------------- algebra


def normalize(ops: Iterable[Op | tuple[int, int, str]], *, scan_text: bool = True) -> Patch:
    """Build a canonical patch from ops that may touch or be empty.

    Args:
        ops: ops (or ``(pos, delete, insert)`` tuples) in original-document
            coordinates, sorted, non-overlapping; touching ops are allowed.

    Returns:
        The canonical patch: touching ops merged, empty ops dropped.

    ``scan_text=False`` skips the lone-surrogate scan of inserted text
    already checked (the pieces of a checked patch).

    Raises:
        InvalidPatch: a wrong type, a negative number, ops out of order or
            overlapping, or a lone surrogate in inserted text.
    """
    out = Builder()
    prev_pos, prev_end = 0, 0
    for index, item in enumerate(ops):
        op = check_op(_as_op(item, index), index, scan_text=scan_text)
        if op.pos < prev_pos:
            raise InvalidPatch(f"op {index}: not sorted (pos {op.pos} < {prev_pos})")
        if op.pos < prev_end:
            raise InvalidPatch(f"op {index}: overlaps the previous op (ends at {prev_end})")
        out.add(op.pos - prev_end)
        out.add(op.insert)
        out.add(-op.delete)
        prev_pos, prev_end = op.pos, op.pos + op.delete
    return out.patch()


def _as_op(item: object, index: int) -> object:
    if isinstance(item, tuple):
        if len(item) != 3:
            raise InvalidPatch(f"op {index}: expected (pos, delete, insert), got {item!r}")
        return Op(*item)
    return item


def apply(doc: str, patch: Patch) -> str:
    """Apply ``patch`` to ``doc`` in one pass.

    Args:
        doc: the document the patch was made for.
        patch: a canonical patch.

    Returns:
        The new document.

    Raises:
        InvalidPatch: the patch is not canonical or reaches past the end of ``doc``.
    """
    check(patch, len(doc))
    pieces: list[str] = []
    prev = 0
    for op in patch:
        pieces.append(doc[prev : op.pos])
        pieces.append(op.insert)
        prev = op.pos + op.delete
    pieces.append(doc[prev:])
    return "".join(pieces)


def compose(a: Patch, b: Patch) -> Patch:
    """Merge two consecutive patches into one.

    Text that ``a`` inserts and ``b`` deletes cancels out.

    Args:
        a: a patch for some document ``doc``.
        b: a patch for ``apply(doc, a)``.

    Returns:
        The canonical patch ``c`` with ``apply(doc, c) == apply(apply(doc, a), b)``.

    Raises:
        InvalidPatch: ``a`` or ``b`` is not canonical.
    """
    validate(a, scan_text=False)
    validate(b, scan_text=False)
    return compose_checked(a, b)


def compose_checked(a: Patch, b: Patch) -> Patch:
    """:func:`compose` of patches already known canonical: no checks.

    The engine's patches were checked where they came in (a local edit is
    applied first, a received one decoded strictly), so it composes them
    with this, which costs O(ops of ``a``) for a keystroke.
    """
    if len(b) == 1:
        return _compose_one(a, b[0])  # a keystroke onto the open patch
    return _compose_streams(a, b)


def _compose_streams(a: Patch, b: Patch) -> Patch:
    """:func:`compose` of canonical patches, component by component."""
    out = Builder()
    first = Reader(components(a))
    for comp in components(b):
        if isinstance(comp, str):
            out.add(comp)
            continue
        length = abs(comp)
        while length > 0:
            nxt = first.peek()
            if isinstance(nxt, int) and nxt < 0:
                out.add(first.take_whole())  # a's delete is not in b's document
                continue
            chunk = first.take(length)
            length -= width(chunk)
            if comp > 0:
                out.add(chunk)  # b keeps what a kept or inserted
            elif isinstance(chunk, int):
                out.add(-chunk)  # b deletes original text that a kept
            # else b deletes text that a inserted: both vanish
    first.drain(out)
    return out.patch()


def _compose_one(a: Patch, op: Op) -> Patch:
    """:func:`compose` of a canonical ``a`` and one op: O(ops of ``a``), no streams.

    ``op`` is in ``a``'s output coordinates, ``a``'s ops in the document's.
    The ops of ``a`` that ``op`` overlaps or touches merge with it into one;
    those before and after it stay as they are (``op`` changes no document
    position).  Between two merged ops lies only document text that ``op``
    deletes, so the merged op replaces the whole document span from the
    first to the last with what is left of their insertions around ``op``'s.
    """
    start, end = op.pos, op.pos + op.delete
    shift = 0  # output position minus document position, before ``a[i]``
    i, n = 0, len(a)
    while i < n and a[i].pos + shift + len(a[i].insert) < start:
        shift += len(a[i].insert) - a[i].delete
        i += 1
    first = i
    if i < n and a[i].pos + shift <= start:  # ``op`` starts within (or at an edge of) it
        pos, left = a[i].pos, a[i].insert[: start - a[i].pos - shift]
    else:
        pos, left = start - shift, ""
    right, doc_end = "", end - shift
    while i < n and a[i].pos + shift <= end:
        at = a[i].pos + shift
        if at + len(a[i].insert) >= end:  # ``op`` ends within (or at the end of) it
            right, doc_end = a[i].insert[end - at :], a[i].pos + a[i].delete
        else:
            doc_end = end - shift - len(a[i].insert) + a[i].delete
        shift += len(a[i].insert) - a[i].delete
        i += 1
    merged = Op(pos, doc_end - pos, left + op.insert + right)
    if merged.delete == 0 and not merged.insert:
        return a[:first] + a[i:]
    return (*a[:first], merged, *a[i:])


def invert(patch: Patch, doc: str | Rope) -> Patch:
    """The patch that undoes ``patch``.

    Args:
        patch: a canonical patch for ``doc``.
        doc: the document ``patch`` applies to (only the deleted ranges are read).

    Returns:
        A canonical patch ``r`` with ``apply(apply(doc, patch), r) == doc``.

    Raises:
        InvalidPatch: the patch is not canonical or does not fit ``doc``.
    """
    check(patch, len(doc))
    result: list[Op] = []
    shift = 0
    for op in patch:
        removed = doc[op.pos : op.pos + op.delete]
        result.append(Op(op.pos + shift, len(op.insert), removed))
        shift += len(op.insert) - op.delete
    return tuple(result)


def simplify(patch: Patch, doc: str | Rope) -> Patch:
    """Drop remove-then-reinsert of the same text.

    Each op loses the longest common prefix, then the longest common suffix,
    of the text it removes and the text it inserts; ops left empty vanish.
    The result applies to the same text and is a fixed point of ``simplify``.

    Args:
        patch: a canonical patch for ``doc``.
        doc: the document ``patch`` applies to (only the deleted ranges are read).

    Returns:
        The simplified canonical patch.

    Raises:
        InvalidPatch: the patch is not canonical or does not fit ``doc``.
    """
    check(patch, len(doc))
    result: list[Op] = []
    for op in patch:
        removed, inserted = doc[op.pos : op.pos + op.delete], op.insert
        head = prefix_len(removed, inserted)
        tail = suffix_len(removed, inserted, min(len(removed), len(inserted)) - head)
        delete = op.delete - head - tail
        text = inserted[head : len(inserted) - tail]
        if delete or text:
            result.append(Op(op.pos + head, delete, text))
    return tuple(result)


def transform(a: Patch, b: Patch) -> Patch:
    """Rebase ``a`` over the concurrent patch ``b`` (see the module header's cases).

    Args:
        a: a canonical patch for some document ``doc``.
        b: another canonical patch for the same ``doc``.

    Returns:
        The canonical patch ``a'`` for ``apply(doc, b)``; the result equals
        ``apply(apply(doc, a), transform(b, a))``.

    Raises:
        InvalidPatch: ``a`` or ``b`` is not canonical.
    """
    validate(a, scan_text=False)
    validate(b, scan_text=False)
    out = Builder()
    mine = Reader(components(a))
    for comp in components(b):
        if isinstance(comp, str):
            nxt = mine.peek()
            if isinstance(nxt, str) and nxt <= comp:
                out.add(mine.take_whole())  # rule 1: the smaller insert goes first
            out.add(len(comp))
            continue
        length = abs(comp)
        while length > 0:
            if isinstance(mine.peek(), str):
                out.add(mine.take_whole())  # rule 2: inserts survive b's deletes
                continue
            chunk = mine.take(length)
            length -= width(chunk)
            if comp > 0:
                out.add(chunk)  # b kept this text: a's keep or delete stands
            # else b deleted it already: a's keep or delete of it is moot (rule 3)
    mine.drain(out)
    return out.patch()


# --------------------------------------------------------------------------- cursors


def transform_position(pos: int, patch: Patch, *, after_insert: bool = False) -> int:
    """Move a caret position through ``patch``.

    Args:
        pos: a position in the document ``patch`` applies to.
        patch: a canonical patch.
        after_insert: put the caret after text inserted exactly at ``pos``
            (the caret owner's own typing); by default it stays before it.

    Returns:
        The position in the patched document. A position inside a deleted
        range goes to the range's start (after the op's insert if
        ``after_insert``).
    """
    shift = 0
    for op in patch:
        if pos < op.pos:
            break
        if pos == op.pos or pos < op.pos + op.delete:
            return op.pos + shift + (len(op.insert) if after_insert else 0)
        shift += len(op.insert) - op.delete
    return pos + shift


def transform_selection(sel: tuple[int, int], patch: Patch) -> tuple[int, int]:
    """Move a selection ``(anchor, head)`` through ``patch``.

    A caret (``anchor == head``) stays before text inserted at it. A range
    does not grow to take in text inserted at its edges; if its whole content
    is deleted it collapses to a caret.

    Args:
        sel: ``(anchor, head)`` positions in the document ``patch`` applies to.
        patch: a canonical patch.

    Returns:
        ``(anchor, head)`` in the patched document, in the same direction.
    """
    anchor, head = sel
    if anchor == head:
        caret = transform_position(anchor, patch)
        return caret, caret
    low, high = min(sel), max(sel)
    new_low = transform_position(low, patch, after_insert=True)
    new_high = transform_position(high, patch)
    new_low = min(new_low, new_high)
    return (new_low, new_high) if anchor < head else (new_high, new_low)

"""Text patches: ``Op``, ``Patch``, their canonical form, checks and wire form.

This is the vocabulary of :mod:`client.textops` (which re-exports it); the
operations on patches live there.

Op and patch
------------
An ``Op(pos, delete, insert)`` removes ``delete`` code points starting at
``pos`` and puts ``insert`` in their place. A ``Patch`` is a tuple of ops, all
in the coordinates of the *original* document (the one the patch applies
to), in **canonical form**:

- ops are sorted by ``pos``;
- no op is empty (``delete == 0 and insert == ""``);
- ops are strictly separated: ``ops[i].pos + ops[i].delete < ops[i+1].pos``
  (touching ops are one op, so a patch has at most one insert per position);
- numbers are non-negative ``int`` (not ``bool``) and no inserted text
  contains a lone surrogate (U+D800..U+DFFF).

A patch that breaks any rule, or reaches past the end of its document, is
rejected with ``InvalidPatch``. ``normalize`` turns loose ops (touching,
empty) into canonical form; ``from_wire`` accepts only canonical input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from crypto import varint

__all__ = [
    "InvalidPatch",
    "Op",
    "Patch",
    "check",
    "check_op",
    "from_bytes",
    "from_wire",
    "to_bytes",
    "to_wire",
    "validate",
]


class InvalidPatch(ValueError):
    """A patch is malformed, not canonical, or does not fit its document."""


@dataclass(frozen=True, slots=True)
class Op:
    """Replace ``delete`` code points at ``pos`` by ``insert``."""

    pos: int
    delete: int
    insert: str


Patch = tuple[Op, ...]

_SURROGATE = re.compile("[\ud800-\udfff]")

# --------------------------------------------------------------------------- validation


def check_op(op: object, index: int, *, scan_text: bool = True) -> Op:
    if not isinstance(op, Op):
        raise InvalidPatch(f"op {index}: expected Op, got {type(op).__name__}")
    if type(op.pos) is not int or type(op.delete) is not int or type(op.insert) is not str:
        raise InvalidPatch(f"op {index}: pos and delete must be int, insert str: {op!r}")
    if op.pos < 0 or op.delete < 0:
        raise InvalidPatch(f"op {index}: negative pos or delete: {op!r}")
    if scan_text and not op.insert.isascii() and _SURROGATE.search(op.insert):
        raise InvalidPatch(f"op {index}: insert contains a lone surrogate")
    return op


def validate(patch: object, *, scan_text: bool = True) -> int:
    """Check canonical form; return the end of the last op's range (0 if empty).

    ``scan_text=False`` skips the surrogate scan of inserted text (for
    functions that only recombine already-checked text), keeping the cost O(ops).
    """
    if not isinstance(patch, tuple):
        raise InvalidPatch(f"a patch is a tuple of Op, got {type(patch).__name__}")
    end = -1
    for index, item in enumerate(patch):
        op = check_op(item, index, scan_text=scan_text)
        if op.delete == 0 and not op.insert:
            raise InvalidPatch(f"op {index}: empty op")
        if op.pos <= end:
            raise InvalidPatch(
                f"op {index}: starts at {op.pos}, not after the previous op's end {end}"
                " (ops must be sorted and strictly separated)"
            )
        end = op.pos + op.delete
    return max(end, 0)


def check(patch: Patch, doc_len: int, *, scan_text: bool = True) -> None:
    """Check that ``patch`` is canonical and fits a document of ``doc_len`` code points.

    Args:
        patch: the patch to check.
        doc_len: length in code points of the document it applies to.

    Raises:
        InvalidPatch: the patch is not canonical or reaches past ``doc_len``.
    """
    end = validate(patch, scan_text=scan_text)
    if end > doc_len:
        raise InvalidPatch(f"patch reaches position {end}, past the document end {doc_len}")


# --------------------------------------------------------------------------- wire


def to_wire(patch: Patch) -> list[list[int | str]]:
    """Encode a patch as JSON-ready ``[[pos, delete, insert], ...]``.

    Args:
        patch: a canonical patch.

    Returns:
        A new list of ``[pos, delete, insert]`` lists.
    """
    return [[op.pos, op.delete, op.insert] for op in patch]


def from_wire(obj: object) -> Patch:
    """Decode ``[[pos, delete, insert], ...]`` strictly.

    Args:
        obj: a value decoded from JSON.

    Returns:
        The canonical patch it encodes.

    Raises:
        InvalidPatch: anything but a list of ``[int, int, str]`` lists in
            canonical form (``bool`` is not an ``int`` here).
    """
    if not isinstance(obj, list):
        raise InvalidPatch(f"a wire patch is a list, got {type(obj).__name__}")
    ops: list[Op] = []
    for index, item in enumerate(obj):
        if not isinstance(item, list) or len(item) != 3:
            raise InvalidPatch(f"op {index}: expected [pos, delete, insert], got {item!r:.80}")
        pos, delete, insert = item
        if type(pos) is not int or type(delete) is not int or type(insert) is not str:
            raise InvalidPatch(f"op {index}: expected [int, int, str], got {item!r:.80}")
        ops.append(Op(pos, delete, insert))
    patch = tuple(ops)
    validate(patch)
    return patch


def to_bytes(patch: Patch) -> bytes:
    """The binary form of a canonical patch (PROTOCOL.md §10.1)::

        count varint · (gap varint · delete varint · insert_len varint · insert){count}

    ``gap`` counts code points from the end of the previous operation (from 0
    for the first), ``insert`` is UTF-8 and ``insert_len`` its bytes.
    """
    out = bytearray()
    varint.write(out, len(patch))
    end = 0
    for op in patch:
        data = op.insert.encode("utf-8")
        varint.write(out, op.pos - end)
        varint.write(out, op.delete)
        varint.write(out, len(data))
        out += data
        end = op.pos + op.delete
    return bytes(out)


def from_bytes(data: bytes) -> Patch:
    """Decode :func:`to_bytes`'s form strictly: all of ``data``, canonical.

    Raises:
        InvalidPatch: truncated, trailing bytes, bad varints or UTF-8, or a
            patch not in canonical form (an empty op, a gap of 0 after an op).
    """
    ops: list[Op] = []
    end = 0
    try:
        count, at = varint.read(data, 0)
        for _ in range(count):
            gap, at = varint.read(data, at)
            delete, at = varint.read(data, at)
            size, at = varint.read(data, at)
            if at + size > len(data):
                raise InvalidPatch(f"op {len(ops)}: insert runs past the patch's end")
            insert = data[at : at + size].decode("utf-8")
            at += size
            ops.append(Op(end + gap, delete, insert))
            end += gap + delete
    except UnicodeDecodeError:
        raise InvalidPatch(f"op {len(ops)}: insert is not UTF-8") from None
    except InvalidPatch:
        raise
    except ValueError as exc:
        raise InvalidPatch(f"binary patch: {exc}") from None
    if at != len(data):
        raise InvalidPatch(f"binary patch: {len(data) - at} bytes after its last op")
    patch = tuple(ops)
    validate(patch, scan_text=False)  # strict UTF-8 holds no lone surrogate
    return patch

"""Argument checks shared by every SDK edit method (:class:`client.Pad`).

``insert``, ``delete``, ``replace`` and ``apply`` all pass their arguments
through :func:`check_edit` (``apply`` once per op, via :func:`check_patch`)
before anything reaches the session, so a bad argument raises exactly one
documented error, :class:`~client.errors.InvalidEdit` (a ``PadError`` and a
``ValueError``), with a one-line message naming the argument:

- a position is an ``int`` (not ``bool``) in ``0..len(text)``;
- a count is an ``int`` (not ``bool``), ``>= 0``, and ``pos + count`` stays
  inside the text;
- a text is a ``str`` without a lone surrogate (U+D800..U+DFFF), which no
  peer could encode as UTF-8.

Positions and counts are code points (Python ``str`` indices).
"""

from __future__ import annotations

import re

from client.errors import InvalidEdit
from client.textops import InvalidPatch, Op, Patch, check

__all__ = ["check_edit", "check_patch"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_edit(
    length: int,
    pos: object = 0,
    count: object = 0,
    text: object = "",
    *,
    names: tuple[str, str, str] = ("pos", "count", "text"),
) -> None:
    """Check one edit's arguments against a text of ``length`` code points.

    Args:
        length: the current text's length in code points.
        pos: where the edit starts.
        count: how many code points it removes.
        text: what it inserts.
        names: how the message calls ``pos``, ``count`` and ``text``.

    Raises:
        InvalidEdit: a wrong type, a position or range outside the text, a
            negative count, or a lone surrogate in ``text``.
    """
    pos_name, count_name, text_name = names
    pos = _as_int(pos_name, pos)
    count = _as_int(count_name, count)
    if not 0 <= pos <= length:
        raise InvalidEdit(f"{pos_name} {pos} is outside the text (0..{length})")
    if count < 0:
        raise InvalidEdit(f"{count_name} {count} is negative")
    if pos + count > length:
        raise InvalidEdit(
            f"{count_name} {count} at {pos_name} {pos} reaches past the end of the text ({length})"
        )
    if type(text) is not str:
        raise InvalidEdit(f"{text_name} must be a str, got {type(text).__name__}")
    if not text.isascii() and (found := _SURROGATE.search(text)) is not None:
        raise InvalidEdit(
            f"{text_name} has a lone surrogate U+{ord(found.group()):04X} at index"
            f" {found.start()} (not valid Unicode text)"
        )


def check_patch(length: int, patch: object) -> Patch:
    """Check a patch for :meth:`client.Pad.apply`: each op, then canonical form.

    Args:
        length: the current text's length in code points.
        patch: should be a canonical :data:`client.textops.Patch`.

    Returns:
        ``patch``, now known to be a canonical patch that fits the text.

    Raises:
        InvalidEdit: not a tuple of ``Op``, an op with a bad argument (as
            :func:`check_edit`), or ops not sorted, separated and non-empty
            (the :class:`~client.textops.InvalidPatch` is chained as the cause).
    """
    if not isinstance(patch, tuple):
        raise InvalidEdit(f"patch must be a tuple of Op, got {type(patch).__name__}")
    for index, op in enumerate(patch):
        if not isinstance(op, Op):
            raise InvalidEdit(f"patch op {index} must be an Op, got {type(op).__name__}")
        names = (f"op {index} pos", f"op {index} delete", f"op {index} insert")
        check_edit(length, op.pos, op.delete, op.insert, names=names)
    try:
        check(patch, length)
    except InvalidPatch as error:
        raise InvalidEdit(f"patch is not canonical: {error}") from error
    return patch


def _as_int(name: str, value: object) -> int:
    if type(value) is not int:  # bool is an int subclass, and refused
        raise InvalidEdit(f"{name} must be an int, got {type(value).__name__}")
    return value

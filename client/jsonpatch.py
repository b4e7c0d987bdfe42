"""JSON patches: the operations, their checks and their wire form.

:mod:`client.jsondoc` is the algebra (apply, invert, compose, transform,
diff) and re-exports these names, as :mod:`client.textops` does those of
:mod:`client.textpatch`.

Wire form (JSON): a patch is a list of operations, each a list
``[kind, path, arg]`` (``["d", path]`` for a delete) with ``path`` a list of
strings and non-negative integers; ``arg`` is the value (``s``, ``i``), the
target index (``m``), the integer to add (``a``) or the text patch's wire
form (``t``, :func:`client.textops.to_wire`).  Decoding is strict: anything
else, a no-op operation included, raises :class:`InvalidPatch`.  Values are
JSON (finite numbers, strings without lone surrogates, string keys, nesting
at most :data:`MAX_DEPTH`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TypeAlias

from client import textops, textpatch
from client.textops import InvalidPatch

Key: TypeAlias = "str | int"
Path: TypeAlias = "tuple[str | int, ...]"

SET, DELETE, INSERT, MOVE, ADD, TEXT = "s", "d", "i", "m", "a", "t"
KINDS = (SET, DELETE, INSERT, MOVE, ADD, TEXT)

#: Deepest nesting of values and longest path accepted (deeper input is invalid).
MAX_DEPTH = 64
#: Largest integer magnitude in a patch (values, deltas); documents allow sums.
MAX_INT = 2**1000
MAX_DOC_INT = 2**4000
_MAX_INDEX = 2**31


@dataclass(frozen=True, eq=True)
class JOp:
    """One operation: ``kind`` (see the module docstring), ``path``, ``arg``."""

    kind: str
    path: Path
    arg: object = None


Patch: TypeAlias = "tuple[JOp, ...]"


def canonical(value: object) -> str:
    """Canonical JSON: sorted keys, no spaces, non-ASCII kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same(a: object, b: object) -> bool:
    """Equality that tells ``1``, ``1.0`` and ``True`` apart (as the digest does)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# --- validation ------------------------------------------------------------


def check_value(value: object, *, limit: int = MAX_INT, depth: int = 0) -> None:
    """Raise :class:`InvalidPatch` unless ``value`` is a JSON value blindpad accepts."""
    if depth > MAX_DEPTH:
        raise InvalidPatch(f"value nested deeper than {MAX_DEPTH}")
    if value is None or type(value) is bool:
        return
    if type(value) is int:
        if abs(value) > limit:
            raise InvalidPatch("integer out of range")
    elif type(value) is float:
        if not math.isfinite(value):
            raise InvalidPatch("a JSON number must be finite")
    elif type(value) is str:
        _check_str(value)
    elif type(value) is list:
        for item in value:
            check_value(item, limit=limit, depth=depth + 1)
    elif type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidPatch("object keys must be strings")
            _check_str(key)
            check_value(item, limit=limit, depth=depth + 1)
    else:
        raise InvalidPatch(f"not a JSON value: {type(value).__name__}")


def _check_str(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPatch("string contains a lone surrogate") from None


def _check_path(path: object) -> Path:
    if type(path) is not list and type(path) is not tuple:
        raise InvalidPatch("a path must be a list")
    if len(path) > MAX_DEPTH:
        raise InvalidPatch(f"path longer than {MAX_DEPTH}")
    for key in path:
        if type(key) is str:
            _check_str(key)
        elif type(key) is int:
            if not 0 <= key < _MAX_INDEX:
                raise InvalidPatch(f"list index out of range: {key}")
        else:
            raise InvalidPatch("path items must be strings or non-negative integers")
    return tuple(path)


def check_op(op: JOp) -> JOp:
    """Raise :class:`InvalidPatch` unless ``op`` is a well-formed, effective operation."""
    path, arg = _check_path(op.path), op.arg
    kind = op.kind
    if kind in (DELETE, INSERT, MOVE) and not path:
        raise InvalidPatch(f"{kind!r} needs a non-empty path")
    if kind in (INSERT, MOVE) and type(path[-1]) is not int:
        raise InvalidPatch(f"{kind!r} needs a list index last in its path")
    if kind in (SET, INSERT):
        check_value(arg)
    elif kind == DELETE:
        if arg is not None:
            raise InvalidPatch("a delete takes no argument")
    elif kind == MOVE:
        if type(arg) is not int or not 0 <= arg < _MAX_INDEX:
            raise InvalidPatch("a move's target must be a non-negative integer")
        if arg == path[-1]:
            raise InvalidPatch("a move to where the item is changes nothing")
    elif kind == ADD:
        if type(arg) is not int or arg == 0 or abs(arg) > MAX_INT:
            raise InvalidPatch("add takes a non-zero integer in range")
    elif kind == TEXT:
        if not isinstance(arg, tuple) or not arg:
            raise InvalidPatch("a text edit takes a non-empty text patch")
        textpatch.validate(arg)
    else:
        raise InvalidPatch(f"unknown operation kind {kind!r}")
    return JOp(kind, path, arg)


def effective(op: JOp) -> bool:
    """False for an operation that changes nothing (a move to where the item is,
    an add of 0, an empty text patch)."""
    if op.kind == MOVE:
        return op.arg != op.path[-1]
    if op.kind == ADD:
        return op.arg != 0
    if op.kind == TEXT:
        return bool(op.arg)
    return True


# --- wire ------------------------------------------------------------------------


def op_to_wire(op: JOp) -> list[object]:
    path: list[object] = list(op.path)
    if op.kind == DELETE:
        return [DELETE, path]
    if op.kind == TEXT:
        return [TEXT, path, textops.to_wire(op.arg)]  # type: ignore[arg-type]
    return [op.kind, path, op.arg]


def to_wire(patch: Patch) -> list[list[object]]:
    """The JSON form of a patch (see the module docstring)."""
    return [op_to_wire(op) for op in patch]


def _op_from_wire(item: object, index: int) -> JOp:
    if type(item) is not list or not item or type(item[0]) is not str:
        raise InvalidPatch(f"op {index}: expected [kind, path, ...]")
    kind = item[0]
    if kind not in KINDS:
        raise InvalidPatch(f"op {index}: unknown kind {kind!r}")
    if len(item) != (2 if kind == DELETE else 3):
        raise InvalidPatch(f"op {index}: wrong number of fields for {kind!r}")
    arg = item[2] if kind != DELETE else None
    if kind == TEXT:
        arg = textops.from_wire(arg)
    try:
        return check_op(JOp(kind, _check_path(item[1]), arg))
    except InvalidPatch as error:
        raise InvalidPatch(f"op {index}: {error}") from None


def from_wire(data: object) -> Patch:
    """The inverse of :func:`to_wire`; raises :class:`InvalidPatch` on any bad input."""
    if type(data) is not list:
        raise InvalidPatch("a JSON patch must be a list of operations")
    return tuple(_op_from_wire(item, index) for index, item in enumerate(data))


__all__ = [
    "ADD",
    "DELETE",
    "INSERT",
    "KINDS",
    "MAX_DEPTH",
    "MAX_DOC_INT",
    "MAX_INT",
    "MOVE",
    "SET",
    "TEXT",
    "InvalidPatch",
    "JOp",
    "Key",
    "Patch",
    "Path",
    "canonical",
    "check_op",
    "check_value",
    "effective",
    "from_wire",
    "op_to_wire",
    "same",
    "to_wire",
]

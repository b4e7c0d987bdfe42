"""Check one golden vector of the text algebra (``text*.jsonl``).

Standard library plus ``client`` only: this runs under CPython and under
Pyodide. ``check(record)`` raises ``AssertionError`` naming the suite,
the case and the mismatch; the record format is described in
``make_text.py``. Besides the recorded value, each check re-verifies the law
the value must satisfy (for example that a transform converges), so a wrong
vector cannot hide a wrong implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from client import textops as t
from client.doctype import TEXT
from client.payload import Payload, decode, encode
from client.textdiff import diff


def _fail(record: dict[str, Any], what: str, got: object, want: object) -> AssertionError:
    where = f"{record.get('suite')} / {record.get('case')!r}"
    return AssertionError(f"{where}: {what}\n  got:  {got!r}\n  want: {want!r}")


def _equal(record: dict[str, Any], what: str, got: object, want: object) -> None:
    if got != want:
        raise _fail(record, what, got, want)


def _check_apply(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    if isinstance(expect, dict):
        try:
            got = t.apply(inp["doc"], t.from_wire(inp["patch"]))
        except t.InvalidPatch:
            return
        raise _fail(record, "expected InvalidPatch", got, expect)
    _equal(record, "apply", t.apply(inp["doc"], t.from_wire(inp["patch"])), expect)


def _check_compose(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, a, b = inp["doc"], t.from_wire(inp["a"]), t.from_wire(inp["b"])
    got = t.compose(a, b)
    _equal(record, "compose", t.to_wire(got), expect)
    _equal(record, "compose vs sequential apply", t.apply(doc, got), t.apply(t.apply(doc, a), b))


def _check_invert(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, patch = inp["doc"], t.from_wire(inp["patch"])
    got = t.invert(patch, doc)
    _equal(record, "invert", t.to_wire(got), expect)
    _equal(record, "invert round trip", t.apply(t.apply(doc, patch), got), doc)


def _check_transform(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, a, b = inp["doc"], t.from_wire(inp["a"]), t.from_wire(inp["b"])
    a2, b2 = t.transform(a, b), t.transform(b, a)
    _equal(record, "transform(a, b)", t.to_wire(a2), expect["a_after_b"])
    _equal(record, "transform(b, a)", t.to_wire(b2), expect["b_after_a"])
    _equal(record, "text after b then a'", t.apply(t.apply(doc, b), a2), expect["text"])
    _equal(record, "text after a then b'", t.apply(t.apply(doc, a), b2), expect["text"])


def _check_simplify(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, patch = inp["doc"], t.from_wire(inp["patch"])
    got = t.simplify(patch, doc)
    _equal(record, "simplify", t.to_wire(got), expect)
    _equal(record, "simplify keeps the result", t.apply(doc, got), t.apply(doc, patch))


def _check_diff(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    got = diff(inp["old"], inp["new"])
    _equal(record, "diff", t.to_wire(got), expect)
    _equal(record, "diff applies", t.apply(inp["old"], got), inp["new"])


def _check_position(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    patch = t.from_wire(inp["patch"])
    if "selection" in inp:
        anchor, head = inp["selection"]
        got = list(t.transform_selection((anchor, head), patch))
        _equal(record, "transform_selection", got, expect)
    else:
        got_pos = t.transform_position(inp["pos"], patch, after_insert=inp["after_insert"])
        _equal(record, "transform_position", got_pos, expect)


def content_payload(inp: dict[str, Any]) -> Payload[t.Patch]:
    """The payload a ``text.content`` record's input names (hex for bytes, null for absent)."""
    return Payload(
        t.from_wire(inp["patch"]),
        inp["size"],
        bytes.fromhex(inp["digest"]) if inp["digest"] else None,
        inp["time"],
        bytes.fromhex(inp["session"]) if inp["session"] else None,
        inp["counter"],
        inp["alg"] or 1,
    )


def _check_content(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    if "patch" in inp:  # encode, then read back
        given = content_payload(inp)
        data = encode(TEXT, given)
        _equal(record, "content bytes", data.hex(), expect["hex"])
        _equal(record, "content read back", decode(TEXT, data), given)
        return
    if "error" in expect:
        try:
            got = decode(TEXT, bytes.fromhex(inp["hex"]))
        except t.InvalidPatch:
            return
        raise _fail(record, "expected InvalidPatch", got, expect)
    payload = decode(TEXT, bytes.fromhex(inp["hex"]))
    fields = {
        "patch": t.to_wire(payload.patch),
        "size": payload.size,
        "time": payload.time,
        "alg": payload.alg if payload.digest is not None else None,
        "digest": payload.digest.hex() if payload.digest is not None else None,
        "session": payload.session.hex() if payload.session is not None else None,
        "counter": payload.counter,
    }
    _equal(record, "content decoded", fields, expect)


_SUITES: dict[str, Callable[[dict[str, Any], dict[str, Any], Any], None]] = {
    "text.apply": _check_apply,
    "text.compose": _check_compose,
    "text.invert": _check_invert,
    "text.transform": _check_transform,
    "text.simplify": _check_simplify,
    "text.diff": _check_diff,
    "text.position": _check_position,
    "text.content": _check_content,
}


def check(record: dict[str, Any]) -> None:
    """Check one record; raise ``AssertionError`` with a clear message on mismatch."""
    suite = record.get("suite")
    checker = _SUITES.get(suite) if isinstance(suite, str) else None
    if checker is None:
        raise AssertionError(f"unknown suite {suite!r} in case {record.get('case')!r}")
    try:
        checker(record, record["input"], record["expect"])
    except t.InvalidPatch as exc:
        raise _fail(record, "unexpected InvalidPatch", exc, record.get("expect")) from exc

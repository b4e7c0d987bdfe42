"""Check one golden vector of the JSON document type (``json*.jsonl``).

Standard library plus ``client.jsondoc`` only: this runs under CPython and
under Pyodide.  ``check(record)`` raises ``AssertionError`` naming the suite,
the case and the mismatch; the record format is described in
``make_json.py``.  Besides the recorded value each check re-verifies the law
the value must satisfy (a transform converges, an inverse undoes, a diff
turns old into new), so a wrong vector cannot hide a wrong implementation.
Documents compare by canonical JSON (``1``, ``1.0`` and ``true`` differ).
"""

from __future__ import annotations

from typing import Any

from client import jsondoc as j


def _fail(record: dict[str, Any], what: str, got: object, want: object) -> AssertionError:
    where = f"{record.get('suite')} / {record.get('case')!r}"
    return AssertionError(f"{where}: {what}\n  got:  {got!r}\n  want: {want!r}")


def _equal(record: dict[str, Any], what: str, got: object, want: object) -> None:
    if j.canonical(got) != j.canonical(want):
        raise _fail(record, what, got, want)


def _check_apply(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    if expect == {"error": "InvalidPatch"}:
        try:
            got = j.apply(inp["doc"], j.from_wire(inp["patch"]))
        except j.InvalidPatch:
            return
        raise _fail(record, "expected InvalidPatch", got, expect)
    _equal(record, "apply", j.apply(inp["doc"], j.from_wire(inp["patch"])), expect)


def _check_transform(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, a, b = inp["doc"], j.from_wire(inp["a"]), j.from_wire(inp["b"])
    a2, b2 = j.transform(a, b), j.transform(b, a)
    _equal(record, "transform(a, b)", j.to_wire(a2), expect["a_after_b"])
    _equal(record, "transform(b, a)", j.to_wire(b2), expect["b_after_a"])
    _equal(record, "doc after b then a'", j.apply(j.apply(doc, b), a2), expect["doc"])
    _equal(record, "doc after a then b'", j.apply(j.apply(doc, a), b2), expect["doc"])


def _check_invert(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc, patch = inp["doc"], j.from_wire(inp["patch"])
    got = j.invert(patch, doc)
    _equal(record, "invert", j.to_wire(got), expect)
    _equal(record, "invert round trip", j.apply(j.apply(doc, patch), got), doc)


def _check_diff(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    got = j.diff(inp["old"], inp["new"])
    _equal(record, "diff", j.to_wire(got), expect)
    _equal(record, "diff applies", j.apply(inp["old"], got), inp["new"])


def _check_digest(record: dict[str, Any], inp: dict[str, Any], expect: Any) -> None:
    doc = j.JSON.doc_from_wire({"json": inp["doc"]})
    _equal(record, "digest", j.JSON.digest(doc).hex(), expect["digest"])
    _equal(record, "size", j.JSON.size(doc), expect["size"])


_CHECKS = {
    "json.apply": _check_apply,
    "json.transform": _check_transform,
    "json.invert": _check_invert,
    "json.diff": _check_diff,
    "json.digest": _check_digest,
}


def check(record: dict[str, Any]) -> None:
    """Check one record; raise ``AssertionError`` if it does not hold."""
    checker = _CHECKS.get(record["suite"])
    if checker is None:
        raise AssertionError(f"unknown suite {record['suite']!r}")
    checker(record, record["input"], record["expect"])

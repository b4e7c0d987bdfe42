"""Write the golden vectors of the text algebra: ``tests/vectors/text.jsonl``.

Run ``python tests/vectors/make_text.py`` after a deliberate change of
``client.textops`` semantics, and review the diff. Each line is one JSON
object ``{"suite", "case", "input", "expect"}``; patches are in wire form
(``[[pos, delete, insert], ...]``). ``check_text.py`` beside this file
checks one record. Output is deterministic (fixed seed, sorted keys).

Suites and their records:

- ``text.apply``: input ``{doc, patch}``; expect the new text, or
  ``{"error": "InvalidPatch"}`` for a patch that must be refused.
- ``text.compose``: input ``{doc, a, b}`` (``b`` applies after ``a``);
  expect the composed patch.
- ``text.invert``: input ``{doc, patch}``; expect the inverse patch.
- ``text.transform``: input ``{doc, a, b}`` (concurrent); expect
  ``{"a_after_b", "b_after_a", "text"}``: both transformed patches and the
  text both orders converge to.
- ``text.simplify``: input ``{doc, patch}``; expect the simplified patch.
- ``text.diff``: input ``{old, new}``; expect the patch.
- ``text.position``: input ``{patch, pos, after_insert}``; expect the new
  position; or input ``{patch, selection}``; expect the new ``[anchor, head]``.
- ``text.content``: a patch envelope's binary content (docs/PROTOCOL.md
  §10.1).  Input ``{patch, size, time, alg, digest, session, counter}``
  (``null`` where absent; digest and session in hex); expect ``{"hex"}``,
  the exact bytes.  Or input ``{"hex"}``; expect those fields decoded, or
  ``{"error": "InvalidPatch"}`` for content that must be refused.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_text import content_payload

from client import textops as t
from client.doctype import TEXT
from client.payload import encode
from client.textdiff import diff

OUT = Path(__file__).with_name("text.jsonl")
SEED = 20240611
ALPHABET = "ab c\n中文😀🎉e\u0301"

Record = dict[str, Any]


def _w(patch: t.Patch) -> list[list[int | str]]:
    return t.to_wire(patch)


def _p(*ops: tuple[int, int, str]) -> t.Patch:
    return t.normalize(ops)


def _apply(case: str, doc: str, patch: Any, expect: Any = None) -> Record:
    if expect is None:
        expect = t.apply(doc, t.from_wire(patch))
    return _rec("text.apply", case, {"doc": doc, "patch": patch}, expect)


def _rec(suite: str, case: str, inputs: dict[str, Any], expect: Any) -> Record:
    return {"suite": suite, "case": case, "input": inputs, "expect": expect}


def _transform(case: str, doc: str, a: t.Patch, b: t.Patch) -> Record:
    a2, b2 = t.transform(a, b), t.transform(b, a)
    text = t.apply(t.apply(doc, b), a2)
    expect = {"a_after_b": _w(a2), "b_after_a": _w(b2), "text": text}
    return _rec("text.transform", case, {"doc": doc, "a": _w(a), "b": _w(b)}, expect)


def _random_doc(rng: random.Random, max_len: int = 14) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_len)))


def _random_patch(rng: random.Random, doc: str) -> t.Patch:
    ops: list[tuple[int, int, str]] = []
    pos = 0
    for _ in range(rng.randint(0, 4)):
        start = rng.randint(pos, len(doc))
        delete = rng.randint(0, min(4, len(doc) - start))
        ops.append((start, delete, _random_doc(rng, 3)))
        pos = start + delete
    return t.normalize(ops)


def apply_records() -> list[Record]:
    doc = "a😀b中c"
    bad = {"error": "InvalidPatch"}
    return [
        _apply("empty patch", doc, []),
        _apply("insert at start", doc, [[0, 0, "X"]]),
        _apply("insert at end", doc, [[5, 0, "🎉"]]),
        _apply("delete an emoji (one code point)", doc, [[1, 1, ""]]),
        _apply("replace across emoji", doc, [[1, 3, "é"]]),
        _apply("several ops", doc, [[0, 1, "A"], [2, 0, "\n"], [4, 1, ""]]),
        _apply("empty document", "", [[0, 0, "hi"]]),
        _apply("delete everything", doc, [[0, 5, ""]]),
        _apply("past the end", doc, [[5, 1, ""]], bad),
        _apply("insert past the end", doc, [[6, 0, "x"]], bad),
        _apply("touching ops are not canonical", doc, [[0, 1, ""], [1, 1, ""]], bad),
        _apply("unsorted ops", doc, [[3, 0, "x"], [1, 0, "y"]], bad),
        _apply("empty op", doc, [[1, 0, ""]], bad),
        _apply("negative position", doc, [[-1, 0, "x"]], bad),
        _apply("not a list", doc, {"pos": 0}, bad),
        _apply("boolean position", doc, [[True, 0, "x"]], bad),
    ]


def compose_records(rng: random.Random) -> list[Record]:
    cases = [
        ("insert then delete it cancels", "abc", _p((1, 0, "XY")), _p((1, 2, ""))),
        ("insert then delete part of it", "abc", _p((1, 0, "XYZ")), _p((2, 1, ""))),
        ("delete then insert at the same place", "abc", _p((1, 1, "")), _p((1, 0, "Q"))),
        ("typing accumulates", "", _p((0, 0, "ab")), _p((2, 0, "c😀"))),
        ("second deletes across first insert", "0123", _p((2, 0, "X")), _p((1, 3, ""))),
        ("disjoint", "0123456", _p((1, 1, "")), _p((4, 0, "Z"))),
    ]
    for i in range(25):
        doc = _random_doc(rng)
        a = _random_patch(rng, doc)
        cases.append((f"random {i}", doc, a, _random_patch(rng, t.apply(doc, a))))
    return [
        _rec(
            "text.compose",
            name,
            {"doc": doc, "a": _w(a), "b": _w(b)},
            _w(t.compose(a, b)),
        )
        for name, doc, a, b in cases
    ]


def invert_records(rng: random.Random) -> list[Record]:
    cases = [
        ("insert", "ab", _p((1, 0, "😀"))),
        ("delete", "a😀b", _p((1, 1, ""))),
        ("replace and shift", "0123456", _p((1, 2, "xyz"), (5, 1, ""))),
    ]
    for i in range(20):
        doc = _random_doc(rng)
        cases.append((f"random {i}", doc, _random_patch(rng, doc)))
    return [
        _rec("text.invert", name, {"doc": doc, "patch": _w(p)}, _w(t.invert(p, doc)))
        for name, doc, p in cases
    ]


def transform_records(rng: random.Random) -> list[Record]:
    d = "0123456789"
    out = [
        _transform(
            "1 same-position inserts: smaller text first", d, _p((3, 0, "b")), _p((3, 0, "a"))
        ),
        _transform("1 same-position inserts: equal texts", d, _p((3, 0, "x")), _p((3, 0, "x"))),
        _transform("1 prefix text goes first", d, _p((3, 0, "ab")), _p((3, 0, "a"))),
        _transform("1 replace vs insert at its start", d, _p((3, 2, "R")), _p((3, 0, "I"))),
        _transform("1 emoji sorts by code point", d, _p((0, 0, "😀")), _p((0, 0, "中"))),
        _transform("2 delete around an insert", d, _p((2, 5, "")), _p((4, 0, "X"))),
        _transform("2 insert at delete start survives", d, _p((2, 5, "")), _p((2, 0, "X"))),
        _transform("2 insert at delete end survives", d, _p((2, 5, "")), _p((7, 0, "X"))),
        _transform(
            "2 delete around several inserts", d, _p((1, 8, "")), _p((3, 0, "A"), (6, 0, "B"))
        ),
        _transform("3 overlapping deletes", d, _p((2, 4, "")), _p((4, 4, ""))),
        _transform("3 nested deletes", d, _p((1, 8, "")), _p((3, 2, ""))),
        _transform("3 identical deletes", d, _p((2, 3, "")), _p((2, 3, ""))),
        _transform("4 replace partly deleted", d, _p((2, 3, "R")), _p((3, 4, ""))),
        _transform("4 replace fully deleted", d, _p((3, 2, "R")), _p((1, 8, ""))),
        _transform("4 concurrent replaces of one range", d, _p((2, 3, "X")), _p((2, 3, "Y"))),
        _transform("5 disjoint ops shift", d, _p((1, 1, "ab")), _p((6, 2, "c"))),
        _transform("5 touching ranges", d, _p((2, 2, "")), _p((4, 2, "Z"))),
        _transform("emoji document", "a😀b🎉c", _p((1, 1, "")), _p((2, 0, "中"))),
        _transform("empty patches", d, (), _p((0, 0, "x"))),
    ]
    for i in range(40):
        doc = _random_doc(rng)
        out.append(
            _transform(f"random {i}", doc, _random_patch(rng, doc), _random_patch(rng, doc))
        )
    return out


def simplify_records(rng: random.Random) -> list[Record]:
    cases = [
        ("reinsert same text", "abc", _p((0, 3, "abc"))),
        ("common prefix", "hello", _p((0, 5, "help"))),
        ("common suffix", "hello", _p((0, 5, "jello"))),
        ("prefix and suffix of unequal lengths", "abXcd", _p((0, 5, "abYYcd"))),
        ("astral characters are atomic", "😀", _p((0, 1, "🎉"))),
        ("pure insert untouched", "ab", _p((1, 0, "b"))),
    ]
    for i in range(20):
        doc = _random_doc(rng)
        ops = []
        pos = 0
        for _ in range(rng.randint(1, 3)):
            start = rng.randint(pos, len(doc))
            end = rng.randint(start, len(doc))
            mid = doc[start:end]
            ops.append((start, end - start, mid[: rng.randint(0, len(mid))] + _random_doc(rng, 2)))
            pos = end
        cases.append((f"random {i}", doc, t.normalize(ops)))
    return [
        _rec("text.simplify", name, {"doc": doc, "patch": _w(p)}, _w(t.simplify(p, doc)))
        for name, doc, p in cases
    ]


def diff_records(rng: random.Random) -> list[Record]:
    cases = [
        ("equal", "same", "same"),
        ("from empty", "", "new 😀"),
        ("to empty", "old", ""),
        ("one char typed", "helo", "hello"),
        ("one emoji replaced", "a😀b", "a🎉b"),
        ("two separate edits", "the cat sat", "the bat sat!"),
        ("line inserted", "a\nb\n", "a\nx\nb\n"),
        ("combining mark added", "e", "e\u0301"),
    ]
    for i in range(25):
        old = _random_doc(rng)
        new = t.apply(old, _random_patch(rng, old)) if i % 2 else _random_doc(rng)
        cases.append((f"random {i}", old, new))
    return [
        _rec("text.diff", name, {"old": old, "new": new}, _w(diff(old, new)))
        for name, old, new in cases
    ]


def position_records(rng: random.Random) -> list[Record]:
    out: list[Record] = []

    def pos(case: str, patch: t.Patch, p: int, after_insert: bool = False) -> None:
        inputs = {"patch": _w(patch), "pos": p, "after_insert": after_insert}
        expect = t.transform_position(p, patch, after_insert=after_insert)
        out.append(_rec("text.position", case, inputs, expect))

    def sel(case: str, patch: t.Patch, s: tuple[int, int]) -> None:
        inputs = {"patch": _w(patch), "selection": list(s)}
        out.append(_rec("text.position", case, inputs, list(t.transform_selection(s, patch))))

    pos("before an insert", _p((5, 0, "ab")), 3)
    pos("after an insert", _p((1, 0, "ab")), 3)
    pos("remote insert at the caret", _p((3, 0, "ab")), 3)
    pos("own insert at the caret", _p((3, 0, "ab")), 3, True)
    pos("inside a delete", _p((2, 5, "")), 4)
    pos("inside a replace", _p((2, 5, "xy")), 4)
    pos("inside a replace, after insert", _p((2, 5, "xy")), 4, True)
    pos("at the end of a delete", _p((2, 5, "xy")), 7)
    pos("after several ops", _p((0, 1, "😀😀"), (3, 2, "")), 9)
    sel("caret before remote insert", _p((3, 0, "ab")), (3, 3))
    sel("range does not grow at its edges", _p((2, 0, "L"), (5, 0, "R")), (2, 5))
    sel("backward range", _p((0, 0, "xx")), (6, 2))
    sel("range content deleted collapses", _p((1, 6, "new")), (2, 5))
    sel("range partly deleted", _p((4, 3, "")), (2, 5))
    for i in range(15):
        doc = _random_doc(rng)
        patch = _random_patch(rng, doc)
        p = rng.randint(0, len(doc))
        pos(f"random {i}", patch, p, bool(i % 2))
        sel(f"random selection {i}", patch, (rng.randint(0, len(doc)), p))
    return out


def content_records() -> list[Record]:
    """Binary patch contents: what writers produce, and what readers refuse."""
    digest = hashlib.sha256(b"any 32 bytes").hexdigest()
    fields: list[tuple[str, dict[str, Any]]] = [
        ("a keystroke", {"patch": [[5, 0, "a"]], "size": 6}),
        (
            "a keystroke, stamped and timed",
            {
                "patch": [[1234, 0, "é"]],
                "size": 2000,
                "time": 1_733_480_000_123,
                "session": "0123456789abcdef",
                "counter": 300,
            },
        ),
        (
            "two ops, an integrity value",
            {
                "patch": [[0, 2, "中文"], [7, 1, ""], [9, 0, "😀\n"]],
                "size": 12,
                "alg": 2,
                "digest": digest,
            },
        ),
        ("algorithm 1", {"patch": [[0, 0, "x"]], "size": 1, "alg": 1, "digest": digest}),
        ("no ops", {"patch": [], "size": 0}),
        ("a large gap", {"patch": [[2**40, 3, "z"]], "size": 2**40 + 1}),
    ]
    out: list[Record] = []
    for case, given in fields:
        inputs = {"time": None, "alg": None, "digest": None, "session": None, "counter": None}
        inputs.update(given)
        data = encode(TEXT, content_payload(inputs))
        out.append(_rec("text.content", f"encode {case}", inputs, {"hex": data.hex()}))
        out.append(_rec("text.content", f"decode {case}", {"hex": data.hex()}, inputs))
    bad = [
        ("flags above 7", "080100"),
        ("truncated size", "0080"),
        ("non-minimal varint", "00810000"),
        ("integrity cut short", "020102" + "00" * 31),
        ("session cut short", "0401" + "00" * 7),
        ("counter 0", "0401" + "00" * 8 + "0000"),
        ("an empty op", "000001000000"),
        ("ops touching (gap 0 after an op)", "0002020000016100000162"),
        ("insert past the end", "00010100000561"),
        ("insert not UTF-8", "000101000001ff"),
        ("an encoded surrogate", "000101000003eda080"),
        ("bytes after the last op", "0001010000016100"),
        ("count above the ops", "00010200000161"),
    ]
    for case, hexed in bad:
        out.append(
            _rec("text.content", f"refuse {case}", {"hex": hexed}, {"error": "InvalidPatch"})
        )
    return out


def records() -> list[Record]:
    """Every record, in file order."""
    rng = random.Random(SEED)
    return [
        *apply_records(),
        *compose_records(rng),
        *invert_records(rng),
        *transform_records(rng),
        *simplify_records(rng),
        *diff_records(rng),
        *position_records(rng),
        *content_records(),
    ]


def render() -> str:
    """The exact text of ``text.jsonl``."""
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records()]
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.write_bytes(render().encode("utf-8"))
    print(f"wrote {OUT} ({len(records())} records)")


if __name__ == "__main__":
    main()

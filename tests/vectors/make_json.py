"""Write the golden vectors of the JSON document type: ``tests/vectors/json.jsonl``.

Run ``python tests/vectors/make_json.py`` after a deliberate change of
``client.jsondoc`` semantics, and review the diff.  Each line is one JSON
object ``{"suite", "case", "input", "expect"}``; patches are in wire form
(``[[kind, path, arg], ...]``, see ``docs/PROTOCOL.md``).  ``check_json.py``
beside this file checks one record.  Output is deterministic (fixed seed,
sorted keys).

Suites and their records:

- ``json.apply``: input ``{doc, patch}``; expect the new document, or
  ``{"error": "InvalidPatch"}`` for a patch that must be refused (on decoding
  or on applying).
- ``json.transform``: input ``{doc, a, b}`` (concurrent); expect
  ``{"a_after_b", "b_after_a", "doc"}``: both transformed patches and the
  document both orders converge to.
- ``json.invert``: input ``{doc, patch}``; expect the inverse patch.
- ``json.diff``: input ``{old, new}``; expect the patch.
- ``json.digest``: input ``{doc}``; expect ``{"digest": hex, "size": n}``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jsongen import gen_doc, gen_patch

from client import jsondoc as j

OUT = Path(__file__).with_name("json.jsonl")
SEED = 20261204
ERROR = {"error": "InvalidPatch"}

Record = dict[str, Any]


def _rec(suite: str, case: str, inputs: dict[str, Any], expect: Any) -> Record:
    return {"suite": suite, "case": case, "input": inputs, "expect": expect}


def _transform(case: str, doc: object, a: list[Any], b: list[Any]) -> Record:
    pa, pb = j.from_wire(a), j.from_wire(b)
    a2, b2 = j.transform(pa, pb), j.transform(pb, pa)
    out = j.apply(j.apply(doc, pb), a2)
    expect = {"a_after_b": j.to_wire(a2), "b_after_a": j.to_wire(b2), "doc": out}
    return _rec("json.transform", case, {"doc": doc, "a": a, "b": b}, expect)


DOC = {"title": "Plan 😀", "n": 3, "tags": ["a", "b", "c", "d"], "box": {"k": [1, {"s": "中文"}]}}

APPLY: list[tuple[str, object, list[Any]]] = [
    ("set a new key", DOC, [["s", ["new"], {"x": [1, 2.5, None, True]}]]),
    ("set the root", DOC, [["s", [], [1, 2]]]),
    ("replace a list item", DOC, [["s", ["tags", 1], "B"]]),
    ("delete a key", DOC, [["d", ["box"]]]),
    ("delete a list item", DOC, [["d", ["tags", 0]]]),
    ("insert at the end", DOC, [["i", ["tags", 4], "e"]]),
    ("move forward", DOC, [["m", ["tags", 0], 3]]),
    ("move back", DOC, [["m", ["tags", 3], 0]]),
    ("add", DOC, [["a", ["n"], -5]]),
    ("text edit inside a nested string", DOC, [["t", ["box", "k", 1, "s"], [[1, 1, "😀"]]]]),
    (
        "operations apply in sequence",
        DOC,
        [["i", ["tags", 0], "z"], ["m", ["tags", 0], 4], ["d", ["tags", 0]]],
    ),
]
REFUSED: list[tuple[str, object, object]] = [
    ("not a list", DOC, {"s": []}),
    ("unknown kind", DOC, [["x", ["n"], 1]]),
    ("move to where it is", DOC, [["m", ["tags", 1], 1]]),
    ("add zero", DOC, [["a", ["n"], 0]]),
    ("add a float", DOC, [["a", ["n"], 0.5]]),
    ("add to a string", DOC, [["a", ["title"], 1]]),
    ("text edit on a number", DOC, [["t", ["n"], [[0, 0, "x"]]]]),
    ("insert past the end", DOC, [["i", ["tags", 5], "e"]]),
    ("move past the end", DOC, [["m", ["tags", 0], 4]]),
    ("delete a missing key", DOC, [["d", ["nope"]]]),
    ("a bool is not an index", DOC, [["s", ["tags", True], 1]]),
    ("a delete takes no argument", DOC, [["d", ["n"], None]]),
    ("a lone surrogate", DOC, [["s", ["k"], "\ud800"]]),
    ("index a list with a key", DOC, [["s", ["tags", "k"], 1]]),
]
TRANSFORM: list[tuple[str, object, list[Any], list[Any]]] = [
    ("different keys both survive", DOC, [["s", ["x"], 1]], [["s", ["y"], 2]]),
    ("different list items both survive", DOC, [["s", ["tags", 0], "A"]], [["d", ["tags", 3]]]),
    (
        "delete of a subtree beats an edit inside",
        DOC,
        [["t", ["box", "k", 1, "s"], [[0, 0, "!"]]]],
        [["d", ["box"]]],
    ),
    (
        "a set replaces a subtree edited inside",
        DOC,
        [["i", ["box", "k", 0], 0]],
        [["s", ["box", "k"], "gone"]],
    ),
    ("delete beats set at one key", DOC, [["s", ["n"], 9]], [["d", ["n"]]]),
    ("two sets: greater canonical value wins", DOC, [["s", ["n"], "b"]], [["s", ["n"], "a"]]),
    ("adds commute", DOC, [["a", ["n"], 2]], [["a", ["n"], -7]]),
    ("a set beats an add", DOC, [["a", ["n"], 2]], [["s", ["n"], 0]]),
    (
        "text edits merge",
        DOC,
        [["t", ["title"], [[0, 0, "My "]]]],
        [["t", ["title"], [[4, 2, ""]]]],
    ),
    (
        "inserts at one index order by content",
        DOC,
        [["i", ["tags", 1], "y"]],
        [["i", ["tags", 1], "x"]],
    ),
    (
        "an insert goes before an item moved to its index",
        DOC,
        [["i", ["tags", 4], "e"]],
        [["m", ["tags", 0], 3]],
    ),
    (
        "moves of one item: larger target wins",
        DOC,
        [["m", ["tags", 0], 1]],
        [["m", ["tags", 0], 3]],
    ),
    ("moves of different items", DOC, [["m", ["tags", 0], 2]], [["m", ["tags", 3], 0]]),
    ("move and a delete of the moved item", DOC, [["m", ["tags", 1], 3]], [["d", ["tags", 1]]]),
    (
        "an edit inside a moved item follows it",
        DOC,
        [["m", ["box", "k", 1], 0]],
        [["t", ["box", "k", 1, "s"], [[2, 0, "!"]]]],
    ),
]


def records() -> list[Record]:
    """Every record, in file order."""
    rng = random.Random(SEED)
    out = [
        _rec("json.apply", c, {"doc": d, "patch": p}, j.apply(d, j.from_wire(p)))
        for c, d, p in APPLY
    ]
    out += [_rec("json.apply", c, {"doc": d, "patch": p}, ERROR) for c, d, p in REFUSED]
    out += [_transform(c, d, a, b) for c, d, a, b in TRANSFORM]
    for n in range(40):
        doc = gen_doc(rng)
        a, b = gen_patch(rng, doc, rng.randint(1, 4)), gen_patch(rng, doc, rng.randint(1, 4))
        out.append(_transform(f"random {n}", doc, j.to_wire(a), j.to_wire(b)))
    for n in range(15):
        doc = gen_doc(rng)
        patch = gen_patch(rng, doc, rng.randint(1, 4))
        inverse = j.to_wire(j.invert(patch, doc))
        out.append(
            _rec("json.invert", f"random {n}", {"doc": doc, "patch": j.to_wire(patch)}, inverse)
        )
        new = j.apply(doc, patch)
        out.append(
            _rec("json.diff", f"random {n}", {"old": doc, "new": new}, j.to_wire(j.diff(doc, new)))
        )
    for case, doc in [
        ("empty", {}),
        ("keys sort", {"b": 1, "a": [1.5, True, None, "é😀"]}),
        ("sample", DOC),
    ]:
        expect = {"digest": j.JSON.digest(doc).hex(), "size": j.JSON.size(doc)}
        out.append(_rec("json.digest", case, {"doc": doc}, expect))
    return out


def _line(record: Record) -> str:
    text = json.dumps(record, ensure_ascii=False, sort_keys=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate survives only as an escape
        text = json.dumps(record, sort_keys=True)
    return text


def render() -> str:
    """The exact text of ``json.jsonl``."""
    lines = [_line(r) for r in records()]
    return "\n".join(lines) + "\n"


def main() -> None:
    OUT.write_bytes(render().encode("utf-8"))
    print(f"wrote {OUT} ({len(records())} records)")


if __name__ == "__main__":
    main()

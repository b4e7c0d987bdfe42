"""The JSON document type: each law of client.doctype, and each transform rule
of client.jsondoc's docstring, as a property or an example.

Laws that do not hold (client.jsondoc's docstring says why): TP2;
``compose(a, invert(a, doc))`` is not the empty patch (only applies as one);
a set-vs-set conflict is decided by value, not by time.  The tests below that
exercise these show the failure is real, so the notes stay true.
"""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsongen import gen_doc, gen_patch

from client import jsondoc as j
from client.jsondoc import JSON, InvalidPatch, JOp, canonical
from client.textops import Op


def _same(a: object, b: object) -> None:
    assert canonical(a) == canonical(b)


def _case(rng: random.Random, longest: int = 4) -> tuple[object, j.Patch, j.Patch]:
    doc = gen_doc(rng)
    return (
        doc,
        gen_patch(rng, doc, rng.randint(1, longest)),
        gen_patch(rng, doc, rng.randint(1, longest)),
    )


@settings(max_examples=400)
@given(st.randoms(use_true_random=False))
def test_tp1_concurrent_patches_converge(rng: random.Random) -> None:
    doc, a, b = _case(rng)
    _same(
        JSON.apply(JSON.apply(doc, a), JSON.transform(b, a)),
        JSON.apply(JSON.apply(doc, b), JSON.transform(a, b)),
    )


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_invert_undoes(rng: random.Random) -> None:
    doc = gen_doc(rng)
    patch = gen_patch(rng, doc, rng.randint(1, 5))
    _same(JSON.apply(JSON.apply(doc, patch), JSON.invert(patch, doc)), doc)


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_the_size_apply_keeps_is_the_node_count(rng: random.Random) -> None:
    doc = gen_doc(rng)
    for _ in range(4):
        doc = JSON.apply(doc, gen_patch(rng, doc, rng.randint(1, 4)))
        assert JSON.size(doc) == j._count(json.loads(json.dumps(doc)))  # a fresh object: counted


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_compose_is_sequential_apply(rng: random.Random) -> None:
    doc = gen_doc(rng)
    a = gen_patch(rng, doc)
    b = gen_patch(rng, JSON.apply(doc, a))
    _same(JSON.apply(doc, JSON.compose(a, b)), JSON.apply(JSON.apply(doc, a), b))


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_simplify_keeps_the_result(rng: random.Random) -> None:
    doc = gen_doc(rng)
    patch = gen_patch(rng, doc)
    _same(JSON.apply(doc, JSON.simplify(patch, doc)), JSON.apply(doc, patch))
    assert JSON.simplify(JSON.compose(patch, JSON.invert(patch, doc)), doc) == ()


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_wire_round_trip(rng: random.Random) -> None:
    doc = gen_doc(rng)
    patch = gen_patch(rng, doc, rng.randint(0, 5))
    wire = json.loads(json.dumps(JSON.patch_to_wire(patch)))
    assert JSON.patch_from_wire(wire) == patch
    back = JSON.doc_from_wire(json.loads(json.dumps(JSON.doc_to_wire(doc))))
    _same(back, doc)
    assert JSON.digest(back) == JSON.digest(doc)


@settings(max_examples=200)
@given(st.randoms(use_true_random=False))
def test_diff_and_merge_diff_turn_old_into_new(rng: random.Random) -> None:
    old = gen_doc(rng)
    new = JSON.apply(old, gen_patch(rng, old, rng.randint(1, 5)))
    _same(JSON.apply(old, JSON.diff(old, new)), new)
    _same(JSON.apply(old, JSON.merge_diff(old, new)), new)
    assert JSON.diff(new, new) == ()


@settings(max_examples=100)
@given(st.randoms(use_true_random=False), st.integers(1, 60), st.integers(1, 4))
def test_split_pieces_then_rest_equal_the_patch(
    rng: random.Random, budget: int, count: int
) -> None:
    doc = gen_doc(rng)
    patch = gen_patch(rng, doc, rng.randint(0, 6))
    pieces, rest = JSON.split(patch, budget, count)
    assert len(pieces) <= count
    assert tuple(op for piece in pieces for op in piece) + rest == patch
    assert all(piece for piece in pieces)
    removals, additions = JSON.separate(patch)
    assert JSON.compose(removals, additions) == patch


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text()
        | st.binary(max_size=4),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_wire_decoding_raises_only_invalid_patch(data: object) -> None:
    for candidate in (
        data,
        [data],
        [["s", [], data]],
        [["i", ["a", 0], data]],
        [["t", [], data]],
        [["m", [0], data]],
    ):
        with contextlib.suppress(InvalidPatch):
            JSON.patch_from_wire(candidate)
        with contextlib.suppress(InvalidPatch):
            JSON.doc_from_wire({"json": candidate})


@pytest.mark.parametrize(
    "wire",
    [
        [["m", ["a", 1], 1]],  # a move to where the item is
        [["a", ["n"], 0]],  # add nothing
        [["a", ["n"], 1.5]],  # add a float
        [["a", ["n"], True]],
        [["d", ["a"], None]],
        [["i", ["a", "x"], 1]],  # insert needs an index
        [["d", []]],
        [["s", [-1], 1]],
        [["s", [True], 1]],
        [["s", [], float("nan")]],
        [["s", [], "\ud800"]],
        [["t", ["c"], []]],
        [["x", ["c"], 1]],
        [["s", ["k"] * 65, 1]],
        {"s": 1},
    ],
)
def test_strict_decoding(wire: object) -> None:
    with pytest.raises(InvalidPatch):
        JSON.patch_from_wire(wire)


def _both(doc: object, a: j.Patch, b: j.Patch) -> object:
    left = JSON.apply(JSON.apply(doc, a), JSON.transform(b, a))
    right = JSON.apply(JSON.apply(doc, b), JSON.transform(a, b))
    _same(left, right)
    return left


S, D, INS, M, A, T = j.SET, j.DELETE, j.INSERT, j.MOVE, j.ADD, j.TEXT


def test_rule1_different_keys_and_items_both_survive() -> None:
    doc = {"x": 1, "l": ["a", "b", "c"]}
    got = _both(
        doc,
        (JOp(S, ("y",), 2), JOp(S, ("l", 2), "C")),
        (JOp(S, ("z",), 3), JOp(INS, ("l", 0), "new")),
    )
    assert got == {"x": 1, "y": 2, "z": 3, "l": ["new", "a", "b", "C"]}


def test_rule2_delete_of_a_subtree_beats_edits_inside() -> None:
    doc = {"o": {"k": [1, {"s": "hi"}]}}
    inside = (
        JOp(T, ("o", "k", 1, "s"), (Op(2, 0, "!"),)),
        JOp(INS, ("o", "k", 0), 0),
        JOp(A, ("o", "k", 1), 1),
    )
    assert _both(doc, inside, (JOp(D, ("o",)),)) == {}
    assert _both(doc, inside, (JOp(S, ("o", "k"), "gone"),)) == {"o": {"k": "gone"}}


def test_rule3_same_place() -> None:
    doc = {"k": 1}
    assert _both(doc, (JOp(S, ("k",), 5),), (JOp(D, ("k",)),)) == {}
    assert _both(doc, (JOp(S, ("k",), 5),), (JOp(S, ("k",), 7),)) == {"k": 7}
    assert _both(doc, (JOp(A, ("k",), 5),), (JOp(A, ("k",), -2),)) == {"k": 4}
    assert _both(doc, (JOp(A, ("k",), 5),), (JOp(S, ("k",), "s"),)) == {"k": "s"}
    assert _both(
        {"t": "ab"}, (JOp(T, ("t",), (Op(0, 0, "x"),)),), (JOp(T, ("t",), (Op(2, 0, "y"),)),)
    ) == {"t": "xaby"}


def test_rule4_inserts_at_one_index_order_by_content() -> None:
    doc = {"l": ["z"]}
    a, b = (JOp(INS, ("l", 0), "b"),), (JOp(INS, ("l", 0), "a"),)
    assert _both(doc, a, b) == {"l": ["a", "b", "z"]}
    assert _both(doc, b, a) == {"l": ["a", "b", "z"]}
    # a plain insert goes before an item a move lands at the same index
    moved = _both({"l": ["p", "q", "r"]}, (JOp(INS, ("l", 3), "new"),), (JOp(M, ("l", 0), 2),))
    assert moved == {"l": ["q", "r", "new", "p"]}


@settings(max_examples=300)
@given(st.randoms(use_true_random=False))
def test_rule5_moves_neither_duplicate_nor_lose_items(rng: random.Random) -> None:
    items = [f"x{n}" for n in range(rng.randint(2, 7))]
    doc = {"l": items}

    def moves() -> j.Patch:
        out = []
        for _ in range(rng.randint(1, 3)):
            f = rng.randrange(len(items))
            t = rng.choice([t for t in range(len(items)) if t != f])
            out.append(JOp(M, ("l", f), t))
        return tuple(out)

    got = _both(doc, moves(), moves())
    assert sorted(got["l"]) == sorted(items)  # type: ignore[index]


def test_rule5_a_moved_item_keeps_concurrent_edits_inside() -> None:
    doc = {"l": [{"n": 1}, {"n": 2}, {"n": 3}]}
    got = _both(doc, (JOp(M, ("l", 0), 2),), (JOp(A, ("l", 0, "n"), 10),))
    assert got == {"l": [{"n": 2}, {"n": 3}, {"n": 11}]}


def test_rule5_same_item_larger_target_wins() -> None:
    doc = {"l": ["a", "b", "c", "d"]}
    assert _both(doc, (JOp(M, ("l", 0), 1),), (JOp(M, ("l", 0), 3),)) == {
        "l": ["b", "c", "d", "a"]
    }
    assert _both(doc, (JOp(M, ("l", 1), 0),), (JOp(D, ("l", 1)),)) == {"l": ["a", "c", "d"]}


def test_tie_breaks_do_not_depend_on_the_side() -> None:
    rng = random.Random(7)
    for _ in range(200):
        doc, a, b = _case(rng, 2)
        assert JSON.transform(a, b) == JSON.transform(a, b)  # pure
        _both(doc, a, b)
        _both(doc, b, a)


def test_notes_tp2_does_not_hold() -> None:
    # Inserts at one index order by content, which cannot see a third
    # insert put between them: over a then b' differs from over b then a'.
    doc = {"l": ["x"]}
    a, b, c = (JOp(INS, ("l", 0), "c"),), (JOp(D, ("l", 0)),), (JOp(INS, ("l", 1), "a"),)
    one = JSON.transform(JSON.transform(c, a), JSON.transform(b, a))
    two = JSON.transform(JSON.transform(c, b), JSON.transform(a, b))
    base = JSON.apply(JSON.apply(doc, a), JSON.transform(b, a))
    assert canonical(JSON.apply(base, one)) != canonical(JSON.apply(base, two))


def test_notes_compose_with_inverse_is_not_empty() -> None:
    doc = {"k": 1}
    patch = (JOp(S, ("k",), 2),)
    both = JSON.compose(patch, JSON.invert(patch, doc))
    assert both != ()
    _same(JSON.apply(doc, both), doc)


def test_apply_refuses_misfits_and_never_mutates() -> None:
    doc = {"l": [1, 2], "s": "x", "o": {}}
    frozen = canonical(doc)
    for op in (
        JOp(A, ("s",), 1),
        JOp(T, ("l",), (Op(0, 0, "a"),)),
        JOp(INS, ("l", 3), 0),
        JOp(M, ("l", 0), 2),
        JOp(D, ("o", "k")),
        JOp(S, ("l", "k"), 1),
        JOp(INS, ("o", 0), 1),
        JOp(S, ("x", "y"), 1),
    ):
        with pytest.raises(InvalidPatch):
            JSON.apply(doc, (op,))
    JSON.apply(doc, (JOp(S, ("l", 0), 9), JOp(M, ("l", 0), 1), JOp(S, ("o", "k"), [])))
    assert canonical(doc) == frozen


def test_size_digest_and_empty() -> None:
    assert JSON.empty() == {}
    assert JSON.size({"a": [1, "x"], "b": None}) == 5
    assert JSON.digest({"b": 1, "a": 2}) == JSON.digest({"a": 2, "b": 1})
    assert JSON.digest({"a": 1}) != JSON.digest({"a": 1.0}) != JSON.digest({"a": True})
    with pytest.raises(InvalidPatch):
        JSON.doc_from_wire("text")  # a text snapshot never reads as JSON


# --- edits by path (the SDK's and the embed API's, one function) ----------------


def test_each_edit_by_path_makes_its_operation() -> None:
    doc = {"t": "ab", "n": 1, "l": ["x", "y", "z"]}
    cases = [
        ("set", ["k"], (True,), JOp("s", ("k",), True)),
        ("delete_at", ("t",), (), JOp("d", ("t",), None)),
        ("insert_item", ["l"], (3, {"a": 1}), JOp("i", ("l", 3), {"a": 1})),
        ("move_item", ["l"], (0, 2), JOp("m", ("l", 0), 2)),
        ("add", ["n"], (-5,), JOp("a", ("n",), -5)),
        ("edit_text", ["t"], (1,), None),  # delete 0, insert "": nothing
        ("edit_text", ["t"], (1, 1), JOp("t", ("t",), (Op(1, 1, ""),))),
        ("edit_text", ["t"], (2, 0, "c"), JOp("t", ("t",), (Op(2, 0, "c"),))),
        ("move_item", ["l"], (1, 1), None),
        ("add", ["n"], (0,), None),
    ]
    for method, path, args, want in cases:
        assert set(j.EDITS) >= {method}
        assert j.path_edit(doc, method, path, *args) == want, method
    assert doc == {"t": "ab", "n": 1, "l": ["x", "y", "z"]}  # never changed in place


@pytest.mark.parametrize(
    ("method", "path", "args", "says"),
    [
        ("rename", [], (), "unknown edit 'rename'"),
        ("set", "a", (1,), "a path is a list"),
        ("set", ["a"], (), r"set takes \(path, value\), not 1 arguments"),
        ("delete_at", ["a"], (1,), r"delete_at takes \(path\), not 2"),
        ("set", ["a", "b"], (1,), "no key 'a'"),
        ("set", ["t"], (float("nan"),), "must be finite"),
        ("insert_item", ["l"], (9, 1), "past the end"),
        ("insert_item", ["l"], (True, 1), "strings or non-negative integers"),
        ("move_item", ["l"], (7, 7), "no item 7"),
        ("move_item", ["l"], (0, 3), "outside a list"),
        ("add", ["t"], (1,), "add needs an integer"),
        ("add", ["n"], (1.5,), "non-zero integer"),
        ("edit_text", ["t"], (5, 1), "past the document end"),
        ("edit_text", ["n"], (0, 0, "x"), "needs a string"),
        ("edit_text", ["t"], ("0", 0, "x"), "edit_text"),
    ],
)
def test_a_bad_edit_by_path_says_why_in_one_line(
    method: str, path: object, args: tuple[object, ...], says: str
) -> None:
    doc = {"t": "ab", "n": 1, "l": ["x"]}
    with pytest.raises(InvalidPatch, match=says) as caught:
        j.path_edit(doc, method, path, *args)
    assert "\n" not in str(caught.value)

"""Laws and intention cases of the text algebra (``client.textops``).

Random documents mix ASCII, CJK, astral emoji, a combining mark and
newlines. Where a law could be checked against ``apply`` itself, an
independent oracle (built code point by code point, or from uniquely tagged
code points) is used instead.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import textops
from client.textdiff import _DIFF_BUDGET, _diff, compare, diff
from client.textops import (
    InvalidPatch,
    Op,
    Patch,
    apply,
    check,
    compose,
    from_wire,
    invert,
    normalize,
    simplify,
    to_wire,
    transform,
    transform_position,
    transform_selection,
)
from client.textstream import DiffStats

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
CHARS = st.sampled_from(["a", "b", " ", "\n", "中", "文", "😀", "🎉", "\u0301", "é"])
TEXTS = st.text(alphabet=CHARS, max_size=4)
DOCS = st.text(alphabet=CHARS, max_size=14)


# --------------------------------------------------------------------------- strategies


@st.composite
def patches(draw: st.DrawFn, doc: str, texts: st.SearchStrategy[str] = TEXTS) -> Patch:
    """A random canonical patch for ``doc`` (ops may touch before normalizing)."""
    ops: list[tuple[int, int, str]] = []
    pos = 0
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(pos, len(doc)))
        delete = draw(st.integers(0, len(doc) - start))
        ops.append((start, delete, draw(texts)))
        pos = start + delete
    return normalize(ops)


@st.composite
def doc_and_patch(draw: st.DrawFn) -> tuple[str, Patch]:
    doc = draw(DOCS)
    return doc, draw(patches(doc))


@st.composite
def doc_and_two(draw: st.DrawFn) -> tuple[str, Patch, Patch]:
    doc = draw(DOCS)
    return doc, draw(patches(doc)), draw(patches(doc))


def _tagger(start: int) -> st.SearchStrategy[str]:
    """Insert texts made of code points used nowhere else (a shared counter)."""
    counter = iter(range(start, start + 10_000))
    return st.integers(0, 3).map(lambda n: "".join(chr(next(counter)) for _ in range(n)))


@st.composite
def tagged(draw: st.DrawFn) -> tuple[str, Patch, Patch]:
    """A document of unique code points and two patches inserting unique ones."""
    n = draw(st.integers(0, 14))
    doc = "".join(chr(0x1F300 + i) if i % 3 == 0 else chr(0x4E00 + i) for i in range(n))
    a = draw(patches(doc, _tagger(0x10000)))
    b = draw(patches(doc, _tagger(0x20000)))
    return doc, a, b


# --------------------------------------------------------------------------- oracles


def oracle_apply(doc: str, patch: Patch) -> str:
    """Apply code point by code point, independently of ``apply``."""
    ops = {op.pos: op for op in patch}
    out, skip = [], 0
    for i in range(len(doc) + 1):
        if i in ops:
            out.append(ops[i].insert)
            skip = ops[i].delete
        if i < len(doc):
            if skip:
                skip -= 1
            else:
                out.append(doc[i])
    return "".join(out)


def oracle_merge(doc: str, a: Patch, b: Patch) -> str:
    """The merged text the module header specifies for concurrent ``a`` and ``b``."""
    inserts: dict[int, list[str]] = defaultdict(list)
    deleted: set[int] = set()
    for op in (*a, *b):
        if op.insert:
            inserts[op.pos].append(op.insert)
        deleted.update(range(op.pos, op.pos + op.delete))
    out: list[str] = []
    for gap in range(len(doc) + 1):
        out.extend(sorted(inserts[gap]))
        if gap < len(doc) and gap not in deleted:
            out.append(doc[gap])
    return "".join(out)


def edit_distance(a: str, b: str) -> int:
    """Fewest code points deleted plus inserted (no substitution), by brute DP."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            cur = prev if ca == cb else 1 + min(row[j], row[j - 1])
            prev, row[j] = row[j], cur
    return row[-1]


def cost(patch: Patch) -> int:
    return sum(op.delete + len(op.insert) for op in patch)


def both_orders(doc: str, a: Patch, b: Patch) -> str:
    left = apply(apply(doc, a), transform(b, a))
    right = apply(apply(doc, b), transform(a, b))
    assert left == right
    return left


def p(*ops: tuple[int, int, str]) -> Patch:
    return normalize(ops)


# --------------------------------------------------------------------------- apply, check


@given(doc_and_patch())
def test_apply_matches_oracle(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    assert apply(doc, patch) == oracle_apply(doc, patch)


@given(doc_and_patch())
def test_the_binary_form_reads_back_exactly(dp: tuple[str, Patch]) -> None:
    _, patch = dp
    data = textops.to_bytes(patch)
    assert textops.from_bytes(data) == patch
    for cut in range(len(data)):  # every proper prefix is refused, never misread
        with pytest.raises(InvalidPatch):
            textops.from_bytes(data[:cut])


def test_apply_counts_code_points() -> None:
    assert apply("a😀b", p((1, 1, "🎉"))) == "a🎉b"
    assert apply("中文", p((2, 0, "!"))) == "中文!"


@pytest.mark.parametrize(
    "patch",
    [(Op(3, 1, ""),), (Op(4, 0, "x"),), (Op(0, 1, ""), Op(1, 1, "")), (Op(1, 0, ""),)],
)
def test_apply_rejects_bad_patches(patch: Patch) -> None:
    with pytest.raises(InvalidPatch):
        apply("abc", patch)


def test_normalize_merges_touching_and_drops_empty() -> None:
    ops = [(0, 1, "x"), (1, 0, ""), (1, 2, "y"), (5, 0, "z"), Op(5, 1, "w")]
    assert normalize(ops) == (Op(0, 3, "xy"), Op(5, 1, "zw"))
    assert normalize([]) == ()


@pytest.mark.parametrize(
    "ops",
    [
        [(-1, 0, "x")],
        [(0, -1, "")],
        [(3, 0, "x"), (1, 0, "y")],
        [(0, 3, ""), (2, 0, "y")],
        [(0, 0, "\ud800")],
        [(0, 0, "x\udfff")],
        [(True, 0, "x")],
        [(0, 0)],
        [(0, 0, 5)],
        ["op"],
    ],
)
def test_normalize_rejects(ops: list[Any]) -> None:
    with pytest.raises(InvalidPatch):
        normalize(ops)


@pytest.mark.parametrize(
    "patch",
    [
        [Op(0, 1, "")],
        (Op(0, 0, ""),),
        (Op(0, 1, ""), Op(1, 0, "x")),
        (Op(2, 0, "x"), Op(1, 0, "y")),
        (Op(0, 0, "\ud83d"),),
        (Op(0, 5, ""),),
        ("op",),
    ],
)
def test_check_rejects(patch: Any) -> None:
    with pytest.raises(InvalidPatch):
        check(patch, 4)


@given(doc_and_patch())
def test_generated_patches_are_canonical(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    check(patch, len(doc))
    assert normalize(patch) == patch


# --------------------------------------------------------------------------- invert, compose


@given(doc_and_patch())
def test_invert_round_trip(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    after = apply(doc, patch)
    back = invert(patch, doc)
    check(back, len(after))
    assert apply(after, back) == doc
    assert invert(back, after) == patch


@given(doc_and_patch())
def test_compose_with_inverse_simplifies_away(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    undo = compose(patch, invert(patch, doc))
    assert apply(doc, undo) == doc
    assert simplify(undo, doc) == ()


@given(st.data())
def test_compose_is_sequential_apply(data: st.DataObject) -> None:
    doc, a = data.draw(doc_and_patch())
    mid = apply(doc, a)
    b = data.draw(patches(mid))
    ab = compose(a, b)
    check(ab, len(doc))
    assert apply(doc, ab) == oracle_apply(mid, b)


@given(st.data())
def test_compose_is_associative(data: st.DataObject) -> None:
    doc, a = data.draw(doc_and_patch())
    b = data.draw(patches(apply(doc, a)))
    c = data.draw(patches(apply(apply(doc, a), b)))
    left, right = compose(compose(a, b), c), compose(a, compose(b, c))
    assert apply(doc, left) == apply(doc, right) == apply(apply(apply(doc, a), b), c)


@settings(max_examples=1000)
@given(st.data())
def test_composing_one_op_equals_the_general_composition(data: st.DataObject) -> None:
    """The keystroke path (one op onto a patch) gives exactly what the
    component-by-component composition gives: same ops, same canonical form."""
    doc, a = data.draw(doc_and_patch())
    mid = apply(doc, a)
    start = data.draw(st.integers(0, len(mid)))
    delete = data.draw(st.integers(0, len(mid) - start))
    b = normalize([(start, delete, data.draw(TEXTS))])
    if b:  # an empty op normalizes away
        assert textops._compose_one(a, b[0]) == textops._compose_streams(a, b)
    assert compose(a, b) == textops._compose_streams(a, b)
    check(compose(a, b), len(doc))
    assert apply(doc, compose(a, b)) == apply(mid, b)


def test_compose_cancels_inserted_text() -> None:
    assert compose(p((1, 0, "XY")), p((1, 2, ""))) == ()
    assert compose(p((1, 0, "XYZ")), p((2, 1, ""))) == (Op(1, 0, "XZ"),)
    assert compose(p((1, 1, "")), p((1, 0, "Q"))) == (Op(1, 1, "Q"),)
    assert compose(p((2, 0, "X")), p((1, 3, ""))) == (Op(1, 2, ""),)


# --------------------------------------------------------------------------- transform


@given(doc_and_two())
def test_transform_converges(dpp: tuple[str, Patch, Patch]) -> None:
    doc, a, b = dpp
    merged = both_orders(doc, a, b)
    check(transform(a, b), len(apply(doc, b)))
    check(transform(b, a), len(apply(doc, a)))
    assert merged == oracle_merge(doc, a, b)


@given(tagged())
def test_transform_preserves_intention(dpp: tuple[str, Patch, Patch]) -> None:
    """Deleted code points are gone; inserts survive once, between the right neighbours."""
    doc, a, b = dpp
    merged = both_orders(doc, a, b)
    deleted = {doc[i] for op in (*a, *b) for i in range(op.pos, op.pos + op.delete)}
    survivors = [c for c in doc if c not in deleted]
    assert [c for c in merged if c in doc] == survivors
    inserted = [op for op in (*a, *b) if op.insert]
    assert sorted(merged) == sorted(survivors + [c for op in inserted for c in op.insert])
    for op in inserted:
        at = merged.index(op.insert)  # contiguous: the whole block is found
        before = {c for c in doc[: op.pos] if c not in deleted}
        assert set(merged[:at]) >= before
        assert not set(merged[:at]) & set(doc[op.pos :])


@given(doc_and_two())
def test_transform_with_empty(dpp: tuple[str, Patch, Patch]) -> None:
    _, a, _ = dpp
    assert transform(a, ()) == a
    assert transform((), a) == ()


TRANSFORM_CASES = [
    # case 1: inserts at the same position, smaller text first, whoever is "mine"
    ("1 smaller first", p((3, 0, "b")), p((3, 0, "a")), "012ab3456789"),
    ("1 equal texts", p((3, 0, "x")), p((3, 0, "x")), "012xx3456789"),
    ("1 prefix first", p((3, 0, "ab")), p((3, 0, "a")), "012aab3456789"),
    ("1 replace vs insert", p((3, 2, "R")), p((3, 0, "I")), "012IR56789"),
    ("1 by code point", p((0, 0, "😀")), p((0, 0, "中")), "中😀0123456789"),
    # case 2: a delete around a concurrent insert keeps its whole range deleted
    ("2 inside", p((2, 5, "")), p((4, 0, "X")), "01X789"),
    ("2 at start", p((2, 5, "")), p((2, 0, "X")), "01X789"),
    ("2 at end", p((2, 5, "")), p((7, 0, "X")), "01X789"),
    ("2 several", p((1, 8, "")), p((3, 0, "A"), (6, 0, "B")), "0AB9"),
    # case 3: overlapping deletes
    ("3 overlap", p((2, 4, "")), p((4, 4, "")), "0189"),
    ("3 nested", p((1, 8, "")), p((3, 2, "")), "09"),
    ("3 identical", p((2, 3, "")), p((2, 3, "")), "0156789"),
    # case 4: a replace partly deleted keeps its insert
    ("4 partly", p((2, 3, "R")), p((3, 4, "")), "01R789"),
    ("4 fully", p((3, 2, "R")), p((1, 8, "")), "0R9"),
    ("4 two replaces", p((2, 3, "X")), p((2, 3, "Y")), "01XY56789"),
    # case 5: disjoint ops shift
    ("5 disjoint", p((1, 1, "ab")), p((6, 2, "c")), "0ab2345c89"),
    ("5 touching", p((2, 2, "")), p((4, 2, "Z")), "01Z6789"),
]


@pytest.mark.parametrize(("name", "a", "b", "want"), TRANSFORM_CASES)
def test_transform_cases(name: str, a: Patch, b: Patch, want: str) -> None:
    assert both_orders("0123456789", a, b) == want
    assert both_orders("0123456789", b, a) == want


def test_transform_splits_delete_around_insert() -> None:
    assert transform(p((2, 5, "")), p((4, 0, "X"))) == (Op(2, 2, ""), Op(5, 3, ""))
    assert transform(p((4, 0, "X")), p((2, 5, ""))) == (Op(2, 0, "X"),)


def test_transform_not_compatible_with_compose() -> None:
    """Documented non-law: transform does not commute with compose."""
    doc, a, b, c = "0123", p((1, 2, "")), p((1, 0, "Y")), p((2, 0, "X"))
    whole = transform(c, compose(a, b))
    stepwise = transform(transform(c, a), b)
    assert apply(apply(apply(doc, a), b), whole) == "0YX3"
    assert apply(apply(apply(doc, a), b), stepwise) == "0XY3"


# --------------------------------------------------------------------------- positions


@given(tagged())
def test_position_follows_surviving_characters(dpp: tuple[str, Patch, Patch]) -> None:
    doc, patch, _ = dpp
    after = apply(doc, patch)
    for i, c in enumerate(doc):
        if c in after:
            assert transform_position(i, patch, after_insert=True) == after.index(c)
            if all(op.pos != i for op in patch):
                assert transform_position(i, patch) == after.index(c)


@given(doc_and_two())
def test_position_agrees_with_text_transform(dpp: tuple[str, Patch, Patch]) -> None:
    """A caret lands where a concurrent insert that sorts first would land."""
    doc, _, b = dpp
    for pos in range(len(doc) + 1):
        if any(op.pos < pos < op.pos + op.delete and op.insert for op in b):
            continue  # documented: a caret inside a replaced range goes before the new text
        marker = p((pos, 0, "\x00"))  # sorts before any text: stays before remote inserts
        moved = transform(marker, b)
        assert transform_position(pos, b) == moved[0].pos
        assert 0 <= transform_position(pos, b, after_insert=True) <= len(apply(doc, b))


@pytest.mark.parametrize(
    ("patch", "pos", "after_insert", "want"),
    [
        (p((5, 0, "ab")), 3, False, 3),
        (p((1, 0, "ab")), 3, False, 5),
        (p((3, 0, "ab")), 3, False, 3),
        (p((3, 0, "ab")), 3, True, 5),
        (p((2, 5, "")), 4, False, 2),
        (p((2, 5, "xy")), 4, False, 2),
        (p((2, 5, "xy")), 4, True, 4),
        (p((2, 5, "xy")), 7, False, 4),
        (p((2, 5, "xy")), 2, False, 2),
        (p((0, 1, "😀😀"), (3, 2, "")), 9, False, 8),
    ],
)
def test_position_cases(patch: Patch, pos: int, after_insert: bool, want: int) -> None:
    assert transform_position(pos, patch, after_insert=after_insert) == want


@pytest.mark.parametrize(
    ("patch", "sel", "want"),
    [
        (p((3, 0, "ab")), (3, 3), (3, 3)),
        (p((2, 0, "L"), (5, 0, "R")), (2, 5), (3, 6)),
        (p((0, 0, "xx")), (6, 2), (8, 4)),
        (p((1, 6, "new")), (2, 5), (1, 1)),
        (p((4, 3, "")), (2, 5), (2, 4)),
        (p((4, 3, "")), (5, 2), (4, 2)),
    ],
)
def test_selection_cases(patch: Patch, sel: tuple[int, int], want: tuple[int, int]) -> None:
    assert transform_selection(sel, patch) == want


@given(st.data())
def test_selection_stays_ordered_and_in_range(data: st.DataObject) -> None:
    doc, patch = data.draw(doc_and_patch())
    sel = (data.draw(st.integers(0, len(doc))), data.draw(st.integers(0, len(doc))))
    anchor, head = transform_selection(sel, patch)
    size = len(apply(doc, patch))
    assert 0 <= anchor <= size
    assert 0 <= head <= size
    assert (anchor < head) == (sel[0] < sel[1]) or anchor == head
    assert (anchor == head) >= (sel[0] == sel[1])


# --------------------------------------------------------------------------- simplify


@st.composite
def reinserting(draw: st.DrawFn) -> tuple[str, Patch]:
    """Patches that often reinsert part of what they remove."""
    doc = draw(DOCS)
    ops, pos = [], 0
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(pos, len(doc)))
        end = draw(st.integers(start, len(doc)))
        cut = draw(st.integers(start, end))
        ops.append((start, end - start, doc[start:cut] + draw(TEXTS) + doc[cut:end]))
        pos = end
    return doc, normalize(ops)


@given(st.one_of(reinserting(), doc_and_patch()))
def test_simplify(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    simple = simplify(patch, doc)
    check(simple, len(doc))
    assert apply(doc, simple) == apply(doc, patch)
    assert simplify(simple, doc) == simple
    assert cost(simple) <= cost(patch)
    for op in simple:
        removed = doc[op.pos : op.pos + op.delete]
        if removed and op.insert:
            assert removed[0] != op.insert[0]
            assert removed[-1] != op.insert[-1]


def test_simplify_cases() -> None:
    assert simplify(p((0, 3, "abc")), "abc") == ()
    assert simplify(p((0, 5, "help")), "hello") == (Op(3, 2, "p"),)
    assert simplify(p((0, 5, "abYYcd")), "abXcd") == (Op(2, 1, "YY"),)
    assert simplify(p((0, 1, "🎉")), "😀") == (Op(0, 1, "🎉"),)


# --------------------------------------------------------------------------- diff


@given(DOCS, DOCS)
def test_diff_applies(old: str, new: str) -> None:
    patch = diff(old, new)
    check(patch, len(old))
    assert apply(old, patch) == new
    assert simplify(patch, old) == patch


@given(
    st.text(alphabet="ab😀", max_size=7),
    st.text(alphabet="ab😀", max_size=7),
)
def test_diff_is_minimal(old: str, new: str) -> None:
    assert cost(diff(old, new)) == edit_distance(old, new)


@given(doc_and_patch())
def test_diff_of_small_edit_is_small(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    assert cost(diff(doc, apply(doc, patch))) <= cost(patch)


def test_diff_cases() -> None:
    assert diff("same", "same") == ()
    assert diff("helo", "hello") == (Op(3, 0, "l"),)
    assert diff("a😀b", "a🎉b") == (Op(1, 1, "🎉"),)
    assert diff("", "x") == (Op(0, 0, "x"),)


def test_diff_over_cost_cap_is_one_replace() -> None:
    # Two unrelated texts need thousands of edits: past the cap the middle is one op.
    old = "".join(chr(0x4E00 + (i * 7919) % 500) for i in range(3000))
    new = "".join(chr(0x4E00 + ((i + 1) * 104729) % 499) for i in range(3000))
    patch = diff("same start " + old + " same end", "same start " + new + " same end")
    assert len(patch) == 1
    assert patch[0].pos == len("same start ")
    assert apply("same start " + old + " same end", patch) == "same start " + new + " same end"


def test_diff_finds_distant_small_edits() -> None:
    base = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(200_000))
    new = base[:10] + "😀" + base[10:150_000] + base[150_001:]
    assert diff(base, new) == (Op(10, 0, "😀"), Op(150_000, 1, ""))


def test_diff_long_common_parts() -> None:
    base = "😀abc中" * 5000
    assert diff(base + "x" + base, base + "yz" + base) == (Op(len(base), 1, "yz"),)


# Diff work, counted in operations (never time). ``DiffStats`` counts Myers
# diagonals walked (probes), galloping slice compares (steps) and the code
# points those compares cover. The bounds below fail on the old search, which
# walked every diagonal -d..d each round: empty -> 3000 took ~2.25 million probes.

ASTRAL = "ab 中😀🎉\U0001f9d1\n"
SIZES = st.integers(0, 3000)


def _text(seed: int, size: int, alphabet: str = ASTRAL) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(size))


def _diff_stats(old: str, new: str, budget: int = _DIFF_BUDGET) -> tuple[Patch, DiffStats]:
    stats = DiffStats()
    patch = _diff(old, new, budget, stats)
    check(patch, len(old))
    assert apply(old, patch) == new
    return patch, stats


@settings(max_examples=25)
@given(SIZES, st.integers(0, 2**32))
def test_diff_into_or_out_of_empty_does_no_search(size: int, seed: int) -> None:
    text = _text(seed, size)
    for old, new in ((text, ""), ("", text)):
        patch, stats = _diff_stats(old, new)
        assert len(patch) == (1 if size else 0)
        assert (stats.probes, stats.steps, stats.compared) == (0, 0, 0)


@settings(max_examples=25)
@given(SIZES, st.integers(0, 2**32), st.data())
def test_diff_of_a_small_change_is_linear(size: int, seed: int, data: st.DataObject) -> None:
    # c = 4 code points compared per code point of the longer text, d = 64;
    # the search itself is constant: at most 16 diagonals for a 3-code-point edit.
    old = _text(seed, size)
    pos = data.draw(st.integers(0, size))
    cut = data.draw(st.integers(0, min(3, size - pos)))
    new = old[:pos] + data.draw(st.text(alphabet=ASTRAL, max_size=3)) + old[pos + cut :]
    patch, stats = _diff_stats(old, new)
    assert cost(patch) <= 6
    longest = max(len(old), len(new))
    assert stats.probes <= 16
    assert stats.steps <= 4 * longest.bit_length() + 16 * 2 * 6 + 8
    assert stats.compared <= 4 * longest + 64


@settings(max_examples=25)
@given(SIZES, st.integers(0, 2**32), st.text(alphabet=ASTRAL, min_size=1, max_size=3))
def test_diff_of_a_short_text_into_a_long_one_is_linear(size: int, seed: int, short: str) -> None:
    # Round d walks only the live diagonals (at most 2·len(short) + 3 of
    # them), never all of -d..d: probes <= (2·3 + 3)·(N + 4), so no cap is hit.
    long = _text(seed, size)
    for old, new in ((short, long), (long, short)):
        patch, stats = _diff_stats(old, new)
        assert not stats.capped
        assert cost(patch) == edit_distance(old, new)
        assert stats.probes <= 9 * (size + 4)


@settings(max_examples=25)
@given(SIZES, st.integers(0, 2**32), st.sampled_from([0, 1, 40, 2000]))
def test_diff_of_unrelated_texts_stops_at_its_budget(size: int, seed: int, budget: int) -> None:
    # Texts over a 3-letter alphabet and newlines match a lot, so the code
    # point search, the line search and the per-block searches all have work.
    old, new = _text(seed, size, "ab😀\n"), _text(seed + 1, size, "ab😀\n")
    _, stats = _diff_stats(old, new, budget)
    # The cap counts every diagonal walked: one budget for the code point
    # search, half of one shared by the line search and the blocks it finds.
    assert stats.probes <= budget + budget // 2
    # A probe's galloping compare costs at most 2 log2(run) + 2 steps, so 26
    # for N <= 3000; each of at most probes + 2 diffs (the whole text, the
    # blocks) trims a prefix and a suffix at 26 each; encoding lines costs one
    # step per line, at most 2N.
    assert stats.steps <= 26 * stats.probes + 52 * (stats.probes + 2) + 2 * size
    # So c·N + d with c = 2 and d independent of N:
    assert stats.probes + stats.steps <= 2 * size + 79 * 3 // 2 * budget + 104


def test_diff_at_the_default_budget_caps_a_large_search() -> None:
    old, new = _text(1, 3000, "ab😀"), _text(2, 3000, "ab😀")
    patch, stats = _diff_stats(old, new)
    assert stats.capped
    assert _DIFF_BUDGET <= stats.probes <= _DIFF_BUDGET + 8  # + a search over one line each
    assert len(patch) == 1  # one line each: the middle is one replace


def test_diff_past_its_budget_keeps_unchanged_lines() -> None:
    # 400 lines; the first and the last rewritten. By code points that is
    # past a budget of 60; by lines it is 4 edits, and each changed line is
    # then diffed or at least trimmed on its own: two small ops, not one
    # replace of the whole text.
    lines = [_text(seed, 30, "ab中😀 ") + "\n" for seed in range(400)]
    old = "".join(lines)
    new = "".join(["x" + _text(1000, 29, "cd🎉 ") + "\n", *lines[1:-1], "🎉" * 30 + "\n"])
    patch, stats = _diff_stats(old, new, 60)
    assert stats.capped
    assert len(patch) == 2
    assert patch[0].pos + patch[0].delete <= len(lines[0])
    assert patch[1].pos >= len(old) - len(lines[-1])
    assert stats.probes <= 60 + 30


@given(
    st.text(alphabet=ASTRAL, max_size=40),
    st.text(alphabet=ASTRAL, max_size=40),
    st.sampled_from([0, 1, 3, 10, 100, _DIFF_BUDGET]),
)
def test_diff_under_any_budget_applies_in_code_points(old: str, new: str, budget: int) -> None:
    patch, stats = _diff_stats(old, new, budget)
    assert simplify(patch, old) == patch  # coarse, but no op removes and reinserts
    assert stats.probes <= budget + budget // 2
    if not stats.capped:
        assert cost(patch) == edit_distance(old, new)
    # _diff_stats checked apply and canonical form, which rejects a lone
    # surrogate: positions are code points, so an astral character is never cut.


# --------------------------------------------------------------------------- wire


@given(doc_and_patch())
def test_wire_round_trip(dp: tuple[str, Patch]) -> None:
    _, patch = dp
    wire = to_wire(patch)
    assert from_wire(json.loads(json.dumps(wire))) == patch


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.floats() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=12,
)
WIRE_LIKE = st.lists(
    st.lists(st.integers(-1, 8) | st.booleans() | st.text(max_size=2), min_size=2, max_size=4)
    | st.tuples(st.integers(0, 8), st.integers(0, 3), st.text(max_size=2)).map(list),
    max_size=4,
)


@given(JSON | WIRE_LIKE)
def test_from_wire_accepts_or_rejects_cleanly(obj: object) -> None:
    try:
        patch = from_wire(obj)
    except InvalidPatch:
        return
    check(patch, 10**9)
    assert to_wire(patch) == obj


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {},
        "[]",
        [[0, 0]],
        [(0, 0, "x")],
        [[0.0, 0, "x"]],
        [[0, False, "x"]],
        [[0, 0, b"x"]],
        [[0, 0, ""]],
        [[0, 1, ""], [1, 0, "x"]],
        [[0, 0, "\udc00"]],
    ],
)
def test_from_wire_rejects(obj: object) -> None:
    with pytest.raises(InvalidPatch):
        from_wire(obj)


# --------------------------------------------------------------------------- golden vectors


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_textops_{name}", VECTORS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records() -> list[dict[str, Any]]:
    text = (VECTORS / "text.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_vectors_pass() -> None:
    checker = _load("check_text")
    records = _records()
    assert len(records) >= 150
    suites = {r["suite"] for r in records}
    assert suites == {
        "text.apply",
        "text.compose",
        "text.invert",
        "text.transform",
        "text.simplify",
        "text.diff",
        "text.position",
        "text.content",
    }
    for record in records:
        checker.check(record)


def test_vector_checker_catches_mismatch() -> None:
    checker = _load("check_text")
    record = next(r for r in _records() if r["suite"] == "text.transform")
    record["expect"]["text"] += "!"
    with pytest.raises(AssertionError, match=r"text\.transform"):
        checker.check(record)


def test_vectors_are_reproducible() -> None:
    maker = _load("make_text")
    assert maker.render().encode("utf-8") == (VECTORS / "text.jsonl").read_bytes()


# --- compare: the history view's "compare with now" ----------------------------


@settings(max_examples=300)
@given(st.text(alphabet="ab \n😀", max_size=40), st.text(alphabet="ab \n😀", max_size=40))
def test_compare_gives_back_both_texts(old: str, new: str) -> None:
    segments = compare(old, new, context=10**6)  # nothing folded
    assert "".join(str(v) for k, v in segments if k in "=-") == old
    assert "".join(str(v) for k, v in segments if k in "=+") == new
    assert all(k in "=-+" and v for k, v in segments)


def test_compare_folds_what_is_far_from_a_change() -> None:
    old = "a" * 1000 + " x " + "b" * 1000
    segments = compare(old, "a" * 1000 + " y " + "b" * 1000, context=10)
    assert segments[0] == ("~", 991)
    assert segments[-1] == ("~", 991)
    assert [k for k, _ in segments] == ["~", "=", "-", "+", "=", "~"]
    assert compare("same", "same") == [("=", "same")]
    assert compare("x" * 500, "x" * 500, context=10) == [("~", 500)]
    assert compare("", "new") == [("+", "new")]

"""Text diff: the patch from one text to another, at bounded cost.

Theory of operation
-------------------
``diff`` trims the common prefix and suffix with galloping slice compares
(C speed); if one side of the middle is then empty, the patch is one insert
or one delete. Otherwise Myers' O(ND) shortest-edit search runs on the
middle, walking in each round only the diagonals still alive (so a short
text against a long one costs O(short·long), not O(long²)). Long matching
runs are also compared by slices, so two small edits far apart in a large
text stay cheap. A work budget caps the search, counted in work actually
done: every diagonal walked, plus one unit per 1024 code points matched
(about 0.3 s of CPython time). Past it the middle is diffed by lines (each
distinct line one symbol, the same search, half the budget again), and each
changed block of lines by code points while that half lasts; if the lines
do not help either, the middle becomes one replace. So any diff costs
O(len(old) + len(new)) plus a constant, inside the budget the patch is
minimal (fewest code points deleted plus inserted), and past it the patch
is coarse but still correct and never removes and reinserts the same text.

The patch is built with :mod:`client.textops`' component stream, so it is
canonical by construction; this module adds no operation of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from client.textpatch import Patch
from client.textstream import Builder, Comp, DiffStats, components, run_len, suffix_len

__all__ = ["Segment", "compare", "diff", "diff_or_none", "diff_words"]

# Myers' algorithm gives up past this much work and the differing middle is
# diffed by lines instead (or becomes one replace). A unit of work is one diagonal probe, or
# _DIFF_RUN_WEIGHT code points matched along a diagonal (C-speed slice compares).
_DIFF_BUDGET = 200_000
_DIFF_RUN_WEIGHT = 1024
# Distinct lines a line-level diff can name: every code point but the surrogates.
_MAX_LINE_CODES = 0x110000 - 0x800


def diff(old: str, new: str) -> Patch:
    """A minimal patch from ``old`` to ``new``, at bounded cost.

    The common prefix and suffix are trimmed; if one side of the middle is
    then empty the patch is one insert or one delete. Otherwise Myers'
    O(ND) algorithm finds a shortest edit script (fewest code points deleted
    plus inserted) for the middle. Its work is capped (see the module
    header); past the cap the whole middle becomes one replace, so any input
    costs O(len(old) + len(new)) plus a constant.

    Args:
        old: the document before.
        new: the document after.

    Returns:
        A canonical patch ``p`` with ``apply(old, p) == new``.
    """
    return _diff(old, new, _DIFF_BUDGET, DiffStats())


def diff_or_none(old: str, new: str) -> Patch | None:
    """:func:`diff` when its search stays within the budget, so the patch is
    minimal; ``None`` when it would be coarse (a replace of a whole range)."""
    stats = DiffStats()
    patch = _diff(old, new, _DIFF_BUDGET, stats, coarse=False)
    return None if stats.capped else patch


def _diff(old: str, new: str, budget: int, stats: DiffStats, *, coarse: bool = True) -> Patch:
    """:func:`diff` with an explicit work budget, recording its work in ``stats``.

    Past the budget, with ``coarse``, the middle is diffed line by line
    instead (:func:`_by_lines`, with half as much again); without, it
    becomes one replace.
    """
    if old == new:
        return ()
    head = run_len(old, 0, new, 0, stats)
    tail = suffix_len(old, new, min(len(old), len(new)) - head, stats)
    middle_old = old[head : len(old) - tail]
    middle_new = new[head : len(new) - tail]
    comps: list[Comp] = [-len(middle_old), middle_new]
    if middle_old and middle_new:
        found = _myers(middle_old, middle_new, budget, stats)
        if found is not None:
            comps = found
        else:
            stats.capped = True
            if coarse:
                return _by_lines(old, head, middle_old, middle_new, budget // 2, stats)
    return _build(head, comps)


def _build(head: int, comps: list[Comp]) -> Patch:
    out = Builder()
    out.add(head)
    for comp in comps:
        out.add(comp)
    return out.patch()


def _by_lines(old: str, head: int, a: str, b: str, budget: int, stats: DiffStats) -> Patch:
    """The fallback past the budget: diff the middle ``a`` -> ``b`` (at ``head``) by lines.

    Each changed block of lines is then diffed by code points (without a
    further fallback) while what the line search left of ``budget`` lasts;
    a block left over is still trimmed of its common prefix and suffix.
    Correct, not minimal; one replace if the lines do not help.
    """
    start = stats.probes
    comps = _unit_comps(a, b, budget, stats, _lines)
    patch = _build(head, [-len(a), b] if comps is None else comps)
    if len(patch) == 1 and patch[0].delete == len(a):
        return patch  # one block, the whole middle: the search already failed on it
    return _refine(old, patch, budget - (stats.probes - start), stats)


def _refine(old: str, patch: Patch, left: int, stats: DiffStats) -> Patch:
    """Diff each op of ``patch`` (on ``old``) by code points while ``left`` work lasts."""
    out = Builder()
    prev = 0
    for op in patch:
        out.add(op.pos - prev)
        before = stats.probes
        block = _diff(
            old[op.pos : op.pos + op.delete], op.insert, max(left, 0), stats, coarse=False
        )
        left -= stats.probes - before
        for comp in components(block):
            out.add(comp)
        out.add(op.delete - (block[-1].pos + block[-1].delete if block else 0))
        prev = op.pos + op.delete
    return out.patch()


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


# A word with the white space after it, or white space alone (at the start).
_WORD = re.compile(r"\S+\s*|\s+")


def diff_words(old: str, new: str) -> Patch:
    """A patch from ``old`` to ``new`` that keeps words whole where it can, for merges.

    :func:`diff` finds *a* shortest edit script, and when inserted text
    shares code points with the text around it, a shortest script may
    interleave them: inserting ``"b.1|3f "`` before ``"a.0|f3 "`` can come out
    as an insert, a kept ``f``, another insert.  A merge that anchors someone
    else's insert on that ``f`` (:mod:`client.recovery`) would put it inside
    the inserted word.  Here the texts are diffed word by word first (a word
    with the white space after it is one symbol), then each changed block of
    words by code points, so an insert or delete of whole words stays whole.
    Correct, not minimal; past the work budget it is :func:`diff`.

    Args:
        old: the document before.
        new: the document after.

    Returns:
        A canonical patch ``p`` with ``apply(old, p) == new``.
    """
    if old == new:
        return ()
    stats = DiffStats()
    comps = _unit_comps(old, new, _DIFF_BUDGET, stats, _WORD.findall)
    if comps is None:
        return _diff(old, new, _DIFF_BUDGET, stats)
    return _refine(old, _build(0, comps), _DIFF_BUDGET, stats)


def _unit_comps(
    a: str, b: str, budget: int, stats: DiffStats, units: Callable[[str], list[str]]
) -> list[Comp] | None:
    """A shortest edit script over whole units (lines, words), as code point
    components; None past ``budget``.

    Each distinct unit becomes one code point (skipping the surrogates), so
    the same Myers search runs on texts as long as the unit counts.
    """
    lines_a, lines_b = units(a), units(b)
    stats.steps += len(lines_a) + len(lines_b)  # one dict look-up per line
    if len(lines_a) + len(lines_b) > _MAX_LINE_CODES:
        return None
    codes: dict[str, str] = {}

    def encode(lines: list[str]) -> str:
        out: list[str] = []
        for line in lines:
            code = codes.get(line)
            if code is None:
                n = len(codes)
                code = codes[line] = chr(n if n < 0xD800 else n + 0x800)
            out.append(code)
        return "".join(out)

    found = _myers(encode(lines_a), encode(lines_b), budget, stats)
    if found is None:
        return None
    comps: list[Comp] = []
    ia = ib = 0
    for comp in found:
        if isinstance(comp, str):
            comps.append("".join(lines_b[ib : ib + len(comp)]))
            ib += len(comp)
        elif comp > 0:
            comps.append(sum(map(len, lines_a[ia : ia + comp])))
            ia, ib = ia + comp, ib + comp
        elif comp < 0:
            comps.append(-sum(map(len, lines_a[ia : ia - comp])))
            ia -= comp
    return comps


def _myers(a: str, b: str, budget: int, stats: DiffStats) -> list[Comp] | None:
    """A shortest edit script from ``a`` to ``b`` as components, None past ``budget``.

    Each round ``d`` records, per diagonal ``k = x - y``, the furthest point
    reached with ``d`` edits and the diagonal it came from. Points outside
    the edit graph are never recorded, and the diagonals recorded in a round
    form one range (a diagonal between two live ones always has a legal
    move), so round ``d`` walks only that range widened by one on each side:
    the work is the number of live diagonals, never ``d`` itself.

    A unit of work is one diagonal walked, or ``_DIFF_RUN_WEIGHT`` code
    points matched along a diagonal; past ``budget`` units the search stops.
    """
    n, m = len(a), len(b)
    rounds: list[dict[int, tuple[int, int]]] = []
    low, high = 0, 0  # the range of diagonals to walk this round
    work = 0
    for d in range(n + m + 1):
        prev = rounds[-1] if rounds else {}
        cur: dict[int, tuple[int, int]] = {}
        for k in range(low, high + 1, 2):
            if work >= budget:
                return None
            work += 1
            stats.probes += 1
            start = _myers_step(prev, k, d, n, m)
            if start is None:
                continue  # an edge of the range: at most two per round
            x, from_k = start
            y = x - k
            run = run_len(a, x, b, y, stats)
            x, y = x + run, y + run
            work += run // _DIFF_RUN_WEIGHT
            cur[k] = (x, from_k)
            if x == n and y == m:
                rounds.append(cur)
                return _myers_path(rounds, b, k)
        rounds.append(cur)
        low, high = min(cur) - 1, max(cur) + 1
    raise AssertionError("unreachable: an edit script of n + m steps always exists")


def _myers_step(
    prev: dict[int, tuple[int, int]], k: int, d: int, n: int, m: int
) -> tuple[int, int] | None:
    """Where diagonal ``k`` starts in round ``d``: (x, previous diagonal), or None."""
    if d == 0:
        return 0, 0
    down = prev.get(k + 1)  # insert one code point of b
    right = prev.get(k - 1)  # delete one code point of a
    x_down = down[0] if down is not None and down[0] - k <= m else -1
    x_right = right[0] + 1 if right is not None and right[0] < n else -1
    if x_down < 0 and x_right < 0:
        return None
    return (x_down, k + 1) if x_down >= x_right else (x_right, k - 1)


def _myers_path(rounds: list[dict[int, tuple[int, int]]], b: str, k: int) -> list[Comp]:
    backwards: list[Comp] = []
    for d in range(len(rounds) - 1, -1, -1):
        x, from_k = rounds[d][k]
        if d == 0:
            backwards.append(x)
            break
        px = rounds[d - 1][from_k][0]
        if from_k == k - 1:
            backwards.append(x - px - 1)
            backwards.append(-1)
        else:
            backwards.append(x - px)
            backwards.append(b[px - from_k])
        k = from_k
    backwards.reverse()
    return backwards


#: One piece of a comparison for people: ``("=", text)`` the same on both
#: sides, ``("-", text)`` only in the old text, ``("+", text)`` only in the
#: new, ``("~", count)`` that many code points the same, not shown.
Segment = tuple[str, str | int]


def compare(old: str, new: str, context: int = 120) -> list[Segment]:
    """``old`` against ``new`` as segments a reader can follow (a history view).

    Words are kept whole (:func:`diff_words`).  Of text the same on both
    sides, only ``context`` code points are kept beside each change (all of
    it when that is shorter than what it would save); the rest is one
    ``("~", count)``.  Joining the ``=`` and ``-`` texts gives ``old`` back
    where nothing was folded, and the ``=`` and ``+`` texts give ``new``.
    """
    out: list[Segment] = []

    def same(start: int, end: int, first: bool, last: bool) -> None:
        head = 0 if first else context  # kept after the previous change
        tail = 0 if last else context  # kept before the next change
        if end - start <= head + tail + context:
            if end > start:
                out.append(("=", old[start:end]))
            return
        if head:
            out.append(("=", old[start : start + head]))
        out.append(("~", end - start - head - tail))
        if tail:
            out.append(("=", old[end - tail : end]))

    at = 0
    patch = diff_words(old, new)
    for k, op in enumerate(patch):
        same(at, op.pos, k == 0, False)
        if op.delete:
            out.append(("-", old[op.pos : op.pos + op.delete]))
        if op.insert:
            out.append(("+", op.insert))
        at = op.pos + op.delete
    same(at, len(old), not patch, True)
    return out

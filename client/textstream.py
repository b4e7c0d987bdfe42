"""The component stream that compose, transform and diff walk, and common runs.

A canonical patch read over its original document is a stream of
components: a positive ``int`` keeps that many code points, a negative one
deletes that many, a ``str`` inserts text; an op is ``[retain gap, insert,
delete]``. :class:`Builder` turns such a stream back into a canonical patch
(merging touching ops); :class:`Reader` consumes one piecewise.  The run
finders (:func:`run_len`, :func:`suffix_len`) compare slices of doubling size,
so a long common run costs a few C-speed comparisons; :class:`DiffStats`
counts that work (tests bound it; no clocks).
"""

from __future__ import annotations

from dataclasses import dataclass

from client.textpatch import Op, Patch

__all__ = [
    "Builder",
    "Comp",
    "DiffStats",
    "Reader",
    "components",
    "prefix_len",
    "run_len",
    "suffix_len",
    "width",
]

# A stream component: > 0 keeps, < 0 deletes that many code points, str inserts.
Comp = int | str

# --------------------------------------------------------------------------- streams


class Builder:
    """Collect a component stream into a canonical patch (merging touching ops)."""

    __slots__ = ("_delete", "_inserts", "_ops", "_pos", "_start")

    def __init__(self) -> None:
        self._ops: list[Op] = []
        self._pos = 0  # position in the input document
        self._start = -1  # start of the pending op, -1 if none
        self._delete = 0
        self._inserts: list[str] = []

    def add(self, comp: Comp) -> None:
        if isinstance(comp, str):
            if comp:
                self._open()
                self._inserts.append(comp)
        elif comp > 0:
            self._flush()
            self._pos += comp
        elif comp < 0:
            self._open()
            self._delete -= comp
            self._pos -= comp

    def _open(self) -> None:
        if self._start < 0:
            self._start = self._pos

    def _flush(self) -> None:
        if self._start >= 0:
            self._ops.append(Op(self._start, self._delete, "".join(self._inserts)))
            self._start, self._delete, self._inserts = -1, 0, []

    def patch(self) -> Patch:
        self._flush()
        return tuple(self._ops)


def components(patch: Patch) -> list[Comp]:
    comps: list[Comp] = []
    prev = 0
    for op in patch:
        if op.pos > prev:
            comps.append(op.pos - prev)
        if op.insert:
            comps.append(op.insert)
        if op.delete:
            comps.append(-op.delete)
        prev = op.pos + op.delete
    return comps


class Reader:
    """Consume a component stream piecewise; past its end it keeps everything."""

    __slots__ = ("_comps", "_index", "_offset")

    def __init__(self, comps: list[Comp]) -> None:
        self._comps = comps
        self._index = 0
        self._offset = 0  # how much of the current component is consumed

    def peek(self) -> Comp | None:
        """The unconsumed rest of the current component, None at the end."""
        if self._index == len(self._comps):
            return None
        comp = self._comps[self._index]
        if isinstance(comp, str):
            return comp[self._offset :]
        return comp - self._offset if comp > 0 else comp + self._offset

    def take(self, limit: int) -> Comp:
        """The next piece of at most ``limit`` code points (a keep past the end)."""
        rest = self.peek()
        if rest is None:
            return limit
        size = len(rest) if isinstance(rest, str) else abs(rest)
        if size <= limit:
            self._index, self._offset = self._index + 1, 0
            return rest
        self._offset += limit
        if isinstance(rest, str):
            return rest[:limit]
        return limit if rest > 0 else -limit

    def take_whole(self) -> Comp:
        """The unconsumed rest of the current component (which must exist)."""
        rest = self.peek()
        assert rest is not None
        self._index, self._offset = self._index + 1, 0
        return rest

    def drain(self, out: Builder) -> None:
        while (rest := self.peek()) is not None:
            out.add(rest)
            self._index, self._offset = self._index + 1, 0


def width(comp: Comp) -> int:
    return len(comp) if isinstance(comp, str) else abs(comp)


# --------------------------------------------------------------------------- common runs
# (simplify trims them; client.textdiff finds them, counting its work)


@dataclass(slots=True)
class DiffStats:
    """The work one diff did, counted in operations (tests bound it; no clocks).

    Attributes:
        probes: Myers diagonals walked, usable or not (one Python step each).
        steps: slice comparisons made by the galloping run finders.
        compared: code points those comparisons covered (an upper bound).
        capped: the search hit its budget and the middle became one replace.
    """

    probes: int = 0
    steps: int = 0
    compared: int = 0
    capped: bool = False


def prefix_len(a: str, b: str) -> int:
    return run_len(a, 0, b, 0, DiffStats())


def run_len(a: str, x: int, b: str, y: int, stats: DiffStats) -> int:
    """Length of the common run of ``a[x:]`` and ``b[y:]``.

    Compares slices of doubling (then halving) size, so a long run costs a
    few C-speed comparisons instead of a Python loop over code points.
    """
    limit, matched, step, steps, compared = min(len(a) - x, len(b) - y), 0, 1, 0, 0
    while matched < limit and step > 0:
        size = min(step, limit - matched)
        steps, compared = steps + 1, compared + size
        if a[x + matched : x + matched + size] == b[y + matched : y + matched + size]:
            matched, step = matched + size, step * 2
        else:
            step //= 2
    stats.steps += steps
    stats.compared += compared
    return matched


def suffix_len(a: str, b: str, limit: int, stats: DiffStats | None = None) -> int:
    """Length of the common suffix, at most ``limit``."""
    matched, step, steps, compared = 0, 1, 0, 0
    while matched < limit and step > 0:
        size = min(limit, matched + step)
        steps, compared = steps + 1, compared + size - matched
        if a[len(a) - size : len(a) - matched] == b[len(b) - size : len(b) - matched]:
            matched, step = size, step * 2
        else:
            step //= 2
    if stats is not None:
        stats.steps += steps
        stats.compared += compared
    return matched

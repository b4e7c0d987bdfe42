"""The rebaser's own-patch landing (client.rebase.Rebaser.land_own) on texts
where a text diff would run out of budget.

Eight full-speed typists (bench ``fair``) each held about a thousand
keystrokes of unacknowledged work scattered over a text of 120,000 code
points with no line breaks.  Landing their own patch, the rebaser asked for
a minimal diff from the text to the view; past its budget the diff became
one replace of nearly the whole text, and two such replaces rebased over
each other kept both copies: the pad's text doubled.  The work is now only
simplified when the diff would be coarse (``DocType.rediff``).
"""

from __future__ import annotations

import random

from client import textops
from client.doctype import TEXT
from client.rebase import Rebaser
from client.textops import Op


def _scattered(rng: random.Random, size: int, count: int, letter: str) -> textops.Patch:
    """``count`` one-letter inserts at distinct places of a text of ``size``."""
    return tuple(Op(pos, 0, letter) for pos in sorted(rng.sample(range(size + 1), count)))


def test_our_patch_landing_under_much_scattered_work_is_no_replace_of_the_text() -> None:
    rng = random.Random(5)
    base = "".join(rng.choice("abcdefgh") for _ in range(60_000))
    ours = _scattered(rng, len(base), 800, "P")  # the patch of ours that landed
    auth = textops.apply(base, ours)
    more = _scattered(rng, len(auth), 800, "W")  # typed since, not yet sealed
    view = textops.apply(auth, more)
    work = textops.compose(ours, more)  # everything uncommitted, on ``base``
    inverse = textops.invert(ours, base)

    rest, seen = Rebaser(TEXT).land_own(auth, ours, inverse, work)

    assert textops.apply(auth, rest) == view
    assert seen == ()  # our own patch removed nothing: the view does not change
    # Simplified op by op: where a "W" was typed on both sides of a "P" the
    # op still replaces that "P" by "WPW"; a coarse diff replaced the text.
    deleted = sum(op.delete for op in rest)
    assert deleted < 50, f"{deleted} code points replaced"
    assert sum(len(op.insert) for op in rest) == 800 + deleted


def test_below_the_budget_the_landing_still_finds_the_minimal_patch() -> None:
    rng = random.Random(6)
    base = "".join(rng.choice("abcdefgh") for _ in range(2_000))
    ours = _scattered(rng, len(base), 5, "P")
    auth = textops.apply(base, ours)
    more = _scattered(rng, len(auth), 5, "W")
    work = textops.compose(ours, more)

    rest, _ = Rebaser(TEXT).land_own(auth, ours, textops.invert(ours, base), work)

    assert rest == more


def test_crossing_a_node_again_under_much_scattered_work_keeps_every_edit_once() -> None:
    """A fork switch crosses someone's node forward and then back: the second
    crossing diffs the views it recorded.  With work scattered over a long
    text both diffs ran past the budget, became replaces of nearly the whole
    text, and rebased over each other kept both copies."""
    rng = random.Random(7)
    origin = "".join(rng.choice("abcdefgh") for _ in range(60_000))
    theirs = _scattered(rng, len(origin), 800, "F")  # someone else's node
    ours = _scattered(rng, len(origin), 800, "W")
    rebaser = Rebaser(TEXT)
    across, _ = rebaser.cross(b"n", ours, origin, theirs, forward=True)
    after = textops.apply(origin, theirs)
    more = _scattered(rng, len(textops.apply(after, across)), 800, "X")  # typed since
    back = textops.invert(theirs, origin)  # the fork switch reverts their node

    work, _ = rebaser.cross(b"n", textops.compose(across, more), after, back, forward=False)

    text = textops.apply(origin, work)
    assert (text.count("F"), text.count("W"), text.count("X")) == (0, 800, 800)
    assert len(text) == len(origin) + 1600

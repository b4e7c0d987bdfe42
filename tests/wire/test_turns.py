"""wire.turns: nobody laps a writer it outran (PROTOCOL.md §13.3).

The relay's live behaviour is in tests/relay/test_relay_protocol.py and the
fairness it gives typists racing on links with latency in
tests/core/test_sim.py; here, the rule itself, and that it can never hold
every waiting writer back at once.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from wire.turns import Turns

QUIET = 0.5
LONGEST = 2.0


def _one_outran_two() -> Turns:
    """1 lands at time 0; a push of 2's made before it is refused STALE."""
    turns = Turns()
    assert turns.push(1, 0.0, QUIET, LONGEST)
    turns.landed(1)
    assert turns.push(2, 0.0, QUIET, LONGEST)
    turns.stale(2)
    return turns


def test_the_winner_waits_for_the_loser_and_a_bystander_does_not() -> None:
    turns = Turns()
    assert turns.push(1, 0.0, QUIET, LONGEST)
    turns.landed(1)
    assert turns.push(2, 0.01, QUIET, LONGEST)
    turns.stale(2)  # 1 landed since 2's last patch: 1 outran 2
    assert turns.outran(1) == {2}
    assert not turns.push(1, 0.02, QUIET, LONGEST)  # refused YIELD
    assert turns.push(3, 0.02, QUIET, LONGEST)  # 3 outran nobody
    turns.landed(3)
    assert turns.push(2, 0.03, QUIET, LONGEST)
    turns.landed(2)
    # 1 was held back for 2 and still waits: 2 outran it in turn.
    assert turns.outran(1) == set()
    assert turns.outran(2) == {1}
    assert not turns.push(2, 0.04, QUIET, LONGEST)
    assert turns.push(1, 0.04, QUIET, LONGEST)


def test_a_quiet_loser_lets_one_patch_through_per_quiet_period_until_longest() -> None:
    """While a loser pushes nothing (a slow catch-up, a reconnect), the writers
    that outran it land one patch per ``QUIET``, not as many as they can
    pipeline (each one more for it to rebase over); after ``LONGEST`` it holds
    nobody back, and it is owed again as soon as it pushes."""
    turns = _one_outran_two()  # 2 last pushed at 0.0
    assert not turns.push(1, QUIET, QUIET, LONGEST)
    assert turns.push(1, QUIET + 0.01, QUIET, LONGEST)  # one patch past 2's silence
    assert not turns.push(1, QUIET + 0.02, QUIET, LONGEST)  # then a wait again
    assert not turns.push(1, 2 * QUIET, QUIET, LONGEST)
    assert turns.push(1, 2 * QUIET + 0.02, QUIET, LONGEST)
    assert not turns.push(1, 2 * QUIET + 0.03, QUIET, LONGEST)
    assert turns.push(1, LONGEST + 0.01, QUIET, LONGEST)  # 2 gone too long: free
    assert turns.push(1, LONGEST + 0.02, QUIET, LONGEST)
    turns.push(2, LONGEST + 1.0, QUIET, LONGEST)
    assert not turns.push(1, LONGEST + 1.01, QUIET, LONGEST)  # 2 is back: still owed


def test_a_patch_past_a_quiet_loser_holds_every_writer_it_outran() -> None:
    """The one patch per quiet period is shared: 1 and 3 both outran 2, and
    once 1 went past 2's silence, 3 waits too."""
    turns = Turns()
    for winner in (1, 3):
        assert turns.push(winner, 0.0, QUIET, LONGEST)
        turns.landed(winner)
    assert turns.push(2, 0.0, QUIET, LONGEST)
    turns.stale(2)
    assert turns.outran(1) == turns.outran(3) == {2}
    assert turns.push(1, QUIET + 0.01, QUIET, LONGEST)
    assert not turns.push(3, QUIET + 0.02, QUIET, LONGEST)
    turns.landed(2)  # 2 landed at last: nobody waits for it
    assert turns.push(3, QUIET + 0.03, QUIET, LONGEST)


def test_a_resend_found_stored_ends_a_wait_without_outrunning_anyone() -> None:
    turns = _one_outran_two()
    turns.push(1, 0.01, QUIET, LONGEST)  # refused: 1 waits, held back for 2
    turns.landed(2, fresh=False)
    assert turns.waiting() == {1}
    assert turns.outran(2) == set()
    assert turns.push(1, 0.02, QUIET, LONGEST)


def test_leaving_ends_a_wait_and_forgets_the_writer() -> None:
    turns = _one_outran_two()
    turns.left(2)
    assert turns.push(1, 0.01, QUIET, LONGEST)
    turns.left(1)
    assert turns.waiting() == set()
    assert turns.outran(1) == set()


@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(["landed", "stale", "resend", "left"])),
        max_size=80,
    )
)
def test_some_waiting_writer_may_always_go(steps: list[tuple[int, str]]) -> None:
    """Whatever the pushes and their outcomes, "held back for" has no cycle, so
    of the writers that wait, one at least is held back by none (nobody is
    quiet here: the quiet period is endless)."""
    turns = Turns()
    for now, (writer, outcome) in enumerate(steps):
        if outcome == "left":
            turns.left(writer)
        elif turns.push(writer, float(now), math.inf, math.inf):
            if outcome == "stale":
                turns.stale(writer)
            else:
                turns.landed(writer, fresh=outcome == "landed")
        waiting = turns.waiting()
        held = {w: turns.outran(w) & waiting for w in waiting}
        assert not waiting or any(not losers for losers in held.values())
        _assert_acyclic(held)


def _assert_acyclic(edges: dict[int, frozenset[int]]) -> None:
    done: set[int] = set()

    def visit(node: int, path: tuple[int, ...]) -> None:
        assert node not in path, f"held back in a cycle: {(*path, node)}"
        if node in done:
            return
        for nxt in edges.get(node, frozenset()):
            visit(nxt, (*path, node))
        done.add(node)

    for node in edges:
        visit(node, ())

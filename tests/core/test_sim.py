"""The many-session simulator, in its three worlds (see tests/sim.py): the exact
oracle in the first two, fairness under the relay's turns in the third.

``BLINDPAD_SIM_SEEDS=N`` runs N seeded scenarios per world instead of 500.
The first fifth of the seeds (at least 100) run 8 sessions with 200 or more
edits each scenario; the rest vary between 2 and 8 sessions.
"""

from __future__ import annotations

import os

import pytest
from sim import MeshWorld, RaceWorld, RelayWorld

SEEDS = int(os.environ.get("BLINDPAD_SIM_SEEDS", "500"))
BIG = max(100, SEEDS // 5)


def shape(seed: int) -> tuple[int, int]:
    """(sessions, edits) for a seed: the first ``BIG`` seeds are the large ones."""
    if seed < BIG:
        return 8, 200 + seed % 50
    return 2 + seed % 7, 20 + (seed * 37) % 180


@pytest.mark.parametrize("seed", range(SEEDS))
def test_relay_world(seed: int) -> None:
    sessions, edits = shape(seed)
    RelayWorld(seed, sessions, edits).run()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_mesh_world(seed: int) -> None:
    sessions, edits = shape(seed)
    MeshWorld(seed, sessions, edits).run()


def test_worlds_exercise_what_they_claim() -> None:
    """The scenarios really refuse, lose acks, reconnect, join, fork and revert."""
    relay = RelayWorld(3, 8, 300)
    relay.run()
    assert relay.relay.refusals > 0
    assert relay.relay.duplicates > 0  # resends after lost acks, acked again
    assert relay.reconnects > 0
    assert relay.invalid_patches > 0
    assert len(relay.sessions) > 8  # someone joined mid-run
    assert relay.relay.snapshots

    mesh = MeshWorld(3, 8, 300)
    mesh.run()
    assert any(s.reverted for s in mesh.sessions)  # forks were resolved by reverting
    heights = {s.engine.height for s in mesh.alive}
    assert len(heights) == 1
    assert len(mesh.sent) > heights.pop()


@pytest.mark.parametrize(
    ("sessions", "seed", "latency_ms"),
    [
        (8, 0, (0.2, 5.0)),
        (8, 1, (0.2, 5.0)),
        (4, 0, (0.2, 5.0)),
        (4, 1, (0.2, 5.0)),
        (2, 0, (1.0, 2.5)),
        (2, 1, (1.0, 2.5)),
        (2, 2, (1.0, 2.5)),
    ],
)
def test_under_turns_every_typist_lands_a_fair_share(
    sessions: int, seed: int, latency_ms: tuple[float, float]
) -> None:
    """PROTOCOL.md §13.3: ``n`` typists at full speed, links whose one-way latency
    is drawn per session (up to 25 times apart for 4 and 8 typists): in every
    second of simulated time every typist lands at least 1/(2n) of the patches.
    Two typists need round trips within 3 times of each other: under contention
    a session has one patch at the relay at a time, so the nearer one lands one
    patch per round trip of its own while the farther one's is on its way."""
    world = RaceWorld(seed, sessions, latency_ms=latency_ms)
    world.run(2000)
    for window in world.shares(1000, 2000):
        assert sum(window) > 0
        assert min(window) * 2 * sessions >= sum(window), window
    assert world.yields > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_stall_of_all_but_one_typist_lets_one_patch_by_per_quiet_period(seed: int) -> None:
    """PROTOCOL.md §13.3: seven of eight typists stall for 2.5 quiet periods (a
    pause, a reconnect), and every patch of another's costs each 5 ms to take
    in.  Meanwhile the one still typing lands at most one patch per quiet
    period, not all it could pipeline (under the rule until 2026-12-06, free
    once they were quiet: 605 and 1,454 patches here, each one more for seven
    typists to catch up with, then 2 and 4 s with nobody landing); from the
    second after the stall every window is fair again."""
    quiet = 1000.0
    stall = (range(1, 8), 1000.0, 2.5 * quiet)
    world = RaceWorld(seed, 8, cost_ms=[5.0] * 8, stall=stall, quiet_ms=quiet)
    world.run(8000)
    assert len([when for when, _ in world.landed if 1000 <= when < 3500]) <= 3
    for window in world.shares(1000, 8000)[4:]:
        assert sum(window) > 0
        assert min(window) * 2 * 8 >= sum(window), window

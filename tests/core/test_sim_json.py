"""The simulator's JSON world under its exact oracle (see tests/jsonsim.py).

``BLINDPAD_SIM_SEEDS=N`` (the thorough tier: 500 or more) runs N seeded
scenarios; by default 40 keep CI fast.  Sessions vary between 2 and 8; the
first tenth of the seeds run 8 sessions with 150 or more edits.
"""

from __future__ import annotations

import os

import pytest
from jsonsim import JsonRelayWorld

SEEDS = int(os.environ.get("BLINDPAD_SIM_SEEDS", "40"))
BIG = max(4, SEEDS // 10)


def shape(seed: int) -> tuple[int, int]:
    """(sessions, edits) for a seed: the first ``BIG`` seeds are the large ones."""
    if seed < BIG:
        return 8, 150 + seed % 50
    return 2 + seed % 7, 20 + (seed * 37) % 120


@pytest.mark.parametrize("seed", range(SEEDS))
def test_json_relay_world(seed: int) -> None:
    sessions, edits = shape(seed)
    JsonRelayWorld(seed, sessions, edits).run()


def test_json_world_exercises_what_it_claims() -> None:
    """Refusals (so rebases), lost acks, reconnects, joins from snapshots,
    invalid patches, and every operation kind, under the oracle."""
    world = JsonRelayWorld(3, 8, 300)
    world.run()
    assert world.relay.refusals > 0
    assert world.reconnects > 0
    assert world.invalid_patches > 0
    assert len(world.sessions) > 8
    assert world.relay.snapshots
    value = world.sessions[0].engine.view
    assert world.oracle.items_deleted
    assert value["items"]
    assert world.oracle.keys_deleted
    assert value["keys"]
    assert value["c"] > 0
    assert value["t"]

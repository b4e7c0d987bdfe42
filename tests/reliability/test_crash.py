"""Crash durability with an exact oracle (issue 11, item 6): see crashkit.

Sizes come from tests/reliability_profile.py:
``BLINDPAD_RELIABILITY=thorough``
runs 10,000 crash runs and 1,000 away runs; ``BLINDPAD_CRASH_RUNS`` /
``BLINDPAD_AWAY_RUNS`` and ``BLINDPAD_CRASH_FIRST_SEED`` override (a failing
run prints the command that repeats it alone).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from crashkit import RunResult, crash_run
from reliability_profile import sized

FIRST = int(os.environ.get("BLINDPAD_CRASH_FIRST_SEED", "0"))

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="the crash suite forks its relay and typists"
)


def _runs(tmp_path: Path, count: int, **options: object) -> list[RunResult]:
    results, failed = [], []
    for seed in range(FIRST, FIRST + count):
        where = tmp_path / f"seed-{seed}"
        result = crash_run(where, seed, **options)  # type: ignore[arg-type]
        results.append(result)
        if result.problems:
            failed.append(result)
            print(f"seed {seed}: {result.problems} (kept in {where})", file=sys.stderr)
        else:
            shutil.rmtree(where, ignore_errors=True)
    kills = sum(r.kills for r in results)
    trims = sum(r.trimmed for r in results)
    tokens = sum(r.tokens for r in results)
    print(f"{len(results)} runs, {kills} SIGKILLs, {tokens} tokens, {trims} trims")
    assert not failed, (
        f"{len(failed)} of {count} runs lost or doubled work; repeat one alone with "
        f"BLINDPAD_CRASH_FIRST_SEED={failed[0].seed} BLINDPAD_{'AWAY' if options else 'CRASH'}"
        f"_RUNS=1 pytest {__file__}: {failed[0].problems}"
    )
    return results


CRASH_RUNS = sized("crash_runs", 200, 10_000)
AWAY_RUNS = sized("away_runs", 12, 1_000)


# The hang guards grow with the runs (a minute each, at least pytest's 1,800 s).
@pytest.mark.timeout(max(1800, 60 * CRASH_RUNS))
def test_sigkilled_relay_and_typists_lose_and_double_nothing(tmp_path: Path) -> None:
    results = _runs(tmp_path, CRASH_RUNS)
    assert sum(r.kills for r in results) >= len(results)  # the faults really happened


@pytest.mark.timeout(max(1800, 60 * AWAY_RUNS))
def test_work_logged_while_away_lands_once_across_snapshots_and_trims(tmp_path: Path) -> None:
    # Long tokens so the others write snapshots soon: their 60 tokens alone
    # pass the 16 KB a first snapshot waits for, however the patches are
    # squashed (version 2's small envelopes made 40 characters too few under
    # load); their filler never repeats (see crashkit._filler and
    # docs/RELIABILITY.md, known limits).
    results = _runs(tmp_path, AWAY_RUNS, typists=3, tokens=30, away=True, filler=300)
    assert any(r.trimmed for r in results)  # the history was trimmed while someone was away

"""Scenario: what the state directory (the write-ahead log) costs a typist.

One typist drives the SDK (:class:`client.Pad`) against a real relay process
on its SQLite default, typing each txn of a public trace as its own patch and
awaiting ``synced()`` after each (the storage scenario's worst case: every
keystroke sealed, written ahead, pushed and acknowledged alone), once with a
state directory and once with ``state_dir=None``, alternating, ``runs``
times each.  Reported: seconds, milliseconds per keystroke and their ratio
(state ÷ none), measured side by side in one run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.common import BenchFailure, Result, relay_process, table
from bench.s_storage import traces, type_txns


def run(runs: int, quick: bool) -> Result:
    """Each trace typed with and without a state directory, alternating."""
    result = Result("wal")
    rows = []
    for name, txns, target in traces(result, quick):
        times: dict[str, list[float]] = {"state": [], "none": []}
        with (
            tempfile.TemporaryDirectory(prefix="bench-wal-") as tmp,
            relay_process(keep_dir=Path(tmp)) as server,
        ):
            for n in range(runs):
                for mode in ("state", "none") if n % 2 == 0 else ("none", "state"):
                    state = Path(tmp) / f"state-{n}" if mode == "state" else None
                    _, text, seconds = asyncio.run(type_txns(server.http_url, txns, state))
                    if text != target:
                        raise BenchFailure(f"{name}: the typed pad does not hold the text")
                    times[mode].append(seconds)
        with_state, without = statistics.median(times["state"]), statistics.median(times["none"])
        result.data[name] = {"keystrokes": len(txns), **times}
        rows.append(
            [
                name,
                len(txns),
                with_state,
                without,
                with_state / len(txns) * 1000,
                without / len(txns) * 1000,
                with_state / without,
            ]
        )
    result.tables.append(
        table(
            "The state directory's cost: one patch per keystroke through the SDK, awaited "
            "(median seconds of the runs, alternating)",
            [
                "trace",
                "keystrokes",
                "s with state",
                "s without",
                "ms/key with",
                "ms/key without",
                "state ÷ none",
            ],
            rows,
        )
    )
    return result

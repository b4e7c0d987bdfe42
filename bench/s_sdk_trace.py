"""Scenario: a trace typed end to end through the SDK, beside a bare ``str`` and pycrdt-websocket.

Issue 20 asks that automerge-paper, typed by A and shown at B through a real
relay with the SDK, take at most 3x the time of replaying it into a bare
Python ``str``, and run at least 20x pycrdt-websocket's edits/s on the
longest prefix pycrdt-websocket completes, all measured in one run.

* **bare**: the trace replayed into a ``str`` in this process
  (``s = s[:pos] + insert + s[pos + delete:]`` per patch), best of three.
* **blindpad (SDK)**: a relay process (SQLite, synchronous=FULL; the bench's
  raised per-address limits), B (:mod:`bench.sdk_peer` ``watch``, a view
  link) and A (``type``, the edit link), each in its own process with
  :class:`client.Pad` and its default options but no state directory.  A
  types each patch as one ``delete`` and/or ``insert`` and yields to the
  event loop after every txn.  The time runs from A's first edit to B's
  text equalling the trace's end (CLOCK_MONOTONIC in both processes).  A
  and B count their websocket message bytes, both ways (issue 14 asks at
  most 10 a keystroke at full speed).
* **pycrdt-websocket**: :func:`bench.s_trace.pycrdt_run` on prefixes of the
  trace, longer and longer (:data:`LADDER`, then the whole trace) until one
  does not converge in its time; blindpad (SDK) types the longest prefix
  that did, in the same run.

Quick mode types the first ``QUICK_TXNS`` txns of the two small traces, and
the pycrdt ladder stops at ``QUICK_TXNS``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    BenchFailure,
    Result,
    load_trace,
    relay_process,
    stop_process,
    table,
)
from bench.s_trace import pycrdt_run, target_text
from client import Pad

QUICK_TXNS = 10_000
QUICK_TRACES = ["friendsforever_flat", "clownschool_flat"]
TRACES = ["automerge-paper"]
#: Prefix lengths tried with pycrdt-websocket, shortest first (then the whole trace).
LADDER = [10_000, 20_000, 40_000, 80_000, 160_000]
TIMEOUT = 900.0


def bare_seconds(txns: list[dict[str, Any]]) -> float:
    """The best of three replays into a plain ``str``."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        target_text(txns)
        times.append(time.perf_counter() - t0)
    return min(times)


def _peer(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.sdk_peer", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "READY":
        stop_process(proc)
        raise BenchFailure(f"sdk_trace: the {args[0]} process did not start")
    return proc


def sdk_run(name: str, limit: int, target: str) -> dict[str, Any]:
    """A types the first ``limit`` txns through the SDK and B watches, each in its own process."""
    with tempfile.TemporaryDirectory(prefix="bench-sdk-trace-") as tmp:
        target_file = Path(tmp) / "target.txt"
        target_file.write_text(target, encoding="utf-8")
        with relay_process() as server:
            links = asyncio.run(Pad.create(server.http_url))
            procs: list[subprocess.Popen[str]] = []
            try:
                procs.append(watcher := _peer("watch", links.view_link, str(target_file), "900"))
                procs.append(typist := _peer("type", links.edit_link, name, str(limit)))
                cpu0 = server.cpu()
                assert typist.stdin is not None
                assert typist.stdout is not None
                assert watcher.stdout is not None
                typist.stdin.write("go\n")
                typist.stdin.flush()
                b = json.loads(watcher.stdout.readline())
                a = json.loads(typist.stdout.readline())
                relay_cpu = server.cpu() - cpu0
            finally:
                for proc in procs:
                    stop_process(proc)
    if not b["ok"] or a["alarms"] or a["length"] != len(target):
        raise BenchFailure(f"sdk_trace {name}[:{limit}]: did not converge ({a}, {b})")
    wall = b["t_end"] - a["t0"]
    return {
        "wall_s": wall,
        "edits_per_s": limit / wall,
        "a_typed_s": a["typed_s"],
        "a_cpu_s": a["cpu_s"],
        "b_cpu_s": b["cpu_s"],
        "relay_cpu_s": relay_cpu,
        "patches": a["patches"],
        # Both ways, A's and B's: A's pushes, acknowledgements and snapshots, B's broadcasts.
        "wire_bytes_per_txn": sum(p["wire_out"] + p["wire_in"] for p in (a, b)) / limit,
    }


def _ladder(name: str, txns: list[dict[str, Any]], top: int, result: Result) -> dict[str, Any]:
    """pycrdt-websocket on longer and longer prefixes: the longest that converged."""
    best: dict[str, Any] = {}
    for limit in [n for n in LADDER if n < min(top, len(txns))] + [min(top, len(txns))]:
        try:
            # Its own rate was 3,600-4,700 edits/s here: about four times that, a minute at least.
            run = pycrdt_run(name, limit, target_text(txns[:limit]), max(60.0, limit / 1000))
        except (BenchFailure, subprocess.TimeoutExpired) as error:
            result.note(f"pycrdt-websocket on {name}[:{limit}] did not converge: {error}")
            break
        best = {"limit": limit, **run}
    return best


def run(runs: int, quick: bool) -> Result:
    """Each trace: bare and the SDK end to end; then pycrdt's ladder and the SDK on its prefix."""
    del runs  # single runs: the long trace takes minutes; the ratios are side by side
    result = Result("sdk_trace")
    rows: list[list[Any]] = []
    prows: list[list[Any]] = []
    for name in QUICK_TRACES if quick else TRACES:
        trace = load_trace(name)
        if trace is None:
            result.note(f"trace {name} is absent: skipped")
            continue
        txns = trace["txns"][:QUICK_TXNS] if quick else trace["txns"]
        target = target_text(txns)
        bare = bare_seconds(txns)
        sdk = sdk_run(name, len(txns), target)
        rows.append(
            [
                name,
                len(txns),
                f"{bare:.3f}",
                f"{sdk['wall_s']:.2f}",
                f"{sdk['wall_s'] / bare:.1f}",
                f"{sdk['a_typed_s']:.2f}",
                f"{sdk['a_cpu_s']:.2f} / {sdk['b_cpu_s']:.2f} / {sdk['relay_cpu_s']:.2f}",
                sdk["patches"],
                f"{sdk['wire_bytes_per_txn']:.1f}",
            ]
        )
        peer = _ladder(name, txns, QUICK_TXNS if quick else len(txns), result)
        entry: dict[str, Any] = {"txns": len(txns), "bare_s": bare, "sdk": sdk, "pycrdt": peer}
        if peer:
            limit = peer["limit"]
            mine = sdk if limit == len(txns) else sdk_run(name, limit, target_text(txns[:limit]))
            entry["sdk_on_prefix"] = mine
            prows.append(
                [
                    name,
                    limit,
                    f"{mine['edits_per_s']:,.0f}",
                    f"{peer['edits_per_s']:,.0f}",
                    f"{mine['edits_per_s'] / peer['edits_per_s']:.1f}",
                ]
            )
        result.data[name] = entry
    result.tables.append(
        table(
            "A trace typed through the SDK (A and B each in its own process) beside a bare str",
            [
                "trace",
                "txns",
                "bare str replay s",
                "SDK: A's first edit -> B shows the end, s",
                "÷ bare (issue 20: <= 3)",
                "A typed s",
                "CPU s: A / B / relay",
                "patches",
                "wire bytes per txn (A and B, both ways; issue 14: <= 10)",
            ],
            rows,
        )
    )
    result.tables.append(
        table(
            "The SDK beside pycrdt-websocket on the longest prefix pycrdt-websocket completes",
            [
                "trace",
                "txns",
                "SDK edits/s",
                "pycrdt-websocket edits/s",
                "SDK ÷ pycrdt (issue 20: >= 20)",
            ],
            prows,
        )
    )
    return result

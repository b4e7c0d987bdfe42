"""Scenario: typists at full speed on one pad, each in its own process, through the SDK.

Issue 15 asks that with 8 typists typing as fast as they can, every typist
land at least 1/(2*8) of the patches in every 5 s window.  ``TYPISTS``
processes each open the same pad with :class:`client.Pad` (default options,
no state directory) on one relay as deployed (SQLite, synchronous=FULL; the
bench raises only the per-address limits, see bench/common.py), and from one
instant on insert one character at a random place, yielding to the event
loop after each, for ``DURATION`` s (``QUICK_DURATION`` with ``--quick``).
Each process notes when each of its patches was acknowledged
(:class:`client.events.Acked`, ``time.time()`` on one machine); then all of
them wait until their texts are equal and hold every key typed.

Reported per window of ``WINDOW`` s: the patches landed by each typist, the
smallest share, and whether every typist got at least 1/(2n); over the run,
keys typed, patches landed and connections lost per typist (a reconnect is
what made typists starve before 2026-12-06: PROTOCOL.md §13.3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchFailure, Result, new_pad, relay_process, table

TYPISTS = 8
DURATION = 30.0
QUICK_DURATION = 10.0
WINDOW = 5.0
HANG_GUARD = 600.0

TYPIST = r"""
import asyncio, json, random, sys, time
from client import Pad
from client.events import Acked, ConnectionLost

async def main(link, index, start, duration, out):
    pad = await Pad.open(link, state_dir=None)
    await pad.synced(600)
    acked, typed, lost = [], 0, []
    async def note():
        async for event in pad.events():
            if isinstance(event, Acked):
                acked.append(time.time())
            elif isinstance(event, ConnectionLost):
                lost.append(time.time())
    noting = asyncio.create_task(note())
    rng = random.Random(index)
    await asyncio.sleep(max(0.0, start - time.time()))
    while time.time() < start + duration:
        await pad.insert(rng.randrange(pad.session.text_length + 1), chr(0x4E00 + index))
        typed += 1
        await asyncio.sleep(0)
    await pad.synced(600)
    print(typed, flush=True)  # the parent answers with every typist's count, summed
    total = int(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
    while pad.session.text_length < total:
        await pad.changed()
    noting.cancel()
    with open(out, "w") as f:
        json.dump({"acked": acked, "typed": typed, "lost": lost, "length": pad.session.text_length,
                   "text_counts": {c: pad.text.count(c) for c in set(pad.text)}}, f)
    await pad.aclose()

a = sys.argv
asyncio.run(main(a[1], int(a[2]), float(a[3]), float(a[4]), a[5]))
"""


def _run(duration: float) -> dict[str, Any]:
    with relay_process(None) as server, tempfile.TemporaryDirectory(prefix="bench-fair-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        link = new_pad(server)
        start = time.time() + 5.0  # every process opened by then
        outs = [Path(tmp) / f"t{i}.json" for i in range(TYPISTS)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", TYPIST, link, str(i), str(start), str(duration), str(out)],
                env=env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i, out in enumerate(outs)
        ]
        # Each says how many keys it typed once saved; then all wait for the sum.
        counts = [int(proc.stdout.readline()) for proc in procs if proc.stdout is not None]
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{sum(counts)}\n")
            proc.stdin.flush()
        for proc in procs:
            _, err = proc.communicate(timeout=HANG_GUARD)
            if proc.returncode != 0:
                raise BenchFailure(f"a typist failed: {err.strip().splitlines()[-1:]}")
        results = [json.loads(out.read_text()) for out in outs]
    # Every key typed is in the end text exactly once: by character, the counts match.
    final = results[0]["text_counts"]
    for i, r in enumerate(results):
        if r["text_counts"] != final or final.get(chr(0x4E00 + i), 0) != r["typed"]:
            raise BenchFailure(
                f"fair: typist {i}'s keys are not all in every text exactly once:"
                f" typed {[r['typed'] for r in results]},"
                f" in the texts {[r['text_counts'] for r in results]}"
            )
    windows = []
    t = start
    while t < start + duration:
        counts = [sum(1 for at in r["acked"] if t <= at < t + WINDOW) for r in results]
        total = sum(counts)
        share = min(counts) / total if total else 0.0
        windows.append({"from_s": t - start, "counts": counts, "min_share": share})
        t += WINDOW
    return {
        "typed": [r["typed"] for r in results],
        "landed": [len(r["acked"]) for r in results],
        "reconnects": [len(r["lost"]) for r in results],
        "windows": windows,
        "fair": all(w["min_share"] >= 1 / (2 * TYPISTS) for w in windows),
    }


def run(runs: int, quick: bool) -> Result:
    """``runs`` runs of ``TYPISTS`` full-speed typists for ``DURATION`` s."""
    result = Result("fair")
    duration = QUICK_DURATION if quick else DURATION
    rows: list[list[Any]] = []
    for n in range(runs):
        r = _run(duration)
        result.data[f"run{n}"] = r
        for w in r["windows"]:
            total = sum(w["counts"])
            rows.append(
                [
                    n + 1,
                    f"{w['from_s']:.0f}-{w['from_s'] + WINDOW:.0f} s",
                    " / ".join(str(c) for c in w["counts"]),
                    total,
                    f"{w['min_share']:.3f}",
                    "yes" if w["min_share"] >= 1 / (2 * TYPISTS) else "no",
                ]
            )
        result.note(
            f"run {n + 1}: keys typed {r['typed']}, patches landed {r['landed']}, "
            f"connections lost {r['reconnects']}, every window fair: {r['fair']}"
        )
    result.tables.append(
        table(
            f"{TYPISTS} typists at full speed through the SDK, each in its own process:"
            f" patches landed per {WINDOW:g} s window",
            [
                "run",
                "window",
                "patches landed, typist 1..n",
                "all",
                "smallest share",
                f">= 1/(2*{TYPISTS}) = {1 / (2 * TYPISTS):.4f}",
            ],
            rows,
        )
    )
    return result

"""Scenario: typists at human pace, each in its own process, through the SDK.

``TYPISTS`` processes each open the same pad with :class:`client.Pad` (the
SDK users run, default options but no state directory) on one relay as
deployed (SQLite, synchronous=FULL; the bench raises only the per-address
limits, see bench/common.py) and type ``RATE`` keys a second, each key at a
random place in the text, for ``DURATION`` s (``QUICK_DURATION`` with
``--quick``), all starting at one instant.  Two timings, each its own run:
*independent* (each key at a random moment of its own 1/``RATE`` slot, drawn
per typist, as people typing side by side are not in step) and *lock-step*
(every typist's k-th key at the same instant: eight keys at once, ten times a
second, the worst case for a linear chain, where each of the eight must see
the ones before it land and rebase onto them before its own can land).
Every key is a distinct code point of the private use area, so any process
can tell whose key it sees and when it was typed (``time.time()`` on one machine).

Wire bytes: every typist counts the websocket message bytes it sends and
receives (the SDK's transport, wrapped in the typist process); reported per
key: what its typist sent, and what all typists sent and received.

Reported over all keys: keystroke → saved (from the ``insert`` call to the
first moment the typist's status reads "saved" after it) and keystroke →
shown at each other typist (from the ``insert`` to the first change event at
which the other's text holds the key), p50 and p99; and that every key is in
every final text exactly once (else a failure).
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

from bench.common import ROOT, BenchFailure, Result, new_pad, percentile, relay_process, table

TYPISTS = 8
RATE = 10.0  # keys per second per typist
DURATION = 30.0
QUICK_DURATION = 5.0
FIRST = 0xE000  # private use area: 6,400 code points from here
HANG_GUARD = 600.0

TYPIST = r"""
import asyncio, json, random, sys, time
from bench.wirecount import wire  # websocket message bytes of this process, both ways
from client import Pad, Status

async def main(link, index, rate, start, keys, first, out, total, lockstep):
    pad = await Pad.open(link, state_dir=None)
    typed, saved, seen = {}, [], {}
    rng = random.Random(index)
    mine = lambda k: chr(first + index * 700 + k)  # 700 keys each at most
    async def watch():
        while True:
            await pad.changed()
            now = time.time()
            for ch in pad.text:
                if ch not in seen and ch not in typed:
                    seen[ch] = now
    watcher = asyncio.create_task(watch())
    await asyncio.sleep(max(0.0, start - time.time()))
    timing = random.Random(1000 + index)
    for k in range(keys):
        due = start + (k + (0.0 if lockstep else timing.random())) / rate
        await asyncio.sleep(max(0.0, due - time.time()))
        key = mine(k)
        t0 = time.time()
        await pad.insert(rng.randrange(len(pad.text) + 1), key)
        typed[key] = t0
        while pad.status is not Status.SAVED:
            await pad.changed()
        saved.append(time.time() - t0)
    await pad.synced(600)
    for _ in range(12000):  # let the others' last keys arrive (the parent checks the text)
        if len(pad.text) >= total:
            break
        await asyncio.sleep(0.05)
    watcher.cancel()
    with open(out, "w") as f:
        json.dump({"typed": typed, "saved": saved, "seen": seen, "text": pad.text, **wire}, f)
    await pad.aclose()

a = sys.argv
link, index, rate, start, keys, first, out, total, lockstep = a[1:10]
asyncio.run(main(link, int(index), float(rate), float(start), int(keys), int(first), out,
                 int(total), lockstep == "1"))
"""


def _run(duration: float, lockstep: bool) -> dict[str, Any]:
    keys_each = int(duration * RATE)
    total = keys_each * TYPISTS
    with relay_process(None) as server, tempfile.TemporaryDirectory(prefix="bench-hp-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        link = new_pad(server)
        start = time.time() + 5.0  # every process opened by then
        outs = [Path(tmp) / f"t{i}.json" for i in range(TYPISTS)]
        procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-c", TYPIST, link, str(i), str(RATE), str(start)),
                    *(str(keys_each), str(FIRST), str(outs[i]), str(total), str(int(lockstep))),
                ],
                env=env,
                cwd=ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(TYPISTS)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=HANG_GUARD)
            if proc.returncode != 0:
                raise BenchFailure(f"a typist failed: {err.strip().splitlines()[-1:]}")
        results = [json.loads(out.read_text()) for out in outs]
    typed: dict[str, float] = {}
    for r in results:
        typed.update(r["typed"])
    texts = {r["text"] for r in results}
    if len(texts) != 1 or sorted(next(iter(texts))) != sorted(typed):
        raise BenchFailure("the typists did not converge on every key exactly once")
    saved = [s for r in results for s in r["saved"]]
    shown = [
        seen_at - typed[key] for r in results for key, seen_at in r["seen"].items() if key in typed
    ]
    keys = len(typed)
    return {
        "timing": "lock-step" if lockstep else "independent",
        "keys": keys,
        "out_bytes_per_key": sum(r["out"] for r in results) / keys,
        "wire_bytes_per_key": sum(r["out"] + r["in"] for r in results) / keys,
        "saved_p50_ms": percentile(saved, 0.5) * 1000,
        "saved_p99_ms": percentile(saved, 0.99) * 1000,
        "shown_p50_ms": percentile(shown, 0.5) * 1000,
        "shown_p99_ms": percentile(shown, 0.99) * 1000,
        "shown_samples": len(shown),
    }


def run(runs: int, quick: bool) -> Result:
    """``runs`` runs of ``TYPISTS`` typists at ``RATE`` keys/s, each timing in turn."""
    result = Result("human")
    duration = QUICK_DURATION if quick else DURATION
    raw = [_run(duration, lockstep) for _ in range(runs) for lockstep in (False, True)]
    result.data["runs"] = raw
    rows = [
        [
            str(i // 2 + 1),
            r["timing"],
            str(r["keys"]),
            f"{r['saved_p50_ms']:.1f}",
            f"{r['saved_p99_ms']:.1f}",
            f"{r['shown_p50_ms']:.1f}",
            f"{r['shown_p99_ms']:.1f}",
            str(r["shown_samples"]),
            f"{r['out_bytes_per_key']:.0f}",
            f"{r['wire_bytes_per_key']:.0f}",
        ]
        for i, r in enumerate(raw)
    ]
    result.tables.append(
        table(
            f"{TYPISTS} typists at {RATE:g} keys/s for {duration:g} s, each in its own process"
            " (client.Pad), one SQLite relay on loopback",
            [
                "run",
                "timing",
                "keys",
                "key→saved p50 ms",
                "p99 ms",
                "key→shown p50 ms",
                "p99 ms",
                "samples",
                "bytes sent per key",
                f"wire bytes per key (all {TYPISTS}, both ways)",
            ],
            rows,
        )
    )
    return result

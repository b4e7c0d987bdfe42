"""Scenario 6: concurrent typists and fairness.

N sessions (2, 4, 8; all in this process, each its own websocket, engine and
author) type into one pad on a real relay at full speed for ``DURATION`` s
(5 s in quick mode): client i replays its own slice of friendsforever_flat,
each edit clamped to its current text.  Then typing stops, and the time
until every session is saved and all hold the same head and text is the
convergence time.  Reported: refusals (STALE) per patch pushed, wire bytes
per edit, and per client its edits, acked patches and longest run of
consecutive refusals.  Non-convergence, or a client with no acked patch, is a
failure.
"""

from __future__ import annotations

import asyncio
import time

import crypto
from bench.common import BenchFailure, Result, load_trace, relay_process, summary, table
from bench.session import Session, open_session

CLIENTS = [2, 4, 8]
DURATION = 30.0
QUICK_DURATION = 5.0
TRACE = "friendsforever_flat"


async def _typist(s: Session, ops: list[tuple[int, int, str]], end: float) -> int:
    edits = 0
    for pos, delete, insert in ops:
        if time.monotonic() >= end:
            break
        size = len(s.engine.view)
        pos = min(pos, size)
        delete = min(delete, size - pos)
        if not delete and not insert:
            continue
        s.edit([(pos, delete, insert)])
        edits += 1
        await s.pump()
        await asyncio.sleep(0)
    return edits


async def _one(url: str, n: int, duration: float, ops: list[tuple[int, int, str]]) -> dict:
    keys = crypto.PadKeys.generate()
    sessions = [
        await open_session(url, keys, crypto.Author.generate(f"t{i}"), pipeline=4)
        for i in range(n)
    ]
    try:
        share = len(ops) // n
        slices = [ops[i * share : (i + 1) * share] for i in range(n)]
        t0 = time.monotonic()
        end = t0 + duration
        edits = await asyncio.gather(
            *(_typist(s, sl, end) for s, sl in zip(sessions, slices, strict=False))
        )
        stopped = time.monotonic()

        def converged() -> bool:
            first = sessions[0]
            return all(
                s.engine.saved
                and s.engine.head.id == first.engine.head.id
                and s.engine.view == first.engine.view
                for s in sessions
            )

        deadline = stopped + 120
        while not converged():
            if time.monotonic() > deadline:
                raise BenchFailure(f"{n} typists did not converge within 120 s")
            for s in sessions:
                if s.error is not None:
                    raise BenchFailure(f"session failed: {s.error!r}")
                await s.pump()
            await asyncio.sleep(0.002)
        conv = time.monotonic() - stopped
        alarms = [a for s in sessions for a in s.alarms]
        if alarms:
            raise BenchFailure(f"alarms: {alarms[:3]}")
        pushes = sum(s.pushes for s in sessions)
        refusals = sum(s.refusals for s in sessions)
        wire = sum(s.bytes_in + s.bytes_out for s in sessions)
        per_client = [
            {
                "edits": e,
                "pushes": s.pushes,
                "acked_patches": s.acks,
                "refusals": s.refusals,
                "longest_refusal_run": s.longest_refusal_run,
            }
            for s, e in zip(sessions, edits, strict=False)
        ]
        if any(c["acked_patches"] == 0 for c in per_client):
            raise BenchFailure(f"a client never got a patch through: {per_client}")
        return {
            "typing_s": stopped - t0,
            "convergence_s": conv,
            "edits": sum(edits),
            "pushes": pushes,
            "refusals": refusals,
            "refusals_per_patch": refusals / max(1, pushes),
            "bytes_per_edit": wire / max(1, sum(edits)),
            "final_len": len(sessions[0].engine.view),
            "height": sessions[0].engine.height,
            "per_client": per_client,
        }
    finally:
        for s in sessions:
            await s.close()


def run(runs: int, quick: bool) -> Result:
    """2, 4 and 8 typists, ``runs`` times each."""
    result = Result("concurrent")
    trace = load_trace(TRACE)
    if trace is None:
        result.note(f"trace {TRACE} is absent: skipped")
        return result
    ops = [tuple(p) for txn in trace["txns"] for p in txn["patches"]]
    duration = QUICK_DURATION if quick else DURATION
    rows, client_rows = [], []
    for n in CLIENTS:
        raw = []
        for _ in range(runs):
            with relay_process() as server:
                raw.append(asyncio.run(_one(server.ws_url, n, duration, ops)))  # type: ignore[arg-type]
        result.data[str(n)] = {"duration_s": duration, "runs": raw}
        rows.append(
            [
                n,
                summary([r["edits"] / r["typing_s"] for r in raw]),
                summary([r["convergence_s"] * 1000 for r in raw]),
                summary([r["refusals_per_patch"] for r in raw]),
                summary([r["pushes"] for r in raw]),
                summary([r["bytes_per_edit"] for r in raw]),
            ]
        )
        first = raw[0]["per_client"]
        client_rows.append(
            [
                n,
                " / ".join(str(c["edits"]) for c in first),
                " / ".join(str(c["acked_patches"]) for c in first),
                " / ".join(str(c["refusals"]) for c in first),
                " / ".join(str(c["longest_refusal_run"]) for c in first),
            ]
        )
    result.tables.append(
        table(
            f"Concurrent typists, {duration:.0f} s at full speed into one pad (all converged)",
            [
                "typists",
                "edits/s (all clients)",
                "convergence ms after typing stops",
                "refusals per patch",
                "patches pushed",
                "wire bytes per edit",
            ],
            rows,
        )
    )
    result.tables.append(
        table(
            "Per client (first run): edits typed / acked patches / refusals / longest refusal run",
            ["typists", "edits", "acked patches", "refusals", "longest run of refusals"],
            client_rows,
        )
    )
    return result

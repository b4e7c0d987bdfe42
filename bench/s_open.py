"""Scenario 4: opening a long pad, from the latest snapshot and from full history.

Pads of 10, 1k, 10k and 100k patches are written with the relay's seeder
(``relay.edge.seed.seed_pad``) into a SQLite store; every patch is a real engine
payload (``{"o": [[i, 0, "x"]], "n": i + 1}``, with ``"h"`` every 64th), so the
engine accepts it.  The seeder writes no snapshots, so the bench seals one
itself (the engine's snapshot format, PROTOCOL.md §6.2) of the patch 5 before
the head and stores it with ``Store.put_snapshot``; then 5 more patches follow.
A relay is started on the store, and a fresh engine connects, subscribes and
loads: the time is from connect to text (checked equal to the expected text),
once with SUBSCRIBE from the snapshot and once from seq 0 (full history).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import crypto
from bench.common import BenchFailure, Result, relay_process, summary, table
from bench.session import open_session
from crypto.envelope import Kind, envelope_id
from relay.edge.seed import seed_pad
from relay.store import open_store

SIZES = [10, 1_000, 10_000, 100_000]
QUICK_SIZES = [10, 1_000, 10_000]
TAIL = 5


def content(i: int) -> bytes:
    """Engine payload of seeded patch ``i`` (0-based): append one 'x'."""
    body: dict[str, Any] = {"o": [[i, 0, "x"]], "n": i + 1}
    if (i + 1) % 64 == 0:
        body["h"] = hashlib.sha256(b"x" * (i + 1)).hexdigest()
    return json.dumps(body, separators=(",", ":")).encode()


async def _seed(url: str, n: int) -> crypto.PadKeys:
    store = open_store(url)
    await store.open()
    try:
        keys = crypto.PadKeys.generate()
        author = crypto.Author.generate("seeder")
        base = max(0, n - TAIL)
        seeded = await seed_pad(store, base, keys=keys, author=author, content=content)
        if base:
            x = seeded.head
            doc = "x" * x.seq
            body = {"height": x.seq, "doc": doc, "h": hashlib.sha256(doc.encode()).hexdigest()}
            snap = crypto.seal(keys, author, Kind.SNAPSHOT, x.id, json.dumps(body).encode())
            await store.put_snapshot(keys.channel_id, x.id, envelope_id(snap), snap)
        await seed_pad(store, n - base, keys=keys, author=author, content=content)
        return keys
    finally:
        await store.close()


async def _open(url: str, keys: crypto.PadKeys, n: int, from_snapshot: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    session = await open_session(url, keys.view(), writer=False, from_snapshot=from_snapshot)
    elapsed = time.perf_counter() - t0
    ok = session.view == "x" * n and not session.alarms
    out = {
        "seconds": elapsed,
        "ok": ok,
        "patches_received": session.history_frames,
        "bytes_in": session.bytes_in,
        "alarms": session.alarms[:3],
    }
    await session.close()
    return out


def run(runs: int, quick: bool) -> Result:
    """Every size, both ways, ``runs`` times."""
    result = Result("open")
    rows = []
    for n in QUICK_SIZES if quick else SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
            url = f"sqlite:///{Path(tmp) / 'relay.sqlite3'}"
            t = time.perf_counter()
            keys = asyncio.run(_seed(url, n))
            seed_s = time.perf_counter() - t
            raw: dict[str, list[dict[str, Any]]] = {"snapshot": [], "full": []}
            with relay_process(url) as server:
                for _ in range(runs):
                    for how in ("snapshot", "full"):
                        got = asyncio.run(_open(server.ws_url, keys, n, how == "snapshot"))
                        if not got["ok"]:
                            raise BenchFailure(f"open {n} ({how}): wrong text {got['alarms']}")
                        raw[how].append(got)
        result.data[str(n)] = {"seed_s": seed_s, "runs": raw}
        for how in ("snapshot", "full"):
            r = raw[how]
            rows.append(
                [
                    n,
                    "latest snapshot + tail" if how == "snapshot" else "full history (since 0)",
                    summary([x["seconds"] * 1000 for x in r]),
                    r[0]["patches_received"],
                    summary([x["bytes_in"] for x in r]),
                ]
            )
    result.tables.append(
        table(
            "Opening a long pad: connect -> text, fresh engine (ms)",
            ["patches of history", "start", "ms to text", "patches received", "bytes received"],
            rows,
        )
    )
    return result

"""Scenario: scale-out, 1, 2 and 3 relay processes on PostgreSQL beside one SQLite relay.

The load is the throughput scenario's (bench/loadgen.mjs, real sealed patches,
``WINDOW`` pushes in flight per sender), with the receivers of each channel
spread round-robin over the relay processes and each channel's sender on
process ``channel % n``.  All relays of a run share one fresh schema of the
bench database (``BLINDPAD_BENCH_POSTGRES``, default the machine's
``postgresql://postgres@127.0.0.1:5432/test``; dropped afterwards) and the
default bus (PostgreSQL LISTEN/NOTIFY); ``pg-3-redis`` uses Redis
(``BLINDPAD_BENCH_REDIS``, default ``redis://127.0.0.1:6379/0``).

Reported: delivered messages/s, push -> ACK latency p50/p99, push -> delivery
at a receiver p50/p99, relay CPU µs per delivered message summed over the
processes and per process, and the PostgreSQL server's CPU µs per delivered
message (its processes read from /proc).  The whole machine has two cores:
more relay processes share them, so this measures what the hint bus and the
shared store cost per message, not a speed-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BenchFailure,
    Result,
    Server,
    cpu_seconds,
    relay_process,
    summary,
    table,
)
from bench.s_throughput import WINDOW, _blindpad_channel, _drive

POSTGRES = os.environ.get("BLINDPAD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("BLINDPAD_BENCH_REDIS", "redis://127.0.0.1:6379/0")
KINDS = {"sqlite-1": 1, "pg-1": 1, "pg-2": 2, "pg-3": 3, "pg-3-redis": 3}
SHAPES = {
    "1 sender -> 10 receivers": ((1, 11), 10_000, 2_000),
    "100 channels x 3 clients": ((100, 3), 100, 20),
}


def _postgres_cpu() -> float:
    """CPU seconds of every process named postgres (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


async def _sql(statement: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(POSTGRES)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def _relays(kind: str) -> Iterator[list[Server]]:
    n = KINDS[kind]
    if kind.startswith("sqlite"):
        with relay_process(None, extra=["--outgoing-queue-frames", "100000"]) as server:
            yield [server]
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}schema={schema}"
    extra = ["--outgoing-queue-frames", "100000"]
    if kind.endswith("redis"):
        extra += ["--bus", REDIS]
    try:
        with contextlib.ExitStack() as stack:
            yield [stack.enter_context(relay_process(store, extra=extra)) for _ in range(n)]
    finally:
        asyncio.run(_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def one(kind: str, shape: tuple[int, int], count: int) -> dict[str, Any]:
    """One run of ``kind`` on ``shape`` = (channels, clients per channel)."""
    channels, clients = shape
    with tempfile.TemporaryDirectory(prefix="bench-so-") as tmp, _relays(kind) as servers:
        folder = Path(tmp)
        urls = [server.ws_url for server in servers]
        chans = []
        for c in range(channels):
            sender = urls[c % len(urls)]
            rurls = [urls[(c + 1 + i) % len(urls)] for i in range(clients - 1)]
            chans.append(_blindpad_channel(sender, clients - 1, count, folder, c, rurls))
        spec = {"mode": "blindpad", "window": WINDOW, "timeout_s": 600, "channels": chans}
        pg0 = _postgres_cpu()
        got = _drive(servers, spec, folder)
        got["postgres_cpu_s"] = _postgres_cpu() - pg0 if kind.startswith("pg") else 0.0
        delivered = max(1, got["delivered"])
        got["node_us_per_msg"] = [cpu / delivered * 1e6 for cpu in got["node_cpu_s"]]
        got["postgres_us_per_msg"] = got["postgres_cpu_s"] / delivered * 1e6
        return got


def run(runs: int, quick: bool) -> Result:
    """Every shape and kind, ``runs`` times (interleaved)."""
    try:
        asyncio.run(_sql("SELECT 1"))
    except Exception as error:  # no PostgreSQL: say so, as a failure of this scenario
        raise BenchFailure(f"PostgreSQL at {POSTGRES} is needed: {error}") from error
    result = Result("scaleout")
    rows = []
    for name, (shape, full, small) in SHAPES.items():
        count = small if quick else full
        raw: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for _ in range(runs):
            for kind in KINDS:
                raw[kind].append(one(kind, shape, count))
        result.data[name] = {"messages_per_channel": count, "runs": raw}
        for kind in KINDS:
            r = raw[kind]
            per_node = [" / ".join(f"{us:.0f}" for us in x["node_us_per_msg"]) for x in r]
            rows.append(
                [
                    name,
                    kind,
                    summary([x["msgs_per_s"] for x in r]),
                    summary([x["ack_p50_ms"] for x in r]),
                    summary([x["ack_p99_ms"] for x in r]),
                    summary([x["delivery_p50_ms"] for x in r]),
                    summary([x["delivery_p99_ms"] for x in r]),
                    summary([x["cpu_us_per_msg"] for x in r]),
                    per_node[0],
                    summary([x["postgres_us_per_msg"] for x in r]),
                ]
            )
    result.tables.append(
        table(
            f"Scale-out (delivered messages/s; window {WINDOW} in flight per sender; receivers"
            " spread over the relay processes; one 2-core machine shared by all)",
            [
                "shape",
                "relays",
                "delivered msg/s",
                "ack p50 ms",
                "ack p99 ms",
                "delivery p50 ms",
                "delivery p99 ms",
                "relay CPU µs/msg (sum)",
                "per relay µs/msg (first run)",
                "PostgreSQL CPU µs/msg",
            ],
            rows,
        )
    )
    return result

"""Scenario 3: trace replay end to end, blindpad beside pycrdt-websocket and ChainPad.

blindpad: a real relay (SQLite, separate process) on loopback; client A (this
process: engine + crypto + websocket, pipeline 4) types the trace as fast as
it can, one local edit per trace patch, flushing and yielding to the event
loop after every txn; client B (another process, view keys) watches.  The
time is from A's first edit to B's text equalling the target.
pycrdt-websocket: its server and both clients in bench/.env's Python, one
transaction (one update) per txn.  ChainPad: bench/chainpad_harness.cjs, at
its default cadence and as fast as it can.  Quick mode types the first
``QUICK_TXNS`` txns of the two small traces.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import crypto
from bench.common import (
    BENCH,
    ENV_PY,
    ROOT,
    TRACE_NAMES,
    BenchFailure,
    Result,
    Server,
    free_port,
    load_trace,
    relay_process,
    self_cpu,
    stop_process,
    store_bytes_on_disk,
    summary,
    table,
    trace_path,
    wait_port,
)
from bench.session import open_session

QUICK_TXNS = 10_000
QUICK_TRACES = ["friendsforever_flat", "clownschool_flat"]
TIMEOUT = 900.0
#: A ChainPad run that has not converged by then is reported as "did not finish".
CHAINPAD_TIMEOUT = 300.0
#: Traces longer than this run once whatever --runs says (a full run stays in hours, not days).
ONE_RUN_ABOVE = 30_000
#: blindpad full-speed results by trace, for the storage scenario (same process).
CACHE: dict[str, list[dict[str, Any]]] = {}


def target_text(txns: list[dict[str, Any]]) -> str:
    """Replay txns from the empty text."""
    s = ""
    for txn in txns:
        for pos, delete, insert in txn["patches"]:
            s = s[:pos] + insert + s[pos + delete :]
    return s


def _metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


async def _type(url: str, keys: crypto.PadKeys, txns: list[dict[str, Any]]) -> dict[str, Any]:
    session = await open_session(url, keys, crypto.Author.generate("typist"), pipeline=4)
    c0 = self_cpu()
    t0 = time.monotonic()
    for txn in txns:
        for pos, delete, insert in txn["patches"]:
            session.edit([(pos, delete, insert)])
        await session.pump()
        await asyncio.sleep(0)
    typed = time.monotonic()
    await session.wait_saved(TIMEOUT)
    out = {
        "t0": t0,
        "typed_s": typed - t0,
        "saved_s": time.monotonic() - t0,
        "cpu_s": self_cpu() - c0,
        "bytes_in": session.bytes_in,
        "bytes_out": session.bytes_out,
        "pushes": session.pushes,
        "snapshots": session.snapshots_sent,
        "refusals": session.refusals,
        "alarms": session.alarms[:5],
        "seal_s": session.codec.seal_ns / 1e9,
        "view_ok": None,
    }
    out["view"] = session.view
    await session.close()
    return out


def blindpad_run(name: str, txns: list[dict[str, Any]], target: str) -> dict[str, Any]:
    """One end-to-end blindpad run."""
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as tmp:
        target_file = Path(tmp) / "target.txt"
        target_file.write_text(target, encoding="utf-8")
        keys = crypto.PadKeys.generate()
        with relay_process(keep_dir=Path(tmp)) as server:
            watcher = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.watch",
                    server.ws_url,
                    keys.edit_secret.hex(),
                    str(target_file),
                    str(TIMEOUT),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert watcher.stdout is not None
                if watcher.stdout.readline().strip() != "READY":
                    raise BenchFailure("blindpad watcher did not start")
                cpu0 = server.cpu()
                a = asyncio.run(_type(server.ws_url, keys, txns))
                b = json.loads(watcher.stdout.readline())
                relay_cpu = server.cpu() - cpu0
                stored = _metric(server, "blindpad_storage_bytes")
            finally:
                stop_process(watcher)
            disk_path = server.store_path
        disk = store_bytes_on_disk(disk_path)
    if not b["ok"] or a.pop("view") != target or a["alarms"]:
        raise BenchFailure(f"blindpad {name}: did not converge ({b}, {a['alarms']})")
    wall = b["t_end"] - a["t0"]
    n = len(txns)
    wire = a["bytes_in"] + a["bytes_out"] + b["bytes_in"] + b["bytes_out"]
    return {
        "edits_per_s": n / wall,
        "wall_s": wall,
        "bytes_per_edit": wire / n,
        "patches": a["pushes"],
        "snapshots": a["snapshots"],
        "relay_cpu_s": relay_cpu,
        "client_a_cpu_s": a["cpu_s"],
        "seal_s": a["seal_s"],
        "watcher_open_s": b["open_s"],
        "stored_bytes": stored,
        "disk_bytes": disk,
        "a": a,
        "b": b,
    }


def pycrdt_run(name: str, limit: int, target: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """One end-to-end pycrdt-websocket run (server and clients in bench/.env)."""
    path = trace_path(name)
    assert path is not None
    script = str(BENCH / "peer_pycrdt.py")
    port = free_port()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ycrdt-") as tmp:
        target_file = Path(tmp) / "target.txt"
        target_file.write_text(target, encoding="utf-8")
        try:
            server = subprocess.Popen(
                [str(ENV_PY), script, "serve", str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(server)
            wait_port(port, server)
            url = f"ws://127.0.0.1:{port}/bench"
            watcher = subprocess.Popen(
                [str(ENV_PY), script, "watch", url, str(target_file), str(timeout)],
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(watcher)
            typist = subprocess.Popen(
                [str(ENV_PY), script, "type", url, str(path), str(limit)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            procs.append(typist)
            assert watcher.stdout
            assert typist.stdout
            assert typist.stdin
            for proc in (watcher, typist):
                assert proc.stdout is not None
                if proc.stdout.readline().strip() != "READY":
                    raise BenchFailure("pycrdt client did not start")
            srv = Server(server, port)
            cpu0 = srv.cpu()
            typist.stdin.write("go\n")
            typist.stdin.flush()
            start = json.loads(typist.stdout.readline())
            b = json.loads(watcher.stdout.readline())
            relay_cpu = srv.cpu() - cpu0
            typist.stdin.write("stop\n")
            typist.stdin.flush()
            a = json.loads(typist.stdout.readline())
        finally:
            for proc in procs:
                if proc.stdin:
                    proc.stdin.close()
                stop_process(proc)
    if not b["ok"]:
        raise BenchFailure(f"pycrdt {name}: watcher did not reach the target ({b})")
    wall = b["t_end"] - start["t0"]
    wire = a["bytes_in"] + a["bytes_out"] + b["bytes_in"] + b["bytes_out"]
    return {
        "edits_per_s": limit / wall,
        "wall_s": wall,
        "bytes_per_edit": wire / limit,
        "patches": a["updates"],
        "relay_cpu_s": relay_cpu,
        "client_a_cpu_s": a["cpu_s"],
    }


def chainpad_run(name: str, limit: int, mode: str) -> dict[str, Any]:
    """One ChainPad run in node (in-process broadcast server)."""
    path = trace_path(name)
    assert path is not None
    proc = subprocess.run(
        [
            "node",
            str(BENCH / "chainpad_harness.cjs"),
            str(path),
            str(limit),
            mode,
            str(CHAINPAD_TIMEOUT),
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=CHAINPAD_TIMEOUT + 120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise BenchFailure(f"chainpad {name} {mode}: no result ({proc.stderr[-300:]})")
    got = json.loads(lines[-1])
    if not got["ok"]:
        raise BenchFailure(f"chainpad {name} {mode}: {got['why']}")
    return {
        "edits_per_s": limit / got["wall_s"],
        "wall_s": got["wall_s"],
        "bytes_per_edit": (got["bytes_up"] + got["bytes_down"]) / limit,
        "patches": got["messages"],
        "checkpoints": got["checkpoints"],
        "relay_cpu_s": None,
        "process_cpu_s": got["cpu_s"],
        "log_bytes": got["log_bytes"],
    }


PEERS = ["blindpad", "pycrdt-websocket", "chainpad (default cadence)", "chainpad (fast)"]


def run(runs: int, quick: bool) -> Result:
    """Every trace present, every peer, ``runs`` times."""
    result = Result("trace")
    rows = []
    names = QUICK_TRACES if quick else TRACE_NAMES
    for name in names:
        trace = load_trace(name)
        if trace is None:
            result.note(f"trace {name} is absent: skipped")
            continue
        txns = trace["txns"][:QUICK_TXNS] if quick else trace["txns"]
        target = target_text(txns)
        if not quick and target != trace["endContent"]:
            raise BenchFailure(f"{name}: replay does not give endContent")
        raw: dict[str, list[dict[str, Any]]] = {peer: [] for peer in PEERS}
        n_runs = runs if len(txns) <= ONE_RUN_ABOVE else 1
        if n_runs < runs:
            result.note(f"{name}: {len(txns)} txns, run once (not {runs} times)")
        for _ in range(n_runs):
            raw["blindpad"].append(blindpad_run(name, txns, target))
            peers: list[tuple[str, Callable[[], dict[str, Any]]]] = [
                ("pycrdt-websocket", partial(pycrdt_run, name, len(txns), target)),
                ("chainpad (default cadence)", partial(chainpad_run, name, len(txns), "default")),
                ("chainpad (fast)", partial(chainpad_run, name, len(txns), "fast")),
            ]
            for peer, fn in peers:
                try:
                    raw[peer].append(fn())
                except (BenchFailure, subprocess.TimeoutExpired) as error:
                    result.note(f"peer {peer} on {name} did not finish: {error}")
        CACHE[name] = raw["blindpad"]
        result.data[name] = {"txns": len(txns), "target_len": len(target), "runs": raw}
        base = summary([r["edits_per_s"] for r in raw["blindpad"]])["median"]
        for peer in PEERS:
            r = raw[peer]
            if not r:
                rows.append([name, peer, "did not finish", "", "", "", "", ""])
                continue
            eps = summary([x["edits_per_s"] for x in r])
            cpu = [x["relay_cpu_s"] for x in r if x.get("relay_cpu_s") is not None]
            rows.append(
                [
                    name,
                    peer,
                    eps,
                    base / eps["median"] if eps["median"] else "",
                    summary([x["bytes_per_edit"] for x in r]),
                    summary([x["patches"] for x in r]),
                    summary(cpu) if cpu else "in-process",
                    summary([x["wall_s"] for x in r]),
                ]
            )
    result.tables.append(
        table(
            "Trace replay end to end (A types as fast as it can, B watches; edits = trace txns)",
            [
                "trace",
                "peer",
                "edits/s until B shows the end text",
                "blindpad speed ÷ peer speed",
                "wire bytes per edit (both clients, both directions)",
                "patches / updates / messages sent",
                "server CPU s",
                "wall s",
            ],
            rows,
        )
    )
    return result

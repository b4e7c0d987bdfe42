"""Scenario 2: relay throughput and latency, beside the bare broadcast ceiling.

Both servers run as separate processes; the load generator is one node
process with ``ws`` clients (bench/loadgen.mjs).  For blindpad the sender
pushes real sealed patches (pre-sealed in a chain, each parented on the one
before, so every push is accepted in order) with up to ``WINDOW`` pushes in
flight; receivers are subscribed clients counting BROADCAST frames.  Two
ceilings (bench/ceiling_server.py): the bare broadcaster gets 200-byte
messages; the verifying one gets the same sealed patches as the relay
(``u32 index || envelope``) and checks each one's channel signature before
broadcasting it, the least a content-blind relay must do.  Reported: delivered messages per
second, p50/p99 ack and delivery latency, and the server's CPU seconds per
delivered message (from /proc).  A run that does not deliver everything, or
gets any REFUSE, is a failure.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import crypto
from bench.common import (
    BENCH,
    ROOT,
    BenchFailure,
    Result,
    Server,
    free_port,
    relay_process,
    stop_process,
    summary,
    table,
    wait_port,
)
from crypto.envelope import Kind, envelope_id
from wire import frames as f

WINDOW = 64
#: ceiling = the bare broadcaster; ceiling-verify = the same plus one Ed25519
#: verify per push (the relay's own check, on the relay's own envelopes);
#: blindpad = the relay as deployed (SQLite, synchronous=FULL); blindpad-memory =
#: the same relay on its in-memory store, to separate durability from the rest.
KINDS = ["ceiling", "ceiling-verify", "blindpad", "blindpad-memory"]
#: The ratios reported: (numerator, denominator).
RATIOS = [
    ("blindpad", "ceiling-verify"),
    ("blindpad", "ceiling"),
    ("blindpad-memory", "ceiling-verify"),
    ("ceiling-verify", "ceiling"),
]
PAYLOAD = 200


def _write_frames(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as out:
        for frame in frames:
            out.write(struct.pack(">I", len(frame)) + frame)


def _chain(count: int) -> tuple[crypto.PadKeys, list[bytes]]:
    """A pad's keys and ``count`` sealed one-keystroke patches, each on the one before."""
    keys = crypto.PadKeys.generate()
    author = crypto.Author.generate("load")
    parent = bytes(32)
    envelopes = []
    for i in range(count):
        content = json.dumps({"o": [[i, 0, "x"]], "n": i + 1}, separators=(",", ":")).encode()
        env = crypto.seal(keys, author, Kind.PATCH, parent, content)
        parent = envelope_id(env)
        envelopes.append(env)
    return keys, envelopes


def _blindpad_channel(
    url: str, receivers: int, count: int, folder: Path, n: int, rurls: Sequence[str] = ()
) -> dict[str, Any]:
    keys, envelopes = _chain(count)
    frames = [f.encode(f.Push(i + 1, env)) for i, env in enumerate(envelopes)]
    path = folder / f"ch{n}.bin"
    _write_frames(path, frames)
    hello = f.encode(f.Hello(f.PROTOCOL_VERSION, b"")).hex()
    start = f.SubscribeFrom.SINCE
    token = keys.read_token
    sub = f.encode(f.Subscribe(1_000_000, keys.channel_id, start, 0, keys.verify_key, token)).hex()
    return {
        "url": url,
        "receivers": receivers,
        "count": count,
        "setup": [hello, sub],
        "rsetup": [hello, sub],
        "payloads": str(path),
        "rurls": list(rurls) or [url],
    }


def _ceiling_channel(url: str, receivers: int, count: int, folder: Path, n: int) -> dict[str, Any]:
    frames = [struct.pack(">I", i) + bytes(PAYLOAD - 4) for i in range(count)]
    path = folder / f"ch{n}.bin"
    _write_frames(path, frames)
    return {"url": f"{url}/{n}", "receivers": receivers, "count": count, "payloads": str(path)}


def _verify_channel(url: str, receivers: int, count: int, folder: Path, n: int) -> dict[str, Any]:
    keys, envelopes = _chain(count)
    frames = [struct.pack(">I", i) + env for i, env in enumerate(envelopes)]
    path = folder / f"ch{n}.bin"
    _write_frames(path, frames)
    room = f"{url.removesuffix('/ws')}/wsv/{keys.verify_key.hex()}"
    return {"url": room, "receivers": receivers, "count": count, "payloads": str(path)}


def _drive(servers: Sequence[Server], spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Run the load generator on ``spec``; CPU is summed over ``servers`` (and kept per
    server in ``node_cpu_s``)."""
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        ["node", str(BENCH / "loadgen.mjs"), str(spec_path)],
        cwd=BENCH,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "READY":
            raise BenchFailure(f"load generator did not start: {line!r}")
        cpu0 = [server.cpu() for server in servers]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out = proc.stdout.readline()
        cpu1 = [server.cpu() for server in servers]
        proc.wait(30)
    finally:
        stop_process(proc)
    got: dict[str, Any] = json.loads(out)
    if "fatal" in got:
        raise BenchFailure(f"load generator failed: {got['fatal']}")
    got["node_cpu_s"] = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    got["server_cpu_s"] = sum(got["node_cpu_s"])
    got["msgs_per_s"] = got["delivered"] / (got["wall_ms"] / 1000) if got["wall_ms"] else 0.0
    got["cpu_us_per_msg"] = got["server_cpu_s"] / max(1, got["delivered"]) * 1e6
    if got["delivered"] != got["expected"] or got["errors"]:
        raise BenchFailure(
            f"delivered {got['delivered']}/{got['expected']}, errors {got['errors']}"
        )
    return got


def one(kind: str, shape: tuple[int, int], count: int) -> dict[str, Any]:
    """One run: ``shape`` = (channels, clients per channel), ``count`` messages per channel."""
    channels, clients = shape
    with tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp:
        folder = Path(tmp)
        if kind.startswith("blindpad"):
            store = "memory:" if kind == "blindpad-memory" else None
            extra = ["--outgoing-queue-frames", "100000"]
            with relay_process(store, extra=extra) as server:
                chans = [
                    _blindpad_channel(server.ws_url, clients - 1, count, folder, n)
                    for n in range(channels)
                ]
                spec = {"mode": "blindpad", "window": WINDOW, "timeout_s": 300, "channels": chans}
                return _drive([server], spec, folder)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling_server", str(port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(port, proc)
            server = Server(proc, port)
            url = f"ws://127.0.0.1:{port}/ws"
            build = _verify_channel if kind == "ceiling-verify" else _ceiling_channel
            chans = [build(url, clients - 1, count, folder, n) for n in range(channels)]
            spec = {"mode": "ceiling", "window": WINDOW, "timeout_s": 300, "channels": chans}
            return _drive([server], spec, folder)
        finally:
            stop_process(proc)


SHAPES = {
    "1 sender -> 10 receivers": ((1, 11), 20_000, 5_000),
    "1 channel x 50 clients (1 sender)": ((1, 50), 4_000, 1_000),
    "500 channels x 2 clients": ((500, 2), 100, 20),
}


def run(runs: int, quick: bool) -> Result:
    """Every shape, both servers, ``runs`` times (interleaved)."""
    result = Result("throughput")
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
                ]
            )
        for top, bottom in RATIOS:
            ratios = [
                b["msgs_per_s"] / c["msgs_per_s"]
                for b, c in zip(raw[top], raw[bottom], strict=True)
            ]
            result.data[name][f"ratio_{top}_over_{bottom}"] = summary(ratios)
            rows.append([name, f"ratio {top}/{bottom}", summary(ratios), "", "", "", "", ""])
    result.tables.append(
        table(
            f"Relay throughput (delivered messages/s; window {WINDOW} in flight; ceiling "
            f"payload {PAYLOAD} B; ceiling-verify and blindpad: real sealed one-keystroke"
            " patches ~300 B)",
            [
                "shape",
                "server",
                "delivered msg/s",
                "ack p50 ms",
                "ack p99 ms",
                "delivery p50 ms",
                "delivery p99 ms",
                "server CPU µs/delivered msg",
            ],
            rows,
        )
    )
    return result

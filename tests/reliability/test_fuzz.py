"""Live-relay protocol fuzz (issue 11, item 6): a relay *process* under mutated frames.

``sized("fuzz_frames", 100_000, 1_000_000)`` mutated frames (bit flips,
truncation, extension, a random type byte, random bytes, a random 4-byte
field) of every client frame type go out over many connections, in batches
each followed by a PING.  Throughout, a well-behaved client on another pad
must keep getting its pushes acknowledged.  The relay must never die, never
answer ERROR INTERNAL, never log a traceback; its RSS, sampled throughout,
stays under :func:`relay.limits.memory_ceiling` of its limits; its open
descriptors return to where they were; afterwards every stored patch still
verifies and the good client's plaintext is nowhere on disk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from relay_support import ROOT, TIMEOUT, Client, Pad, RelayHandle, limit_args, rss_bytes
from reliability_profile import sized
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crypto.envelope import Kind, envelope_id, verify_channel_signature
from relay.limits import MIB, Limits, memory_ceiling
from wire import frames as f
from wire.codes import ErrorCode, RefuseCode

FRAMES = sized("fuzz_frames", 100_000, 1_000_000)
BATCH = 1  # mutated frames per PING: each frame is answered before the next
CHECKPOINT = 2_000  # the good client must be acked at least once per this many frames
PUSHES_PER_CHECKPOINT = 5  # the good client pushes this many, then waits for the next
WORKERS = 10
MARKER = b"plaintext-marker-7f3a9c"
LIMITS = Limits(
    max_frame_bytes=64 * 1024,
    max_pad_bytes=1 * MIB,
    max_snapshot_bytes=1 * MIB,
    presubscribe_bytes=10**9,  # let fuzz connections run on before subscribing
    max_connections=64,
    max_upload_bytes=4 * MIB,
    rate_per_second=100_000,
    rate_burst=100_000,
)


def valid_frames(pad: Pad) -> list[bytes]:
    """One valid frame of every client type, as seeds for mutation."""
    patch, pid = pad.patch(f.ZERO_ID, b"fuzz")
    snap = pad.sealed(Kind.SNAPSHOT, pid)
    vk, token = pad.keys.verify_key, pad.keys.read_token
    return [
        f.encode(f.Subscribe(1, pad.channel_id, f.SubscribeFrom.SINCE, 0, vk, token)),
        f.encode(f.Subscribe(2, pad.channel_id, f.SubscribeFrom.SNAPSHOT, 0, f.ZERO_ID, token)),
        f.encode(f.Subscribe(9, pad.channel_id, f.SubscribeFrom.EARLIEST, 0, f.ZERO_ID, token)),
        f.encode(f.Dispute(10, pad.sealed(Kind.DISPUTE, envelope_id(snap)))),
        f.encode(f.Push(3, patch)),
        f.encode(f.SnapshotChunk(4, len(snap), 0, snap)),
        f.encode(f.Trim(5, 0, pad.sealed(Kind.TRIM, pid))),
        f.encode(f.Ephemeral(6, pad.ephemeral())),
        f.encode(f.Unsubscribe(7, pad.channel_id)),
        f.encode(f.Ping(8)),
        f.encode(f.Hello(f.PROTOCOL_VERSION, b"tok")),
    ]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """Bit flips, truncation, extension, a random type byte, or random bytes."""
    data = bytearray(frame)
    choice = rng.randrange(6)
    if choice == 0:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del data[rng.randrange(len(data)) :]
    elif choice == 2:
        data += rng.randbytes(rng.randint(1, 64))
    elif choice == 3:
        data[0] = rng.randrange(256)
    elif choice == 4:
        return rng.randbytes(rng.randint(0, 200))
    else:
        i = rng.randrange(1, len(data))
        data[i : i + 4] = rng.randbytes(4)
    return bytes(data)


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclasses.dataclass
class Tally:
    frames: int = 0
    connections: int = 0
    errors: dict[int, int] = dataclasses.field(default_factory=dict)


async def fuzz_connection(relay: RelayHandle, tally: Tally) -> ClientConnection:
    ws = await connect(relay.ws_url, max_size=None, open_timeout=TIMEOUT).__aenter__()
    await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION)))
    await ws.recv()
    tally.connections += 1
    return ws


async def send_and_sync(
    ws: ClientConnection, batch: list[bytes], nonce: int, tally: Tally
) -> bool:
    """Send ``batch`` then a PING; True if the connection survived (PONG seen)."""
    try:
        for data in batch:
            await ws.send(data)
        await ws.send(f.encode(f.Ping(nonce)))
        while True:
            frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(frame, f.Pong) and frame.nonce == nonce:
                return True
            if isinstance(frame, f.Error):
                tally.errors[frame.code] = tally.errors.get(frame.code, 0) + 1
                raise ConnectionClosed(None, None)
    except ConnectionClosed:
        await ws.close()
        return False


async def good_client(
    relay: RelayHandle, pad: Pad, acks: list[int], wanted: asyncio.Event, stop: asyncio.Event
) -> None:
    """Push a patch of another pad whenever the scenario asks for one.

    Pushes are paced by the fuzz's progress (a few per checkpoint), not by the
    clock: a clock-paced client fills its pad (PAD_TOO_LARGE) on a long run
    and then looks starved.  Only STALE (a fuzzed push moved the head) is
    rebased over; any other refusal fails the test with its code.
    """
    async with Client.connect(relay) as client:
        got = await client.subscribe(pad)
        end = got[-1]
        assert isinstance(end, f.HistoryEnd)
        parent = end.head_id
        while not stop.is_set():
            envelope, pid = pad.patch(parent, MARKER)
            answer = await client.push(envelope)
            if isinstance(answer, f.Refuse):
                assert answer.code == RefuseCode.STALE, f"good client refused: {answer}"
                parent = answer.head_id
                continue
            acks.append(answer.seq)
            parent = pid
            if len(acks) % PUSHES_PER_CHECKPOINT == 0:
                wanted.clear()
                await wait_either(wanted, stop)


async def wait_either(first: asyncio.Event, second: asyncio.Event) -> None:
    waits = [asyncio.create_task(first.wait()), asyncio.create_task(second.wait())]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


async def wait_for_more(acks: list[int], seen: int, good: asyncio.Task[None]) -> int:
    for _ in range(int(TIMEOUT * 100)):
        if good.done():
            good.result()  # raises what stopped the good client
            raise AssertionError("the well-behaved client returned early")
        if len(acks) > seen:
            return len(acks)
        await asyncio.sleep(0.01)
    raise AssertionError("the well-behaved client stopped getting acks (hang guard)")


@pytest.mark.timeout(max(1800, FRAMES // 50))  # a hang guard that grows with the frames
def test_fuzzed_frames_never_take_the_relay_down(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    fuzz_pad, good_pad = Pad(), Pad()
    seeds = valid_frames(fuzz_pad)
    db = tmp_path / "relay.sqlite3"
    log = tmp_path / "relay.log"
    with log.open("w") as err:
        command = [sys.executable, "-m", "relay", "--port", "0", "--store", f"sqlite:///{db}"]
        proc = subprocess.Popen(
            [*command, "--no-web", *limit_args(LIMITS)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, f"relay did not start: {line!r}, {log.read_text()}"
    handle = RelayHandle(line.split("listening on ")[1].split(" ")[0])
    pid = proc.pid
    ceiling = memory_ceiling(LIMITS)
    tally, peak = Tally(), 0

    async def worker(count: int, nonce: int) -> None:
        ws = await fuzz_connection(handle, tally)
        try:
            sent = 0
            while sent < count:
                batch = [mutate(rng, rng.choice(seeds)) for _ in range(min(BATCH, count - sent))]
                sent += len(batch)
                nonce += 1
                if not await send_and_sync(ws, batch, nonce, tally):
                    ws = await fuzz_connection(handle, tally)
                tally.frames += len(batch)
        finally:
            await ws.close()

    async def scenario() -> None:
        nonlocal peak
        acks: list[int] = []
        stop, wanted = asyncio.Event(), asyncio.Event()
        good = asyncio.create_task(good_client(handle, good_pad, acks, wanted, stop))
        seen = await wait_for_more(acks, 0, good)
        baseline_fds = open_fds(pid)
        share = FRAMES // WORKERS
        workers = [
            asyncio.create_task(worker(share + (i < FRAMES % WORKERS), i << 40))
            for i in range(WORKERS)
        ]
        mark = CHECKPOINT
        while not all(w.done() for w in workers):
            await asyncio.sleep(0.05)
            assert proc.poll() is None, "the relay died"
            peak = max(peak, rss_bytes(pid))
            if tally.frames >= mark:  # the good client is served throughout
                wanted.set()
                seen = await wait_for_more(acks, seen, good)
                mark += CHECKPOINT
        for w in workers:
            await w
        stop.set()
        await asyncio.wait_for(good, TIMEOUT)
        assert acks == sorted(acks)
        for _ in range(int(TIMEOUT * 20)):  # the relay closes the fuzzers' sockets
            if open_fds(pid) <= baseline_fds:
                break
            await asyncio.sleep(0.05)
        assert open_fds(pid) <= baseline_fds, "descriptors leaked"

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        proc.stdout.close()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    print(
        f"{tally.frames} frames over {tally.connections} connections; errors by code "
        f"{dict(sorted(tally.errors.items()))}; peak RSS {peak / MIB:.0f} MiB "
        f"(ceiling {ceiling / MIB:.0f} MiB)"
    )
    assert tally.frames == FRAMES
    assert tally.connections > WORKERS  # bad frames did close connections
    assert ErrorCode.INTERNAL not in tally.errors
    assert 0 < peak <= ceiling
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT envelope FROM patches").fetchall()
        keys = conn.execute("SELECT channel_id, verify_key FROM channels").fetchall()
    assert rows
    verify = {bytes(c): bytes(k) for c, k in keys}
    for (envelope,) in rows:
        channel = bytes(envelope)[2:34]
        verify_channel_signature(bytes(envelope), verify[channel])  # raises if forged
    assert MARKER not in db.read_bytes()

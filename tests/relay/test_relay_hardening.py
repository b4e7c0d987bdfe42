"""Hardening: every bad input gets a documented code, and the relay's limits fire.

Issue 11.  Each test names the attack it stands for; time is the relay's
injected clock (``RelayState.clock``) wherever a limit is about time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from relay_support import (
    ROOT,
    TIMEOUT,
    Client,
    Pad,
    RelayHandle,
    RelayProcess,
    closing_error,
    knock,
    running_relay,
    small_limits,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crypto.envelope import Kind, envelope_id
from relay.app import RelayConfig
from relay.cli import main as cli_main
from relay.hub import Outbox, Subscription
from relay.store import (
    AppendResult,
    HistoryRead,
    HistoryTrimmed,
    MemoryStore,
    NoSnapshot,
    SQLiteStore,
)
from relay.store.sqlite import FairQueue, _Op
from wire import frames as f
from wire.codes import ErrorCode, RefuseCode

ZERO = f.ZERO_ID


def sqlite_config(tmp_path: Path, **config: object) -> RelayConfig:
    """A relay on a SQLite file in ``tmp_path`` (where the i64 overflow lived)."""
    return RelayConfig(
        store_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}",
        web_dir=None,
        **config,  # type: ignore[arg-type]
    )


def run(config: RelayConfig, scenario: Callable[[RelayHandle], Awaitable[None]]) -> None:
    with running_relay(config) as relay:
        asyncio.run(scenario(relay))


def boundaries(bits: int) -> list[int]:
    """Boundary values of an unsigned field: 0, 1, around the sign bit, the top."""
    top = 2**bits
    values = {0, 1, 2, top // 2 - 1, top // 2, top // 2 + 1, top - 2, top - 1}
    if bits == 64:
        values |= {2**31, 2**32, 2**32 + 1}
    return sorted(values)


_BITS = {"B": 8, "H": 16, "I": 32, "Q": 64}


def int_fields(frame: f.Frame) -> list[tuple[str, int]]:
    """(name, bit width) of every fixed integer field of a client frame."""
    spec = f._SPECS[f.frame_type(frame)]
    codes = list(spec.fixed.format.lstrip(">").replace("32s", "s"))
    names = [fld.name for fld in dataclasses.fields(frame)]
    return [(names[i], _BITS[c]) for i, c in enumerate(codes) if c in _BITS]


def encode_raw(frame: f.Frame, name: str, value: int) -> bytes:
    """Encode ``frame`` with field ``name`` set to ``value`` (even an invalid enum value)."""
    kind = f.frame_type(frame)
    spec = f._SPECS[kind]
    values = [getattr(frame, fld.name) for fld in dataclasses.fields(frame)]
    names = [fld.name for fld in dataclasses.fields(frame)]
    values[names.index(name)] = value
    fixed = values[:-1] if spec.variable else values
    data = bytes((kind,)) + spec.fixed.pack(*fixed)
    if spec.variable:
        data += struct.pack(">I", len(values[-1])) + values[-1]
    return data


async def answer_to(ws: ClientConnection, data: bytes, nonce: int) -> f.Error | None:
    """Send ``data`` then PING; return the ERROR that ended the connection, or None."""
    try:
        await ws.send(data)
        await ws.send(f.encode(f.Ping(nonce)))
        while True:
            frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(frame, f.Error):
                return frame
            if isinstance(frame, f.Pong) and frame.nonce == nonce:
                return None
    except ConnectionClosed:
        return None


async def opened(relay: RelayHandle, pad: Pad | None) -> ClientConnection:
    """A connection past HELLO, subscribed to ``pad`` when one is given."""
    ws = await connect(relay.ws_url, max_size=None, open_timeout=TIMEOUT).__aenter__()
    await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION)))
    assert isinstance(f.decode(await ws.recv()), f.Welcome)
    if pad is not None:
        token = pad.keys.read_token
        subscribe = f.Subscribe(1, pad.channel_id, f.SubscribeFrom.SNAPSHOT, 0, ZERO, token)
        await ws.send(f.encode(subscribe))
        while not isinstance(f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT)), f.HistoryEnd):
            pass
    return ws


def test_boundary_integers_in_every_client_field_never_give_internal(tmp_path: Path) -> None:
    """u8/u16/u32/u64 boundaries in every field of every client frame: no INTERNAL.

    ``since`` >= 2**63 used to overflow SQLite's INTEGER and close with 4007.
    """
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            env, pid = pad.patch(ZERO, b"one")
            assert isinstance(await owner.push(env), f.Ack)
        patch, _ = pad.patch(pid, b"two")
        snap = pad.sealed(Kind.SNAPSHOT, pid)
        seeds: list[f.Frame] = [
            f.Hello(f.PROTOCOL_VERSION, b"tok"),
            f.Subscribe(
                7,
                pad.channel_id,
                f.SubscribeFrom.SINCE,
                0,
                pad.keys.verify_key,
                pad.keys.read_token,
            ),
            f.Unsubscribe(7, pad.channel_id),
            f.Push(7, patch),
            f.SnapshotChunk(7, len(snap), 0, snap),
            f.Trim(7, 0, pad.sealed(Kind.TRIM, pid)),
            f.Ephemeral(7, pad.ephemeral()),
            f.Ping(7),
            f.Dispute(7, pad.sealed(Kind.DISPUTE, envelope_id(snap))),
            f.ProofRequest(7, pad.channel_id, 0, 1),
            f.Session(7, pad.channel_id, pad.session2()[1]),
        ]
        assert {f.frame_type(s) for s in seeds} == {t for t in f.FrameType if t < 0x80}
        cases = 0
        for seed in seeds:
            for name, bits in int_fields(seed):
                for value in boundaries(bits):
                    subscribed = not isinstance(seed, f.Subscribe | f.Hello)
                    ws = await opened(relay, pad if subscribed else None)
                    try:
                        error = await answer_to(ws, encode_raw(seed, name, value), 1000 + cases)
                    finally:
                        await ws.close()
                    assert error is None or error.code != ErrorCode.INTERNAL, (seed, name, value)
                    cases += 1
        assert cases > 80

    run(sqlite_config(tmp_path, limits=small_limits()), scenario)


def test_subscribe_since_past_the_head_gets_nothing_newer(tmp_path: Path) -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as client:
            await client.subscribe(pad)
            env, pid = pad.patch(ZERO, b"one")
            assert isinstance(await client.push(env), f.Ack)
        for since in (2, 2**63 - 1, 2**63, 2**64 - 1):
            async with Client.connect(relay) as client:
                got = await client.subscribe(pad, since=since, key=ZERO)
                assert got == [f.HistoryEnd(got[-1].request_id, pad.channel_id, 1, pid)]  # type: ignore[union-attr]

    run(sqlite_config(tmp_path, limits=small_limits()), scenario)


def test_http_history_query_is_parsed_strictly(tmp_path: Path) -> None:
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as client:
            await client.subscribe(pad)
            assert isinstance(await client.push(pad.patch(ZERO, b"one")[0]), f.Ack)
        path = f"/v1/channels/{pad.channel_id.hex()}/history"
        async with httpx.AsyncClient(base_url=relay.url, headers=pad.read_headers()) as http:
            for query in ("since=9223372036854775808", "since=18446744073709551615", "since=5"):
                answer = await http.get(f"{path}?{query}")
                assert answer.status_code == 200, (query, answer.text)
                assert answer.content[0] == 0  # only the end record: nothing newer
            for query in (
                "from=x",
                "from=",
                "since=18446744073709551616",
                "since=-1",
                "since=+1",
                "since=1_0",
                "since=%201",
                "since=",
                "since=0&from=snapshot",
            ):
                answer = await http.get(f"{path}?{query}")
                assert answer.status_code == 400, (query, answer.text)
                assert answer.json()["code"] == "BAD_QUERY"
            assert (await http.get(f"{path}?from=snapshot")).status_code == 200
            assert (await http.get(path)).content[0] == 2  # since=0: the patch

    run(sqlite_config(tmp_path, limits=small_limits()), scenario)


def test_second_relay_on_one_sqlite_file_refuses_naming_the_first(tmp_path: Path) -> None:
    """Two relays on one file never saw each other's patches; the second now refuses."""
    store = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    first = RelayProcess("--store", store)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "relay", "--port", "0", "--store", store],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert second.returncode == 1
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.proc.pid} on host {socket.gethostname()}" in lines[0]
        assert "in use by another relay" in lines[0]
        # backup of the live relay still works (online backup API, no lock)
        copy = tmp_path / "copy.sqlite3"
        assert cli_main(["backup", str(copy), "--store", store]) == 0
        assert sqlite3.connect(copy).execute("PRAGMA user_version").fetchone()[0] >= 1
    finally:
        first.stop()
    # once the first is gone the file is free again (the kernel dropped the flock)
    again = RelayProcess("--store", store)
    again.stop()


def test_idle_connections_are_closed_by_the_injected_clock() -> None:
    """2,000 idle connections were kept forever; a silent one now gets IDLE_TIMEOUT."""
    now = [1000.0]
    config = RelayConfig(
        store_url="memory:", web_dir=None, limits=small_limits(idle_timeout_seconds=60)
    )

    async def scenario(relay: RelayHandle) -> None:
        idle = await opened(relay, None)
        talker = await opened(relay, None)
        trigger = await opened(relay, None)
        now[0] += 40
        assert await answer_to(talker, f.encode(f.Ping(1)), 2) is None  # a PING counts
        now[0] += 21  # idle and trigger: 61 s silent; talker: 21 s
        assert await answer_to(talker, f.encode(f.Ping(3)), 4) is None
        error, close = await closing_error(idle)
        assert (error.code, close) == (ErrorCode.IDLE_TIMEOUT, 4011)
        error, _ = await closing_error(trigger)
        assert error.code == ErrorCode.IDLE_TIMEOUT
        assert await answer_to(talker, f.encode(f.Ping(5)), 6) is None
        await talker.close()

    with running_relay(config, clock=lambda: now[0]) as relay:
        asyncio.run(scenario(relay))


def test_connection_caps_total_and_per_address_with_trusted_proxies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Caps fire with TOO_MANY_CONNECTIONS; X-Forwarded-For only from a trusted proxy."""
    limits = small_limits(max_connections=3, max_connections_per_address=1)

    async def trusted(relay: RelayHandle) -> None:
        held = []
        for forwarded in ("10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.4"):
            held.append(await knock(relay, f"203.0.113.9, {forwarded}"))
        kinds = [isinstance(h, f.Error) for h in held]
        assert kinds == [False, False, True, False, True]
        for h in held:
            if isinstance(h, f.Error):
                assert h.code == ErrorCode.TOO_MANY_CONNECTIONS
            else:
                await h.close()

    async def untrusted(relay: RelayHandle) -> None:
        first = await knock(relay, "10.0.0.1")
        second = await knock(relay, "10.0.0.2")  # both key on 127.0.0.1
        assert isinstance(second, f.Error)
        assert second.code == ErrorCode.TOO_MANY_CONNECTIONS
        assert not isinstance(first, f.Error)
        await first.close()

    proxied = RelayConfig(
        store_url="memory:", web_dir=None, limits=limits, trusted_proxies=frozenset({"127.0.0.1"})
    )
    with running_relay(proxied) as relay:
        asyncio.run(trusted(relay))
    plain = RelayConfig(store_url="memory:", web_dir=None, limits=limits)
    with caplog.at_level(logging.WARNING, logger="blindpad.relay"), running_relay(plain) as relay:
        asyncio.run(untrusted(relay))
    assert any(
        "key on 127.0.0.1" in r.getMessage() and "--trusted-proxies" in r.getMessage()
        for r in caplog.records
    )


def test_outgoing_queue_is_bounded_in_bytes() -> None:
    """One slow reader pinned ~256 MiB in 4096 frames; the queue now counts bytes too."""

    async def main() -> None:
        box = Outbox(max_frames=1000, max_bytes=1000)
        box.offer(b"a" * 600)
        box.offer(b"b" * 400)  # exactly at the bound
        assert (len(box), box.bytes, box.failure) == (2, 1000, None)
        put = asyncio.create_task(box.put(b"c" * 10))  # own traffic waits for room
        await asyncio.sleep(0)
        assert not put.done()
        assert await box.next() == b"a" * 600
        await put
        assert box.bytes == 410
        box.offer(b"d" * 591)  # a broadcast past the bound fails the connection
        assert box.failure is not None
        assert box.failure.code == ErrorCode.SLOW_CONSUMER
        lone = Outbox(max_frames=10, max_bytes=100)
        lone.offer(b"x" * 500)  # one frame always fits an empty queue
        assert lone.failure is None

    asyncio.run(main())


def test_snapshot_uploads_time_out_and_share_a_relay_wide_cap() -> None:
    """An unfinished upload pinned memory forever: now SLOW_UPLOAD and max_upload_bytes."""
    now = [0.0]
    limits = small_limits(
        max_frame_bytes=8192, upload_timeout_seconds=300, max_upload_bytes=10_000
    )
    config = RelayConfig(store_url="memory:", web_dir=None, limits=limits)
    pad = Pad()

    async def chunk(ws: ClientConnection, rid: int, total: int) -> f.Frame:
        await ws.send(f.encode(f.SnapshotChunk(rid, total, 0, b"s" * 100)))
        await ws.send(f.encode(f.Ping(rid)))
        while True:
            frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(frame, f.Refuse | f.Pong | f.Error):
                return frame

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
        first, second = await opened(relay, pad), await opened(relay, pad)
        assert isinstance(await chunk(first, 1, 6000), f.Pong)
        refused = await chunk(second, 2, 6000)  # 12,000 held > 10,000
        assert isinstance(refused, f.Refuse)
        assert (refused.code, refused.retry_after_ms) == (RefuseCode.RATE_LIMITED, 1000)
        now[0] += 301
        assert isinstance(await chunk(second, 3, 3000), f.Pong)  # the sweep runs first
        error, close = await closing_error(first)
        assert (error.code, close) == (ErrorCode.SLOW_UPLOAD, 4012)
        for _ in range(200):  # the first connection's bytes are released on close
            answer = await chunk(second, 4, 6000)
            if isinstance(answer, f.Pong):
                break
            await asyncio.sleep(0.05)
        assert isinstance(answer, f.Pong), answer
        await second.close()

    with running_relay(config, clock=lambda: now[0]) as relay:
        asyncio.run(scenario(relay))


class _GatedStore(MemoryStore):
    """A memory store whose history reads wait for a gate; the head never reads history."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.reads = 0
        self.gating = False

    async def read_since(
        self, channel_id: bytes, since_seq: int, max_bytes: int | None = None
    ) -> HistoryRead:
        self.reads += 1
        if self.gating:
            self.entered.set()
            await asyncio.to_thread(self.gate.wait, TIMEOUT)
        return await super().read_since(channel_id, since_seq, max_bytes)

    async def read_from_snapshot(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        self.reads += 1
        return await super().read_from_snapshot(channel_id, max_bytes)


def test_head_reads_no_history_and_heavy_reads_are_capped() -> None:
    """GET head read the whole pad; concurrent history reads were unbounded."""
    store = _GatedStore()
    config = RelayConfig(
        store_url="memory:", web_dir=None, limits=small_limits(max_history_reads=1)
    )
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            env, pid = pad.patch(ZERO, b"one")
            assert isinstance(await owner.push(env), f.Ack)
        base = f"/v1/channels/{pad.channel_id.hex()}"
        headers = pad.read_headers()
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT, headers=headers) as http:
            reads = store.reads
            head = await http.get(f"{base}/head")
            assert head.json() == {
                "channel": pad.channel_id.hex(),
                "seq": 1,
                "id": pid.hex(),
                "floor": 0,
            }
            assert store.reads == reads  # no history read for the head
            store.gating = True
            slow = asyncio.create_task(http.get(f"{base}/history?since=0"))
            await asyncio.to_thread(store.entered.wait, TIMEOUT)
            busy = await http.get(f"{base}/history?since=0")
            assert busy.status_code == 503
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["code"] == "BUSY"
            store.gate.set()
            assert (await slow).status_code == 200
            assert (await http.get(f"{base}/history?since=0")).status_code == 200

    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


def test_pad_creation_is_rate_limited_per_address() -> None:
    """One connection created 1,608 pads in 20 s; now CREATE_RATE_LIMITED per address."""
    now = [0.0]
    limits = small_limits(create_burst=3, create_per_minute=2)
    config = RelayConfig(store_url="memory:", web_dir=None, limits=limits)

    async def scenario(relay: RelayHandle) -> None:
        pads = [Pad() for _ in range(5)]
        async with Client.connect(relay) as c:
            for pad in pads[:3]:
                assert isinstance((await c.subscribe(pad))[-1], f.HistoryEnd)
            refused = (await c.subscribe(pads[3]))[-1]
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.CREATE_RATE_LIMITED
            assert refused.retry_after_ms == 30_000  # one token per 30 s
        async with Client.connect(relay) as other:  # the budget is the address's
            refused = (await other.subscribe(pads[3]))[-1]
            assert isinstance(refused, f.Refuse)
            assert refused.code == RefuseCode.CREATE_RATE_LIMITED
            # opening an existing pad creates nothing and is not limited
            assert isinstance((await other.subscribe(pads[0], key=ZERO))[-1], f.HistoryEnd)
            now[0] += 30
            assert isinstance((await other.subscribe(pads[3]))[-1], f.HistoryEnd)

    with running_relay(config, clock=lambda: now[0]) as relay:
        asyncio.run(scenario(relay))


def test_empty_pads_count_and_new_pads_leave_room_for_existing_ones() -> None:
    """A 5 MB relay was filled with empty pads in 10 s and a victim's edit failed."""
    limits = small_limits(
        max_storage_bytes=10_000, channel_overhead_bytes=1000, new_pad_storage_percent=90
    )
    config = RelayConfig(store_url="memory:", web_dir=None, limits=limits)

    async def scenario(relay: RelayHandle) -> None:
        victim = Pad()
        async with Client.connect(relay) as v:
            assert isinstance((await v.subscribe(victim))[-1], f.HistoryEnd)
            async with Client.connect(relay) as attacker:
                created = 0
                while True:
                    answer = (await attacker.subscribe(Pad()))[-1]
                    if isinstance(answer, f.Refuse):
                        break
                    created += 1
                    if created >= 64:  # one channel per subscription limit is far off
                        break
                assert isinstance(answer, f.Refuse)
                assert answer.code == RefuseCode.STORAGE_FULL
                assert created == 8  # 9 pads x 1000 bytes reach 90 % of 10,000
            parent = ZERO
            for _ in range(2):  # the victim still writes into the reserved 10 %
                env, pid = victim.patch(parent, b"v" * 100)
                assert isinstance(await v.push(env), f.Ack)
                parent = pid

    with running_relay(config) as relay:
        asyncio.run(scenario(relay))


def test_commit_batches_round_robin_across_channels_and_are_bounded_in_bytes(
    tmp_path: Path,
) -> None:
    """60 KB patches of one pad made another pad's acks wait 3.4-6 s behind them.

    The writer is held while one pad queues 40 appends of 60 KB and another pad
    queues one small append; the very next batch holds the small one, and no
    batch holds more than ``batch_max_bytes`` (one write always fits).
    """
    heavy, light = b"H" * 32, b"L" * 32
    batches: list[list[bytes | None]] = []
    gate = threading.Event()

    async def main() -> None:
        store = SQLiteStore(str(tmp_path / "fair.sqlite3"), batch_max_bytes=256 * 1024)
        await store.open()
        try:
            await store.create_channel(heavy, b"k" * 32, b"r" * 32)
            await store.create_channel(light, b"k" * 32, b"r" * 32)
            store.observe_batches(batches.append)
            held = asyncio.create_task(store._submit(lambda c: gate.wait(TIMEOUT), write=True))
            while not batches:  # the writer is inside the gate's batch
                await asyncio.sleep(0.01)
            parent, appends = ZERO, []
            for i in range(40):
                pid = bytes([i + 1]) * 32
                appends.append(store.append(heavy, pid, parent, b"x" * 60_000))
                parent = pid
            tasks = [asyncio.ensure_future(a) for a in appends]
            small = asyncio.ensure_future(store.append(light, b"s" * 32, ZERO, b"tiny"))
            await asyncio.sleep(0)  # each task puts its operation on its first step
            gate.set()
            await held
            results = await asyncio.gather(*tasks)
            assert [r.seq for r in results] == list(range(1, 41))  # one lane keeps its order
            assert (await small).seq == 1
        finally:
            await store.close()

    asyncio.run(main())
    after_gate = batches[1:]
    assert light in after_gate[0]  # the very next batch
    assert after_gate[0].index(light) <= 1  # round-robin: among the first two
    for batch in after_gate:
        assert batch.count(heavy) <= 4  # 4 x 60,000 <= 256 KiB < 5 x 60,000
    assert sum(b.count(heavy) for b in after_gate) == 40


def test_fair_queue_serves_lanes_least_recently_served_first() -> None:
    loop = asyncio.new_event_loop()
    try:

        def op(channel: bytes, size: int) -> _Op:
            return _Op(lambda c: None, True, loop.create_future(), loop, channel, size)

        queue = FairQueue()
        for _ in range(3):
            queue.add(op(b"a", 10))
        queue.add(op(b"b", 10))
        queue.add(op(b"c", 100))
        first = queue.take(max_ops=10, max_bytes=25)
        assert [o.channel for o in first] == [b"a", b"b"]
        second = queue.take(max_ops=10, max_bytes=25)
        assert [o.channel for o in second] == [b"c"]  # one write always fits
        assert [o.channel for o in queue.take(max_ops=10, max_bytes=25)] == [b"a", b"a"]
        assert queue.take(max_ops=10, max_bytes=25) == []
    finally:
        loop.close()


class _HeldAppends(MemoryStore):
    """A memory store whose appends wait for a gate once ``holding`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.gate = threading.Event()
        self.entered = 0
        self.order = asyncio.Lock()

    async def append(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> AppendResult:
        if not self.holding:
            return await super().append(channel_id, patch_id, parent_id, envelope)
        self.entered += 1
        async with self.order:  # FIFO: held appends still reach the store in order
            await asyncio.to_thread(self.gate.wait, TIMEOUT)
            return await super().append(channel_id, patch_id, parent_id, envelope)


def test_unanswered_pushes_are_bounded_in_bytes_per_connection() -> None:
    """256 pipelined 64 KiB pushes pinned 16 MiB per connection; now push_bytes_in_flight."""
    store = _HeldAppends()
    limits = small_limits(push_bytes_in_flight=5000, max_patch_bytes=4096)
    config = RelayConfig(store_url="memory:", web_dir=None, limits=limits)
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as c:
            await c.subscribe(pad)
            store.holding = True
            parent, rids = ZERO, []
            for i in range(4):  # ~2.3 KB each: two fit in 5000 bytes, the third waits
                env, parent = pad.patch(parent, bytes([65 + i]) * 2000)
                rids.append(c.request_id())
                await c.send(f.Push(rids[-1], env))
            await c.send(f.Ping(77))
            for _ in range(200):
                if store.entered >= 2:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # give a third append the chance to (wrongly) start
            assert store.entered == 2
            store.gate.set()
            for rid in rids:
                assert isinstance(await c.answer(rid), f.Ack)
            assert store.entered == 4

    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


def test_offers_held_while_catching_up_share_the_outgoing_byte_budget() -> None:
    """A subscription catching up held up to 4096 live patches of any size."""

    async def main() -> None:
        box = Outbox(max_frames=1000, max_bytes=1000)
        sub = Subscription(b"c" * 32, 1, box, max_pending=1000)
        sub.offer(5, b"x" * 600)  # held: seq 5 waits for the history read
        assert (box.held, box.failure) == (600, None)
        other = Subscription(b"d" * 32, 1, box, max_pending=1000)
        other.offer(9, b"y" * 300)
        other.close()  # an unsubscribe gives its held bytes back
        assert box.held == 600
        sub.offer(6, b"z" * 401)  # 1001 > 1000 bytes
        assert box.failure is not None
        assert box.failure.code == ErrorCode.SLOW_CONSUMER
        fresh = Outbox(max_frames=1000, max_bytes=1000)
        live = Subscription(b"e" * 32, 2, fresh, max_pending=1000)
        live.offer(3, b"a" * 600)
        live.go_live(3)  # delivered: held bytes move to the queue
        assert (fresh.held, fresh.bytes, fresh.failure) == (0, 600, None)

    asyncio.run(main())


def test_the_memory_ceiling_is_the_documented_formula() -> None:
    from relay.corked import FLUSH_BYTES
    from relay.limits import GIB, KIB, MIB, WRITE_BUFFER_BYTES, Limits, memory_ceiling

    # a snapshot chunk read and encoded, a page and its last patch; a live snapshot's chunk
    subscribe_read = 2 * 256 * KIB + 256 * KIB + 64 * KIB + 2 * 256 * KIB
    # a loop turn's corked writes, then the transport's buffer up to its high-water mark
    assert WRITE_BUFFER_BYTES == FLUSH_BYTES + 64 * KIB
    # unanswered pushes, held twice while the signature helper has them (+ key, length)
    pushes = 2 * 1 * MIB + 256 * 36
    per_connection = 2 * MIB + 256 * KIB + 128 * KIB + pushes + 320 * KIB + subscribe_read
    assert 6 * MIB < per_connection < 6.01 * MIB  # "6.0 MiB" in PROTOCOL.md §5.3
    http_read = 2 * (256 * KIB + 64 * KIB)  # a page held twice
    expected = 64 * MIB + 1024 * per_connection + 64 * MIB + 4 * http_read
    assert memory_ceiling(Limits()) == expected
    assert 6.1 * GIB < expected < 6.15 * GIB  # "≈ 6.1 GiB" in PROTOCOL.md §5.3
    smaller = Limits(max_connections=16)
    assert memory_ceiling(smaller) < memory_ceiling(Limits())
    # reads are streamed: neither a pad's nor a snapshot's size is a term
    assert memory_ceiling(Limits(max_pad_bytes=1 * MIB, max_snapshot_bytes=1 * MIB)) == expected


class _PagedStore(MemoryStore):
    """A memory store that records the bytes of every history read."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[int] = []
        self.trimmed_after: int | None = None  # pretend a trim passed this seq
        self.trims_left: int | None = None  # ... this many times (None: always)

    async def read_since(
        self, channel_id: bytes, since_seq: int, max_bytes: int | None = None
    ) -> HistoryRead:
        if self.trimmed_after is not None and since_seq < self.trimmed_after:
            floor = self.trimmed_after
            if self.trims_left is not None:
                self.trims_left -= 1
                if self.trims_left <= 0:
                    self.trimmed_after = None
            raise HistoryTrimmed(floor)
        read = await super().read_since(channel_id, since_seq, max_bytes)
        self.pages.append(sum(len(p.envelope) for p in read.patches))
        return read


def test_a_subscription_reads_its_history_a_page_at_a_time() -> None:
    """The SUBSCRIBE history read was held whole while sent (PROTOCOL.md §5.3, S)."""
    from relay.limits import HISTORY_PAGE_BYTES

    store = _PagedStore()
    config = RelayConfig(store_url="memory:", web_dir=None)
    pad = Pad()
    body = b"p" * 60_000

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            parent = ZERO
            for _ in range(40):  # ~2.4 MB of history
                env, parent = pad.patch(parent, body)
                assert isinstance(await owner.push(env), f.Ack)
        store.pages.clear()
        async with Client.connect(relay) as reader:
            got = await reader.subscribe(pad, key=ZERO)
        history = [frame.seq for frame in got if isinstance(frame, f.History)]
        assert history == list(range(1, 41))  # every patch, in order, once
        assert isinstance(got[-1], f.HistoryEnd)
        assert got[-1].head_seq == 40
        assert len(store.pages) >= 8
        assert max(store.pages) < HISTORY_PAGE_BYTES + 65_536  # a page and its last patch
        store.trimmed_after = 30  # a trim lands while the second page is due
        async with Client.connect(relay) as reader:
            token = pad.keys.read_token
            await reader.send(
                f.Subscribe(1, pad.channel_id, f.SubscribeFrom.SNAPSHOT, 0, ZERO, token)
            )
            frame = await reader.recv()
            while isinstance(frame, f.History):
                frame = await reader.recv()
            assert isinstance(frame, f.Error), frame
            assert frame.code == ErrorCode.SLOW_CONSUMER
            assert "history trimmed while it was sent; resume since seq" in frame.message

    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


def test_http_history_is_streamed_a_page_at_a_time_and_a_trim_cuts_it() -> None:
    """The HTTP history body was built whole in memory (R x 2 x max_pad_bytes)."""
    from client.commands import _http
    from crypto import PadLink
    from relay.limits import HISTORY_PAGE_BYTES
    from wire.history import HistoryCut, parse_history

    store = _PagedStore()
    config = RelayConfig(store_url="memory:", web_dir=None)
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            parent = ZERO
            for _ in range(40):  # ~2.4 MB of history
                env, parent = pad.patch(parent, b"p" * 60_000)
                assert isinstance(await owner.push(env), f.Ack)
        store.pages.clear()
        url = f"/v1/channels/{pad.channel_id.hex()}/history?since=0"
        headers = pad.read_headers()
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT, headers=headers) as http:
            body = parse_history((await http.get(url)).content)
            assert [seq for seq, _ in body.patches] == list(range(1, 41))
            assert (body.head_seq, body.head_id) == (40, parent)
            assert len(store.pages) >= 8
            assert max(store.pages) < HISTORY_PAGE_BYTES + 65_536  # a page and its last patch
            store.trimmed_after = 30  # a trim lands while the second page is due
            cut = await http.get(url.replace("since=0", "from=snapshot"))
            assert cut.status_code == 200
            with pytest.raises(HistoryCut):
                parse_history(cut.content)
            store.trims_left = 1  # a one-shot reader reads a cut body again
            link = PadLink(relay.url.rstrip("/"), pad.keys)
            again = await asyncio.to_thread(_http.fetch, link, "from=snapshot", TIMEOUT)
            assert [seq for seq, _ in again.patches] == list(range(1, 41))
            assert store.trimmed_after is None  # the first read was cut
            # every read released its place: max_history_reads (4) more at once
            answers = await asyncio.gather(*(http.get(url) for _ in range(4)))
            assert [a.status_code for a in answers] == [200] * 4

    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


def test_one_shot_reads_wait_out_a_busy_relay_and_read_a_cut_body_again() -> None:
    """`blindpad cat` said "is it a blindpad relay?" to a 503 BUSY; a cut body is read again."""
    from client.commands import _http
    from crypto import PadLink

    store = _GatedStore()
    config = RelayConfig(
        store_url="memory:", web_dir=None, limits=small_limits(max_history_reads=1)
    )
    pad = Pad()

    async def write(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            env, _ = pad.patch(ZERO, b"one")
            assert isinstance(await owner.push(env), f.Ack)

    with running_relay(config, store=store) as relay:
        asyncio.run(write(relay))
        link = PadLink(relay.url.rstrip("/"), pad.keys)
        store.gating = True
        blocker = threading.Thread(
            target=lambda: httpx.get(
                f"{relay.url}v1/channels/{pad.channel_id.hex()}/history",
                headers=pad.read_headers(),
            )
        )
        blocker.start()
        assert store.entered.wait(TIMEOUT)
        waits: list[float] = []

        def sleep(seconds: float) -> None:  # the first answer was BUSY: let the other finish
            waits.append(seconds)
            store.gating = False
            store.gate.set()
            blocker.join(TIMEOUT)

        body = _http.fetch(link, "since=0", TIMEOUT, sleep=sleep)
        assert waits == [1.0]  # Retry-After: 1
        assert [seq for seq, _ in body.patches] == [1]
        store.gate.clear()
        store.gating = True
        store.entered.clear()
        blocker = threading.Thread(
            target=lambda: httpx.get(
                f"{relay.url}v1/channels/{pad.channel_id.hex()}/history",
                headers=pad.read_headers(),
            )
        )
        blocker.start()
        assert store.entered.wait(TIMEOUT)
        now = [0.0]
        with pytest.raises(_http.CommandError, match="stayed busy"):
            _http.fetch(
                link,
                "since=0",
                5,
                sleep=lambda s: now.__setitem__(0, now[0] + s),
                clock=lambda: now[0],
            )
        store.gate.set()
        blocker.join(TIMEOUT)


class _SnapshotPartsStore(MemoryStore):
    """A memory store that records every snapshot part read, and can lose the snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[int] = []
        self.vanish_after: int | None = None  # pretend a trim removed it after this many

    async def read_snapshot(
        self,
        channel_id: bytes,
        x_seq: int,
        offset: int,
        size: int,
        *,
        snapshot_id: bytes | None = None,
    ) -> bytes:
        if self.vanish_after is not None and len(self.parts) >= self.vanish_after:
            raise NoSnapshot(f"no snapshot of seq {x_seq}")
        part = await super().read_snapshot(
            channel_id, x_seq, offset, size, snapshot_id=snapshot_id
        )
        self.parts.append(len(part))
        return part


def test_a_snapshot_is_streamed_a_chunk_at_a_time_over_websocket_and_http() -> None:
    """A subscriber held its pad's whole snapshot while it was sent (term S, ~16 GiB)."""
    from wire.history import HistoryCut, parse_history

    store = _SnapshotPartsStore()
    config = RelayConfig(store_url="memory:", web_dir=None, limits=small_limits())
    step = config.limits.chunk_bytes
    pad = Pad()

    async def upload(c: Client, sealed: bytes) -> None:
        rid = c.request_id()
        for offset in range(0, len(sealed), step):
            await c.send(f.SnapshotChunk(rid, len(sealed), offset, sealed[offset : offset + step]))
        assert isinstance(await c.answer(rid), f.Ack)

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            env, pid = pad.patch(ZERO, b"one")
            assert isinstance(await owner.push(env), f.Ack)
            sealed = pad.sealed(Kind.SNAPSHOT, pid, os.urandom(1_500_000))
            await upload(owner, sealed)
        store.parts.clear()
        async with Client.connect(relay) as reader:
            got = await reader.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT, key=ZERO)
        chunks = [frame for frame in got if isinstance(frame, f.Snapshot)]
        assert b"".join(c.data for c in chunks) == sealed
        assert [c.offset for c in chunks] == list(range(0, len(sealed), step))
        assert {(c.x_seq, c.total) for c in chunks} == {(1, len(sealed))}
        assert isinstance(got[-1], f.HistoryEnd)
        assert store.parts == [len(c.data) for c in chunks]  # read a chunk at a time
        assert max(store.parts) <= step < len(sealed)
        url = f"/v1/channels/{pad.channel_id.hex()}/history?from=snapshot"
        headers = pad.read_headers()
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT, headers=headers) as http:
            store.parts.clear()
            body = parse_history((await http.get(url)).content)
            assert body.snapshot == (1, sealed)
            assert len(store.parts) > 1
            assert max(store.parts) < len(sealed)
            store.parts.clear()
            store.vanish_after = 2  # a trim removes the snapshot while it is sent
            with pytest.raises(HistoryCut):
                parse_history((await http.get(url)).content)
        store.parts.clear()
        async with Client.connect(relay) as reader:
            token = pad.keys.read_token
            await reader.send(
                f.Subscribe(1, pad.channel_id, f.SubscribeFrom.SNAPSHOT, 0, ZERO, token)
            )
            frame = await reader.recv()
            while isinstance(frame, f.Snapshot):
                frame = await reader.recv()
            assert isinstance(frame, f.Error), frame
            assert frame.code == ErrorCode.SLOW_CONSUMER
            assert "snapshot trimmed while it was sent; subscribe again" in frame.message

    with running_relay(config, store=store) as relay:
        asyncio.run(scenario(relay))


def test_a_stalled_history_reader_is_abandoned_and_frees_its_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A streamed history read holds one of max_history_reads: a reader that stops
    reading must not hold it forever (history_stall_seconds)."""
    from wire.history import HistoryCut, parse_history

    config = RelayConfig(
        store_url="memory:",
        web_dir=None,
        limits=small_limits(max_history_reads=1, history_stall_seconds=1),
    )
    pad = Pad()

    async def scenario(relay: RelayHandle) -> None:
        async with Client.connect(relay) as owner:
            await owner.subscribe(pad)
            parent = ZERO
            for _ in range(140):  # ~8.4 MB: more than the socket buffers between us
                env, parent = pad.patch(parent, b"p" * 60_000)
                assert isinstance(await owner.push(env), f.Ack)
        path = f"/v1/channels/{pad.channel_id.hex()}/history?since=0"
        port = int(relay.url.rstrip("/").rsplit(":", 1)[1])
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", port))
        auth = pad.read_headers()["Authorization"]
        stalled.sendall(
            f"GET {path} HTTP/1.1\r\nHost: relay\r\nAuthorization: {auth}\r\n\r\n".encode()
        )
        headers = pad.read_headers()
        async with httpx.AsyncClient(base_url=relay.url, timeout=TIMEOUT, headers=headers) as http:
            busy = await http.get(path)
            assert busy.status_code == 503  # the stalled reader holds the only place
            for _ in range(int(TIMEOUT * 10)):  # until the relay gives up on it
                answer = await http.get(path)
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert answer.status_code == 200, "the stalled reader kept its place (hang guard)"
            assert parse_history(answer.content).head_seq == 140
        received = b""
        stalled.settimeout(TIMEOUT)
        while chunk := stalled.recv(1 << 20):  # what it got ends early: a cut body
            received += chunk
        stalled.close()
        body = received.split(b"\r\n\r\n", 1)[1]
        assert len(body) < 140 * 60_000
        with pytest.raises(HistoryCut):
            parse_history(_dechunk(body))

    with caplog.at_level(logging.INFO, logger="blindpad.relay"), running_relay(config) as relay:
        asyncio.run(scenario(relay))
    assert any("response abandoned" in r.getMessage() for r in caplog.records)
    assert not any(r.exc_info for r in caplog.records)


def _dechunk(data: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body, as much of it as arrived."""
    out, at = b"", 0
    while at < len(data):
        end = data.find(b"\r\n", at)
        if end < 0:
            break
        size = int(data[at:end], 16)
        if size == 0:
            break
        out += data[end + 2 : end + 2 + size]
        at = end + 2 + size + 2
    return out

"""Fuzz: >= 10,000 mutated frames; the relay stays up, a good client keeps getting acks."""

from __future__ import annotations

import asyncio
import random

from relay_support import TIMEOUT, Client, Pad, RelayHandle, running_relay, small_limits
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from crypto.envelope import Kind
from relay.app import RelayConfig
from wire import frames as f

FRAMES = int(__import__("os").environ.get("FUZZ_FRAMES", "10000"))
CHECKPOINT = 1_000
WORKERS = 10


def valid_frames(pad: Pad) -> list[bytes]:
    """One valid frame of every client type, as seeds for mutation."""
    patch, pid = pad.patch(f.ZERO_ID, b"fuzz")
    snap = pad.sealed(Kind.SNAPSHOT, pid)
    return [
        f.encode(f.Subscribe(1, pad.channel_id, f.SubscribeFrom.SINCE, 0, pad.keys.verify_key)),
        f.encode(f.Subscribe(2, pad.channel_id, f.SubscribeFrom.SNAPSHOT, 0, f.ZERO_ID)),
        f.encode(f.Push(3, patch)),
        f.encode(f.SnapshotChunk(4, len(snap), 0, snap)),
        f.encode(f.Trim(5, pad.sealed(Kind.TRIM, pid))),
        f.encode(f.Ephemeral(6, pad.ephemeral())),
        f.encode(f.Unsubscribe(7, pad.channel_id)),
        f.encode(f.Ping(8)),
        f.encode(f.Hello(1, b"tok")),
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


async def fuzz_connection(relay: RelayHandle) -> ClientConnection:
    ws = await connect(relay.ws_url, max_size=None, open_timeout=TIMEOUT).__aenter__()
    await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION)))
    await ws.recv()
    return ws


async def send_and_sync(ws: ClientConnection, data: bytes, nonce: int) -> bool:
    """Send ``data`` then a PING; True if the connection survived (PONG seen)."""
    try:
        await ws.send(data)
        await ws.send(f.encode(f.Ping(nonce)))
        while True:
            frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            if isinstance(frame, f.Pong) and frame.nonce == nonce:
                return True
            if isinstance(frame, f.Error):
                raise ConnectionClosed(None, None)
    except ConnectionClosed:
        await ws.close()
        return False


async def good_client(relay: RelayHandle, pad: Pad, acks: list[int], stop: asyncio.Event) -> None:
    async with Client.connect(relay) as client:
        got = await client.subscribe(pad)
        end = got[-1]
        assert isinstance(end, f.HistoryEnd)
        parent = end.head_id
        while not stop.is_set():
            envelope, pid = pad.patch(parent, b"good")
            answer = await client.push(envelope)
            if isinstance(answer, f.Refuse):  # a fuzzed push moved the head: rebase
                parent = answer.head_id
                continue
            acks.append(answer.seq)
            parent = pid


async def wait_for_more(acks: list[int], seen: int) -> int:
    for _ in range(int(TIMEOUT * 100)):
        if len(acks) > seen:
            return len(acks)
        await asyncio.sleep(0.01)
    raise AssertionError("the well-behaved client stopped getting acks")


def test_fuzzed_frames_never_take_the_relay_down() -> None:
    rng = random.Random(20261121)
    pad = Pad()
    seeds = valid_frames(pad)
    limits = small_limits(max_frame_bytes=64 * 1024, presubscribe_bytes=10**9)

    async def worker(relay: RelayHandle, frames: list[bytes], done: list[int]) -> int:
        ws = await fuzz_connection(relay)
        reconnects = 0
        try:
            for n, data in enumerate(frames, 1):
                if not await send_and_sync(ws, data, n):
                    reconnects += 1
                    ws = await fuzz_connection(relay)
                done[0] += 1
        finally:
            await ws.close()
        return reconnects

    async def scenario(relay: RelayHandle) -> None:
        acks: list[int] = []
        stop = asyncio.Event()
        good = asyncio.create_task(good_client(relay, pad, acks, stop))
        mutated = [mutate(rng, rng.choice(seeds)) for _ in range(FRAMES)]
        done = [0]
        workers = [
            asyncio.create_task(worker(relay, mutated[i::WORKERS], done)) for i in range(WORKERS)
        ]
        seen, mark = 0, CHECKPOINT
        while not all(w.done() for w in workers):
            await asyncio.sleep(0.05)
            if done[0] >= mark:  # the good client must get acks throughout
                seen = await wait_for_more(acks, seen)
                mark += CHECKPOINT
        reconnects = sum([await w for w in workers])
        stop.set()
        await asyncio.wait_for(good, TIMEOUT)
        assert done[0] == FRAMES
        assert reconnects > 0
        assert acks == sorted(acks)

    with running_relay(RelayConfig(store_url="memory:", web_dir=None, limits=limits)) as relay:
        asyncio.run(scenario(relay))

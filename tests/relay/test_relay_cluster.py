"""Relays sharing one PostgreSQL store: what a client of one sees of the others.

Two relays (each its own uvicorn server, event loop and store connection pool,
as two processes would have) serve one fresh schema of the test database.
Protocol clients on each assert what crosses between them: patches in seq
order, ACKs for the pusher only, ephemerals, peer notices, STALE refusals
whose head then arrives, and delivery by polling the store when the bus is
down or absent.  Waits are for frames under the relay tests' hang guard; no
timing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from relay_support import TIMEOUT, Client, Pad, RelayHandle, running_relay, small_limits
from services import Proxy, fresh_postgres, postgres_url, redis_url

from crypto.envelope import Kind, envelope_id
from relay.app import RelayConfig
from relay.bus import default_name, postgres_topic
from wire import frames as f
from wire.codes import RefuseCode

ZERO = bytes(32)


@contextlib.contextmanager
def two_relays(
    bus: str | None, poll_seconds: float = 5.0, urls: list[str] | None = None
) -> Iterator[tuple[RelayHandle, ...]]:
    """Two relays on one fresh schema with the given bus (None: the default); the
    store URL is appended to ``urls`` if given."""
    with fresh_postgres() as url:
        if urls is not None:
            urls.append(url)
        config = RelayConfig(
            store_url=url, web_dir=None, limits=small_limits(), bus=bus, poll_seconds=poll_seconds
        )
        with running_relay(config) as one, running_relay(config) as two:
            yield one, two


@contextlib.asynccontextmanager
async def on(relay: RelayHandle, pad: Pad) -> AsyncIterator[Client]:
    """A client of ``relay`` subscribed to ``pad`` (history read)."""
    async with Client.connect(relay) as client:
        got = await client.subscribe(pad)
        assert isinstance(got[-1], f.HistoryEnd), got
        yield client


async def broadcasts(client: Client, n: int) -> list[f.Broadcast]:
    """The next ``n`` BROADCASTs (skipping peer notices and ephemerals)."""
    got: list[f.Broadcast] = []
    while len(got) < n:
        frame = await client.recv()
        if isinstance(frame, f.Broadcast):
            got.append(frame)
        else:
            assert isinstance(frame, f.PeerJoined | f.PeerLeft | f.EphemeralRelayed), frame
    return got


def metric(relay: RelayHandle, name: str) -> float:
    text = httpx.get(relay.url + "metrics", timeout=TIMEOUT).text
    found = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.MULTILINE)
    assert found, f"{name} not in the relay's metrics"
    return float(found.group(1))


@pytest.mark.parametrize("bus", ["postgres", "redis", "none"])
def test_patches_pushed_to_one_relay_reach_the_clients_of_the_other(bus: str) -> None:
    chosen = {"postgres": None, "redis": None, "none": "none"}[bus]
    if bus == "redis":
        chosen = redis_url()
    # With no bus only the poll brings the other relay's patches: make it quick.
    with two_relays(chosen, poll_seconds=0.2 if bus == "none" else 5.0) as (one, two):
        pad = Pad()

        async def main() -> None:
            async with on(one, pad) as a, on(two, pad) as b:
                assert a.welcome.connection_id >> 48 != b.welcome.connection_id >> 48
                parent, ids = ZERO, []
                for i in range(20):
                    envelope, pid = pad.patch(parent, b"p%d" % i)
                    ack = await a.push(envelope)
                    assert isinstance(ack, f.Ack), ack
                    assert ack.seq == i + 1
                    parent = pid
                    ids.append(pid)
                got = await broadcasts(b, 20)
                assert [frame.seq for frame in got] == list(range(1, 21))
                assert [envelope_id(frame.envelope) for frame in got] == ids
                # The other way round, on the head it learnt from the other relay.
                envelope, pid = pad.patch(parent, b"from b")
                ack = await b.push(envelope)
                assert isinstance(ack, f.Ack), ack
                assert ack.seq == 21
                (back,) = await broadcasts(a, 1)
                assert (back.seq, envelope_id(back.envelope)) == (21, pid)

        asyncio.run(main())


def test_a_stale_push_learns_its_head_from_the_other_relay() -> None:
    with two_relays(None) as (one, two):
        pad = Pad()

        async def main() -> None:
            async with on(one, pad) as a, on(two, pad) as b:
                first, first_id = pad.patch(ZERO, b"a")
                assert isinstance(await a.push(first), f.Ack)
                # b's push on genesis is refused with the head (b may or may not have
                # been offered that head yet)...
                racer, _ = pad.patch(ZERO, b"b")
                rid = b.request_id()
                await b.send(f.Push(rid, racer))
                refused: f.Refuse | None = None
                got: list[f.Broadcast] = []
                while refused is None or not got:
                    frame = await b.recv()
                    if isinstance(frame, f.Refuse) and frame.request_id == rid:
                        refused = frame
                    elif isinstance(frame, f.Broadcast):
                        got.append(frame)
                    else:
                        assert isinstance(frame, f.PeerJoined | f.PeerLeft), frame
                assert refused.head_id == first_id
                # ...and the head it names arrives, so the client can rebase.
                assert [(x.seq, envelope_id(x.envelope)) for x in got] == [(1, first_id)]

        asyncio.run(main())


def test_ephemerals_and_peer_notices_cross_relays() -> None:
    with two_relays(None) as (one, two):
        pad = Pad()

        async def main() -> None:
            async with on(one, pad) as a:
                async with on(two, pad) as b:
                    joined = await a.expect(f.PeerJoined)
                    assert joined.peer == b.welcome.connection_id
                    await b.send(f.Ephemeral(b.request_id(), pad.ephemeral(b"hello")))
                    relayed = await a.expect(f.EphemeralRelayed)
                    assert relayed.sender == b.welcome.connection_id
                left = await a.expect(f.PeerLeft)
                assert left.peer == b.welcome.connection_id

        asyncio.run(main())


async def _cut_the_bus(store_url: str) -> int:
    """Terminate the bus connections of this site's relays (and no other site's)."""
    schema = store_url.rsplit("schema=", 1)[1]
    conn = await asyncpg.connect(postgres_url())
    try:
        site = await conn.fetchval(f"SELECT value FROM {schema}.blindpad_meta WHERE key = 'site'")
        name = default_name(postgres_topic(site), 0, "")[: -len("-n0-")]
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
            name + "-n%",
        )
        return len(rows)
    finally:
        await conn.close()


def test_a_bus_outage_degrades_to_polling_and_recovers() -> None:
    urls: list[str] = []
    with two_relays(None, poll_seconds=3600, urls=urls) as (one, two):
        pad = Pad()

        async def main() -> None:
            async with on(one, pad) as a, on(two, pad) as b:
                assert metric(two, "blindpad_bus_up") == 1
                killed = await _cut_the_bus(urls[0])
                assert killed >= 2, "no bus listener connection was found to cut"
                parent = ZERO
                for i in range(5):
                    envelope, parent = pad.patch(parent, b"x%d" % i)
                    assert isinstance(await a.push(envelope), f.Ack)
                # Whether each hint was lost or the bus was already back, b gets all five
                # in order: polling (every 0.5 s while down, the 3600-s period is only for
                # an up bus) or hints after the reconnect.
                got = await broadcasts(b, 5)
                assert [frame.seq for frame in got] == [1, 2, 3, 4, 5]
                async with asyncio.timeout(TIMEOUT):
                    while metric(two, "blindpad_bus_up") != 1:
                        await asyncio.sleep(0.1)
                envelope, parent = pad.patch(parent, b"after")
                assert isinstance(await a.push(envelope), f.Ack)
                (last,) = await broadcasts(b, 1)
                assert last.seq == 6

        asyncio.run(main())


def test_a_redis_outage_is_served_by_polling_until_the_bus_is_back() -> None:
    """Relay two reaches Redis through a proxy the test cuts: while its bus is down
    (``blindpad_bus_up`` 0) the other relay's commits still reach its client in
    order, by polling the store; once the proxy forwards again, hints flow (the
    up-bus poll period is an hour, so only a hint can bring the last patch)."""
    real = redis_url()
    pad = Pad()

    async def main(url: str) -> None:
        async with Proxy(real) as proxy, contextlib.AsyncExitStack() as stack:
            proxied = f"redis://127.0.0.1:{proxy.port}/0"

            async def relay(bus: str) -> RelayHandle:
                config = RelayConfig(
                    store_url=url, web_dir=None, limits=small_limits(), bus=bus, poll_seconds=3600
                )
                return await asyncio.to_thread(stack.enter_context, running_relay(config))

            one, two = await relay(real), await relay(proxied)
            async with on(one, pad) as a, on(two, pad) as b:
                assert metric(two, "blindpad_bus_up") == 1
                proxy.set("refuse")
                proxy.cut()
                await until_metric(two, "blindpad_bus_up", 0)
                parent = ZERO
                for i in range(5):
                    envelope, parent = pad.patch(parent, b"x%d" % i)
                    assert isinstance(await a.push(envelope), f.Ack)
                got = await broadcasts(b, 5)
                assert [frame.seq for frame in got] == [1, 2, 3, 4, 5]
                assert metric(two, "blindpad_bus_up") == 0, "delivered by polling, bus down"
                assert metric(two, "blindpad_fill_reads") >= 1
                proxy.set("forward")
                await until_metric(two, "blindpad_bus_up", 1)
                envelope, parent = pad.patch(parent, b"after")
                assert isinstance(await a.push(envelope), f.Ack)
                (last,) = await broadcasts(b, 1)
                assert last.seq == 6

    with fresh_postgres() as url:
        asyncio.run(main(url))


async def until_metric(relay: RelayHandle, name: str, value: float) -> None:
    """Wait (under the hang guard) until the relay's metric ``name`` reads ``value``."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while metric(relay, name) != value:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{name} never became {value}") from None


async def live_snapshot(client: Client, total: int) -> list[f.Snapshot]:
    """The SNAPSHOT frames carrying ``total`` bytes (skipping BROADCASTs and notices)."""
    got: list[f.Snapshot] = []
    while sum(len(frame.data) for frame in got) < total:
        frame = await client.recv()
        if isinstance(frame, f.Snapshot):
            got.append(frame)
        else:
            assert isinstance(frame, f.Broadcast | f.PeerJoined | f.PeerLeft), frame
    return got


@pytest.mark.parametrize("bus", ["postgres", "redis"])
def test_a_snapshot_stored_on_one_relay_goes_live_to_the_clients_of_both(bus: str) -> None:
    """Alice (relay one) uploads a snapshot; Bob (relay two, told by a SnapshotStored
    hint, reading it from the shared store) and Carol (relay one) get it as LIVE chunks
    equal to the upload, Alice only her ACK.  Bob's dispute, stored through relay two,
    flags it for a joiner of relay one and stops a trim there."""
    chosen = None if bus == "postgres" else redis_url()
    with two_relays(chosen, poll_seconds=3600) as (one, two):  # the poll brings no snapshots
        pad = Pad()

        async def main() -> None:
            async with on(one, pad) as alice, on(two, pad) as bob, on(one, pad) as carol:
                assert metric(two, "blindpad_bus_up") == 1
                parent, ids = ZERO, []
                for i in range(2):
                    envelope, parent = pad.patch(parent, b"p%d" % i)
                    assert isinstance(await alice.push(envelope), f.Ack)
                    ids.append(parent)
                sealed = pad.sealed(Kind.SNAPSHOT, ids[1], bytes(range(256)) * 2000)
                step = alice.welcome.max_frame_bytes - 64
                rid = alice.request_id()
                for offset in range(0, len(sealed), step):
                    chunk = sealed[offset : offset + step]
                    await alice.send(f.SnapshotChunk(rid, len(sealed), offset, chunk))
                assert await alice.answer(rid) == f.Ack(rid, 2, envelope_id(sealed))
                for client in (bob, carol):
                    chunks = await live_snapshot(client, len(sealed))
                    assert b"".join(c.data for c in chunks) == sealed
                    assert len(chunks) > 1
                    assert {(c.x_seq, c.flags, c.total) for c in chunks} == {
                        (2, f.SNAPSHOT_LIVE, len(sealed))
                    }
                await alice.send(f.Ping(5))
                while not isinstance(frame := await alice.recv(), f.Pong):
                    assert isinstance(frame, f.PeerJoined | f.PeerLeft), frame
                dispute = pad.sealed(Kind.DISPUTE, envelope_id(sealed))
                rid = bob.request_id()
                await bob.send(f.Dispute(rid, dispute))
                assert await bob.answer(rid) == f.Ack(rid, 2, envelope_id(dispute))
                rid = alice.request_id()
                await alice.send(f.Trim(rid, 0, pad.sealed(Kind.TRIM, ids[1])))
                refused = await alice.answer(rid)
                assert isinstance(refused, f.Refuse)
                assert refused.code == RefuseCode.SNAPSHOT_DISPUTED
            async with Client.connect(one) as dave:
                got = await dave.subscribe(pad, start=f.SubscribeFrom.SNAPSHOT, key=ZERO)
                chunks = [g for g in got if isinstance(g, f.Snapshot)]
                assert b"".join(c.data for c in chunks) == sealed
                assert {c.flags for c in chunks} == {f.SNAPSHOT_DISPUTED}

        asyncio.run(main())


def test_the_read_token_holds_on_every_relay_of_a_site() -> None:
    """A pad created through relay one is closed to a stranger on relay two too."""
    with two_relays(None) as (one, two):
        pad = Pad()

        async def main() -> None:
            async with on(one, pad):
                async with Client.connect(two) as stranger:
                    got = await stranger.subscribe(pad, key=ZERO, read_token=ZERO)
                    assert got[-1] == f.Refuse(
                        got[-1].request_id,  # type: ignore[union-attr]
                        RefuseCode.NO_VERIFY_KEY,
                        0,
                        0,
                        ZERO,
                    )
                    got = await stranger.subscribe(pad, read_token=ZERO)  # with the key
                    assert isinstance(got[-1], f.Refuse)
                    assert got[-1].code == RefuseCode.UNKNOWN_CHANNEL
                async with Client.connect(two) as viewer:
                    got = await viewer.subscribe(pad, key=ZERO)
                    assert isinstance(got[-1], f.HistoryEnd)
            async with httpx.AsyncClient(base_url=two.url) as http:
                path = f"/v1/channels/{pad.channel_id.hex()}/head"
                assert (await http.get(path)).status_code == 404
                assert (await http.get(path, headers=pad.read_headers())).status_code == 200

        asyncio.run(main())

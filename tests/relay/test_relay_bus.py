"""The hint bus (relay.bus): its codec, and both network buses on the real services.

Each network test runs two buses, nodes 1 and 2, on a topic of its own (a
uuid), so parallel runs never hear each other, against the machine's
PostgreSQL or Redis (tests/services.py: skipped when absent, a failure under
CI=true).  Outages are made from outside: the listening connection is killed
by the server (pg_terminate_backend, CLIENT KILL), or a loopback proxy in
front of the service refuses connections or silently swallows every byte (a
partition, which only the liveness probe can notice).  Waits poll for a
condition under a generous guard and fail saying what did not happen; no
timing is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from services import Proxy, postgres_url, redis_url

from relay.bus import (
    HEADER_BYTES,
    MAX_REDIS_MESSAGE,
    NOTIFY_LIMIT,
    U64_MAX,
    BusError,
    BusMessage,
    Committed,
    NoBus,
    PeerNotice,
    PostgresBus,
    RedisBus,
    Relayed,
    SnapshotStored,
    _NetworkBus,
    decode,
    encode,
    open_bus,
    postgres_topic,
)

#: A hang guard, not a speed limit.
GUARD = 30.0
CH = bytes(range(32))
OTHER = b"\xff" * 32
Kind = Literal["postgres", "redis"]
NetworkBus = PostgresBus | RedisBus

channels = st.binary(min_size=32, max_size=32)
u64 = st.integers(min_value=0, max_value=U64_MAX)
nodes = st.integers(min_value=0, max_value=65535)
messages: st.SearchStrategy[BusMessage] = st.one_of(
    st.builds(Committed, channels, u64),
    st.builds(Relayed, channels, u64, st.binary(max_size=5000)),
    st.builds(PeerNotice, channels, u64, st.booleans()),
    st.builds(SnapshotStored, channels, u64),
)


# --- codec ----------------------------------------------------------------------------


@given(nodes, messages)
def test_every_message_survives_the_codec(node: int, message: BusMessage) -> None:
    assert decode(encode(node, message)) == (node, message)


@pytest.mark.parametrize(
    "message",
    [
        Committed(CH, 0),
        Committed(CH, U64_MAX),
        Relayed(CH, U64_MAX, b""),
        Relayed(OTHER, 1, bytes(range(256)) * 16),  # a 4-KiB frame
        PeerNotice(CH, U64_MAX, True),
        PeerNotice(CH, 0, False),
        SnapshotStored(CH, 0),
        SnapshotStored(OTHER, U64_MAX),
    ],
)
def test_edge_messages_survive_the_codec(message: BusMessage) -> None:
    for node in (0, 65535):
        data = encode(node, message)
        assert decode(data) == (node, message)
        assert decode(bytearray(data)) == (node, message)


def test_the_encoding_is_compact() -> None:
    assert len(encode(1, Committed(CH, 5))) == HEADER_BYTES + 8 == 43
    assert len(encode(1, PeerNotice(CH, 5, True))) == HEADER_BYTES + 9
    assert len(encode(1, Relayed(CH, 5, b"abc"))) == HEADER_BYTES + 8 + 3
    assert len(encode(1, SnapshotStored(CH, 5))) == HEADER_BYTES + 8


@given(st.binary(max_size=80))
def test_garbage_decodes_to_a_message_or_a_bus_error(data: bytes) -> None:
    try:
        node, message = decode(data)
    except BusError:
        return
    assert encode(node, message) == data  # what decodes is exactly an encoding


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x11",
        encode(1, Committed(CH, 1))[:-1],  # truncated
        encode(1, Committed(CH, 1)) + b"\0",  # too long
        encode(1, PeerNotice(CH, 1, True))[:-1] + b"\x02",  # joined neither 0 nor 1
        encode(1, PeerNotice(CH, 1, True)) + b"\0",
        encode(1, Relayed(CH, 1, b""))[:-1],  # origin cut short
        encode(1, SnapshotStored(CH, 1))[:-1],
        encode(1, SnapshotStored(CH, 1)) + b"\0",
        b"\x21" + encode(1, Committed(CH, 1))[1:],  # version 2
        b"\x15" + encode(1, Committed(CH, 1))[1:],  # unknown kind
        "not bytes",
        None,
        12,
    ],
)
def test_garbage_is_a_bus_error(data: Any) -> None:
    with pytest.raises(BusError):
        decode(data)


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (-1, Committed(CH, 1)),
        (65536, Committed(CH, 1)),
        (1, Committed(CH[:31], 1)),
        (1, Committed(CH + b"\0", 1)),
        (1, Committed(CH, -1)),
        (1, Committed(CH, U64_MAX + 1)),
        (1, Committed(CH, True)),
        (1, Relayed(CH, U64_MAX + 1, b"")),
        (1, Relayed(CH, 1, "text")),
        (1, PeerNotice(CH, -1, True)),
        (1, PeerNotice(CH, 1, 1)),
        (1, SnapshotStored(CH, -1)),
        (1, "not a message"),
    ],
)
def test_what_cannot_be_encoded_is_a_bus_error(node: int, message: Any) -> None:
    with pytest.raises(BusError):
        encode(node, message)


# --- the factory and the helpers ------------------------------------------------------------


def test_open_bus_picks_by_spec() -> None:
    assert isinstance(open_bus(None, "sqlite:///x", ""), NoBus)
    assert isinstance(open_bus("none", "sqlite:///x", ""), NoBus)
    pg = open_bus("postgres", "postgresql://u@h:5432/db?schema=s1&sslmode=disable", "ab12")
    assert isinstance(pg, PostgresBus)
    assert pg.topic == "blindpad_ab12"
    assert (
        pg.dsn == "postgresql://u@h:5432/db?sslmode=disable"
    )  # the store's schema is not libpq's
    kept = open_bus(
        "postgres", "postgresql://u:p@h/db?sslmode=require&schema=s&application_name=a", "x"
    )
    assert isinstance(kept, PostgresBus)
    assert kept.dsn == "postgresql://u:p@h/db?sslmode=require&application_name=a"
    redis = open_bus("redis://127.0.0.1:6379/0", "postgresql://u@h/db", "ab12")
    assert isinstance(redis, RedisBus)
    assert redis.topic == "blindpad:ab12"
    assert isinstance(open_bus("rediss://example:6380/1", "postgresql://u@h/db", "x"), RedisBus)
    for spec in ["kafka://h", "Postgres", "", "redis"]:
        with pytest.raises(ValueError, match="--bus postgres") as raised:
            open_bus(spec, "postgresql://u@h/db", "x")
        assert repr(spec) in str(raised.value)


@pytest.mark.parametrize("site", ["", "ab12", "A-b", "x" * 60, "é", 'a"; drop'])
def test_postgres_topics_are_plain_short_identifiers(site: str) -> None:
    topic = postgres_topic(site)
    assert topic.startswith("blindpad_")
    assert len(topic) <= 63
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in topic)


def test_similar_sites_never_share_a_postgres_topic() -> None:
    sites = ["A-b", "a-b", "a_b", "a.b", "x" * 60, "x" * 61]
    assert len({postgres_topic(site) for site in sites}) == len(sites)


def test_postgres_topics_are_checked() -> None:
    for topic in ["", "x" * 64, "a\0b"]:
        with pytest.raises(ValueError, match="channel name"):
            PostgresBus("postgresql://u@h/db", topic)
    PostgresBus("postgresql://u@h/db", 'Mixed Case "quoted"')  # quoted: any name works


def test_no_bus_is_healthy_and_silent() -> None:
    async def main() -> None:
        bus = NoBus()
        health: list[bool] = []
        await bus.start(0, lambda message: None, health.append)
        bus.publish(Committed(CH, 1))
        assert bus.healthy
        assert bus.dropped == 0
        await bus.close()
        assert health == []

    asyncio.run(main())


# --- the network buses ----------------------------------------------------------------


async def until(condition: Callable[[], bool], what: str, guard: float = GUARD) -> None:
    """Wait for ``condition``; fail saying ``what`` did not happen within the guard."""
    try:
        async with asyncio.timeout(guard):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"within {guard} s, {what} did not happen")


@dataclasses.dataclass
class Node:
    """A started bus and what it heard."""

    bus: NetworkBus
    got: list[BusMessage] = dataclasses.field(default_factory=list)
    health: list[bool] = dataclasses.field(default_factory=list)

    async def start(self, node: int) -> None:
        await self.bus.start(node, self.got.append, self.health.append)

    async def hears(self, message: BusMessage) -> None:
        await until(lambda: message in self.got, f"node {self.bus.node} hearing {short(message)}")


def short(message: BusMessage) -> str:
    """The message for a failure line (channel abridged, a frame as its size)."""
    channel = message.channel_id.hex()[:8]
    if isinstance(message, Committed):
        return f"Committed({channel}.., {message.seq})"
    if isinstance(message, Relayed):
        return f"Relayed({channel}.., {message.origin}, {len(message.frame)} bytes)"
    if isinstance(message, SnapshotStored):
        return f"SnapshotStored({channel}.., {message.x_seq})"
    return f"PeerNotice({channel}.., {message.peer}, {message.joined})"


def service_url(kind: Kind) -> str:
    return postgres_url() if kind == "postgres" else redis_url()


def make_bus(kind: Kind, url: str, topic: str, **options: Any) -> NetworkBus:
    # Named apart from the relays' default (blindpad-bus-...): tests of whole relays cut
    # every listener so named on the server, and must not cut these in a parallel run.
    name = f"bustest-{uuid.uuid4().hex[:16]}"
    if kind == "postgres":
        return PostgresBus(url, topic, application_name=name, **options)
    return RedisBus(url, topic, client_name=name, **options)


def fresh_topic(kind: Kind) -> str:
    token = uuid.uuid4().hex
    return f"blindpad_t{token}" if kind == "postgres" else f"blindpad:test:{token}"


@contextlib.asynccontextmanager
async def two_nodes(
    kind: Kind, url: str | None = None, **options: Any
) -> AsyncIterator[tuple[Node, Node]]:
    """Nodes 1 and 2 on a fresh topic, started; closed afterwards."""
    address = url or service_url(kind)
    topic = fresh_topic(kind)
    one = Node(make_bus(kind, address, topic, **options))
    two = Node(make_bus(kind, address, topic, **options))
    try:
        await one.start(1)
        await two.start(2)
        yield one, two
    finally:
        await one.bus.close()
        await two.bus.close()


KINDS: list[Kind] = ["postgres", "redis"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_node_hears_the_others_and_never_itself(kind: Kind) -> None:
    async def main() -> None:
        async with two_nodes(kind) as (one, two):
            assert one.health == [True]
            assert two.health == [True]
            assert one.bus.healthy
            assert two.bus.healthy
            sent: list[BusMessage] = [
                Committed(CH, 7),
                Relayed(CH, U64_MAX, bytes(range(256)) * 16),
                PeerNotice(CH, 2**63, True),
                PeerNotice(CH, 2**63, False),
                PeerNotice(CH, 2**63, True),  # the same payload twice in one batch
                Committed(OTHER, U64_MAX),
            ]
            for message in sent:
                one.bus.publish(message)
            await until(lambda: len(two.got) >= len(sent), "node 2 hearing all of node 1")
            assert two.got == sent
            # Node 1's own messages would reach it before this one, sent after they arrived.
            back = Committed(OTHER, 3)
            two.bus.publish(back)
            await one.hears(back)
            assert one.got == [back]
            assert (one.bus.dropped, two.bus.dropped) == (0, 0)
            assert (one.bus.sent, one.bus.received) == (len(sent), 1)

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_committed_hints_of_a_channel_are_coalesced(kind: Kind) -> None:
    async def main() -> None:
        async with two_nodes(kind) as (one, two):
            for seq in range(1, 51):
                one.bus.publish(Committed(CH, seq))
                one.bus.publish(Committed(OTHER, 51 - seq))  # an older one last
            done = PeerNotice(CH, 1, True)
            one.bus.publish(done)
            await two.hears(done)
            for channel, top in [(CH, 50), (OTHER, 50)]:
                seqs = [
                    m.seq for m in two.got if isinstance(m, Committed) and m.channel_id == channel
                ]
                assert seqs, f"no hint for {channel.hex()[:8]}"
                assert max(seqs) == top
                assert len(seqs) <= 50
                assert all(1 <= seq <= 50 for seq in seqs)
            # Published without yielding, all 100 hints were drained in one batch.
            assert one.bus.coalesced == 98
            assert len(two.got) == 3
            assert one.bus.dropped == 0

    asyncio.run(main())


def test_an_oversized_notify_is_dropped_and_counted() -> None:
    async def main() -> None:
        async with two_nodes("postgres") as (one, two):
            largest = (NOTIFY_LIMIT - 1) // 4 * 3 - (HEADER_BYTES + 8)  # base64: 7,996 bytes
            assert largest == 5954
            fits = Relayed(CH, 1, b"f" * largest)
            one.bus.publish(Relayed(CH, 1, b"x" * (largest + 1)))
            one.bus.publish(Relayed(CH, 1, b"x" * 100_000))
            assert one.bus.dropped == 2
            one.bus.publish(fits)
            await two.hears(fits)
            assert len(two.got) == 1
            assert one.bus.healthy

    asyncio.run(main())


def test_an_oversized_redis_message_is_dropped_and_counted() -> None:
    async def main() -> None:
        async with two_nodes("redis") as (one, two):
            one.bus.publish(Relayed(CH, 1, b"x" * MAX_REDIS_MESSAGE))
            assert one.bus.dropped == 1
            fits = Relayed(CH, 1, b"f" * 50_000)
            one.bus.publish(fits)
            await two.hears(fits)
            assert len(two.got) == 1

    asyncio.run(main())


async def inject(kind: Kind, topic: str, payloads: list[str]) -> None:
    """Put raw payloads on the topic, as some other program might."""
    if kind == "postgres":
        conn = await asyncpg.connect(postgres_url())
        try:
            for payload in payloads:
                await conn.execute("SELECT pg_notify($1, $2)", topic, payload)
        finally:
            await conn.close()
        return
    client = aioredis.Redis.from_url(redis_url())
    try:
        for payload in payloads:
            await client.publish(topic, payload)
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", KINDS)
def test_garbage_on_the_topic_and_a_failing_callback_are_survived(kind: Kind) -> None:
    async def main() -> None:
        async with two_nodes(kind) as (one, two):
            garbage = ["", "not base64 !", "AAAA", "x" * 100]
            await inject(kind, two.bus.topic, garbage)
            await until(lambda: two.bus.malformed == len(garbage), "node 2 counting the garbage")
            calls: list[BusMessage] = []

            def failing(message: BusMessage) -> None:
                calls.append(message)
                raise RuntimeError("a bug in the hub")

            two.bus._deliver = failing  # what start() installed, replaced
            one.bus.publish(Committed(CH, 1))
            await until(lambda: len(calls) == 1, "the failing callback being called")
            two.bus._deliver = two.got.append
            after = Committed(CH, 2)
            one.bus.publish(after)
            await two.hears(after)
            assert two.bus.healthy
            assert two.health == [True]
            assert one.got == []

    asyncio.run(main())


async def kill(kind: Kind, name: str) -> int:
    """Have the service close the connections named ``name`` (a prefix with ``%``)."""
    if kind == "postgres":
        conn = await asyncpg.connect(postgres_url())
        try:
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE $1 AND pid <> pg_backend_pid()",
                name,
            )
            return len(rows)
        finally:
            await conn.close()
    client = aioredis.Redis.from_url(redis_url())
    try:
        prefix = name.removesuffix("%")
        ids = [
            str(c["id"])
            for c in await client.client_list()
            if (c["name"] == name or (name.endswith("%") and c["name"].startswith(prefix)))
        ]
        for client_id in ids:
            await client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        await client.aclose()


def alternates(health: list[bool]) -> bool:
    return all(a != b for a, b in itertools.pairwise(health))


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_listener_is_reported_and_replaced(kind: Kind) -> None:
    async def main() -> None:
        async with two_nodes(kind, retry_initial=0.05) as (one, two):
            first = Committed(CH, 1)
            one.bus.publish(first)  # opens node 1's publishing connection too
            await two.hears(first)
            listener = two.bus.application_name if kind == "postgres" else two.bus.client_name
            assert await kill(kind, listener) == 1
            await until(lambda: False in two.health, "node 2 reporting its bus down")
            await until(lambda: two.health[-1], "node 2 reporting its bus up again")
            assert two.health[:2] == [True, False]
            assert alternates(two.health)
            again = Committed(CH, 2)
            one.bus.publish(again)
            await two.hears(again)
            # Killing node 1's publisher (and listener): the next batch opens a new one.
            sender = one.bus.application_name if kind == "postgres" else one.bus.client_name
            assert await kill(kind, sender + "%") == 2
            await until(lambda: False in one.health, "node 1 reporting its bus down")
            await until(lambda: one.health[-1], "node 1 reporting its bus up again")
            last = Committed(CH, 3)
            one.bus.publish(last)
            await two.hears(last)
            back = Committed(OTHER, 1)
            two.bus.publish(back)
            await one.hears(back)
            assert alternates(one.health)
            assert one.bus.dropped == 0

    asyncio.run(main())


class FlakyBus(_NetworkBus):
    """A bus whose service is this object: listening always works, sending fails
    ``failures`` times (a publishing connection that dies mid-send)."""

    def __init__(self, failures: int) -> None:
        options = {"probe_seconds": 1.0, "retry_initial": 0.01, "retry_max": 0.01}
        super().__init__("flaky", connect_timeout=1.0, send_timeout=1.0, **options)
        self.failures = failures
        self.batches: list[list[BusMessage]] = []

    async def _listen_once(self) -> None:
        self._up()
        await asyncio.Event().wait()

    async def _send(self, payloads: list[bytes]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("the publishing connection died")
        self.batches.append([decode(payload)[1] for payload in payloads])

    async def _close_publisher(self) -> None:
        pass

    def _wire(self, raw: bytes) -> bytes | None:
        return raw


def test_a_hint_whose_send_failed_is_sent_once_more_and_nothing_else_is() -> None:
    async def main() -> None:
        once = FlakyBus(failures=1)
        await once.start(1, lambda message: None, lambda healthy: None)
        try:
            frame = Relayed(CH, 5, b"presence")
            once.publish(Committed(CH, 1))
            once.publish(frame)
            once.publish(Committed(CH, 2))
            await until(lambda: bool(once.batches), "the hint being sent again")
            assert once.batches == [[Committed(CH, 2)]]  # coalesced, then once more
            assert once.dropped == 1  # the ephemeral of the failed batch
        finally:
            await once.close()
        twice = FlakyBus(failures=2)
        await twice.start(1, lambda message: None, lambda healthy: None)
        try:
            twice.publish(Committed(CH, 1))
            await until(lambda: twice.dropped == 1, "the hint being given up after its retry")
            twice.publish(Committed(CH, 2))
            await until(lambda: bool(twice.batches), "a later hint going out")
            assert twice.batches == [[Committed(CH, 2)]]
        finally:
            await twice.close()

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_connections_are_named_after_the_bus_and_node(kind: Kind) -> None:
    async def main() -> None:
        url = service_url(kind)
        site = uuid.uuid4().hex
        bus = open_bus("postgres" if kind == "postgres" else url, url, site)
        assert isinstance(bus, PostgresBus | RedisBus)
        try:
            await bus.start(7, lambda message: None, lambda healthy: None)
            bus.publish(Committed(CH, 1))  # opens the publishing connection
            await until(lambda: bus.sent == 1, "the first message being sent")
            name = bus.application_name if isinstance(bus, PostgresBus) else bus.client_name
            assert name.startswith(f"blindpad-bus-{site[-16:]}-n7-")
            assert sorted(await names(kind, name + "%")) == [name, name + "-pub"]
        finally:
            await bus.close()
        left = await names(kind, name + "%")
        try:
            async with asyncio.timeout(GUARD):  # a backend leaves pg_stat_activity soon after
                while left:
                    await asyncio.sleep(0.05)
                    left = await names(kind, name + "%")
        except TimeoutError:
            pytest.fail(f"within {GUARD} s, the bus's connections {left} did not go away")

    asyncio.run(main())


async def names(kind: Kind, pattern: str) -> list[str]:
    """The names of the service's connections that match ``pattern`` (SQL LIKE, ``%`` last)."""
    if kind == "postgres":
        conn = await asyncpg.connect(postgres_url())
        try:
            rows = await conn.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
                pattern,
            )
            return [str(row[0]) for row in rows]
        finally:
            await conn.close()
    client = aioredis.Redis.from_url(redis_url())
    try:
        prefix = pattern.removesuffix("%")
        return [str(c["name"]) for c in await client.client_list() if c["name"].startswith(prefix)]
    finally:
        await client.aclose()


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.mark.parametrize("kind", KINDS)
def test_a_bus_started_without_its_service_reports_unhealthy(kind: Kind) -> None:
    default = "postgresql://postgres@127.0.0.1:5432/test" if kind == "postgres" else "redis://x/0"
    url = with_port(default, closed_port())

    async def main() -> None:
        node = Node(make_bus(kind, url, fresh_topic(kind), retry_initial=0.05, retry_max=0.2))
        try:
            await node.start(1)  # does not raise
            assert not node.bus.healthy
            assert node.health == [False]
            node.bus.publish(Committed(CH, 1))
            assert node.bus.dropped == 1
            await asyncio.sleep(0.5)  # a few retries, all failing
            assert node.health == [False]
        finally:
            async with asyncio.timeout(GUARD):
                await node.bus.close()
        assert not node.bus.healthy

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_a_bus_comes_up_late_and_survives_a_silent_partition(kind: Kind) -> None:
    async def main() -> None:
        real = service_url(kind)
        async with Proxy(real) as proxy:
            proxy.set("refuse")
            options = {"retry_initial": 0.05, "retry_max": 0.2, "probe_seconds": 0.3}
            options["connect_timeout"] = 1.0
            topic = fresh_topic(kind)
            one = Node(make_bus(kind, real, topic, **options))  # directly on the service
            two = Node(make_bus(kind, with_port(real, proxy.port), topic, **options))
            try:
                await one.start(1)
                await two.start(2)  # the service is unreachable at start
                assert two.health == [False]
                proxy.set("forward")
                await until(lambda: two.health == [False, True], "node 2 connecting late")
                first = Committed(CH, 1)
                one.bus.publish(first)
                await two.hears(first)
                proxy.set("swallow")  # nothing passes, nothing is closed
                await until(lambda: two.health[-1] is False, "the probe noticing the partition")
                proxy.set("forward")
                await until(lambda: two.health[-1] is True, "node 2 reconnecting after it")
                assert alternates(two.health)
                again = Committed(CH, 2)
                one.bus.publish(again)
                await two.hears(again)
                assert one.health == [True]
            finally:
                await one.bus.close()
                async with asyncio.timeout(GUARD):
                    await two.bus.close()

    asyncio.run(main())

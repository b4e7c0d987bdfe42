"""relay.cluster's fill, in one process: what a node offers of commits made elsewhere.

The store is a :class:`MemoryStore` that says it is shared, written to
directly as another node would; the node is a real :class:`Hub` with one real
:class:`Subscription` whose :class:`Outbox` is read back.  No network, no
bus (NoBus): hints are the test's calls of :meth:`Cluster.behind` and
:meth:`Cluster.poll`.
"""

from __future__ import annotations

import asyncio

from relay.bus import NoBus
from relay.cluster import Cluster
from relay.errors import ProtocolViolation
from relay.hub import ChannelState, Hub, Outbox, Subscription
from relay.limits import HISTORY_PAGE_BYTES
from relay.store import Membership, MemoryStore
from wire import frames as f
from wire.codes import ErrorCode

CH = b"c" * 32
ZERO = bytes(32)


class SharedMemoryStore(MemoryStore):
    shared = True


def pid(n: int) -> bytes:
    return n.to_bytes(32, "big")


async def commit(store: MemoryStore, first: int, last: int, size: int = 10) -> None:
    for n in range(first, last + 1):
        parent = pid(n - 1) if n > 1 else ZERO
        await store.append(CH, pid(n), parent, bytes([n % 256]) * size)


def node(store: MemoryStore, offered: int) -> tuple[Cluster, Outbox, ChannelState]:
    hub = Hub()
    outbox = Outbox(100_000, 1 << 40)
    state = ChannelState(b"k" * 32, b"r" * 32, 0, 0, offered=offered)
    sub = Subscription(CH, 7, outbox, 100_000)
    hub.register(state, CH, sub)
    sub.go_live(offered + 1)
    return Cluster(store, hub, NoBus(), Membership("s", 1)), outbox, state


async def drained(cluster: Cluster) -> None:
    while cluster._fills:  # the fill tasks this test started
        await asyncio.gather(*cluster._fills.values())


def frames_in(outbox: Outbox) -> list[f.Frame]:
    got = []
    while len(outbox):
        frame = outbox._frames.popleft()
        got.append(f.decode(frame))
    return got


def test_a_hint_brings_every_patch_since_the_last_offered_in_order_over_several_pages() -> None:
    async def main() -> None:
        store = SharedMemoryStore()
        await store.create_channel(CH, b"k" * 32, b"r" * 32)
        await commit(store, 1, 2)
        cluster, outbox, state = node(store, offered=2)
        size = HISTORY_PAGE_BYTES // 4  # five pages' worth below
        await commit(store, 3, 22, size)
        cluster.behind(CH, 5)  # a hint for 5: the fill reads on to the head it finds
        await drained(cluster)
        got = frames_in(outbox)
        assert [x.seq for x in got if isinstance(x, f.Broadcast)] == list(range(3, 23))
        assert state.offered == 22
        assert cluster.fills >= 5  # a page at a time
        assert state.stored_bytes == state.pad_bytes == 20 * size  # counted as offered
        cluster.behind(CH, 22)  # a late hint for what is offered reads nothing
        assert not cluster._fills

    asyncio.run(main())


def test_a_poll_finds_what_no_hint_announced_and_takes_the_stores_sizes() -> None:
    async def main() -> None:
        store = SharedMemoryStore()
        await store.create_channel(CH, b"k" * 32, b"r" * 32)
        cluster, outbox, state = node(store, offered=0)
        await commit(store, 1, 3)
        await cluster.poll()
        await drained(cluster)
        assert [x.seq for x in frames_in(outbox) if isinstance(x, f.Broadcast)] == [1, 2, 3]
        await store.put_snapshot(CH, pid(3), b"s" * 32, b"snapshot")
        state.stored_bytes = 0  # whatever this node believed
        await cluster.poll()
        info = await store.channel(CH)
        assert info is not None
        assert (state.pad_bytes, state.stored_bytes) == (info.pad_bytes, info.stored_bytes)
        assert not frames_in(outbox)

    asyncio.run(main())


def test_history_trimmed_before_this_node_offered_it_sends_its_subscribers_to_resume() -> None:
    async def main() -> None:
        store = SharedMemoryStore()
        await store.create_channel(CH, b"k" * 32, b"r" * 32)
        cluster, outbox, _ = node(store, offered=0)
        await commit(store, 1, 4)
        await store.put_snapshot(CH, pid(3), b"s" * 32, b"snapshot")
        await store.trim(CH, pid(3), 0)
        cluster.behind(CH, 4)
        await drained(cluster)
        failure = outbox.failure
        assert isinstance(failure, ProtocolViolation)
        assert failure.code is ErrorCode.SLOW_CONSUMER
        assert "resume" in failure.message

    asyncio.run(main())


def test_an_offer_made_twice_is_held_once_and_the_pushers_ack_wins() -> None:
    outbox = Outbox(100, 1 << 20)
    sub = Subscription(CH, 7, outbox, 100)
    sub.go_live(1)
    ack = f.encode(f.Ack(9, 2, pid(2)))
    broadcast = f.encode(f.Broadcast(CH, 2, b"env"))
    sub.offer(2, broadcast)  # a fill's offer of 2, while 1 is missing...
    sub.offer(2, ack, is_ack=True)  # ...then our push of 2 is answered...
    sub.offer(2, broadcast)  # ...and a later fill offers 2 again
    assert outbox.held == len(ack)
    sub.offer(1, f.encode(f.Broadcast(CH, 1, b"one")))
    assert [type(x).__name__ for x in frames_in(outbox)] == ["Broadcast", "Ack"]
    assert outbox.held == 0


def test_a_poll_that_finds_the_floor_moved_rechecks_the_cached_session_records() -> None:
    """Another node's trim dropped session records this node has cached: the poll
    that sees the floor move forgets them (subscriptions share the cache), so
    their sessions' next envelopes are refused UNKNOWN_SESSION here; but one
    that verified an envelope here meanwhile (which may have been stored after
    the trim) is stored again."""

    async def main() -> None:
        store = SharedMemoryStore()
        await store.create_channel(CH, b"k" * 32, b"r" * 32)
        old, used, new = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02", b"\x00\x00\x00\x03"
        for tag in (old, used):  # at head 0; they sign nothing that is kept
            await store.add_session(CH, tag, b"\x02\x05" + tag)
        await commit(store, 1, 3)
        await store.add_session(CH, new, b"\x02\x05" + new)  # at head 3, above the trim's X
        cluster, _, state = node(store, offered=3)
        state.sessions.update(await store.sessions(CH))  # cached, as a push loads them
        await cluster.poll()
        assert set(state.sessions) == {old, used, new}  # the floor has not moved
        await store.put_snapshot(CH, pid(2), b"s" * 32, b"snapshot")
        assert await store.trim(CH, pid(2), 0) == 2  # by another node
        assert set(await store.sessions(CH)) == {new}
        state.used[used] = b"\x02\x05" + used  # it verified a push here meanwhile
        await cluster.poll()
        assert state.floor_seq == 2
        assert set(state.sessions) == {used, new}
        assert await store.sessions(CH) == {tag: b"\x02\x05" + tag for tag in (used, new)}
        assert state.used == {}
        (sub,) = cluster.hub.channels[CH].subscribers.values()
        assert sub.records is state.sessions

    asyncio.run(main())

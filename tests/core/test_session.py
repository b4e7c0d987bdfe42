"""The sans-I/O PadSession, driven frame by frame with a scripted relay and a fake clock.

Also the shared reconnect policy, and the SDK over an in-memory transport
(no server: the relay's side is scripted).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import os
from collections.abc import Awaitable
from typing import Any

import pytest

import crypto
from client.errors import InvalidEdit, NotReady, ReadOnly
from client.events import (
    Acked,
    Alarm,
    AlarmKind,
    CursorMoved,
    PeerJoined,
    PeerLeft,
    Status,
    TextChanged,
)
from client.pad import Backoff as PadBackoff
from client.pad import Pad
from client.relayside import SNAPSHOT_WAIT_MS, SNAPSHOT_WAIT_SIZE_PER_MS
from client.session import PadSession, Phase
from client.textops import Op
from client.transport import Backoff, MemoryTransport, Reconnect
from crypto.envelope import Kind
from wire import frames as f
from wire.codes import RefuseCode


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def sent(session: PadSession, *, ephemerals: bool = False) -> list[Any]:
    """The frames the session queued; presence and head beacons only if
    ``ephemerals``; session registrations (SESSION) are answered (ACK), and
    their records kept for :func:`teach`."""
    frames = [f.decode_client(frame) for frame in session.frames_to_send()]
    for frame in frames:
        if isinstance(frame, f.Session):
            RECORDS[frame.channel_id].append(frame.record)
            session.receive_frame(f.encode(f.Ack(frame.request_id, 0, _id(frame.record))))
    dropped = (f.Session,) if ephemerals else (f.Session, f.Ephemeral)
    return [frame for frame in frames if not isinstance(frame, dropped)]


#: The session records registered on each channel (as a relay keeps them).
RECORDS: collections.defaultdict[bytes, list[bytes]] = collections.defaultdict(list)


def teach(session: PadSession) -> None:
    """Give ``session`` the session records registered on its channel, as a
    relay sends them before the envelopes that need them (RECORD)."""
    for record in RECORDS[session.keys.channel_id]:
        session.receive_frame(f.encode(f.Record(session.keys.channel_id, 5, record)))


def _id(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def join(session: PadSession, *, head: tuple[int, bytes] = (0, f.ZERO_ID)) -> list[Any]:
    """Connect and answer the subscription with an empty history ending at ``head``."""
    session.connected()
    frames = sent(session)
    subscribe = frames[1]
    assert isinstance(frames[0], f.Hello)
    assert isinstance(subscribe, f.Subscribe)
    welcome = f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)
    session.receive_frame(f.encode(welcome))
    end = f.HistoryEnd(subscribe.request_id, subscribe.channel_id, head[0], head[1])
    session.receive_frame(f.encode(end))
    return frames


def _ack_all(session: PadSession, pushes: list[Any], first_seq: int) -> None:
    """Acknowledge ``pushes`` in order, numbering them from ``first_seq``."""
    for seq, push in enumerate(pushes, first_seq):
        patch_id = hashlib.sha256(push.envelope).digest()
        session.receive_frame(f.encode(f.Ack(push.request_id, seq, patch_id)))


def make(clock: Clock | None = None, **options: Any) -> PadSession:
    keys = options.pop("keys", None) or crypto.PadKeys.generate()
    return PadSession(keys, crypto.Author.generate("tester"), clock=clock or Clock(), **options)


def test_saved_only_after_the_ack() -> None:
    session = make()
    assert session.status is Status.OFFLINE
    join(session)
    assert session.status is Status.SAVED
    session.edit((Op(0, 0, "hi"),))
    (push,) = sent(session)
    assert isinstance(push, f.Push)
    assert session.status is Status.SYNCING
    assert session.pending() == [push.envelope]
    patch_id = hashlib.sha256(push.envelope).digest()
    session.receive_frame(f.encode(f.Ack(push.request_id, 1, patch_id)))
    assert session.status is Status.SAVED
    assert Acked(patch_id) in session.events()
    assert session.pending() == []
    assert session.last_head == (1, patch_id)


def test_a_fresh_session_subscribes_from_the_snapshot_then_resumes_since() -> None:
    session = make()
    first = join(session)
    assert first[1].start is f.SubscribeFrom.SNAPSHOT
    session.edit((Op(0, 0, "a"),))
    (push,) = sent(session)
    session.disconnected("test")
    assert session.status is Status.OFFLINE
    session.connected()
    again = sent(session)
    assert again[1].start is f.SubscribeFrom.SINCE
    end = f.HistoryEnd(again[1].request_id, again[1].channel_id, 0, f.ZERO_ID)
    session.receive_frame(f.encode(end))
    (resent,) = sent(session)
    assert isinstance(resent, f.Push)
    assert resent.envelope == push.envelope  # same bytes, same id
    assert session.reconnects == 1


def test_rate_limited_pushes_are_retried_with_the_same_bytes() -> None:
    clock = Clock()
    session = make(clock)
    join(session)
    session.edit((Op(0, 0, "x"),))
    (push,) = sent(session)
    session.receive_frame(f.encode(f.Refuse(push.request_id, 2, 250, 0, f.ZERO_ID)))
    session.tick()
    assert sent(session) == []
    assert session.next_deadline_ms() == clock.now + 250
    clock.now += 250
    session.tick()
    (again,) = sent(session)
    assert again == push


def test_a_stale_refusal_rebases_on_the_head() -> None:
    author = crypto.Author.generate("other")
    session = make()
    keys = session.keys
    join(session)
    session.edit((Op(0, 0, "mine"),))
    (push,) = sent(session)
    theirs = crypto.seal(
        keys, author, crypto.Kind.PATCH, f.ZERO_ID, b'{"o":[[0,0,"theirs"]],"n":6}'
    )
    their_id = crypto.envelope_id(theirs)
    session.receive_frame(f.encode(f.Refuse(push.request_id, 1, 0, 1, their_id)))
    assert sent(session) == []  # waits for the head it was told about
    session.receive_frame(f.encode(f.Broadcast(keys.channel_id, 1, theirs)))
    (rebased,) = sent(session)
    assert isinstance(rebased, f.Push)
    assert crypto.envelope2.ref_of(rebased.envelope) == their_id
    assert session.text in ("minetheirs", "theirsmine")
    assert any(isinstance(e, TextChanged) for e in session.events())


def test_view_keys_cannot_edit_and_nothing_edits_before_the_history() -> None:
    keys = crypto.PadKeys.generate()
    writer = make(keys=keys)
    with pytest.raises(NotReady):
        writer.edit((Op(0, 0, "x"),))
    join(writer)
    with pytest.raises(InvalidEdit):
        writer.edit((Op(5, 0, "x"),))
    viewer = make(keys=keys.view())
    join(viewer)
    with pytest.raises(ReadOnly):
        viewer.edit((Op(0, 0, "x"),))
    viewer.set_presence(name="v", cursor=(0, 0))
    # a viewer sends ephemerals too: its head beacon when live, then its presence
    assert [type(frame) for frame in sent(viewer, ephemerals=True)] == [f.Ephemeral] * 2


def test_rollback_below_the_last_head_raises_the_alarm() -> None:
    session = make(last_head=(5, b"h" * 32))
    join(session, head=(2, b"x" * 32))
    alarms = [e for e in session.events() if isinstance(e, Alarm)]
    assert [a.kind for a in alarms] == [AlarmKind.ROLLBACK]
    assert session.last_head == (5, b"h" * 32)


def test_presence_joins_moves_with_edits_and_expires() -> None:
    clock = Clock()
    keys = crypto.PadKeys.generate()
    alice, bob = make(clock, keys=keys, presence_timeout_ms=3000), make(clock, keys=keys)
    join(alice)
    join(bob)
    bob.set_presence(name="bob", color="#f00", cursor=(0, 0))
    (eph,) = sent(bob, ephemerals=True)[-1:]  # after the head beacon sent when live
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, eph.envelope)))
    (joined,) = [e for e in alice.events() if isinstance(e, PeerJoined)]
    assert (joined.peer.name, joined.peer.color, joined.peer.cursor) == ("bob", "#f00", (0, 0))
    alice.edit((Op(0, 0, "abc"),))
    assert alice.peers[0].cursor == (0, 0)  # a caret stays before text inserted at it
    bob.set_presence(cursor=(1, 2))
    (moved,) = sent(bob, ephemerals=True)
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, moved.envelope)))
    assert any(isinstance(e, CursorMoved) for e in alice.events())
    # a replayed ephemeral, or one not sealed with the pad's key, is dropped and counted
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, moved.envelope)))
    stranger = crypto.seal_ephemeral(
        crypto.PadKeys.generate(),
        crypto.Author.generate("x"),
        crypto.Session.new(),
        b"{}",
        now_ms=clock.now,
    )
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 7, stranger)))
    assert [e for e in alice.events() if isinstance(e, Alarm)] == []
    assert alice.presence.dropped == 2
    clock.now += 3001
    alice.tick()
    assert [type(e) for e in alice.events()] == [PeerLeft]
    assert alice.peers == ()


def test_a_peer_leaving_its_connection_leaves_the_pad() -> None:
    clock = Clock()
    keys = crypto.PadKeys.generate()
    alice, bob = make(clock, keys=keys), make(clock, keys=keys)
    join(alice)
    join(bob)
    bob.set_presence(name="bob")
    (eph,) = sent(bob, ephemerals=True)[-1:]  # after the head beacon sent when live
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, eph.envelope)))
    alice.receive_frame(f.encode(f.PeerLeft(keys.channel_id, 8)))
    assert len(alice.peers) == 1
    alice.receive_frame(f.encode(f.PeerLeft(keys.channel_id, 9)))
    assert alice.peers == ()


def test_large_snapshots_are_uploaded_in_chunks_and_joiners_load_them() -> None:
    keys = crypto.PadKeys.generate()
    session = make(keys=keys)
    join(session)
    text = os.urandom(10_000).hex()  # compresses to half: still several chunks
    session.edit((Op(0, 0, text),))
    pushes = sent(session)
    _ack_all(session, pushes, 1)
    session.tick()  # a snapshot found due goes at the tick after "saved"
    chunks = [frame for frame in sent(session) if isinstance(frame, f.SnapshotChunk)]
    assert len(chunks) > 1
    assert all(len(f.encode(c)) <= 4096 for c in chunks)
    sealed = b"".join(c.data for c in chunks)
    joiner = make(keys=keys.view())
    joiner.connected()
    teach(joiner)
    subscribe = sent(joiner)[1]
    x_seq = len(pushes)
    joiner.receive_frame(f.encode(f.Snapshot(keys.channel_id, x_seq, 0, len(sealed), 0, sealed)))
    head = crypto.envelope2.ref_of(sealed)
    joiner.receive_frame(
        f.encode(f.HistoryEnd(subscribe.request_id, keys.channel_id, x_seq, head))
    )
    assert joiner.text == text
    assert joiner.phase is Phase.LIVE


def test_a_snapshot_is_sealed_at_the_tick_after_saved_not_on_the_acknowledgement() -> None:
    """Sealing a snapshot of a large text takes long (a second at 10 MB): the
    acknowledgement that makes one due says "saved" without it, and the next
    tick seals and sends it."""
    clock = Clock()
    session = make(clock, keepalive_ms=10**12)
    join(session)
    session.edit((Op(0, 0, os.urandom(20_000).hex()),))  # 40 KB: several patches
    pushes = sent(session)
    assert len(pushes) > 1
    _ack_all(session, pushes, 1)
    assert session.status is Status.SAVED
    assert not [x for x in sent(session) if isinstance(x, f.SnapshotChunk)]
    assert session.next_deadline_ms() <= clock.now  # the ticker is asked at once
    session.tick()
    chunks = [x for x in sent(session) if isinstance(x, f.SnapshotChunk)]
    assert chunks
    assert sum(len(c.data) for c in chunks) == chunks[0].total


def test_a_snapshot_due_while_edits_keep_coming_waits_about_twice_its_sealing_cost() -> None:
    """The wait scales with the document (1 ms per SNAPSHOT_WAIT_SIZE_PER_MS of
    it, at most SNAPSHOT_WAIT_MS): a fast typist in a small text keeps the
    snapshot cadence, and so compaction keeps the stored history short."""
    clock = Clock()
    session = make(clock, keepalive_ms=10**12)
    join(session)
    text = os.urandom(20_000).hex()
    session.edit((Op(0, 0, text),))
    pushes = sent(session)
    *first, last = pushes
    _ack_all(session, first, 1)
    session.edit((Op(0, 0, "k"),))  # typed on: our patches stay in flight
    _ack_all(session, [last], len(pushes))  # the snapshot is due by here
    (typed,) = sent(session)
    assert session.status is Status.SYNCING
    wait = session.next_deadline_ms() - clock.now
    assert 1 < wait <= len(text) // SNAPSHOT_WAIT_SIZE_PER_MS < SNAPSHOT_WAIT_MS
    clock.now += wait - 1
    session.tick()
    assert sent(session) == []
    assert session.next_deadline_ms() <= clock.now + 1
    clock.now += 1
    session.tick()
    chunks = sent(session)
    assert chunks
    assert all(isinstance(x, f.SnapshotChunk) for x in chunks)
    assert session.status is Status.SYNCING  # the typed key is still in flight
    _ack_all(session, [typed], len(pushes) + 1)
    assert session.status is Status.SAVED


def test_a_newer_snapshot_due_supersedes_one_still_waiting() -> None:
    """Only the newest snapshot due is sealed and sent; the one it replaced was
    never stored, so no compaction may trim at it."""
    clock = Clock()
    session = make(clock, keepalive_ms=10**12)
    join(session)
    seq = 1
    heights = []
    for _ in range(2):  # twice: a snapshot's worth acknowledged, a key in flight
        session.edit((Op(0, 0, os.urandom(20_000).hex()),))
        pushes = sent(session)
        _ack_all(session, pushes, seq)
        seq += len(pushes)
        session.edit((Op(0, 0, "k"),))
        (typed,) = sent(session)
        heights.append(session.engine.snapshots.height)  # made: due, not sent
        assert session.debug_state()["due"] == 1
        _ack_all(session, [typed], seq)
        seq += 1
        session.edit((Op(0, 0, "k"),))  # the next key keeps the snapshot waiting
    clock.now += SNAPSHOT_WAIT_MS
    session.tick()
    chunks = [x for x in sent(session) if isinstance(x, f.SnapshotChunk)]
    newest = session.engine.snapshots.height
    assert 0 < heights[0] < heights[1] <= newest
    assert len({c.request_id for c in chunks}) == 1  # one snapshot, the newest
    assert [h for h, _ in session.engine.snapshots.verified] == [newest]
    assert session.debug_state()["due"] == 0


def test_a_bad_snapshot_alarms_and_falls_back_to_the_whole_history() -> None:
    keys = crypto.PadKeys.generate()
    joiner = make(keys=keys)
    joiner.connected()
    sent(joiner)
    junk = crypto.seal(keys, crypto.Author.generate("x"), crypto.Kind.SNAPSHOT, b"r" * 32, b"{}")
    joiner.receive_frame(f.encode(f.Snapshot(keys.channel_id, 3, 0, len(junk), 0, junk)))
    assert [e.kind for e in joiner.events() if isinstance(e, Alarm)] == [AlarmKind.BAD_SNAPSHOT]
    frames = sent(joiner)
    assert [type(x) for x in frames] == [f.Unsubscribe, f.Subscribe]
    assert (frames[1].start, frames[1].since_seq) == (f.SubscribeFrom.EARLIEST, 0)
    assert frames[1].read_token == keys.read_token  # every read proves the view secret


def test_garbage_from_the_relay_is_a_protocol_error() -> None:
    from client.errors import ProtocolError

    session = make()
    with pytest.raises(ProtocolError):
        session.receive_frame(b"\x01garbage")


def test_a_silent_relay_is_pinged_then_the_session_says_it_stalled() -> None:
    clock = Clock()
    session = make(clock, keepalive_ms=10_000)
    join(session)
    clock.now += 9_999
    session.tick()
    assert sent(session) == []
    assert not session.stalled
    clock.now += 1
    session.tick()
    (ping,) = sent(session)
    assert isinstance(ping, f.Ping)
    clock.now += 9_999
    session.tick()
    assert sent(session) == []  # one PING per silence
    assert not session.stalled
    session.receive_frame(f.encode(f.Pong(ping.nonce)))
    clock.now += 5_000
    assert not session.stalled  # the PONG proved the connection alive
    clock.now += 5_000
    session.tick()
    assert isinstance(sent(session)[0], f.Ping)
    clock.now += 10_000
    assert session.stalled
    session.disconnected("the relay stopped answering")
    assert not session.stalled
    assert session.status is Status.OFFLINE


def test_offline_edits_are_sealed_for_the_write_ahead_log() -> None:
    session = make()
    join(session)
    session.disconnected()
    session.edit((Op(0, 0, "offline"),))
    assert session.unsaved
    (sealed,) = session.pending()  # reading the log seals what was typed
    session.flush()
    assert session.pending() == [sealed]  # nothing new to seal
    assert sent(session) == []  # nothing goes out while offline
    join(session, head=(0, f.ZERO_ID))
    (push,) = [frame for frame in sent(session) if isinstance(frame, f.Push)]
    assert push.envelope == sealed  # the same bytes once live again
    assert session.debug_state()["phase"] == "live"


def test_randomness_is_injected() -> None:
    def zeros(n: int) -> bytes:
        return b"\0" * n

    keys = crypto.PadKeys.generate()
    author = crypto.Author.generate("t")
    one = PadSession(keys, author, clock=Clock(), random=zeros)
    two = PadSession(keys, author, clock=Clock(), random=zeros)
    assert one.presence.session_id == two.presence.session_id == b"\0" * 16
    for session in (one, two):
        join(session)
        session.edit((Op(0, 0, "same"),))
    assert one.pending() == two.pending()  # same nonce, same key, same bytes


def test_peers_stay_not_heard_from_while_offline_then_expire() -> None:
    clock = Clock()
    keys = crypto.PadKeys.generate()
    alice, bob = make(clock, keys=keys, presence_timeout_ms=3000), make(clock, keys=keys)
    join(alice)
    join(bob)
    bob.set_presence(name="bob")
    (eph,) = sent(bob, ephemerals=True)[-1:]  # after the head beacon sent when live
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, eph.envelope)))
    heard = clock.now
    alice.disconnected()
    (peer,) = alice.peers  # still listed: the page greys it out
    assert alice.last_heard_ms(peer) == heard
    clock.now += 3001
    alice.tick()
    assert alice.peers == ()
    assert alice.last_heard_ms(peer) is None


def test_reconnect_policy_backs_off_with_jitter_and_restarts_after_live() -> None:
    draws = iter([0.0, 1.0, 0.5, 0.0])
    policy = Reconnect(Backoff(initial=1, factor=2, cap=3, jitter=0.5), draw=lambda: next(draws))
    delays = [policy.ended(live=False) for _ in range(3)]
    assert delays == [1.0, 1.0, 2.25]  # 1, 2*(1-.5), min(3, 4)*(1-.25)
    assert policy.ended(live=True) == 1.0
    assert policy.attempt == 1


class MemoryConnector:
    """Hands the SDK one end of an in-memory pipe; the test plays the relay on the other."""

    def __init__(self) -> None:
        self.relay_ends: asyncio.Queue[MemoryTransport] = asyncio.Queue()

    async def connect(self, url: str) -> MemoryTransport:
        mine, theirs = MemoryTransport.pair()
        self.relay_ends.put_nowait(theirs)
        return mine


async def _serve_join(relay: MemoryTransport, since: int) -> None:
    hello = f.decode_client(await relay.recv())
    subscribe = f.decode_client(await relay.recv())
    assert isinstance(hello, f.Hello)
    assert isinstance(subscribe, f.Subscribe)
    assert subscribe.since_seq == since
    end = f.HistoryEnd(subscribe.request_id, subscribe.channel_id, since, f.ZERO_ID)
    await relay.send(f.encode(end))


async def _opened(opening: Awaitable[Pad]) -> Pad:
    return await opening


async def _next_push(relay: MemoryTransport) -> f.Push:
    while not isinstance(frame := f.decode_client(await relay.recv()), f.Push):
        pass
    return frame


def test_the_sdk_resends_the_same_bytes_over_a_new_transport() -> None:
    """No server needed: the relay's side of two connections is scripted here."""

    async def main() -> None:
        connector = MemoryConnector()
        link = crypto.PadLink.new("http://relay.invalid")
        opening = Pad.open(
            link, state_dir=None, connector=connector, backoff=PadBackoff(0.001, jitter=0)
        )
        start = asyncio.create_task(_opened(opening))
        first = await connector.relay_ends.get()
        await _serve_join(first, 0)
        pad = await start
        await pad.insert(0, "hi")
        lost = await _next_push(first)
        await first.close()  # the connection drops before the ACK
        second = await connector.relay_ends.get()
        await _serve_join(second, 0)
        again = await _next_push(second)
        assert again.envelope == lost.envelope
        patch_id = hashlib.sha256(again.envelope).digest()
        await second.send(f.encode(f.Ack(again.request_id, 1, patch_id)))
        await pad.synced(timeout=300)
        assert pad.status is Status.SAVED
        assert pad.text == "hi"
        await pad.aclose()

    asyncio.run(main())


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps to the next timer whenever nothing is ready,
    so a test reads the SDK's timing on a clock it owns, however slow the machine."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        select = self._selector.select  # type: ignore[attr-defined]

        def jump(timeout: float | None = None) -> Any:
            ready = select(0)
            if not ready:
                if timeout is None:
                    raise AssertionError("hung: nothing ready and no timer set")
                self.now += timeout
            return ready

        self._selector.select = jump  # type: ignore[attr-defined]

    def time(self) -> float:
        return self.now


def test_the_sdk_resends_a_yielded_push_when_asked_not_on_its_next_idle_tick() -> None:
    """REFUSE YIELD asks for the same bytes again in retry_after_ms (20 ms): the
    SDK's timer wakes for it, rather than when a sleep begun before the refusal
    (up to a second) ends.  Resends a second apart each, from three idle
    writers, were what kept the relay's turns refusing all of them (issue 15)."""
    loop = VirtualTimeLoop()

    async def main() -> float:
        connector = MemoryConnector()
        link = crypto.PadLink.new("http://relay.invalid")
        opening = Pad.open(
            link,
            state_dir=None,
            connector=connector,
            clock=lambda: int(loop.time() * 1000),
            backoff=PadBackoff(0.001, jitter=0),
        )
        start = asyncio.create_task(_opened(opening))
        relay = await connector.relay_ends.get()
        await _serve_join(relay, 0)
        pad = await start
        await asyncio.sleep(0.5)  # the SDK's timer now sleeps towards its next deadline
        await pad.insert(0, "x")
        push = await _next_push(relay)
        refused = loop.time()
        yielded = f.Refuse(push.request_id, RefuseCode.YIELD, 20, 0, f.ZERO_ID)
        await relay.send(f.encode(yielded))
        again = await _next_push(relay)
        assert again.envelope == push.envelope
        waited = loop.time() - refused
        patch_id = hashlib.sha256(push.envelope).digest()
        await relay.send(f.encode(f.Ack(again.request_id, 1, patch_id)))
        await pad.synced(timeout=300)
        await pad.aclose()
        return waited

    try:
        waited = loop.run_until_complete(main())
    finally:
        loop.close()
    assert 0.02 <= waited < 0.1, waited  # virtual seconds: 20 ms, as asked


def test_a_refused_subscription_is_fatal_a_refused_patch_is_not() -> None:
    session = make()
    session.connected()
    subscribe = sent(session)[1]
    refuse = f.Refuse(subscribe.request_id, RefuseCode.CREATE_TOKEN_REQUIRED, 0, 0, f.ZERO_ID)
    session.receive_frame(f.encode(refuse))
    assert session.fatal is not None
    assert session.fatal.code == "CREATE_TOKEN_REQUIRED"
    live = make()
    join(live)
    live.edit((Op(0, 0, "x"),))
    (push,) = sent(live)
    too_big = f.Refuse(push.request_id, RefuseCode.PAD_TOO_LARGE, 0, 0, f.ZERO_ID)
    live.receive_frame(f.encode(too_big))
    assert live.failure is not None
    assert live.fatal is None  # the pad is open: keep going, say so


def test_the_recovered_log_stays_the_log_until_the_history_is_loaded() -> None:
    # Found by the crash suite (tests/reliability): a process killed while it
    # was still loading the history had already rewritten the write-ahead log
    # with its own, still empty, pending list, so the next process lost what
    # the one before had typed.
    keys = crypto.PadKeys.generate()
    typist = make(keys=keys)
    join(typist)
    typist.edit((Op(0, 0, "typed"),))
    (push,) = sent(typist)
    log = typist.write_ahead()
    assert log[1:] == [push.envelope] == typist.pending()
    assert crypto.envelope2.is_session_record(log[0])  # the log carries its session
    restarted = make(keys=keys, recovered=log)
    assert restarted.write_ahead() == log  # before connecting
    assert restarted.pending_base() is None  # the bases on disk stay as they are
    restarted.connected()
    assert any(isinstance(frame, f.Subscribe) for frame in sent(restarted))
    assert restarted.write_ahead() == log  # while the history loads


# --- a session the relay holds no record of (a trim dropped it: PROTOCOL.md §9.3) ---


def _frames(session: PadSession) -> list[Any]:
    """The frames the session queued, SESSION included and unanswered (presence and
    head beacons left out)."""
    frames = [f.decode_client(frame) for frame in session.frames_to_send()]
    return [frame for frame in frames if not isinstance(frame, f.Ephemeral)]


def _unknown_session(session: PadSession, request_id: int) -> None:
    refuse = f.Refuse(request_id, RefuseCode.UNKNOWN_SESSION, 0, 0, f.ZERO_ID)
    session.receive_frame(f.encode(refuse))


def _registers_again(session: PadSession, text: str) -> None:
    """The next edit's patch goes after a SESSION of our session, and lands."""
    session.edit((Op(len(session.text), 0, text),))
    register, push = _frames(session)
    assert isinstance(register, f.Session)
    assert isinstance(push, f.Push)
    assert register.record == session.engine.codec.record(session.engine.codec.session_tag)
    session.receive_frame(f.encode(f.Ack(register.request_id, 0, _id(register.record))))
    seq = session.engine.last_seq + 1
    session.receive_frame(f.encode(f.Ack(push.request_id, seq, _id(push.envelope))))
    assert session.status is Status.SAVED


def _saved_with_a_snapshot_due(session: PadSession) -> None:
    join(session)
    session.edit((Op(0, 0, os.urandom(10_000).hex()),))
    _ack_all(session, sent(session), 1)


def test_a_snapshot_refused_unknown_session_registers_the_session_again() -> None:
    session = make()
    _saved_with_a_snapshot_due(session)
    session.tick()
    chunks = [x for x in sent(session) if isinstance(x, f.SnapshotChunk)]
    assert chunks
    _unknown_session(session, chunks[0].request_id)
    assert session.failure is None  # a snapshot is best effort
    _registers_again(session, "!")
    assert session.failure is None


def test_an_owner_trim_refused_unknown_session_is_refused_and_registers_again() -> None:
    session = make()
    _saved_with_a_snapshot_due(session)
    job = session.trim()
    chunks = [x for x in sent(session) if isinstance(x, f.SnapshotChunk)]
    stored = chunks[0]
    session.receive_frame(f.encode(f.Ack(stored.request_id, 7, job.snapshot_id)))
    (trim,) = [x for x in sent(session) if isinstance(x, f.Trim)]
    _unknown_session(session, trim.request_id)
    assert (job.refused, job.floor, job.done) == ("UNKNOWN_SESSION", None, True)
    assert session.failure is None
    _registers_again(session, "!")


def test_a_replaced_owner_trim_refused_unknown_session_ends_nothing() -> None:
    """An owner trim asked again while the first one's TRIM is unanswered: that TRIM,
    refused UNKNOWN_SESSION, is no longer the job's; it neither fails the session
    nor stops the new job, whose TRIM goes after a SESSION of ours."""
    session = make()
    _saved_with_a_snapshot_due(session)
    first = session.trim()
    (stored,) = {x.request_id for x in sent(session) if isinstance(x, f.SnapshotChunk)}
    session.receive_frame(f.encode(f.Ack(stored, 7, first.snapshot_id)))
    (old_trim,) = [x for x in sent(session) if isinstance(x, f.Trim)]
    second = session.trim()
    (upload,) = {x.request_id for x in sent(session) if isinstance(x, f.SnapshotChunk)}
    _unknown_session(session, old_trim.request_id)
    assert session.failure is None
    assert not second.done
    session.receive_frame(f.encode(f.Ack(upload, 7, second.snapshot_id)))
    register, trim = _frames(session)
    assert isinstance(register, f.Session)
    assert isinstance(trim, f.Trim)
    session.receive_frame(f.encode(f.Ack(register.request_id, 0, _id(register.record))))
    session.receive_frame(f.encode(f.Ack(trim.request_id, 7, _id(trim.envelope))))
    assert second.floor == 7
    assert session.failure is None


def test_a_dispute_refused_unknown_session_registers_the_session_again() -> None:
    session = make()
    join(session)
    session.edit((Op(0, 0, "mine"),))
    (push,) = sent(session)
    session.receive_frame(f.encode(f.Ack(push.request_id, 1, _id(push.envelope))))
    # Someone's snapshot of patch 1 that is not our text: we dispute it.
    content = json.dumps({"height": 1, "doc": "forged", "h": "0" * 64}).encode()
    forged = crypto.seal(
        session.keys, crypto.Author.generate("mallory"), Kind.SNAPSHOT, _id(push.envelope), content
    )
    live = f.Snapshot(session.keys.channel_id, 1, f.SNAPSHOT_LIVE, len(forged), 0, forged)
    session.receive_frame(f.encode(live))
    (dispute,) = [x for x in sent(session) if isinstance(x, f.Dispute)]
    _unknown_session(session, dispute.request_id)
    assert session.failure is None  # a dispute is best effort
    _registers_again(session, "!")

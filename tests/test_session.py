"""The sans-I/O PadSession, driven frame by frame with a scripted relay and a fake clock."""

from __future__ import annotations

import hashlib
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
from client.session import PadSession, Phase
from client.textops import Op
from wire import frames as f


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def sent(session: PadSession) -> list[Any]:
    return [f.decode_client(frame) for frame in session.frames_to_send()]


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
    assert crypto.open_envelope(keys, rebased.envelope).ref == their_id
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
    assert [type(frame) for frame in sent(viewer)] == [f.Ephemeral]


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
    (eph,) = sent(bob)
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, eph.envelope)))
    (joined,) = [e for e in alice.events() if isinstance(e, PeerJoined)]
    assert (joined.peer.name, joined.peer.color, joined.peer.cursor) == ("bob", "#f00", (0, 0))
    alice.edit((Op(0, 0, "abc"),))
    assert alice.peers[0].cursor == (0, 0)  # a caret stays before text inserted at it
    bob.set_presence(cursor=(1, 2))
    (moved,) = sent(bob)
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, moved.envelope)))
    assert any(isinstance(e, CursorMoved) for e in alice.events())
    # a replayed ephemeral is rejected
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, moved.envelope)))
    assert [e.kind for e in alice.events() if isinstance(e, Alarm)] == [AlarmKind.BAD_PRESENCE]
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
    (eph,) = sent(bob)
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, eph.envelope)))
    alice.receive_frame(f.encode(f.PeerLeft(keys.channel_id, 8)))
    assert len(alice.peers) == 1
    alice.receive_frame(f.encode(f.PeerLeft(keys.channel_id, 9)))
    assert alice.peers == ()


def test_large_snapshots_are_uploaded_in_chunks_and_joiners_load_them() -> None:
    keys = crypto.PadKeys.generate()
    session = make(keys=keys)
    join(session)
    session.edit((Op(0, 0, "x" * 20_000),))
    pushes = sent(session)
    for seq, push in enumerate(pushes, 1):
        patch_id = hashlib.sha256(push.envelope).digest()
        session.receive_frame(f.encode(f.Ack(push.request_id, seq, patch_id)))
    chunks = [frame for frame in sent(session) if isinstance(frame, f.SnapshotChunk)]
    assert len(chunks) > 1
    assert all(len(f.encode(c)) <= 4096 for c in chunks)
    sealed = b"".join(c.data for c in chunks)
    joiner = make(keys=keys.view())
    joiner.connected()
    subscribe = sent(joiner)[1]
    x_seq = len(pushes)
    joiner.receive_frame(f.encode(f.Snapshot(keys.channel_id, x_seq, len(sealed), 0, sealed)))
    head = crypto.open_envelope(keys, sealed).ref
    joiner.receive_frame(
        f.encode(f.HistoryEnd(subscribe.request_id, keys.channel_id, x_seq, head))
    )
    assert joiner.text == "x" * 20_000
    assert joiner.phase is Phase.LIVE


def test_a_bad_snapshot_alarms_and_falls_back_to_the_whole_history() -> None:
    keys = crypto.PadKeys.generate()
    joiner = make(keys=keys)
    joiner.connected()
    sent(joiner)
    junk = crypto.seal(keys, crypto.Author.generate("x"), crypto.Kind.SNAPSHOT, b"r" * 32, b"{}")
    joiner.receive_frame(f.encode(f.Snapshot(keys.channel_id, 3, len(junk), 0, junk)))
    assert [e.kind for e in joiner.events() if isinstance(e, Alarm)] == [AlarmKind.BAD_SNAPSHOT]
    frames = sent(joiner)
    assert [type(x) for x in frames] == [f.Unsubscribe, f.Subscribe]
    assert frames[1].since_seq == 0


def test_garbage_from_the_relay_is_a_protocol_error() -> None:
    from client.errors import ProtocolError

    session = make()
    with pytest.raises(ProtocolError):
        session.receive_frame(b"\x01garbage")

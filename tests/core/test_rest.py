"""A pad at rest opens from a snapshot of its head (issue 14: a year of history
opens as fast as a fresh pad).

Opening replays every patch after the newest snapshot, each an Ed25519
verification and an apply; the snapshot cadence lets that tail grow to about
a snapshot's size while people type.  Once the pad goes quiet (its head
unmoved for ``QUIET_MS``) or the author of its head leaves, a writer snapshots
the head if the tail holds ``REST_TAIL`` patches or more.

The relay is this test, frame by frame; time is the session's injected clock.
"""

from __future__ import annotations

from test_compaction import Relay
from test_session import Clock, join, make, sent, teach

import crypto
from client.relayside import QUIET_MS
from client.session import PadSession
from client.snapshots import REST_TAIL
from client.textops import Op
from wire import frames as f


def keystrokes(session: PadSession, relay: Relay, count: int) -> None:
    """``count`` one-character patches, each acknowledged at once."""
    for _ in range(count):
        session.edit((Op(len(session.text), 0, "x"),))
        relay.answer(session)


def snapshot_refs(relay: Relay) -> list[bytes]:
    """The patch each snapshot the relay stored is of."""
    return [crypto.envelope2.ref_of(data) for _, data in relay.snapshots]


def quiet_for(session: PadSession, relay: Relay, clock: Clock, ms: int) -> None:
    """Let ``ms`` pass with nothing typed, ticking when the session asks."""
    end = clock.now + ms
    for _ in range(1000):
        deadline = session.next_deadline_ms()
        if deadline > end:
            break
        clock.now = max(clock.now, deadline)
        relay.answer(session)
    else:
        raise AssertionError(f"hung: the session asks for a tick at {deadline} over and over")
    clock.now = end
    relay.answer(session)


def test_the_author_of_the_head_snapshots_a_quiet_pad_once() -> None:
    clock, relay = Clock(), Relay()
    alice = make(clock)
    join(alice)
    keystrokes(alice, relay, REST_TAIL)
    assert relay.snapshots == []  # far below the cadence's byte budget
    quiet_for(alice, relay, clock, QUIET_MS - 1)
    assert relay.snapshots == []
    quiet_for(alice, relay, clock, 1)
    assert snapshot_refs(relay) == [alice.engine.head.id]
    quiet_for(alice, relay, clock, 10 * QUIET_MS)
    assert len(relay.snapshots) == 1  # once: the tail is empty now


def test_a_short_tail_or_a_view_link_makes_no_snapshot() -> None:
    clock, relay = Clock(), Relay()
    alice = make(clock)
    join(alice)
    keystrokes(alice, relay, REST_TAIL - 1)
    quiet_for(alice, relay, clock, 10 * QUIET_MS)
    assert relay.snapshots == []
    viewer = make(clock, keys=alice.keys.view())
    join(viewer)
    teach(viewer)
    for seq, envelope in enumerate(relay.stored, 1):
        viewer.receive_frame(f.encode(f.Broadcast(alice.keys.channel_id, seq, envelope)))
    keystrokes(alice, relay, 1)  # the tail is long enough now, but alice stays
    viewer.receive_frame(f.encode(f.Broadcast(alice.keys.channel_id, 8, relay.stored[-1])))
    assert viewer.engine.head.height == REST_TAIL
    viewer.tick()
    clock.now += 10 * QUIET_MS
    viewer.tick()
    assert not any(isinstance(x, f.SnapshotChunk) for x in sent(viewer))


def test_nothing_is_snapshotted_while_our_own_work_is_in_flight() -> None:
    clock, relay = Clock(), Relay()
    alice = make(clock)
    join(alice)
    keystrokes(alice, relay, REST_TAIL)
    alice.edit((Op(0, 0, "y"),))  # sealed and pushed, never acknowledged
    assert any(isinstance(x, f.Push) for x in sent(alice))
    for _ in range(3):
        clock.now += QUIET_MS
        alice.tick()
        assert not any(isinstance(x, f.SnapshotChunk) for x in sent(alice))


def alice_typed_bob_watched(clock: Clock, relay: Relay) -> tuple[PadSession, PadSession]:
    """Two writers live on one pad; alice types REST_TAIL patches, bob receives them."""
    alice = make(clock)
    bob = make(clock, keys=alice.keys)
    join(alice)
    join(bob)
    sent(bob, ephemerals=True)
    keystrokes(alice, relay, REST_TAIL)
    teach(bob)
    for seq, envelope in enumerate(relay.stored, 1):
        bob.receive_frame(f.encode(f.Broadcast(alice.keys.channel_id, seq, envelope)))
    assert bob.engine.head.id == alice.engine.head.id
    return alice, bob


def test_another_writer_snapshots_at_twice_the_quiet_when_the_author_is_gone() -> None:
    clock, relay = Clock(), Relay()
    _, bob = alice_typed_bob_watched(clock, relay)
    # alice vanished without a word; bob waits twice the quiet, then snapshots
    bobs = Relay()
    bobs.seq = relay.seq
    quiet_for(bob, bobs, clock, 2 * QUIET_MS - 1)
    assert bobs.snapshots == []
    quiet_for(bob, bobs, clock, 1)
    assert snapshot_refs(bobs) == [bob.engine.head.id]


def test_leaving_snapshots_our_head_and_compacts_after_it() -> None:
    clock, relay = Clock(), Relay()
    alice = make(clock, compact=True)
    join(alice)
    keystrokes(alice, relay, REST_TAIL)
    quiet_for(alice, relay, clock, QUIET_MS)  # the first snapshot, at rest
    keystrokes(alice, relay, REST_TAIL)
    upload = alice.rest()
    assert upload is not None
    assert not upload.done
    relay.answer(alice)
    assert upload.stored
    assert snapshot_refs(relay)[-1] == alice.engine.head.id
    # compacted as after any snapshot of ours: trimmed at the previous one
    (trim,) = relay.trims
    assert crypto.envelope2.ref_of(trim.envelope) == snapshot_refs(relay)[0]
    assert alice.rest() is None  # nothing left to snapshot


def test_leaving_is_no_snapshot_when_the_head_is_someone_elses() -> None:
    clock, relay = Clock(), Relay()
    alice, bob = alice_typed_bob_watched(clock, relay)
    assert bob.engine.head.height == REST_TAIL
    assert bob.rest() is None  # alice, the head's author, snapshots it when she goes
    upload = alice.rest()
    assert upload is not None

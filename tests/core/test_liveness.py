"""Liveness: a live session that waits on the relay re-reads, and in the end alarms.

Issue 15 (liveness) and issue 12 (gaps heal or alarm): a refusal naming a
head the relay never sends, a broadcast the relay skipped, an ACK that never
comes.  Time is the session's injected clock; the relay is this test, frame
by frame.
"""

from __future__ import annotations

import hashlib
from typing import Any

from test_session import Clock, join, make, sent, teach

import crypto
from client.events import Alarm, AlarmKind, Status
from client.relayside import DEFAULT_RESUME_AFTER_MS
from client.session import PadSession
from client.textops import Op
from wire import frames as f
from wire.codes import RefuseCode

AFTER = DEFAULT_RESUME_AFTER_MS


def their_patches(reader: PadSession, *texts: str) -> list[bytes]:
    """Patches by another writer of ``reader``'s pad, in a chain from an empty
    pad, each inserting at 0 (``reader`` is sent the writer's session record)."""
    other = make(keys=reader.keys)
    join(other)
    out = []
    for seq, text in enumerate(texts, 1):
        other.edit((Op(0, 0, text),))
        (push,) = sent(other)
        out.append(push.envelope)
        ack = f.Ack(push.request_id, seq, hashlib.sha256(push.envelope).digest())
        other.receive_frame(f.encode(ack))
    teach(reader)
    return out


def quiet(clock: Clock) -> PadSession:
    """A session that never PINGs during these tests (keepalive is another test's)."""
    return make(clock, keepalive_ms=10**12)


def resubscribed(frames: list[Any], since: int) -> f.Subscribe:
    """The frames of a resume: UNSUBSCRIBE, then SUBSCRIBE since ``since``."""
    unsub, sub = frames[:2]
    assert isinstance(unsub, f.Unsubscribe)
    assert isinstance(sub, f.Subscribe)
    assert (sub.start, sub.since_seq) == (f.SubscribeFrom.SINCE, since)
    return sub


def alarms(session: PadSession) -> list[Alarm]:
    return [e for e in session.events() if isinstance(e, Alarm)]


def test_a_refusal_naming_a_head_that_never_comes_resumes_and_lands() -> None:
    """A client refused STALE whose named head never arrived waited forever."""
    clock = Clock()
    session = quiet(clock)
    join(session)
    session.edit((Op(0, 0, "mine"),))
    (push,) = sent(session)
    (theirs,) = their_patches(session, "theirs")
    their_id = hashlib.sha256(theirs).digest()
    session.receive_frame(f.encode(f.Refuse(push.request_id, RefuseCode.STALE, 0, 1, their_id)))
    assert session.engine.missing is not None  # the head it named
    assert session.status is Status.SYNCING
    clock.now += AFTER - 1
    session.tick()
    assert sent(session) == []  # not yet
    assert session.next_deadline_ms() == clock.now + 1
    clock.now += 1
    session.tick()
    sub = resubscribed(sent(session), since=0)
    history = f.History(sub.channel_id, 1, theirs)
    session.receive_frame(f.encode(history))
    session.receive_frame(f.encode(f.HistoryEnd(sub.request_id, sub.channel_id, 1, their_id)))
    (rebased,) = [frame for frame in sent(session) if isinstance(frame, f.Push)]
    assert crypto.envelope2.ref_of(rebased.envelope) == their_id
    assert session.text == "mine" + "theirs" or session.text == "theirs" + "mine"
    session.receive_frame(
        f.encode(f.Ack(rebased.request_id, 2, hashlib.sha256(rebased.envelope).digest()))
    )
    assert session.status is Status.SAVED
    assert (session.resumes, session.reconnects) == (1, 0)  # one connection throughout
    assert alarms(session) == []


def test_a_skipped_broadcast_is_a_gap_that_a_resume_fills() -> None:
    """A dropped patch stalled the client although the sequence gap was visible."""
    clock = Clock()
    session = quiet(clock)
    join(session)
    one, two = their_patches(session, "a", "b")
    channel = session.keys.channel_id
    session.receive_frame(f.encode(f.Broadcast(channel, 2, two)))  # number 1 skipped
    assert session.engine.missing is not None
    assert session.status is Status.SYNCING  # never "saved" while a patch is missing
    sub = resubscribed(sent(session), since=0)  # at once: a gap is owed, no need to wait
    session.receive_frame(f.encode(f.History(channel, 1, one)))
    session.receive_frame(f.encode(f.History(channel, 2, two)))
    end = f.HistoryEnd(sub.request_id, channel, 2, hashlib.sha256(two).digest())
    session.receive_frame(f.encode(end))
    assert session.text == "ba"
    assert session.engine.missing is None
    assert session.status is Status.SAVED
    assert session.engine.last_seq == 2
    assert alarms(session) == []


def test_an_ack_that_never_comes_is_found_by_a_resume() -> None:
    """The relay stored our patch but its ACK was lost: the re-read brings it back as ours."""
    clock = Clock()
    session = quiet(clock)
    join(session)
    session.edit((Op(0, 0, "x"),))
    (push,) = sent(session)
    clock.now += AFTER
    session.tick()
    frames = sent(session)
    sub = resubscribed(frames, since=0)
    assert not [frame for frame in frames if isinstance(frame, f.Push)]  # none mid-resume
    session.receive_frame(f.encode(f.History(sub.channel_id, 1, push.envelope)))
    own = hashlib.sha256(push.envelope).digest()
    session.receive_frame(f.encode(f.HistoryEnd(sub.request_id, sub.channel_id, 1, own)))
    assert session.status is Status.SAVED
    assert session.pending() == []


def test_a_relay_that_keeps_withholding_raises_one_alarm_and_keeps_trying() -> None:
    clock = Clock()
    session = quiet(clock)
    join(session)
    _, two = their_patches(session, "a", "b")
    channel = session.keys.channel_id
    session.receive_frame(f.encode(f.Broadcast(channel, 2, two)))
    seen: list[Alarm] = []
    for round_ in range(6):
        if round_:  # the first resume is at once (a gap), the next ones on the timer
            clock.now += AFTER
            session.tick()
        sub = resubscribed(sent(session), since=0)
        # the relay answers the resume, but without patch number 1
        end = f.HistoryEnd(sub.request_id, channel, 2, hashlib.sha256(two).digest())
        session.receive_frame(f.encode(end))
        seen += alarms(session)
        assert len(seen) == (0 if round_ < 2 else 1), round_
        assert session.status is Status.SYNCING
    (alarm,) = seen
    assert alarm.kind is AlarmKind.WITHHELD
    assert "patch number 1" in alarm.detail
    assert "after 2 re-reads" in alarm.detail
    assert session.resumes == 6


def test_a_rate_limited_session_does_not_resume() -> None:
    clock = Clock()
    session = quiet(clock)
    join(session)
    session.edit((Op(0, 0, "x"),))
    (push,) = sent(session)
    retry = 3 * AFTER
    session.receive_frame(
        f.encode(f.Refuse(push.request_id, RefuseCode.RATE_LIMITED, retry, 0, f.ZERO_ID))
    )
    clock.now += 2 * AFTER
    session.tick()
    assert sent(session) == []  # waiting for the retry, not for the relay
    clock.now += AFTER
    session.tick()
    assert sent(session) == [push]


def test_work_refused_for_good_is_not_waited_for() -> None:
    """A hard refusal (PAD_TOO_LARGE) answered the push: no re-reads, no WITHHELD."""
    clock = Clock()
    session = quiet(clock)
    join(session)
    session.edit((Op(0, 0, "x"),))
    (push,) = sent(session)
    refuse = f.Refuse(push.request_id, RefuseCode.PAD_TOO_LARGE, 0, 0, f.ZERO_ID)
    session.receive_frame(f.encode(refuse))
    assert session.failure is not None
    for _ in range(4):
        clock.now += AFTER
        session.tick()
    assert sent(session) == []
    assert [a for a in alarms(session) if a.kind is AlarmKind.WITHHELD] == []
    assert session.resumes == 0


def test_a_gap_our_chain_covers_is_not_missing() -> None:
    """The ACK of our second patch proves the first stored (its ACK was lost): saved at once."""
    clock = Clock()
    session = quiet(clock)
    join(session)
    session.edit((Op(0, 0, "x"),))
    (_first,) = sent(session)
    session.edit((Op(1, 0, "y"),))
    (second,) = sent(session)
    ack = f.Ack(second.request_id, 2, hashlib.sha256(second.envelope).digest())
    session.receive_frame(f.encode(ack))  # number 1's ACK never comes
    assert session.engine.missing is None
    assert session.status is Status.SAVED
    clock.now += 2 * AFTER
    session.tick()
    assert session.resumes == 0

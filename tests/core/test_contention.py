"""Turns (PROTOCOL.md §13.3): a push refused YIELD (another writer has waited
longer) is sent again, the very same bytes, ``retry_after_ms`` later by the
session's injected clock; the relay is this test."""

from __future__ import annotations

import hashlib

from test_session import Clock, join, make, sent

import crypto
from client.events import Status
from client.textops import Op
from wire import frames as f
from wire.codes import RefuseCode


def test_a_push_refused_yield_is_sent_again_unchanged_after_retry_after_ms() -> None:
    clock = Clock()
    session = make(clock, keepalive_ms=10**12)
    join(session)
    session.edit((Op(0, 0, "mine"),))
    (push,) = sent(session)
    assert isinstance(push, f.Push)
    session.receive_frame(f.encode(f.Refuse(push.request_id, RefuseCode.YIELD, 20, 0, f.ZERO_ID)))
    assert session.failure is None
    assert session.status is Status.SYNCING
    assert session.next_deadline_ms() == clock.now + 20
    clock.now += 19
    session.tick()
    assert sent(session) == []
    clock.now += 1
    session.tick()
    (again,) = sent(session)
    assert again == push  # same request, same bytes
    patch_id = hashlib.sha256(push.envelope).digest()
    session.receive_frame(f.encode(f.Ack(push.request_id, 1, patch_id)))
    assert session.status is Status.SAVED
    assert session.text == "mine"


def test_a_yielded_push_overtaken_by_a_broadcast_is_sealed_again_not_resent() -> None:
    """The yielded bytes were sealed on a head that another writer's patch has
    since moved past: the session seals the work again on the new head at once
    and sends that, and the yielded bytes are not sent again when their retry
    falls due (the relay could only refuse them STALE)."""
    clock = Clock()
    session = make(clock, keepalive_ms=10**12)
    keys = session.keys
    join(session)
    session.edit((Op(0, 0, "mine"),))
    (push,) = sent(session)
    session.receive_frame(f.encode(f.Refuse(push.request_id, RefuseCode.YIELD, 20, 0, f.ZERO_ID)))
    theirs = crypto.seal(
        keys,
        crypto.Author.generate("other"),
        crypto.Kind.PATCH,
        f.ZERO_ID,
        b'{"o":[[0,0,"theirs"]],"n":6}',
    )
    session.receive_frame(f.encode(f.Broadcast(keys.channel_id, 1, theirs)))
    (rebased,) = sent(session)
    assert isinstance(rebased, f.Push)
    assert crypto.envelope2.ref_of(rebased.envelope) == crypto.envelope_id(theirs)
    clock.now += 20
    session.tick()
    assert sent(session) == []  # the stale bytes stay unsent
    patch_id = hashlib.sha256(rebased.envelope).digest()
    session.receive_frame(f.encode(f.Ack(rebased.request_id, 2, patch_id)))
    assert session.status is Status.SAVED
    assert session.text in ("minetheirs", "theirsmine")

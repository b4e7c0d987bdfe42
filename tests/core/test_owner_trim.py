"""Owner trim in the session: snapshot the relay's head, then trim at it (issue 14, item 2)."""

from __future__ import annotations

import hashlib

import pytest
from test_liveness import quiet, their_patches
from test_session import Clock, join, sent, teach

import crypto
from client.errors import NotReady, ReadOnly
from client.session import PadSession
from wire import frames as f
from wire.codes import RefuseCode


def joined_with_history(clock: Clock) -> tuple[PadSession, bytes]:
    """A live session whose history is two patches by someone else; returns it and the head."""
    session = quiet(clock)
    one, two = their_patches(session, "a", "b")
    session.connected()
    teach(session)  # the relay's RECORD, before the history
    sub = next(frame for frame in sent(session) if isinstance(frame, f.Subscribe))
    session.receive_frame(f.encode(f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)))
    for seq, envelope in ((1, one), (2, two)):
        session.receive_frame(f.encode(f.History(sub.channel_id, seq, envelope)))
    head = hashlib.sha256(two).digest()
    session.receive_frame(f.encode(f.HistoryEnd(sub.request_id, sub.channel_id, 2, head)))
    assert session.text == "ba"
    return session, head


def test_trim_sends_the_snapshot_then_the_trim_at_the_same_patch() -> None:
    session, head = joined_with_history(Clock())
    job = session.trim()
    chunks = sent(session)
    assert chunks
    assert all(isinstance(c, f.SnapshotChunk) for c in chunks)
    snapshot = b"".join(c.data for c in chunks)
    opened = session.engine.codec.open(snapshot)
    assert (opened.kind, opened.ref) == (crypto.Kind.SNAPSHOT, head)
    assert not job.done
    session.receive_frame(f.encode(f.Ack(chunks[0].request_id, 2, job.snapshot_id)))
    (trim,) = sent(session)
    assert isinstance(trim, f.Trim)
    opened = session.engine.codec.open(trim.envelope)
    assert (opened.kind, opened.ref, opened.content) == (
        crypto.Kind.TRIM,
        head,
        b'{"height":2}',
    )
    session.receive_frame(f.encode(f.Ack(trim.request_id, 2, job.trim.id)))
    assert (job.done, job.floor, job.refused) == (True, 2, None)


def test_a_refused_or_cut_trim_stops_without_failing_the_pad() -> None:
    session, _ = joined_with_history(Clock())
    job = session.trim()
    chunks = sent(session)
    session.receive_frame(f.encode(f.Ack(chunks[0].request_id, 2, job.snapshot_id)))
    (trim,) = sent(session)
    refuse = f.Refuse(trim.request_id, RefuseCode.NO_SNAPSHOT, 0, 0, f.ZERO_ID)
    session.receive_frame(f.encode(refuse))
    assert (job.done, job.refused, session.failure) == (True, "NO_SNAPSHOT", None)
    again = session.trim()
    session.disconnected("test")
    assert again.refused == "the connection dropped"


def test_an_empty_pad_has_nothing_to_trim_and_a_view_link_cannot() -> None:
    session = quiet(Clock())
    with pytest.raises(NotReady):
        session.trim()
    join(session)
    job = session.trim()
    assert (job.done, job.floor) == (True, 0)
    assert sent(session) == []
    viewer = PadSession(session.keys.view(), crypto.Author.generate("v"), clock=Clock())
    join(viewer)
    with pytest.raises(ReadOnly):
        viewer.trim()


def test_a_finished_trim_does_not_swallow_other_refusals() -> None:
    """An empty pad's trim is done at once; a later refused SUBSCRIBE is still a failure."""
    session = quiet(Clock())
    join(session)
    assert session.trim().floor == 0
    session._join.resume()  # any request without an envelope id, e.g. a re-subscribe
    sub = next(frame for frame in sent(session) if isinstance(frame, f.Subscribe))
    refuse = f.Refuse(sub.request_id, RefuseCode.TOO_MANY_CHANNELS, 0, 0, f.ZERO_ID)
    session.receive_frame(f.encode(refuse))
    assert session.failure is not None
    assert session.failure.code == "TOO_MANY_CHANNELS"

"""A session that finds its history trimmed away (it was away while someone compacted)
starts again from the snapshot, keeping what it typed before and during (issue 14)."""

from __future__ import annotations

import hashlib

from test_session import Clock, join, make, sent, teach

import crypto
from client import textops
from client.events import TextChanged
from client.session import PadSession
from client.textops import Op
from wire import frames as f
from wire.codes import RefuseCode


def writer(keys: crypto.PadKeys, *texts: str) -> tuple[PadSession, list[bytes]]:
    """Another writer's session and its patches, each inserting at 0, all acknowledged."""
    other = make(keys=keys)
    join(other)
    out = []
    for seq, text in enumerate(texts, 1):
        other.edit((Op(0, 0, text),))
        (push,) = [x for x in sent(other) if isinstance(x, f.Push)]
        out.append(push.envelope)
        other.receive_frame(
            f.encode(f.Ack(push.request_id, seq, hashlib.sha256(push.envelope).digest()))
        )
    return other, out


def test_a_trim_past_us_while_away_keeps_what_we_typed_before_and_during() -> None:
    keys = crypto.PadKeys.generate()
    other, patches = writer(keys, "a", "b", "c")
    me = make(Clock(), keys=keys, keepalive_ms=10**12)
    me.connected()
    teach(me)
    sub = next(x for x in sent(me) if isinstance(x, f.Subscribe))
    me.receive_frame(f.encode(f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)))
    for seq, envelope in enumerate(patches[:2], 1):
        me.receive_frame(f.encode(f.History(keys.channel_id, seq, envelope)))
    head = hashlib.sha256(patches[1]).digest()
    me.receive_frame(f.encode(f.HistoryEnd(sub.request_id, keys.channel_id, 2, head)))
    assert me.text == "ba"
    me.edit((Op(0, 0, "X"),))  # sent, never stored: the connection drops
    sent(me)
    me.disconnected()
    me.edit((Op(3, 0, "Y"),))  # offline: logged
    snapshot, _ = other.engine.compaction() or (None, None)
    assert snapshot is not None  # the other writer snapshots "cba" at patch 3 and trims there
    me.connected()
    resume = next(x for x in sent(me) if isinstance(x, f.Subscribe))
    assert (resume.start, resume.since_seq) == (f.SubscribeFrom.SINCE, 2)
    me.receive_frame(f.encode(f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)))
    me.events()  # a front end has taken everything so far: it shows me.text
    me.receive_frame(
        f.encode(f.Refuse(resume.request_id, RefuseCode.HISTORY_TRIMMED, 0, 3, bytes(32)))
    )
    again = next(x for x in sent(me) if isinstance(x, f.Subscribe))
    assert again.start is f.SubscribeFrom.SNAPSHOT
    assert me.text == "XbaY"  # what was shown stays while it catches up
    me.edit((Op(4, 0, "Z"),))  # and typing goes on
    assert me.text == "XbaYZ"
    shown = me.text  # what a front end shows, and applies the changes it is told to
    assert not [e for e in me.events() if isinstance(e, TextChanged)]
    data = snapshot.data
    me.receive_frame(f.encode(f.Snapshot(keys.channel_id, 3, 0, len(data), 0, data)))
    x = crypto.envelope2.ref_of(data)
    me.receive_frame(f.encode(f.HistoryEnd(again.request_id, keys.channel_id, 3, x)))
    final = me.text
    assert sorted(final) == sorted("XYZcba")  # every character once
    assert final.endswith("YZ")
    assert "cba" in final.replace("X", "")
    changes = [e for e in me.events() if isinstance(e, TextChanged)]
    assert changes  # the front end is taken from what it showed to the result...
    for change in changes:
        shown = textops.apply(shown, change.ops)
    assert shown == final  # ...exactly: the catch-up's own changes are not told twice
    pushes = [x for x in sent(me) if isinstance(x, f.Push)]
    assert pushes  # the work is sent on the snapshot's head
    assert me.reconnects == 1

"""The chain engine, one mechanism at a time (the simulator drives them all at once)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from unittest.mock import ANY

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sim import FakeCodec, header

import client
from client import textops
from client.chain import GENESIS, Chain, Pending
from client.doctype import TEXT, InvalidPatch
from client.engine import (
    PATCH,
    SNAPSHOT,
    Alarm,
    AlarmKind,
    Committed,
    Engine,
    LocalError,
    RemoteChange,
    SendPatch,
    SendSnapshot,
)
from client.outbox import BURST
from client.payload import Payload, decode, encode
from client.textops import Patch
from wire import integrity


def engine(author: int, **options: int) -> Engine[str, Patch]:
    return Engine(TEXT, FakeCodec(author), **options)  # type: ignore[arg-type]


def insert(pos: int, text: str) -> Patch:
    return textops.normalize([(pos, 0, text)])


def sent(e: Engine[str, Patch]) -> list[bytes]:
    return [ev.sealed.data for ev in e.events() if isinstance(ev, SendPatch)]


def alarms(e: Engine[str, Patch]) -> list[Alarm]:
    return [ev for ev in e.events() if isinstance(ev, Alarm)]


def rogue(parent: bytes, body: object, author: int = 99) -> bytes:
    """A patch sealed by hand with an arbitrary payload."""
    return FakeCodec(author).seal(PATCH, parent, json.dumps(body).encode()).data


def test_pipeline_sends_up_to_k_and_what_is_typed_past_it_folds_into_one_patch() -> None:
    a = engine(1, pipeline=2)
    for i, char in enumerate("abcd"):
        a.edit(insert(i, char))
        a.flush()
    first, second = sent(a)
    assert header(second)[2] == header(first)[0]  # pipelined: parented on the previous
    assert a.open == insert(2, "cd")  # past the pipeline: kept open, not sealed per edit
    *_, folded = a.unacknowledged()  # reading the log seals it, sending nothing
    assert a.open == ()
    assert sent(a) == []
    assert header(folded.data)[2] == header(second)[0]
    assert len(a.unacknowledged()) == 3  # c and d in one patch past the pipeline
    a.edit(insert(4, "e"))
    a.flush()
    assert len(a.unacknowledged()) == 3  # e folded into it: it never left
    a.acked(header(first)[0], 1)
    a.flush()
    (third,) = sent(a)
    assert header(third)[2] == header(second)[0]
    assert a.view == "abcde"
    assert a.auth == "a"
    assert not a.saved


def test_the_pieces_of_a_large_edit_go_out_a_burst_at_a_time() -> None:
    """Sealed together, the pieces of one paste are handed out BURST at a
    time, not ``pipeline``; under contention, one at a time as any patch."""
    a = engine(1, pipeline=2, max_patch_bytes=228)  # pieces of 25 code points
    a.edit(insert(0, "p" * 25 * 40))
    a.flush()
    first = sent(a)
    assert len(first) == BURST  # of 40 pieces
    a.acked(header(first[0])[0], 1)
    a.flush()
    assert len(sent(a)) == 1  # one landed, one more leaves
    b = engine(2, pipeline=2, max_patch_bytes=228)
    b.outbox.contended()  # someone else's patch just landed
    b.edit(insert(0, "q" * 25 * 40))
    b.flush()
    assert len(sent(b)) == 1


def test_a_burst_past_the_pipeline_is_sealed_once_when_room_comes() -> None:
    a = engine(1, pipeline=1)
    for i in range(100):
        a.edit(insert(i, "x"))
        a.flush()
    (first,) = sent(a)
    assert a.outbox.counter == 1  # 99 edits typed while it was away: none sealed yet
    a.acked(header(first)[0], 1)
    a.flush()
    (second,) = sent(a)
    assert a.outbox.counter == 2  # the 99 leave as one patch, sealed once
    a.acked(header(second)[0], 2)
    assert a.saved
    assert a.auth == "x" * 100


def test_a_writer_typing_while_ours_is_at_the_relay_keeps_the_pace() -> None:
    now = [1_000]
    a: Engine[str, Patch] = Engine(
        TEXT,
        FakeCodec(1),  # type: ignore[arg-type]
        pipeline=4,
        pace_ms=10,
        clock=lambda: now[0],
    )
    a.edit(insert(0, "a"))
    a.flush()
    (first,) = sent(a)  # nothing of ours at the relay: it leaves at once
    assert a.outbox.pace_deadline_ms() is None
    assert a.outbox.would_wait()  # an edit now would keep the pace
    for i, char in enumerate("bcd", start=1):
        now[0] += 1
        a.edit(insert(i, char))
        a.flush()
    assert sent(a) == []  # the pipeline has room, but these were typed while ours was away
    assert a.open == insert(1, "bcd")
    assert a.outbox.pace_deadline_ms() == 1_010  # the last patch left at 1,000
    a.acked(header(first)[0], 1)
    a.flush()
    assert sent(a) == []  # answered at 1,003: the pace still holds them
    now[0] = 1_009
    a.flush()
    assert sent(a) == []
    (logged,) = a.unacknowledged()  # reading the log seals them, and sends nothing
    now[0] = 1_010
    a.flush()
    (second,) = sent(a)  # on the pace: the three as one patch
    assert second == logged.data
    assert a.outbox.pace_deadline_ms() is None
    a.acked(header(second)[0], 2)
    now[0] = 1_012  # 2 ms after the last left, but typed after its answer:
    assert not a.outbox.would_wait()
    a.edit(insert(4, "e"))
    a.flush()
    assert len(sent(a)) == 1  # it leaves at once (a person, or "edit, await saved")
    assert a.view == "abcde"


def test_refusal_squashes_unacknowledged_work_onto_the_new_head() -> None:
    a, b = engine(1, pipeline=4), engine(2)
    for i, char in enumerate("xy"):
        a.edit(insert(i, char))
        a.flush()
    p1, p2 = sent(a)
    b.edit(insert(0, "B"))
    b.flush()
    (q,) = sent(b)
    a.receive(q, 1)  # the relay stored b's patch first
    assert a.view == "Bxy"
    assert a.inflight == []
    assert a.open == insert(1, "xy")
    a.refused(header(p1)[0], header(q)[0])  # refusals of superseded patches: ignored
    a.refused(header(p2)[0], header(q)[0])
    a.flush()
    (resent,) = sent(a)
    assert header(resent)[2] == header(q)[0]
    b.receive(resent, 2)
    assert b.view == a.view == "Bxy"


def test_refusal_naming_an_unknown_head_waits_for_it() -> None:
    a, b = engine(1), engine(2)
    a.edit(insert(0, "a"))
    a.flush()
    (p,) = sent(a)
    b.edit(insert(0, "b"))
    b.flush()
    (q,) = sent(b)
    assert a.awaited_head is None
    a.refused(header(p)[0], header(q)[0])
    assert a.awaited_head == header(q)[0]
    a.flush()
    assert sent(a) == []  # no use sealing on a head the relay already left
    a.receive(q, 1)
    assert a.awaited_head is None
    a.flush()
    (again,) = sent(a)
    assert header(again)[2] == header(q)[0]


def test_a_patch_built_on_ours_proves_ours_was_stored_when_the_ack_was_lost() -> None:
    a, b = engine(1, pipeline=4), engine(2)
    for i, char in enumerate("12"):
        a.edit(insert(i, char))
        a.flush()
    p1, p2 = sent(a)
    b.receive(p1, 1)
    b.receive(p2, 2)
    b.edit(insert(2, "!"))
    b.flush()
    (x,) = sent(b)
    a.receive(x, 3)  # both acks were lost
    events = a.events()
    assert [e.id for e in events if isinstance(e, Committed)] == [header(p1)[0], header(p2)[0]]
    assert a.saved
    assert a.view == b.view == "12!"
    assert a.last_seq == 0  # seqs 1 and 2 were never seen: a resume asks for them
    a.receive(p1, 1)
    a.receive(p2, 2)
    assert a.last_seq == 3
    assert a.view == "12!"


def test_orphans_wait_for_their_parent_and_are_bounded() -> None:
    a, b = engine(1, max_orphans=2), engine(2)
    chain = []
    for i in range(4):
        b.edit(insert(i, str(i)))
        b.flush()
        (p,) = sent(b)
        b.acked(header(p)[0])
        chain.append(p)
    for p in chain[1:]:
        a.receive(p)
    (overflow,) = alarms(a)
    assert overflow.kind is AlarmKind.ORPHAN_OVERFLOW
    assert overflow.id == header(chain[1])[0]
    a.receive(chain[0])
    assert a.view == "0"
    assert a.height == 1
    a.receive(chain[1])
    assert a.view == "0123"
    assert a.height == 4


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not an object", "payload flags must be 0 to 7"),  # read as binary content
        ({"o": [[0, 0, "x"]], "n": 1, "x": 1}, "payload must be an object"),
        ({"o": [[5, 0, "x"]], "n": 6}, "does not apply"),
        ({"o": [[0, 0, "x"]], "n": 2}, "size mismatch"),
        ({"o": [[0, 0, "x"]]}, "size n must be"),
        ({"o": [[0, 1, ""], [0, 0, "x"]], "n": 1}, "malformed payload"),
    ],
)
def test_an_invalid_patch_is_a_no_op_for_everyone_and_the_pad_goes_on(
    body: object, why: str
) -> None:
    a, b = engine(1), engine(2)
    bad = rogue(GENESIS, body)
    for e in (a, b):
        e.receive(bad, 1)
        (alarm,) = alarms(e)
        assert alarm.kind is AlarmKind.INVALID_PATCH
        assert why in alarm.detail
        assert e.view == ""
        assert e.head.id == header(bad)[0]
    a.edit(insert(0, "ok"))
    a.flush()
    (p,) = sent(a)
    assert header(p)[2] == header(bad)[0]  # the chain goes on past it
    b.receive(p, 2)
    assert b.view == "ok"
    assert not alarms(b)


def test_the_document_hash_is_checked_every_hash_every_patches() -> None:
    a = engine(1, hash_every=2)
    a.edit(insert(0, "x"))
    a.flush()
    (p1,) = sent(a)
    a.acked(header(p1)[0])
    a.events()
    assert decode(TEXT, p1[45:]).digest is None  # height 1: size only
    good = {"o": [[1, 0, "y"]], "n": 2, "h": TEXT.digest("xy").hex()}
    forged = {"o": [[1, 0, "y"]], "n": 2, "h": TEXT.digest("xz").hex()}
    missing = {"o": [[1, 0, "y"]], "n": 2}
    for body, verdict in ((forged, "hash mismatch"), (missing, "missing document hash")):
        e = engine(3, hash_every=2)
        e.receive(p1)
        e.receive(rogue(header(p1)[0], body))
        (alarm,) = alarms(e)
        assert verdict in alarm.detail
        assert e.view == "x"
    e = engine(3, hash_every=2)
    e.receive(p1)
    e.receive(rogue(header(p1)[0], good))
    assert not alarms(e)
    assert e.view == "xy"
    a.edit(insert(1, "y"))
    a.flush()
    (p2,) = sent(a)
    claimed = decode(TEXT, p2[45:])  # height 2: the author claims (a short text: alg 1)
    assert (claimed.alg, claimed.digest) == (1, TEXT.digest("xy"))
    alg2 = Payload(textops.normalize([(1, 0, "y")]), 2, integrity.digest("xy"), alg=2)
    for claim, verdict in (
        (alg2, None),
        (replace(alg2, digest=integrity.digest("xz")), "hash mismatch"),
        (replace(alg2, alg=7), "unknown integrity algorithm 7"),
    ):
        e = engine(3, hash_every=2)
        e.receive(p1)
        e.receive(FakeCodec(99).seal(PATCH, header(p1)[0], encode(TEXT, claim)).data)
        details = [alarm.detail for alarm in alarms(e)]
        assert details == ([] if verdict is None else [ANY])
        assert verdict is None or verdict in details[0]
        assert e.view == ("xy" if verdict is None else "x")


def test_snapshots_are_made_by_the_author_and_let_a_joiner_skip_history() -> None:
    a = engine(1, min_snapshot_bytes=0)
    history, snapshots = [], []
    for i in range(5):
        a.edit(insert(i, "😀"))
        a.flush()
        events = a.events()
        (p,) = [ev.sealed.data for ev in events if isinstance(ev, SendPatch)]
        a.acked(header(p)[0], i + 1)
        history.append(p)
        snapshots += [ev for ev in events + a.events() if isinstance(ev, SendSnapshot)]
    assert len(snapshots) >= 2, "a snapshot's worth of patch bytes since the last one"
    latest = snapshots[-1]
    seq = [header(p)[0] for p in history].index(latest.of) + 1
    joiner = engine(2)
    joiner.load_snapshot(latest.sealed.data, seq)
    for number, p in enumerate(history[seq:], seq + 1):
        joiner.receive(p, number)
    assert joiner.view == a.view == "😀" * 5
    assert joiner.head.id == a.head.id
    assert joiner.last_seq == 5
    b = engine(3)
    for p in history:
        b.receive(p)
    b.receive(latest.sealed.data)  # a live client compares: same text, no alarm
    assert not alarms(b)


def test_a_snapshot_that_differs_from_our_text_raises_an_alarm() -> None:
    a = engine(1)
    a.edit(insert(0, "true"))
    a.flush()
    (p,) = sent(a)
    a.acked(header(p)[0])
    a.events()
    x = header(p)[0]
    lie = {"height": 1, "doc": "false", "h": TEXT.digest("false").hex()}
    forged = FakeCodec(9).seal(SNAPSHOT, x, json.dumps(lie).encode()).data
    a.receive(forged)
    (alarm,) = alarms(a)
    assert alarm.kind is AlarmKind.SNAPSHOT_MISMATCH
    assert a.view == "true"
    inconsistent = {"height": 1, "doc": "true", "h": TEXT.digest("other").hex()}
    joiner = engine(2)
    with pytest.raises(InvalidPatch, match="hash does not match"):
        joiner.load_snapshot(
            FakeCodec(9).seal(SNAPSHOT, x, json.dumps(inconsistent).encode()).data
        )


def test_large_edits_are_split_under_the_patch_limit() -> None:
    a, b = engine(1, max_patch_bytes=400, pipeline=64), engine(2)
    text = "".join(chr(0x1F600 + i % 64) for i in range(1000))
    a.edit(insert(0, text))
    a.flush()
    patches = sent(a)
    assert len(patches) > 5
    assert all(len(p) - 45 <= 400 for p in patches)
    for seq, p in enumerate(patches, 1):
        b.receive(p, seq)
    assert b.view == text
    assert not alarms(b)


def test_the_pieces_of_a_large_edit_claim_the_right_sizes_and_digests() -> None:
    # The writer builds the document only where a digest is due, adding up
    # sizes in between (Outbox.seal_open): a wrong claim would be an alarm at b.
    a, b = engine(1, max_patch_bytes=300, pipeline=64, hash_every=3), engine(2, hash_every=3)
    a.edit(insert(0, "base text 😀\n" * 20))
    a.flush()
    base = sent(a)
    for seq, p in enumerate(base, 1):
        a.acked(header(p)[0])
        b.receive(p, seq)
    wide = textops.normalize([(5, 4, "é" * 700), (100, 30, ""), (200, 0, "中" * 500)])
    a.edit(wide)
    a.flush()
    patches = sent(a)
    assert len(patches) > 9  # several digest heights crossed
    for seq, p in enumerate(patches, len(base) + 1):
        b.receive(p, seq)
    assert b.view == a.view
    assert not alarms(b)


def test_misuse_is_a_local_error() -> None:
    reader = Engine(TEXT, FakeCodec(1), writer=False)
    with pytest.raises(LocalError, match="read-only"):
        reader.edit(insert(0, "x"))
    a = engine(2)
    with pytest.raises(LocalError, match="does not apply"):
        a.edit(insert(3, "x"))
    assert a.view == ""
    assert a.saved


def test_remote_changes_are_reported_in_view_coordinates() -> None:
    a, b = engine(1), engine(2)
    b.edit(insert(0, "world"))
    b.flush()
    (base,) = sent(b)
    b.acked(header(base)[0])
    a.receive(base, 1)
    a.events()
    a.edit(insert(0, "hello "))  # not yet sent
    b.edit(insert(5, "!"))
    b.flush()
    (bang,) = sent(b)
    a.receive(bang, 2)
    (change,) = [ev for ev in a.events() if isinstance(ev, RemoteChange)]
    assert change.patch == insert(11, "!")
    assert a.view == "hello world!"


@given(st.data())
def test_the_best_tip_does_not_depend_on_arrival_order(data: st.DataObject) -> None:
    """Most patches from genesis, ties to the lowest id, also among descendants."""
    count = data.draw(st.integers(1, 12))
    parents = [data.draw(st.integers(0, i)) for i in range(count)]  # 0 is genesis
    ids = data.draw(
        st.lists(
            st.binary(min_size=32, max_size=32), min_size=count, max_size=count, unique=True
        ).filter(lambda x: GENESIS not in x)
    )
    patches = [
        Pending(ids[i], GENESIS if parents[i] == 0 else ids[parents[i] - 1], None, 0)
        for i in range(count)
    ]
    best = set()
    for order in itertools.islice(itertools.permutations(patches), 6):
        chain: Chain[None] = Chain()
        for pending in order:
            chain.add(pending)
        best.add(chain.best.id)
    heights = {GENESIS: 0}
    for i in range(count):
        heights[ids[i]] = heights[patches[i].parent] + 1
    top = max(heights.values())
    assert best == {min(k for k, h in heights.items() if h == top)}


def test_the_chain_keeps_only_recent_history() -> None:
    a, b = engine(1), engine(2)
    for i in range(2500):
        a.edit(insert(i, "x"))
        a.flush()
        (p,) = sent(a)
        a.acked(header(p)[0], i + 1)
        b.receive(p, i + 1)
    assert len(b.chain.nodes) <= 2 * 1000 + 1
    assert len(a.chain.nodes) <= 2 * 1000 + 1
    assert b.view == "x" * 2500
    assert b.height == 2500


def test_adopt_after_a_crash_counts_stored_patches_and_resends_or_rebases_the_rest() -> None:
    a, b = engine(1, pipeline=4), engine(2)
    for i, char in enumerate("abc"):
        a.edit(insert(i, char))
        a.flush()
    p1, p2, p3 = sent(a)  # a's process dies with all three unacknowledged on disk
    b.receive(p1, 1)  # the relay had stored the first only
    # Restarted on the same head: the two others go again, byte for byte.
    fresh = engine(1, pipeline=4)
    fresh.receive(p1, 1)
    assert fresh.adopt([p1, p2, p3]) == [header(p1)[0]]
    assert sent(fresh) == [p2]  # p1 looks like someone else's here: one at a time
    assert fresh.view == "abc"
    fresh.acked(header(p2)[0], 2)
    assert sent(fresh) == [p3]
    # Restarted after someone else moved the head: rebased and sealed afresh.
    b.edit(insert(0, "B"))
    b.flush()
    (q,) = sent(b)
    late = engine(1, pipeline=4)
    late.receive(p1, 1)
    late.receive(q, 2)
    assert late.adopt([p1, p2, p3]) == [header(p1)[0]]
    assert late.view == "Babc"
    late.flush()
    (resent,) = sent(late)
    assert header(resent)[2] == header(q)[0]
    b.receive(resent, 3)
    assert b.view == "Babc"
    late.edit(insert(0, "x"))
    with pytest.raises(LocalError, match="before any local edit"):
        late.adopt([p2])


def test_the_author_clock_is_sealed_into_each_patch_and_checked_on_receipt() -> None:
    a = Engine(TEXT, FakeCodec(1), clock=lambda: 1_790_000_000_000)
    a.edit(insert(0, "x"))
    a.flush()
    (p,) = sent(a)
    assert decode(TEXT, p[45:]).time == 1_790_000_000_000
    b = engine(2)
    b.receive(p)
    assert b.view == "x"
    b.receive(rogue(header(p)[0], {"o": [[1, 0, "y"]], "n": 2, "t": "noon"}))
    (alarm,) = alarms(b)
    assert "time t" in alarm.detail


def test_work_waiting_for_a_named_head_goes_out_once_the_head_moves_at_all() -> None:
    a, b, c = engine(1), engine(2), engine(3)
    b.edit(insert(0, "b"))
    b.flush()
    (x,) = sent(b)
    c.receive(x, 1)
    c.edit(insert(1, "c"))
    c.flush()
    (y,) = sent(c)
    a.edit(insert(0, "a"))
    a.flush()
    (p,) = sent(a)
    a.refused(header(p)[0], header(y)[0])  # the relay names y; a holds neither x nor y
    a.flush()
    assert sent(a) == []
    a.receive(x, 1)  # the head moves, though not yet to y
    a.flush()
    (again,) = sent(a)
    assert header(again)[2] == header(x)[0]


def test_the_pipeline_narrows_to_one_while_others_write_and_widens_when_calm() -> None:
    a, b = engine(1, pipeline=4), engine(2)
    assert a.depth == 4
    b.edit(insert(0, "b"))
    b.flush()
    (q,) = sent(b)
    a.receive(q, 1)  # someone else is writing
    assert a.depth == 1
    for i in range(16):
        a.edit(insert(0, str(i % 10)))
        a.flush()
        patches = sent(a)
        assert len(patches) == 1  # one in flight at a time meanwhile
        a.acked(header(patches[0])[0], i + 2)
    assert a.depth == 4  # 16 of ours in a row: full depth again


def test_the_engine_emits_the_alarm_the_sdk_reports() -> None:
    a = engine(1)
    a.receive(b"not an envelope")
    (alarm,) = alarms(a)
    assert isinstance(alarm, client.Alarm)
    assert alarm.kind is client.AlarmKind.UNREADABLE

"""Write-ahead recovery (client/recovery.py): nothing logged is dropped, nothing doubled.

The property test plays issue 11's measured case with an exact oracle: A
types unique characters offline, a prefix of A's patches may have reached
the relay, B edits, a snapshot is loaded past A's parent; A's next process
adopts its log against a relay that answers probes as version 1 does
(dedupe by id first, then STALE).
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim import FakeCodec, header

from client import snapshots, textops
from client.doctype import TEXT
from client.engine import SNAPSHOT, Alarm, AlarmKind, Engine, SendPatch
from client.recovery import Base, three_way
from client.textdiff import diff_words
from client.textops import Patch


def engine(author: int, **options: int) -> Engine[str, Patch]:
    return Engine(TEXT, FakeCodec(author), **options)  # type: ignore[arg-type]


class Relay:
    """The relay's answers to pushes: dedupe by id, else STALE unless on the head."""

    def __init__(self) -> None:
        self.seq: dict[bytes, int] = {}
        self.head = bytes(32)
        self.log: list[bytes] = []

    def store(self, data: bytes) -> int:
        patch_id, _, parent = header(data)
        assert parent == self.head
        self.log.append(data)
        self.seq[patch_id] = len(self.log)
        self.head = patch_id
        return len(self.log)

    def serve(self, e: Engine[str, Patch]) -> list[Alarm]:
        """Answer every push of ``e`` until it has nothing left to send."""
        alarms: list[Alarm] = []
        while True:
            e.flush()
            events = e.events()
            alarms += [ev for ev in events if isinstance(ev, Alarm)]
            pushes = [ev.sealed.data for ev in events if isinstance(ev, SendPatch)]
            if not pushes:
                return alarms
            for data in pushes:
                patch_id, _, parent = header(data)
                if patch_id in self.seq:
                    e.acked(patch_id, self.seq[patch_id])  # dedupe, even past a snapshot
                elif parent == self.head:
                    e.acked(patch_id, self.store(data))
                else:
                    e.refused(patch_id, self.head)


def snapshot_of(e: Engine[str, Patch]) -> bytes:
    """The snapshot of ``e``'s head, with its high-water table (what tells a
    returning writer which of its logged patches landed)."""
    body = {
        "height": e.height,
        "doc": TEXT.doc_to_wire(e.auth),
        "h": TEXT.digest(e.auth).hex(),
        "hw": snapshots.hw_to_wire(e.replica.hw, e.height),
    }
    return FakeCodec(2).seal(SNAPSHOT, e.head.id, snapshots.pack(body)).data


def random_edit(rng: random.Random, doc: str, fresh: list[str]) -> Patch:
    """Insert a fresh unique character, or delete one to three characters."""
    if doc and rng.random() < 0.35:
        at = rng.randrange(len(doc))
        return textops.normalize([(at, min(rng.randint(1, 3), len(doc) - at), "")])
    return textops.normalize([(rng.randint(0, len(doc)), 0, fresh.pop())])


def in_order(text: str, among: str) -> str:
    return "".join(c for c in text if c in among)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8), st.integers(0, 8), st.integers(0, 12))
def test_three_way_recovery_keeps_every_offline_character_once(
    seed: int, typed: int, landed: int, theirs: int
) -> None:
    rng = random.Random(seed)
    base_chars = [chr(0x100 + i) for i in range(40)]
    a_chars = [chr(0x4E00 + i) for i in range(40)]
    b_chars = [chr(0x10000 + i) for i in range(40)]  # astral: one code point each
    relay, b = Relay(), engine(2)
    b.edit(textops.normalize([(0, 0, "".join(base_chars[:12]))]))
    relay.serve(b)
    a = engine(1, pipeline=8)
    for data in relay.log:
        a.receive(data, relay.seq[header(data)[0]])
    for _ in range(typed):  # A types offline: sealed and logged, never acknowledged
        a.edit(random_edit(rng, a.view, a_chars))
        a.flush(send=False)
    a.events()
    log, base = [s.data for s in a.unacknowledged()], a.log_base()
    assert base is not None
    assert len(log) == typed
    landed = min(landed, typed)
    for data in log[:landed]:  # the relay stored a prefix; the acks were lost
        b.receive(data, relay.store(data))
    after_landed = b.auth
    for _ in range(theirs):  # B writes on
        b.edit(random_edit(rng, b.view, b_chars))
        relay.serve(b)
    joined = engine(1, pipeline=8)  # A's next process loads the snapshot past A's parent
    joined.load_snapshot(snapshot_of(b), len(relay.log))
    joined.adopt(log, [base])
    alarms = relay.serve(joined)
    final = joined.view
    assert joined.saved
    assert not alarms
    assert final == joined.auth
    # The oracle: the merge picture of characters (each unique).
    a_view, b_view = a.view, b.auth
    expected = (set(after_landed) - (set(after_landed) - set(b_view))) - (
        set(after_landed) - set(a_view)
    )
    expected |= set(b_view) - set(after_landed)
    expected |= set(a_view) - set(after_landed)
    assert len(final) == len(set(final)), "a character doubled"
    assert set(final) == expected
    assert in_order(a_view, final) == in_order(final, a_view)
    assert in_order(b_view, final) == in_order(final, b_view)


def test_a_squash_keeps_the_superseded_patches_logged_until_their_work_is_sealed_again() -> None:
    a, b = engine(1), engine(2)
    a.edit(textops.normalize([(0, 0, "mine")]))
    a.flush()
    logged = [s.data for s in a.unacknowledged()]
    base = a.log_base()
    a.events()
    a.refused(header(logged[0])[0], b"\x07" * 32)  # a head we do not hold yet
    # Nothing acknowledged: the log keeps them (as it stands, before reading it seals)
    assert [s.data for s in a.outbox.unacknowledged()] == logged
    assert a.log_base() == base
    a.flush()  # it waits for that head: nothing is sealed or sent
    assert [s.data for s in a.outbox.unacknowledged()] == logged
    # Reading the log seals the work again on the head we hold, for the log only
    assert not [ev for ev in a.events() if isinstance(ev, SendPatch)]
    assert _recovered([s.data for s in a.unacknowledged()], a.log_base(), 4) == "mine"
    b.edit(textops.normalize([(0, 0, "B")]))
    b.flush()
    (theirs,) = [ev.sealed.data for ev in b.events() if isinstance(ev, SendPatch)]
    a.receive(theirs, 1)
    a.flush()
    (resealed,) = a.unacknowledged()
    assert header(resealed.data)[2] == header(theirs)[0]  # the squash replaced them
    assert a.log_base() == Base(header(theirs)[0], 1, "B")


def test_a_log_without_a_base_recovers_what_landed_and_alarms_for_the_rest() -> None:
    relay, b = Relay(), engine(2)
    b.edit(textops.normalize([(0, 0, "base")]))
    relay.serve(b)
    a = engine(1, pipeline=4)
    a.receive(relay.log[0], 1)
    for i, char in enumerate("xy"):
        a.edit(textops.normalize([(i, 0, char)]))
        a.flush()
    log = [s.data for s in a.unacknowledged()]
    b.receive(log[0], relay.store(log[0]))
    b.edit(textops.normalize([(0, 0, "B")]))
    relay.serve(b)
    joined = engine(1)
    joined.load_snapshot(snapshot_of(b), len(relay.log))
    joined.adopt(log)  # a log written before bases were kept
    assert not joined.recovering  # decided at once from the snapshot's high-water table
    alarms = relay.serve(joined)
    assert [alarm.kind for alarm in alarms] == [AlarmKind.RECOVERY]
    assert "no base text" in alarms[0].detail
    assert joined.view == "Bxbase"
    assert not joined.recovering


def test_the_merge_keeps_our_insert_inside_text_they_deleted_and_drops_our_delete_of_it() -> None:
    base = "one two six"
    ours = textops.normalize([(4, 0, "NEW "), (8, 3, "")])  # insert before "two", delete "six"
    theirs = "one six"  # they deleted "two "
    work = three_way(TEXT, base, ours, theirs)
    assert textops.apply(theirs, work) == "one NEW "


def test_offline_typing_past_the_pipeline_is_folded_into_the_log() -> None:
    a = engine(1, pipeline=2)
    for i, char in enumerate("abcdef"):
        a.edit(textops.normalize([(i, 0, char)]))
        a.flush(send=False)  # offline: sealed for the log, nothing handed out
    assert not [ev for ev in a.events() if isinstance(ev, SendPatch)]
    log, base = [s.data for s in a.unacknowledged()], a.log_base()
    assert len(log) == 2  # the pipeline's two patches hold all six edits
    assert a.open == ()
    assert base is not None
    fresh = engine(1, pipeline=2)  # the log alone gives every edit back
    fresh.adopt(log, [base])
    assert fresh.view == "abcdef"


def test_a_base_past_an_acknowledged_patch_still_recovers_the_rest() -> None:
    # A crash between writing the new base (after p1's ack) and the shorter
    # log leaves the log [p1, p2] beside the base at p1.
    relay, b = Relay(), engine(2)
    b.edit(textops.normalize([(0, 0, "base")]))
    relay.serve(b)
    a = engine(1, pipeline=4)
    a.receive(relay.log[0], 1)
    for i, char in enumerate("xy"):
        a.edit(textops.normalize([(i, 0, char)]))
        a.flush()
    log = [s.data for s in a.unacknowledged()]
    a.events()
    a.acked(header(log[0])[0], relay.store(log[0]))
    b.receive(log[0], len(relay.log))
    base = a.log_base()
    assert base is not None
    assert base.parent == header(log[0])[0]
    b.edit(textops.normalize([(5, 0, "B")]))
    relay.serve(b)
    joined = engine(1)
    joined.load_snapshot(snapshot_of(b), len(relay.log))
    assert joined.adopt(log, [base]) == [header(log[0])[0]]
    assert not relay.serve(joined)
    assert joined.view == "xybaseB"


def test_squashed_work_larger_than_the_pipeline_is_sealed_again_whole() -> None:
    a = engine(1, pipeline=1, max_patch_bytes=228)  # pieces of 25 code points
    a.edit(textops.normalize([(0, 0, "x" * 60)]))
    a.flush()
    first = a.unacknowledged()
    assert len(first) == 3  # sealed whole, past the pipeline
    # The pieces of one edit go out together (``Outbox.depth``: a burst).
    assert len([ev for ev in a.events() if isinstance(ev, SendPatch)]) == 3
    a.refused(first[0].id)  # squashed: 60 code points to seal again, pipeline of 1
    a.flush()
    assert a.open == ()
    resealed = a.unacknowledged()
    assert len(resealed) == 3  # the log swaps old for new at once
    assert not {s.id for s in first} & {s.id for s in resealed}


def _recovered(log: list[bytes], base: Base[str] | None, pipeline: int) -> str:
    """What a fresh process rebuilds from the write-ahead log alone."""
    assert base is not None
    fresh = engine(1, pipeline=pipeline)
    fresh.adopt(log, [base])
    return fresh.view


def test_typing_online_past_a_full_pipeline_is_in_the_log_when_edit_returns() -> None:
    # Online, every patch of the pipeline handed out and none acknowledged: a
    # SIGKILL now must lose nothing typed since (issue 11, the crash suite).
    a = engine(1, pipeline=2)
    for i, char in enumerate("abcdef"):
        a.edit(textops.normalize([(i, 0, char)]))
        a.flush()
    sent = [ev for ev in a.events() if isinstance(ev, SendPatch)]
    assert len(sent) == 2  # the relay still sees at most the pipeline
    assert a.open == textops.normalize([(2, 0, "cdef")])  # waits for room, unsealed
    log = [s.data for s in a.unacknowledged()]  # reading the log seals it
    assert a.open == ()
    assert not [ev for ev in a.events() if isinstance(ev, SendPatch)]
    assert _recovered(log, a.log_base(), 2) == "abcdef"


def test_a_paste_larger_than_the_pipeline_online_is_sealed_whole() -> None:
    a = engine(1, pipeline=1, max_patch_bytes=228)  # pieces of 25 code points
    a.edit(textops.normalize([(0, 0, "y" * 80)]))
    a.flush()
    assert len([ev for ev in a.events() if isinstance(ev, SendPatch)]) == 4  # a burst
    assert a.open == ()
    log = [s.data for s in a.unacknowledged()]
    assert len(log) == 4
    assert _recovered(log, a.log_base(), 1) == "y" * 80


def test_typing_while_a_refusal_waits_for_an_unknown_head_is_in_the_log() -> None:
    a = engine(1, pipeline=2)
    a.edit(textops.normalize([(0, 0, "a")]))
    a.flush()
    (first,) = a.unacknowledged()
    a.events()
    a.refused(first.id, b"\x07" * 32)  # the relay names a head we do not hold
    for i, char in enumerate("bcd", 1):
        a.edit(textops.normalize([(i, 0, char)]))
        a.flush()
    assert not [ev for ev in a.events() if isinstance(ev, SendPatch)]  # nothing sent
    log = [s.data for s in a.unacknowledged()]  # reading the log seals what waits
    assert a.open == ()
    assert _recovered(log, a.log_base(), 2) == "abcd"


def _token(who: str, n: int) -> str:
    """A unique word whose tail shares hex digits with every other one."""
    return f"{who}.{n}|" + hashlib.sha256(f"{who}.{n}".encode()).hexdigest()[:12]


@pytest.mark.parametrize("seed", range(300))
def test_three_way_never_splits_a_word_they_inserted(seed: int) -> None:
    """Issue 11, the away runs' defect: with a plain shortest diff, words
    inserted by others that share characters with the base were split around
    a base character, and our word recovered into the middle of theirs
    (30 of these 300 seeds split one with ``textdiff.diff``)."""
    rng = random.Random(seed)
    words = [_token("a", i) for i in range(rng.randint(1, 6))]
    theirs_words, inserted = list(words), []
    for j in range(rng.randint(1, 5)):
        word = _token("b", seed * 10 + j)
        inserted.append(word)
        theirs_words.insert(rng.randint(0, len(theirs_words)), word)
    base, theirs = " ".join(words) + " ", " ".join(theirs_words) + " "
    at = rng.choice([0] + [i + 1 for i, char in enumerate(base) if char == " "])
    mine = _token("c", seed)
    merged = textops.apply(theirs, three_way(TEXT, base, (textops.Op(at, 0, mine + " "),), theirs))
    assert sorted(merged.split()) == sorted([*words, *inserted, mine])


@given(st.text(alphabet="ab \n", max_size=30), st.text(alphabet="ab \n", max_size=30))
@settings(max_examples=500)
def test_diff_words_turns_old_into_new(old: str, new: str) -> None:
    assert textops.apply(old, diff_words(old, new)) == new


def test_a_stale_log_whose_work_landed_resealed_is_not_taken_back_twice() -> None:
    """A log that still holds a superseded patch whose work landed under another
    id (sealed again by the same writer session after a squash) must not be
    merged again: the chain's high-water table says the session's later patch
    landed, which carries it.  The SDK writes the log before it sends, so this
    log should never be left behind; recovery does not rely on that."""
    relay, b = Relay(), engine(2)
    b.edit(textops.normalize([(0, 0, "base ")]))
    relay.serve(b)
    a = engine(1)
    a.receive(relay.log[0], 1)
    a.edit(textops.normalize([(5, 0, "mine")]))
    a.flush()
    stale_log, stale_base = [s.data for s in a.unacknowledged()], a.log_base()
    assert stale_base is not None
    a.events()
    b.edit(textops.normalize([(0, 0, "B")]))
    relay.serve(b)  # B lands first: a's patch is refused, squashed, sealed again
    a.receive(relay.log[1], 2)
    relay.serve(a)
    assert a.view == "Bbase mine"
    assert a.saved
    joined = engine(1)
    for data in relay.log:
        joined.receive(data, relay.seq[header(data)[0]])
    joined.adopt(stale_log, [stale_base])
    alarms = relay.serve(joined)
    assert not alarms
    assert joined.view == "Bbase mine"
    assert joined.saved

"""Automatic compaction (issue 14): after each snapshot of ours is stored, trim at
the previous one, but never past a peer that may come back for the patches.

The relay is this test, frame by frame; time is the session's injected clock.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from test_session import RECORDS, Clock, join, make, sent, teach

import crypto
from client.doctype import TEXT
from client.errors import ReadOnly
from client.relayside import DEFAULT_CATCH_UP_WINDOW_MS
from client.session import PadSession
from client.snapshots import newer_retention, pack, read
from client.textops import InvalidPatch, Op
from wire import frames as f
from wire.codes import RefuseCode


class Relay:
    """Stores what one session sends: numbers its patches, acknowledges
    everything, and keeps the trims it receives."""

    def __init__(self, trim_refusal: int | None = None) -> None:
        self.seq = 0
        self.trim_refusal = trim_refusal  # refuse every TRIM with this code, if set
        self.trims: list[f.Trim] = []
        self.stored: list[bytes] = []  # the patches, in order
        self.snapshots: list[tuple[int, bytes]] = []  # (the patch's seq, sealed), in order
        self._chunks: dict[int, bytes] = {}

    def answer(self, session: PadSession) -> None:
        while frames := sent(session) or self._tick(session):
            for frame in frames:
                if isinstance(frame, f.Push):
                    self.seq += 1
                    self.stored.append(frame.envelope)
                    ack = f.Ack(frame.request_id, self.seq, _id(frame.envelope))
                elif isinstance(frame, f.SnapshotChunk):
                    data = self._chunks.pop(frame.request_id, b"") + frame.data
                    if len(data) < frame.total:
                        self._chunks[frame.request_id] = data
                        continue  # acknowledged once whole
                    self.snapshots.append((self.seq, data))
                    ack = f.Ack(frame.request_id, self.seq, bytes(32))
                elif isinstance(frame, f.Trim):
                    self.trims.append(frame)
                    ack = f.Ack(frame.request_id, self.seq, bytes(32))
                    if self.trim_refusal is not None:
                        refusal = f.Refuse(frame.request_id, self.trim_refusal, 0, 0, bytes(32))
                        session.receive_frame(f.encode(refusal))
                        continue
                else:
                    continue
                session.receive_frame(f.encode(ack))

    @staticmethod
    def _tick(session: PadSession) -> list[object]:
        """Nothing left to answer: what the session sends at its next tick (a
        snapshot found due goes once every patch is acknowledged)."""
        session.tick()
        return sent(session)


def _id(envelope: bytes) -> bytes:
    return hashlib.sha256(envelope).digest()


def type_patches(session: PadSession, relay: Relay, count: int, rng: random.Random) -> None:
    """``count`` patches of 1,000 characters, each acknowledged (snapshots follow)."""
    for _ in range(count):
        session.edit((Op(len(session.text), 0, rng.randbytes(500).hex()),))
        relay.answer(session)


def pair(clock: Clock, *, quiet: bool = True) -> tuple[PadSession, PadSession, Relay]:
    """Alice (compacting, answered by the relay) and bob, both live on one pad;
    ``quiet``: bob's head beacon is dropped (alice never hears it)."""
    keys = crypto.PadKeys.generate()
    alice, bob = make(clock, keys=keys, compact=True), make(clock, keys=keys)
    join(alice)
    join(bob)
    if quiet:
        sent(bob, ephemerals=True)
    return alice, bob, Relay()


def trimmed_at(session: PadSession, trim: f.Trim) -> int:
    """The height of the patch a trim names."""
    x = crypto.envelope2.ref_of(trim.envelope)
    return session.engine.chain.nodes[x].height


def test_a_writer_trims_at_its_previous_snapshot_after_each_new_one() -> None:
    alice, relay = make(Clock(), compact=True), Relay()
    join(alice)
    type_patches(alice, relay, 120, random.Random(1))
    heights = [trimmed_at(alice, trim) for trim in relay.trims]
    assert len(heights) >= 2, heights
    assert heights == sorted(heights)
    assert heights[-1] < alice.engine.head.height
    made = [height for height, _ in alice.engine.snapshots.verified]
    assert set(heights) <= set(made)  # only ever at a snapshot it verified
    assert alice.compacted["sent"] == alice.compacted["stored"] == len(heights)


def test_a_compaction_refused_unknown_session_counts_refused_and_registers_again() -> None:
    """The relay dropped our session's record (PROTOCOL.md §9.3): each compaction
    TRIM refused UNKNOWN_SESSION counts as refused, never fails the session, and
    our next envelope registers the session again."""
    alice = make(Clock(), compact=True)
    relay = Relay(trim_refusal=RefuseCode.UNKNOWN_SESSION)
    join(alice)
    registered = len(RECORDS[alice.keys.channel_id])
    type_patches(alice, relay, 120, random.Random(1))
    assert len(relay.trims) >= 2
    assert alice.compacted == {"sent": len(relay.trims), "stored": 0, "refused": len(relay.trims)}
    assert alice.failure is None
    type_patches(alice, relay, 1, random.Random(2))  # an envelope after the last refusal
    # The first envelope registered our session, and the first after each refusal again.
    assert len(RECORDS[alice.keys.channel_id]) == registered + 1 + len(relay.trims)


def test_no_trim_past_a_peer_heard_from_within_the_window() -> None:
    clock = Clock()
    alice, bob, relay = pair(clock, quiet=False)
    keys = alice.keys
    # bob announced his head (height 0) when he went live, then drops away
    (beacon,) = [x for x in sent(bob, ephemerals=True) if isinstance(x, f.Ephemeral)]
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, beacon.envelope)))
    rng = random.Random(2)
    type_patches(alice, relay, 120, rng)
    assert len(alice.engine.snapshots.verified) >= 3  # snapshots made, none trimmed at
    assert relay.trims == []  # bob may come back for every patch since height 0
    clock.now += DEFAULT_CATCH_UP_WINDOW_MS + 1  # not heard from for the window
    type_patches(alice, relay, 60, rng)
    assert relay.trims, "once bob is out of the window, compaction goes on"
    assert all(trimmed_at(alice, trim) > 0 for trim in relay.trims)


def test_a_peer_that_announces_a_higher_head_lets_the_trim_follow_it() -> None:
    clock = Clock()
    alice, bob, relay = pair(clock)
    keys = alice.keys
    rng = random.Random(3)
    type_patches(alice, relay, 60, rng)
    assert relay.trims
    relay.trims.clear()
    # bob catches up to height 20 and says so; alice trims no higher from then on
    teach(bob)
    for seq, envelope in enumerate(relay.stored[:20], 1):
        bob.receive_frame(f.encode(f.Broadcast(keys.channel_id, seq, envelope)))
    clock.now += 2_001  # a moved head is announced at most every 2 s
    bob.tick()
    beacons = [x for x in sent(bob, ephemerals=True) if isinstance(x, f.Ephemeral)]
    assert bob.engine.head.height == 20
    assert beacons
    alice.receive_frame(f.encode(f.EphemeralRelayed(keys.channel_id, 9, beacons[-1].envelope)))
    type_patches(alice, relay, 60, rng)
    assert relay.trims
    assert all(trimmed_at(alice, trim) <= 20 for trim in relay.trims)


def snapshot_with(r: object) -> bytes:
    return pack({"height": 0, "doc": "", "h": hashlib.sha256(b"").hexdigest(), "r": r})


def test_the_retention_record_is_read_strictly_and_the_latest_set_wins() -> None:
    assert read(TEXT, snapshot_with([0, 5])).retention == (0, 5)
    assert (
        read(TEXT, pack({"height": 0, "doc": "", "h": hashlib.sha256(b"").hexdigest()})).retention
        is None
    )
    for bad in (
        [],
        [1],
        [1, 2, 3],
        [-1, 5],
        [65_536, 5],
        [1, -5],
        ["1", 5],
        [1.0, 5],
        {"p": 1},
        [True, 5],
    ):
        with pytest.raises(InvalidPatch):
            read(TEXT, snapshot_with(bad))
    assert newer_retention(None, (5, 1)) == (5, 1)
    assert newer_retention((5, 1), None) == (5, 1)
    assert newer_retention((5, 1), (100, 2)) == (100, 2)  # the later setting
    assert newer_retention((100, 2), (5, 1)) == (100, 2)
    assert newer_retention((100, 2), (5, 2)) == (5, 2)  # a tie: the smaller, either way
    assert newer_retention((5, 2), (100, 2)) == (5, 2)


def test_a_retention_setting_is_carried_by_snapshots_and_followed_by_every_editor() -> None:
    clock = Clock()
    alice, bob, relay = pair(clock)
    keys = alice.keys
    rng = random.Random(4)
    type_patches(alice, relay, 60, rng)
    # No setting: the default keeps the checkpoints that fit, with the newest
    # snapshot, in the document's uncompressed size.
    fits = set()
    for _, envelope in relay.snapshots:
        content = alice.engine.codec.open(envelope).content
        assert content is not None
        plain = int.from_bytes(content[1:5], "big")
        fits.add((plain - len(envelope)) * 100 // len(envelope))
    assert relay.trims
    assert {trim.keep_pct for trim in relay.trims} <= fits
    assert all(trim.keep_pct > 0 for trim in relay.trims)
    upload = alice.set_retention(0)
    assert not upload.done
    relay.answer(alice)  # the snapshot carrying the record is stored
    assert upload.stored
    assert alice.retention is not None
    assert alice.retention[0] == 0
    seq, snapshot = relay.snapshots[-1]
    content = alice.engine.codec.open(snapshot).content
    assert content is not None
    assert read(TEXT, content).retention == alice.retention
    relay.trims.clear()
    type_patches(alice, relay, 60, rng)
    assert relay.trims
    assert {trim.keep_pct for trim in relay.trims} == {0}
    # bob holds the chain up to that snapshot and is shown it live: he follows it too
    teach(bob)
    for number, envelope in enumerate(relay.stored[:seq], 1):
        bob.receive_frame(f.encode(f.Broadcast(keys.channel_id, number, envelope)))
    assert bob.retention is None
    live = f.Snapshot(keys.channel_id, seq, f.SNAPSHOT_LIVE, len(snapshot), 0, snapshot)
    bob.receive_frame(f.encode(live))
    assert bob.retention == alice.retention
    assert bob.keep_pct(1_000, 5_000) == 0  # the record, not the default's 400


def test_the_default_retention_fits_the_checkpoints_in_the_documents_size() -> None:
    default = make()
    assert default.keep_pct(1_000, 3_500) == 250  # newest + checkpoints: about the text
    assert default.keep_pct(1_000, 900) == 0  # a snapshot larger than its text
    assert default.keep_pct(1, 10**9) == 65_535  # the most TRIM can say
    assert make(retention_pct=100).keep_pct(1_000, 3_500) == 100  # the session's own


def test_a_view_link_cannot_set_the_retention() -> None:
    keys = crypto.PadKeys.generate()
    reader = make(keys=keys.view())
    join(reader)
    with pytest.raises(ReadOnly):
        reader.set_retention(0)

"""One conformance suite for every storage backend (memory, SQLite and PostgreSQL).

The PostgreSQL runs use a fresh schema of the test database each
(``tests/services.py``: skipped when PostgreSQL does not answer, failed under
``CI=true``); the tests after the suite cover what only a shared store does.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from services import fresh_postgres

from relay.store import (
    AppendOutcome,
    AppendResult,
    Head,
    HistoryTrimmed,
    NoSnapshot,
    SchemaTooNew,
    SchemaTooOld,
    SessionAdded,
    SnapshotDisputed,
    Store,
    StoreError,
    StoreStats,
    UnknownChannel,
    UnknownPatch,
    blocks,
    open_store,
    snapshot_parts,
)
from relay.store.postgresql import PostgreSQLStore, PostgresURL, _read_on, parse_url
from relay.store.sqlite import SQLiteStore, backup
from wire import mmr

CH = b"c" * 32
KEY = b"k" * 32
READ = hashlib.sha256(b"read token").digest()
ZERO = bytes(32)


def pid(n: int) -> bytes:
    return n.to_bytes(32, "big")


@contextmanager
def store_maker(kind: str, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """What opens a store of ``kind``: each call a new store on the same data."""
    if kind == "memory":
        yield lambda: open_store("memory:")
    elif kind == "sqlite":
        yield lambda: open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    else:
        with fresh_postgres() as url:
            yield lambda: open_store(url)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    with store_maker(request.param, tmp_path) as make:
        yield make


@pytest.fixture(params=["sqlite", "postgresql"])
def make_durable_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], Store]]:
    """The stores whose data outlives them: a later ``make()`` opens the same data."""
    with store_maker(request.param, tmp_path) as make:
        yield make


@asynccontextmanager
async def opened(make: Callable[[], Store]) -> AsyncIterator[Store]:
    store = make()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def run(make: Callable[[], Store], body: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        async with opened(make) as store:
            await body(store)

    asyncio.run(main())


async def line(store: Store, n: int) -> None:
    await store.create_channel(CH, KEY, READ)
    for i in range(1, n + 1):
        result = await store.append(CH, pid(i), pid(i - 1) if i > 1 else ZERO, b"e%d" % i)
        assert result.outcome is AppendOutcome.APPENDED
        assert result.seq == i


def test_append_cas_and_dedupe(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(UnknownChannel):
            await store.append(CH, pid(1), ZERO, b"x")
        await line(store, 3)
        dup = await store.append(CH, pid(1), ZERO, b"e1")
        assert (dup.outcome, dup.seq, dup.head) == (AppendOutcome.DUPLICATE, 1, Head(3, pid(3)))
        stale = await store.append(CH, pid(9), pid(1), b"x")
        assert (stale.outcome, stale.head) == (AppendOutcome.STALE, Head(3, pid(3)))
        assert await store.lookup(CH, pid(9)) is None
        assert await store.lookup(CH, pid(2)) == 2
        info = await store.channel(CH)
        assert info is not None
        assert (info.verify_key, info.head, info.stored_bytes) == (KEY, Head(3, pid(3)), 6)
        assert info.read_hash == READ
        assert await store.channel(b"z" * 32) is None

    run(make_store, body)


def test_concurrent_appends_keep_one_line(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        results = await asyncio.gather(
            *(store.append(CH, pid(i), ZERO, b"x") for i in range(1, 20))
        )
        assert sum(r.outcome is AppendOutcome.APPENDED for r in results) == 1

    run(make_store, body)


def test_read_since_and_snapshots(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await line(store, 5)
        read = await store.read_since(CH, 3)
        assert [p.seq for p in read.patches] == [4, 5]
        assert read.head == Head(5, pid(5))
        empty = await store.read_from_snapshot(CH)
        assert empty.snapshot is None
        assert [p.seq for p in empty.patches] == [1, 2, 3, 4, 5]
        assert await store.put_snapshot(CH, pid(2), b"s" * 32, b"SNAP2") == 2
        assert await store.put_snapshot(CH, pid(4), b"t" * 32, b"SNAP4") == 4
        with pytest.raises(UnknownPatch):
            await store.put_snapshot(CH, pid(42), b"u" * 32, b"x")
        snap = await store.read_from_snapshot(CH)
        assert snap.snapshot is not None
        assert (snap.snapshot.x_seq, snap.snapshot.envelope) == (4, b"SNAP4")
        assert [p.seq for p in snap.patches] == [5]
        info = await store.channel(CH)
        assert info is not None
        assert info.pad_bytes == len(b"SNAP4") + 2
        assert (await store.read_since(b"n" * 32, 0)).head == Head()

    run(make_store, body)


def test_a_paged_read_streams_the_snapshot_in_parts(make_store: Callable[[], Store]) -> None:
    """A subscriber held its pad's whole snapshot (PROTOCOL.md §5.3, term S)."""
    big = bytes(range(256)) * 4000  # 1,024,000 bytes

    async def body(store: Store) -> None:
        await line(store, 5)
        await store.put_snapshot(CH, pid(3), b"s" * 32, big)
        paged = await store.read_from_snapshot(CH, 1)
        assert paged.snapshot is not None
        assert (paged.snapshot.size, paged.snapshot.envelope) == (len(big), None)
        assert [p.seq for p in paged.patches] == [4]  # one page of patches
        parts = [p async for p in snapshot_parts(store, CH, paged.snapshot, 300_000)]
        assert [len(p) for p in parts] == [300_000, 300_000, 300_000, 124_000]
        assert b"".join(parts) == big
        assert await store.read_snapshot(CH, 3, 1_023_990, 100) == big[1_023_990:]
        # Replaced (a newer snapshot of the same patch) while it was read: the
        # rest is not the old one's, so it is gone, not spliced.
        await store.put_snapshot(CH, pid(3), b"r" * 32, big[::-1])
        with pytest.raises(NoSnapshot):
            [p async for p in snapshot_parts(store, CH, paged.snapshot, 300_000)]
        assert await store.read_snapshot(CH, 3, 0, 10, snapshot_id=b"r" * 32) == big[::-1][:10]
        await store.put_snapshot(CH, pid(3), b"s" * 32, big)
        whole = await store.read_from_snapshot(CH)  # no page: the envelope is there
        assert whole.snapshot is not None
        assert (whole.snapshot.size, whole.snapshot.envelope) == (len(big), big)
        await store.put_snapshot(CH, pid(4), b"t" * 32, b"S4")
        await store.trim(CH, pid(4), 0)  # the older snapshot goes
        with pytest.raises(NoSnapshot):
            await store.read_snapshot(CH, 3, 0, 10)
        with pytest.raises(NoSnapshot):
            [p async for p in snapshot_parts(store, CH, paged.snapshot, 300_000)]

    run(make_store, body)


def test_a_trim_keeps_no_tombstones(make_store: Callable[[], Store]) -> None:
    """Dedupe is against live patches only: a trimmed id is unknown, and its resend
    is STALE (its parent is below the head); the trim keeps the ids 1-3 as the
    partial ids of block 0, 32 bytes each in the stored bytes."""

    async def body(store: Store) -> None:
        await line(store, 5)
        with pytest.raises(NoSnapshot):
            await store.trim(CH, pid(3), 0)
        with pytest.raises(UnknownPatch):
            await store.trim(CH, pid(77), 0)
        await store.put_snapshot(CH, pid(1), b"a" * 32, b"S1")
        await store.put_snapshot(CH, pid(3), b"b" * 32, b"S3")
        assert await store.trim(CH, pid(3), 100) == 3  # S1 is kept: 2 bytes <= 100 % of S3's
        assert await store.trim(CH, pid(3), 100) == 3  # idempotent
        assert await store.trim(CH, pid(1), 0) == 3  # below the floor (a kept X): a no-op
        assert [s.x_seq for s in await store.snapshots(CH)] == [1, 3]
        with pytest.raises(UnknownPatch):
            await store.trim(CH, pid(2), 0)  # trimmed, no snapshot: not known any more
        assert await store.lookup(CH, pid(2)) is None  # no tombstone
        assert await store.lookup(CH, pid(4)) == 4
        resent = await store.append(CH, pid(1), ZERO, b"e1")
        assert (resent.outcome, resent.head) == (AppendOutcome.STALE, Head(5, pid(5)))
        resent = await store.append(CH, pid(3), pid(2), b"e3")
        assert resent.outcome is AppendOutcome.STALE
        with pytest.raises(HistoryTrimmed):
            await store.read_since(CH, 2)
        assert [p.seq for p in (await store.read_since(CH, 3)).patches] == [4, 5]
        snap = await store.read_from_snapshot(CH)
        assert snap.snapshot is not None
        assert snap.snapshot.x_seq == 3
        info = await store.channel(CH)
        assert info is not None
        assert (info.floor_seq, info.stored_bytes) == (3, len(b"S1S3") + 4 + 3 * 32)
        assert await store.trim(CH, pid(3), 0) == 3  # at the floor with another share: thins
        assert [s.x_seq for s in await store.snapshots(CH)] == [3]
        info = await store.channel(CH)
        assert info is not None
        assert (info.floor_seq, info.stored_bytes) == (3, len(b"S3") + 4 + 3 * 32)
        assert (await store.stats()).stored_bytes == info.stored_bytes

    run(make_store, body)


def test_pipelined_appends_commit_in_submission_order(make_store: Callable[[], Store]) -> None:
    """Chains pushed without waiting for ACKs, on several channels at once, all append."""
    channels = [CH, b"d" * 32, b"e" * 32]

    async def body(store: Store) -> None:
        for cid in channels:
            await store.create_channel(cid, KEY, READ)
        pushes = [
            store.append(cid, pid(i), pid(i - 1) if i > 1 else ZERO, b"p%d" % i)
            for cid in channels
            for i in range(1, 301)
        ]
        results = await asyncio.gather(*pushes)
        assert [(r.outcome, r.seq) for r in results] == [
            (AppendOutcome.APPENDED, i) for _ in channels for i in range(1, 301)
        ]
        infos = await store.channels([*channels, b"z" * 32])
        assert {cid: info.head for cid, info in infos.items()} == {
            cid: Head(300, pid(300)) for cid in channels
        }
        assert infos == {cid: await store.channel(cid) for cid in channels}
        assert await store.channels([]) == {}

    run(make_store, body)


def test_a_snapshot_committed_among_appends_counts_each_byte_once(
    make_store: Callable[[], Store],
) -> None:
    """Appends before and after a snapshot in one group commit: the pad's bytes are
    the snapshot's plus those of the patches after it, each counted once (the
    SQLite store writes the head its appends moved before any other write)."""

    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        envelopes = [b"e%d" % i + bytes(i) for i in range(1, 6)]
        parents = [ZERO, *(pid(i) for i in range(1, 5))]
        appends = [store.append(CH, pid(i + 1), parents[i], envelopes[i]) for i in range(5)]
        snapshot = b"S" * 40
        await asyncio.gather(*appends[:2])
        results = await asyncio.gather(
            appends[2], store.put_snapshot(CH, pid(2), b"s" * 32, snapshot), *appends[3:]
        )
        assert results[1] == 2
        info = await store.channel(CH)
        assert info is not None
        assert info.head == Head(5, pid(5))
        assert info.pad_bytes == len(snapshot) + sum(len(e) for e in envelopes[2:])
        assert info.stored_bytes == len(snapshot) + sum(len(e) for e in envelopes)

    run(make_store, body)


def test_appends_committed_together_are_settled_one_by_one(
    make_store: Callable[[], Store],
) -> None:
    """An unknown channel fails only its own append; an id repeated at once is a duplicate."""

    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        first, unknown, dup, stale, second = await asyncio.gather(
            store.append(CH, pid(1), ZERO, b"e1"),
            store.append(b"z" * 32, pid(1), ZERO, b"e1"),
            store.append(CH, pid(1), ZERO, b"e1"),
            store.append(CH, pid(2), ZERO, b"e2"),
            store.append(CH, pid(2), pid(1), b"e2"),
            return_exceptions=True,
        )
        assert isinstance(unknown, UnknownChannel)
        assert first == AppendResult(AppendOutcome.APPENDED, 1, Head(1, pid(1)))
        assert dup == AppendResult(AppendOutcome.DUPLICATE, 1, Head(1, pid(1)))
        assert stale == AppendResult(AppendOutcome.STALE, 0, Head(1, pid(1)))
        assert second == AppendResult(AppendOutcome.APPENDED, 2, Head(2, pid(2)))
        info = await store.channel(CH)
        assert info is not None
        assert (info.head, info.stored_bytes, info.pad_bytes) == (Head(2, pid(2)), 4, 4)
        again = await store.create_channel(CH, b"other key", b"other hash")  # idempotent
        assert (again.verify_key, again.read_hash, again.head) == (KEY, READ, Head(2, pid(2)))
        assert await store.stats() == StoreStats(1, 4)

    run(make_store, body)


def test_pages_of_many_small_patches(make_store: Callable[[], Store]) -> None:
    """Pages are cut at the patch that reaches max_bytes, however many patches that takes."""
    n = 2500

    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        await asyncio.gather(
            *(
                store.append(CH, pid(i), pid(i - 1) if i > 1 else ZERO, b"%05d" % i)
                for i in range(1, n + 1)
            )
        )
        whole = await store.read_since(CH, 0, 10 * n)  # 5 bytes each: all fit
        assert [p.seq for p in whole.patches] == list(range(1, n + 1))
        assert whole.patches[41].envelope == b"00042"
        cut = await store.read_since(CH, 0, 5 * 1800 + 1)  # reached by patch 1801
        assert [p.seq for p in cut.patches] == list(range(1, 1802))
        assert [p.seq for p in (await store.read_since(CH, 2400, 7)).patches] == [2401, 2402]
        assert [p.seq for p in (await store.read_since(CH, 2400, 0)).patches] == [2401]
        assert list((await store.read_since(CH, n, 100)).patches) == []
        assert (await store.read_since(CH, 2**64 - 1)).head == Head(n, pid(n))  # a u64 since
        await store.put_snapshot(CH, pid(100), b"s" * 32, b"S100")
        paged = await store.read_from_snapshot(CH, 5 * 1500)
        assert paged.snapshot is not None
        assert (paged.snapshot.x_seq, paged.snapshot.size, paged.snapshot.envelope) == (
            100,
            4,
            None,
        )
        assert [p.seq for p in paged.patches] == list(range(101, 1601))
        assert paged.head == Head(n, pid(n))

    run(make_store, body)


def test_disputes_mark_their_snapshot_and_go_with_it(make_store: Callable[[], Store]) -> None:
    """A dispute names a stored snapshot by id; the snapshot reads as disputed; a trim
    at it is refused; a trim past it, or a new snapshot of its patch, drops its disputes."""

    async def body(store: Store) -> None:
        with pytest.raises(UnknownChannel):
            await store.add_dispute(CH, b"s" * 32, b"d" * 32, b"D1")
        await line(store, 5)
        with pytest.raises(UnknownPatch):  # no such snapshot
            await store.add_dispute(CH, b"s" * 32, b"d" * 32, b"D1")
        await store.put_snapshot(CH, pid(2), b"s" * 32, b"SNAP2")
        await store.put_snapshot(CH, pid(4), b"t" * 32, b"SNAP4")
        with pytest.raises(UnknownPatch):  # a patch id is not a snapshot id
            await store.add_dispute(CH, pid(2), b"d" * 32, b"D1")
        fresh = (await store.read_from_snapshot(CH)).snapshot
        assert fresh is not None
        assert fresh.disputed is False
        before = await store.channel(CH)
        assert before is not None
        assert await store.add_dispute(CH, b"t" * 32, b"d" * 32, b"D1") == 4
        assert await store.add_dispute(CH, b"t" * 32, b"d" * 32, b"D1") == 4  # resend: no-op
        assert await store.add_dispute(CH, b"t" * 32, b"e" * 32, b"D22") == 4
        assert await store.add_dispute(CH, b"s" * 32, b"f" * 32, b"D333") == 2
        after = await store.channel(CH)
        assert after is not None
        assert after.stored_bytes == before.stored_bytes + 2 + 3 + 4  # disputes count
        assert after.pad_bytes == before.pad_bytes  # ...but not in the pad
        for read in (await store.read_from_snapshot(CH), await store.read_from_snapshot(CH, 1)):
            assert read.snapshot is not None
            assert (read.snapshot.x_seq, read.snapshot.disputed) == (4, True)
        four = await store.snapshot(CH, 4)
        assert four is not None
        assert (four.x_seq, four.x_id, four.id, four.size) == (4, pid(4), b"t" * 32, 5)
        assert (four.envelope, four.disputed) == (None, True)
        assert await store.snapshot(CH, 3) is None
        assert await store.snapshot(CH, 2**64 - 1) is None
        assert await store.snapshot(b"z" * 32, 4) is None
        with pytest.raises(SnapshotDisputed):
            await store.trim(CH, pid(4), 0)
        with pytest.raises(SnapshotDisputed):
            await store.trim(CH, pid(2), 0)
        # Another snapshot of patch 2 replaces the disputed one, and its dispute goes.
        await store.put_snapshot(CH, pid(2), b"u" * 32, b"SNAP2b")
        two = await store.snapshot(CH, 2)
        assert two is not None
        assert (two.id, two.disputed) == (b"u" * 32, False)
        with pytest.raises(UnknownPatch):
            await store.add_dispute(CH, b"s" * 32, b"g" * 32, b"D")  # replaced: gone
        assert await store.trim(CH, pid(2), 0) == 2
        await store.put_snapshot(CH, pid(5), b"v" * 32, b"SNAP5")
        await store.add_dispute(CH, b"v" * 32, b"h" * 32, b"D5")
        # Snapshot 4 is disputed, yet a trim at 5 (itself disputed) is refused, and a
        # trim at an undisputed later one would take 4 and its disputes with it.
        with pytest.raises(SnapshotDisputed):
            await store.trim(CH, pid(5), 0)
        info = await store.channel(CH)
        assert info is not None
        patches = sum(len(b"e%d" % i) for i in (3, 4, 5))
        snaps = len(b"SNAP2b") + len(b"SNAP4") + len(b"SNAP5")
        disputes = len(b"D1") + len(b"D22") + len(b"D5")
        assert info.stored_bytes == patches + snaps + disputes + 2 * 32  # ids 1-2 are kept
        await store.append(CH, pid(6), pid(5), b"e6")
        await store.put_snapshot(CH, pid(6), b"w" * 32, b"SNAP6")
        assert await store.trim(CH, pid(6), 0) == 6
        info = await store.channel(CH)
        assert info is not None
        # Patches, snapshots and disputes gone; the ids 1-6 kept (block 0 is not whole).
        assert info.stored_bytes == len(b"SNAP6") + 6 * 32
        assert (await store.stats()).stored_bytes == info.stored_bytes
        with pytest.raises(UnknownPatch):
            await store.add_dispute(CH, b"t" * 32, b"i" * 32, b"D")

    run(make_store, body)


def test_the_earliest_read_starts_at_the_floor(make_store: Callable[[], Store]) -> None:
    """``read_from_floor``: no snapshot and every patch while nothing is trimmed; after a
    trim, the snapshot at the floor (not the latest) and the patches after it."""

    async def body(store: Store) -> None:
        assert (await store.read_from_floor(b"z" * 32)).head == Head()
        await line(store, 6)
        await store.put_snapshot(CH, pid(2), b"s" * 32, b"SNAP2")
        whole = await store.read_from_floor(CH)
        assert whole.snapshot is None
        assert [p.seq for p in whole.patches] == [1, 2, 3, 4, 5, 6]
        assert whole.head == Head(6, pid(6))
        assert [p.seq for p in (await store.read_from_floor(CH, 1)).patches] == [1]
        assert await store.trim(CH, pid(2), 0) == 2
        await store.put_snapshot(CH, pid(4), b"t" * 32, b"SNAP4")  # the latest, not the floor
        await store.add_dispute(CH, b"s" * 32, b"d" * 32, b"D")
        read = await store.read_from_floor(CH)
        assert read.snapshot is not None
        assert (read.snapshot.x_seq, read.snapshot.envelope, read.snapshot.disputed) == (
            2,
            b"SNAP2",
            True,
        )
        assert [p.seq for p in read.patches] == [3, 4, 5, 6]
        paged = await store.read_from_floor(CH, 1)
        assert paged.snapshot is not None
        assert (paged.snapshot.x_seq, paged.snapshot.size, paged.snapshot.envelope) == (2, 5, None)
        assert [p.seq for p in paged.patches] == [3]
        assert paged.head == Head(6, pid(6))
        latest = await store.read_from_snapshot(CH)
        assert latest.snapshot is not None
        assert (latest.snapshot.x_seq, latest.snapshot.disputed) == (4, False)

    run(make_store, body)


OTHER_CH = b"o" * 32
TAG, TAG2 = b"\x00\x00\x00\x01", b"\xff\xfe\xfd\xfc"


def record(n: int) -> bytes:
    """A session record as a client sends it: 0x02 0x05 and 198 more bytes."""
    return b"\x02\x05" + bytes([n]) * 198


async def stored(store: Store, cid: bytes = CH) -> int:
    info = await store.channel(cid)
    assert info is not None
    return info.stored_bytes


def test_a_session_record_is_stored_and_read_back_by_tag(
    make_store: Callable[[], Store],
) -> None:
    """Its bytes count in the channel's stored bytes (not in the pad's), as a dispute's."""

    async def body(store: Store) -> None:
        await line(store, 2)
        before = await store.channel(CH)
        assert before is not None
        assert await store.sessions(CH) == {}
        assert await store.add_session(CH, TAG, record(1)) is SessionAdded.STORED
        assert await store.sessions(CH) == {TAG: record(1)}
        assert await store.sessions(CH, [TAG, TAG2]) == {TAG: record(1)}
        assert await store.sessions(CH, []) == {}
        assert await store.sessions(CH, {TAG2}) == {}
        assert await store.add_session(CH, TAG2, record(2)) is SessionAdded.STORED
        assert await store.sessions(CH, (TAG2,)) == {TAG2: record(2)}
        assert await store.sessions(CH) == {TAG: record(1), TAG2: record(2)}
        many = [n.to_bytes(4, "big") for n in range(2, 5002)]  # more than one query's worth
        assert await store.sessions(CH, [*many, TAG2]) == {TAG2: record(2)}
        after = await store.channel(CH)
        assert after is not None
        assert after.stored_bytes == before.stored_bytes + 2 * 200
        assert after.pad_bytes == before.pad_bytes
        assert (await store.stats()).stored_bytes == after.stored_bytes

    run(make_store, body)


def test_a_resent_record_is_known_and_another_under_its_tag_is_taken(
    make_store: Callable[[], Store],
) -> None:
    async def body(store: Store) -> None:
        await line(store, 1)
        assert await store.add_session(CH, TAG, record(1)) is SessionAdded.STORED
        held = await stored(store)
        assert await store.add_session(CH, TAG, record(1)) is SessionAdded.KNOWN
        assert await stored(store) == held  # a resend adds nothing
        assert await store.add_session(CH, TAG, record(2)) is SessionAdded.TAKEN
        assert await store.add_session(CH, TAG, record(1)[:-1]) is SessionAdded.TAKEN
        assert await stored(store) == held
        assert await store.sessions(CH) == {TAG: record(1)}  # the first record stays

    run(make_store, body)


def test_two_channels_hold_the_same_tag_apart(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        await store.create_channel(OTHER_CH, KEY, READ)
        assert await store.add_session(CH, TAG, record(1)) is SessionAdded.STORED
        assert await store.add_session(OTHER_CH, TAG, record(2)) is SessionAdded.STORED
        assert await store.add_session(OTHER_CH, TAG, record(1)) is SessionAdded.TAKEN
        assert await store.sessions(CH) == {TAG: record(1)}
        assert await store.sessions(OTHER_CH, [TAG]) == {TAG: record(2)}
        assert (await stored(store), await stored(store, OTHER_CH)) == (200, 200)

    run(make_store, body)


def test_an_unknown_channel_takes_no_session_record_and_has_none(
    make_store: Callable[[], Store],
) -> None:
    async def body(store: Store) -> None:
        with pytest.raises(UnknownChannel):
            await store.add_session(CH, TAG, record(1))
        await store.create_channel(OTHER_CH, KEY, READ)
        await store.add_session(OTHER_CH, TAG, record(1))
        assert await store.sessions(CH) == {}
        assert await store.sessions(CH, [TAG]) == {}
        assert await store.channel(CH) is None  # the failed add made no channel

    run(make_store, body)


async def trimmed_with_sessions(store: Store) -> None:
    """CH: 5 patches, two session records, trimmed at 3 (its snapshot kept, S1 thinned)."""
    await line(store, 5)
    await store.put_snapshot(CH, pid(1), b"a" * 32, b"S1")
    await store.put_snapshot(CH, pid(3), b"b" * 32, b"S3")
    await store.add_session(CH, TAG, record(1))
    await store.add_session(CH, TAG2, record(2))
    assert await store.trim(CH, pid(3), 0) == 3
    assert [s.x_seq for s in await store.snapshots(CH)] == [3]


#: CH's stored bytes after :func:`trimmed_with_sessions`: patches 4-5, S3, the
#: records, the ids 1-3.
TRIMMED_WITH_SESSIONS = len(b"e4e5S3") + 2 * 200 + 3 * 32


def test_session_records_survive_a_trim(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await trimmed_with_sessions(store)
        assert await store.sessions(CH) == {TAG: record(1), TAG2: record(2)}
        assert await stored(store) == TRIMMED_WITH_SESSIONS
        assert await store.trim(CH, pid(3), 100) == 3  # thinning again at the floor
        assert await store.sessions(CH, [TAG]) == {TAG: record(1)}
        assert await store.add_session(CH, TAG, record(1)) is SessionAdded.KNOWN

    run(make_store, body)


def test_session_records_survive_closing_and_reopening(
    make_durable_store: Callable[[], Store],
) -> None:
    async def main() -> None:
        async with opened(make_durable_store) as store:
            await trimmed_with_sessions(store)
        async with opened(make_durable_store) as again:
            assert await again.sessions(CH) == {TAG: record(1), TAG2: record(2)}
            assert await stored(again) == TRIMMED_WITH_SESSIONS
            assert await again.add_session(CH, TAG, record(9)) is SessionAdded.TAKEN

    asyncio.run(main())


#: Session tags by name, for the tests of the records a trim drops.
T = {name: name.encode() * 4 for name in "ABCDEFGHK"}


def v2(kind: int, name: str, n: int) -> bytes:
    """A version-2 envelope of ``kind`` (1 patch, 2 snapshot, 8 dispute) sealed by
    session ``name``: version, kind, a 32-byte ref, the 4-byte tag, then a body
    (the layout only, as the store reads it)."""
    return bytes([2, kind]) + pid(n) + T[name] + b"body%d" % n


async def register(store: Store, name: str, at: int) -> None:
    """Register session ``name``'s record while the head is at ``at``."""
    info = await store.channel(CH)
    assert info is not None
    assert info.head.seq == at
    assert await store.add_session(CH, T[name], record(ord(name))) is SessionAdded.STORED


async def push(store: Store, seq: int, name: str) -> None:
    parent = pid(seq - 1) if seq > 1 else ZERO
    result = await store.append(CH, pid(seq), parent, v2(1, name, seq))
    assert (result.outcome, result.seq) == (AppendOutcome.APPENDED, seq)


async def kept_sessions(store: Store) -> set[str]:
    by_tag = {tag: name for name, tag in T.items()}
    return {by_tag[tag] for tag in await store.sessions(CH)}


def test_a_trim_drops_the_records_no_stored_envelope_names(
    make_store: Callable[[], Store],
) -> None:
    """A trim at X drops the records registered below X that no stored envelope
    names (PROTOCOL.md §9.3) and counts their bytes off; a tail patch, a kept
    snapshot (at X, after it, or a checkpoint) or a kept dispute keeps one, and
    so does a registration at X's head or later, with no envelope yet."""

    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        for name in "AFCGH":  # F never sends; C, G and H send after the trim point
            await register(store, name, 0)
        await push(store, 1, "A")
        await push(store, 2, "A")
        await register(store, "K", 2)
        await store.put_snapshot(CH, pid(2), b"k" * 32, v2(2, "K", 2))  # a checkpoint
        await register(store, "B", 2)
        await push(store, 3, "B")
        await register(store, "D", 3)
        await push(store, 4, "B")
        await store.put_snapshot(CH, pid(4), b"d" * 32, v2(2, "D", 4))  # X's
        await register(store, "E", 4)  # at X's head: its first PUSH is still to come
        await push(store, 5, "C")
        await store.put_snapshot(CH, pid(5), b"g" * 32, v2(2, "G", 5))
        await store.add_dispute(CH, b"g" * 32, b"h" * 32, v2(8, "H", 5))
        before = await stored(store)
        assert await store.trim(CH, pid(4), 100) == 4  # keeps the checkpoint at 2
        assert [s.x_seq for s in await store.snapshots(CH)] == [2, 4, 5]
        # A and B only signed trimmed patches, F nothing: their records go.
        assert await kept_sessions(store) == set("CDEGHK")
        trimmed = sum(len(v2(1, "A", n)) for n in range(1, 5))
        assert await stored(store) == before - trimmed - 3 * 200 + 4 * 32
        assert (await store.stats()).stored_bytes == await stored(store)
        # Thinning again at the floor drops the checkpoint, and with it K's record.
        before = await stored(store)
        assert await store.trim(CH, pid(4), 0) == 4
        assert await kept_sessions(store) == set("CDEGH")
        assert await stored(store) == before - len(v2(2, "K", 2)) - 200
        # A trim at 6 takes patch 5 (C's), snapshots 4 (D's) and 5 (G's) with its
        # dispute (H's); E signed what stays.
        await push(store, 6, "E")
        await store.put_snapshot(CH, pid(6), b"e" * 32, v2(2, "E", 6))
        assert await store.trim(CH, pid(6), 0) == 6
        assert await kept_sessions(store) == {"E"}
        assert await stored(store) == len(v2(2, "E", 6)) + 200 + 6 * 32
        assert await store.add_session(CH, T["A"], record(ord("A"))) is SessionAdded.STORED
        assert await stored(store) == len(v2(2, "E", 6)) + 2 * 200 + 6 * 32

    run(make_store, body)


def test_a_record_registered_below_the_trim_point_without_an_envelope_goes(
    make_store: Callable[[], Store],
) -> None:
    """Rule (b) alone: sessions that never sent, registered below, at and above
    X's head, or registered below and again above (a KNOWN add, as on a new
    connection); version-1 envelopes (no tag) keep nothing."""

    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY, READ)
        await register(store, "A", 0)
        await register(store, "D", 0)
        for seq in (1, 2):  # version-1 envelopes, whose bytes 34-37 spell A's tag
            envelope = b"\x01\x01" + pid(seq) + T["A"] + b"v1"
            await store.append(CH, pid(seq), pid(seq - 1) if seq > 1 else ZERO, envelope)
        await register(store, "B", 2)
        await store.put_snapshot(CH, pid(2), b"s" * 32, b"S2")
        await push(store, 3, "B")
        await register(store, "C", 3)
        held = await stored(store)
        assert await store.add_session(CH, T["D"], record(ord("D"))) is SessionAdded.KNOWN
        assert await stored(store) == held
        assert await store.trim(CH, pid(2), 0) == 2  # X = 2: A's head was 0
        assert await kept_sessions(store) == {"B", "C", "D"}
        assert await store.trim(CH, pid(2), 0) == 2  # a no-op trim drops nothing
        assert await kept_sessions(store) == {"B", "C", "D"}

    run(make_store, body)


def test_records_a_trim_dropped_stay_dropped_after_reopening(
    make_durable_store: Callable[[], Store],
) -> None:
    async def main() -> None:
        async with opened(make_durable_store) as store:
            await store.create_channel(CH, KEY, READ)
            await register(store, "A", 0)
            await push(store, 1, "A")
            await register(store, "B", 1)
            await push(store, 2, "B")
            await store.put_snapshot(CH, pid(1), b"s" * 32, v2(2, "B", 1))
            assert await store.trim(CH, pid(1), 0) == 1
            held = await stored(store)
        async with opened(make_durable_store) as again:
            assert await kept_sessions(again) == {"B"}
            assert await stored(again) == held == len(v2(1, "B", 2) + v2(2, "B", 1)) + 232
            assert await again.add_session(CH, T["A"], record(1)) is SessionAdded.STORED

    asyncio.run(main())


def ids_to(n: int) -> list[bytes]:
    return [pid(i) for i in range(1, n + 1)]


async def long_line(store: Store, n: int, cid: bytes = CH, size: int = 4) -> None:
    """``n`` patches pushed without waiting (one batch after another), ids ``pid(1..n)``."""
    await store.create_channel(cid, KEY, READ)
    results = await asyncio.gather(
        *(
            store.append(cid, pid(i), pid(i - 1) if i > 1 else ZERO, bytes(size))
            for i in range(1, n + 1)
        )
    )
    assert [r.seq for r in results] == list(range(1, n + 1))


def expected_nodes(floor: int, head: int) -> list[tuple[int, bytes]]:
    """What a proof from 0 names after trims up to ``floor``: the roots of the whole
    blocks below the floor, then every id from the floor's block on."""
    ids = ids_to(head)
    whole = floor // 256
    roots = [(8, mmr.block_root(ids[b * 256 : b * 256 + 256])) for b in range(whole)]
    return roots + [(0, i) for i in ids[whole * 256 :]]


def test_proof_nodes_name_the_live_ids(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        assert await store.proof_nodes(CH, 0, 5, 100) == (0, [])  # no such channel
        await line(store, 6)
        ids = [(0, pid(n)) for n in range(1, 7)]
        assert await store.proof_nodes(CH, 0, 6, 100) == (0, ids)
        assert await store.proof_nodes(CH, 2, 4, 100) == (2, ids[2:4])
        assert await store.proof_nodes(CH, 4, 99, 100) == (4, ids[4:])  # up to the head
        assert await store.proof_nodes(CH, 1, 6, 2) == (1, ids[1:3])  # at most max_nodes
        assert await store.proof_nodes(CH, 6, 9, 100) == (6, [])
        assert await store.proof_nodes(CH, 4, 4, 100) == (4, [])
        assert await store.proof_nodes(CH, 5, 2, 100) == (5, [])
        assert await store.proof_nodes(CH, 2**64 - 2, 2**64 - 1, 100) == (2**64 - 2, [])
        assert await store.proof_nodes(CH, 3, 2**64 - 1, 100) == (3, ids[3:])  # u64 bounds
        await store.put_snapshot(CH, pid(4), b"s" * 32, b"S4")
        assert await store.trim(CH, pid(4), 0) == 4
        assert await store.proof_nodes(CH, 0, 6, 100) == (0, ids)  # 1-4: the partial ids
        assert await store.proof_nodes(CH, 1, 3, 100) == (1, ids[1:3])

    run(make_store, body)


#: Trims at and off multiples of 256: (X, block roots then kept, partial ids then kept).
TRIMS = [(100, 0, 100), (200, 0, 200), (256, 1, 0), (300, 1, 44), (700, 2, 188), (1024, 4, 0)]


def test_trims_keep_block_roots_and_the_cut_blocks_ids(make_store: Callable[[], Store]) -> None:
    """Across trims, what is kept of the trimmed ids is exactly the roots of the whole
    blocks below the floor and the ids of the block the floor cuts; each counts 32
    bytes, and a proof from 0 names them."""
    head = 1100

    async def body(store: Store) -> None:
        await long_line(store, head)
        before = await store.channel(CH)
        assert before is not None
        for x, roots, partial in TRIMS:
            await store.put_snapshot(CH, pid(x), b"s" * 30 + x.to_bytes(2, "big"), b"S")
            assert await store.trim(CH, pid(x), 0) == x
            info = await store.channel(CH)
            assert info is not None
            patches = 4 * (head - x)
            assert info.stored_bytes == patches + len(b"S") + 32 * (roots + partial), x
            start, nodes = await store.proof_nodes(CH, 0, head, 10_000)
            assert (start, nodes) == (0, expected_nodes(x, head)), x
            assert [n for n in nodes if n[0] == 8] == expected_nodes(x, head)[:roots]
            assert await store.lookup(CH, pid(x)) is None
            assert await store.lookup(CH, pid(x + 1)) == x + 1

    run(make_store, body)


def test_a_proof_across_trims_folds_to_the_snapshots_peaks(
    make_store: Callable[[], Store],
) -> None:
    """From any point a client verified below a snapshot, the nodes (in pages) lead
    from its peaks there to the snapshot's peaks; from inside a block kept only as a
    root the proof starts at the block's first leaf, and a node never passes to_seq."""
    head = 1100
    ids = ids_to(head)

    async def prove(store: Store, start: int, to: int, page: int) -> tuple[int, int]:
        """Fold pages of nodes from ``start`` to ``to``; return (first start, height)."""
        first, nodes = await store.proof_nodes(CH, start, to, page)
        every, height = list(nodes), first + sum(1 << level for level, _ in nodes)
        while nodes and height < to:
            again, nodes = await store.proof_nodes(CH, height, to, page)
            assert again == height  # later pages start where the last one ended
            every += nodes
            height += sum(1 << level for level, _ in nodes)
        assert height <= to
        assert mmr.extends_by_nodes(mmr.of(ids[:first]), first, every, mmr.of(ids[:to]), to)
        return first, height

    async def body(store: Store) -> None:
        await long_line(store, head)
        for x, _, _ in TRIMS:
            await store.put_snapshot(CH, pid(x), b"s" * 30 + x.to_bytes(2, "big"), b"S")
            assert await store.trim(CH, pid(x), 0) == x
        # Floor 1024: blocks 0-3 are roots; 1025-1100 are live.
        for start, page in [(0, 4096), (0, 3), (256, 2), (1024, 50), (1030, 4096)]:
            assert await prove(store, start, 1100, page) == (start, 1100)
        for start in (1, 5, 300, 511, 700, 1023):  # inside a block kept as a root
            aligned = start // 256 * 256
            first, nodes = await store.proof_nodes(CH, start, 1100, 4096)
            assert (first, nodes[0][0]) == (aligned, 8)
            assert await prove(store, start, 1100, 4096) == (aligned, 1100)
            assert await prove(store, start, 1050, 7) == (aligned, 1050)
        # A root that would cover past to_seq is not named: the proof stops before it.
        assert await store.proof_nodes(CH, 256, 700, 4096) == (
            256,
            expected_nodes(1024, head)[1:2],
        )
        assert await store.proof_nodes(CH, 300, 500, 4096) == (256, [])
        # A later snapshot: every earlier point folds to its peaks.
        await store.put_snapshot(CH, pid(1090), b"t" * 32, b"T")
        assert await store.trim(CH, pid(1090), 0) == 1090
        for start in (0, 100, 1024, 1050, 1089):
            assert (await prove(store, start, 1090, 4096))[1] == 1090

    run(make_store, body)


def test_old_block_roots_age_into_group_roots_and_proofs_still_fold(
    make_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups made small (2 blocks, level 9; recent: 1 block) so a short line ages
    them: what is kept is the group roots below the recent blocks, each counts
    32 bytes, and a proof from any point folds to the snapshot's peaks (from the
    group's start for a point inside an aged group)."""
    monkeypatch.setattr(blocks, "GROUP_BLOCKS", 2)
    monkeypatch.setattr(blocks, "RECENT_BLOCKS", 1)
    head = 2600
    ids = ids_to(head)

    def kept_nodes(floor: int) -> list[tuple[int, bytes]]:
        """A proof from 0 after trims up to ``floor``: groups, blocks, then ids."""
        whole, aged = floor // 256, blocks.aged_groups(floor)
        nodes = [(9, mmr.block_root(ids[g * 512 : g * 512 + 512])) for g in range(aged)]
        nodes += [
            (8, mmr.block_root(ids[b * 256 : b * 256 + 256])) for b in range(2 * aged, whole)
        ]
        return nodes + [(0, i) for i in ids[whole * 256 :]]

    async def body(store: Store) -> None:
        await long_line(store, head)
        for x, groups in [(700, 0), (1100, 1), (1400, 2), (1600, 2), (2050, 3), (2560, 4)]:
            await store.put_snapshot(CH, pid(x), b"s" * 30 + x.to_bytes(2, "big"), b"S")
            assert await store.trim(CH, pid(x), 0) == x
            assert blocks.aged_groups(x) == groups
            expected = kept_nodes(x)
            info = await store.channel(CH)
            assert info is not None
            roots = len(expected) - (head - x // 256 * 256)
            assert info.stored_bytes == 4 * (head - x) + 1 + 32 * (roots + x % 256), x
            assert await store.proof_nodes(CH, 0, head, 10_000) == (0, expected), x
        for start in (0, 1, 300, 511, 512, 1000, 2047, 2048, 2300, 2559, 2560, 2590):
            first, nodes = await store.proof_nodes(CH, start, head, 10_000)
            span = 512 if start < 2048 else 256 if start < 2560 else 1
            assert first == start // span * span, start
            assert mmr.extends_by_nodes(mmr.of(ids[:first]), first, nodes, mmr.of(ids), head)

    run(make_store, body)


def test_roots_kept_before_roots_aged_age_at_the_next_trim(
    make_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store written before roots aged (here: with aging held off) holds only
    block roots; its next trim ages every group old enough, wherever the floor."""
    monkeypatch.setattr(blocks, "GROUP_BLOCKS", 2)
    monkeypatch.setattr(blocks, "RECENT_BLOCKS", 10**9)  # as before roots aged

    async def body(store: Store) -> None:
        await long_line(store, 1500)
        await store.put_snapshot(CH, pid(1300), b"s" * 32, b"S")
        assert await store.trim(CH, pid(1300), 0) == 1300
        _, nodes = await store.proof_nodes(CH, 0, 1500, 10_000)
        assert [level for level, _ in nodes[:5]] == [8] * 5
        monkeypatch.setattr(blocks, "RECENT_BLOCKS", 1)
        await store.put_snapshot(CH, pid(1301), b"t" * 32, b"T")
        assert await store.trim(CH, pid(1301), 0) == 1301
        _, nodes = await store.proof_nodes(CH, 0, 1500, 10_000)
        assert [level for level, _ in nodes[:4]] == [9, 9, 8, 0]  # blocks 0-3 aged; 4 recent
        ids = ids_to(1500)
        assert mmr.extends_by_nodes(mmr.EMPTY, 0, nodes, mmr.of(ids), 1500)

    run(make_store, body)


def test_a_group_with_a_block_missing_its_root_does_not_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hole (a store migrated from tombstones with one) keeps its group's block
    roots as they are; the rows of both levels read back as written."""
    monkeypatch.setattr(blocks, "GROUP_BLOCKS", 2)
    monkeypatch.setattr(blocks, "RECENT_BLOCKS", 1)
    a, b, d, e, f, g = (hashlib.sha256(bytes([n])).digest() for n in range(6))
    roots = {0: a, 1: b, 3: d, 4: e, 5: f, 6: g}  # block 2 has no root
    assert blocks.aged_groups(8 * 256) == 3
    kept, groups = blocks.aged(roots, {}, 8 * 256)
    assert groups == {0: mmr.block_root([a, b]), 2: mmr.block_root([e, f])}
    assert kept == {3: d, 6: g}
    rows = blocks.pack_rows(kept, groups, 4)
    assert blocks.unpack_rows(rows.items()) == (kept, groups)
    assert blocks.aged(kept, groups, 8 * 256) == (kept, groups)  # nothing more to age


#: Checkpoints of 10 bytes below the newest snapshot (100 bytes, at 64).
CHECKPOINTS = [32, 48, 56, 58, 60, 61, 62, 63]


async def checkpointed(store: Store, cid: bytes) -> None:
    """A channel of 70 patches with the snapshots of CHECKPOINTS and one at 64."""
    await long_line(store, 70, cid)
    for seq in CHECKPOINTS:
        await store.put_snapshot(cid, pid(seq), bytes([seq]) * 32, b"c" * 10)
    await store.put_snapshot(cid, pid(64), b"n" * 32, b"n" * 100)


async def kept(store: Store, cid: bytes) -> list[int]:
    return [s.x_seq for s in await store.snapshots(cid)]


def test_a_trim_keeps_checkpoints_at_doubling_distances_within_keep_pct(
    make_store: Callable[[], Store],
) -> None:
    """Newest to oldest below X, a checkpoint is kept if its distance to X is at least
    twice the last kept one's and the kept bytes stay within keep_pct % of the newest
    snapshot's; the others go, with their disputes."""

    async def body(store: Store) -> None:
        cases = {
            0: [64],  # the owner trim: none
            100: [32, 48, 56, 60, 62, 63, 64],  # distances 1, 2, 4, 8, 16, 32
            30: [60, 62, 63, 64],  # the budget (30 bytes) ends it
            650: [32, 48, 56, 60, 62, 63, 64],  # spacing alone: 61 and 58 are too close
        }
        for n, (keep_pct, expected) in enumerate(cases.items()):
            cid = bytes([n + 1]) * 32
            await checkpointed(store, cid)
            await store.add_dispute(cid, bytes([61]) * 32, b"d" * 32, b"dispute")
            before = await store.channel(cid)
            assert before is not None
            assert await store.trim(cid, pid(64), keep_pct) == 64
            assert await kept(store, cid) == expected, keep_pct
            after = await store.channel(cid)
            assert after is not None
            gone = 10 * (len(CHECKPOINTS) + 1 - len(expected)) + len(b"dispute")
            patches = 4 * 64
            assert after.stored_bytes == before.stored_bytes - gone - patches + 32 * 64
            assert after.pad_bytes == before.pad_bytes == 100 + 4 * 6
            with pytest.raises(UnknownPatch):  # 61's dispute went with it
                await store.add_dispute(cid, bytes([61]) * 32, b"e" * 32, b"D")

        # Snapshots at or above X stay whatever keep_pct says; the budget is the newest's.
        cid = b"x" * 32
        await checkpointed(store, cid)
        await store.put_snapshot(cid, pid(70), b"m" * 32, b"m" * 50)  # newest: 50 bytes
        assert await store.trim(cid, pid(62), 40) == 62
        assert await kept(store, cid) == [60, 61, 62, 63, 64, 70]  # 20 bytes <= 20
        # Again at the floor: the same keep_pct is a no-op, another thins again.
        assert await store.trim(cid, pid(62), 40) == 62
        assert await kept(store, cid) == [60, 61, 62, 63, 64, 70]
        assert await store.trim(cid, pid(62), 20) == 62
        assert await kept(store, cid) == [61, 62, 63, 64, 70]
        assert await store.trim(cid, pid(61), 0) == 62  # below the floor: a no-op
        assert await kept(store, cid) == [61, 62, 63, 64, 70]
        assert await store.trim(cid, pid(62), 0) == 62
        assert await kept(store, cid) == [62, 63, 64, 70]
        info = await store.channel(cid)
        assert info is not None
        assert info.stored_bytes == 4 * 8 + 2 * 10 + 100 + 50 + 32 * 62
        assert (await store.read_from_floor(cid)).snapshot is not None

    run(make_store, body)


#: The tables of schema 1 (protocol 1), as a 0.1 relay made them in SQLite.
SQLITE_SCHEMA_1 = """
CREATE TABLE channels (channel_id BLOB PRIMARY KEY, verify_key BLOB NOT NULL,
    head_seq INTEGER NOT NULL, head_id BLOB NOT NULL, floor_seq INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL, pad_bytes INTEGER NOT NULL);
CREATE TABLE patches (channel_id BLOB NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL,
    envelope BLOB NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE UNIQUE INDEX patches_by_id ON patches (channel_id, id);
CREATE TABLE tombstones (channel_id BLOB NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (channel_id, id)) WITHOUT ROWID;
CREATE TABLE snapshots (channel_id BLOB NOT NULL, x_seq INTEGER NOT NULL, x_id BLOB NOT NULL,
    id BLOB NOT NULL, envelope BLOB NOT NULL, PRIMARY KEY (channel_id, x_seq));
"""


def sqlite_schema_1(path: Path, *, pad: bool) -> None:
    """A SQLite file as a protocol-1 relay left it, holding one pad if ``pad``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum=2")
    conn.executescript(f"BEGIN;{SQLITE_SCHEMA_1}PRAGMA user_version=1;COMMIT;")
    if pad:
        conn.execute("INSERT INTO channels VALUES (?, ?, 1, ?, 0, 2, 2)", (CH, KEY, pid(1)))
        conn.execute("INSERT INTO patches VALUES (?, 1, ?, 'e1')", (CH, pid(1)))
    conn.close()


def test_a_sqlite_store_of_protocol_1_pads_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    sqlite_schema_1(path, pad=True)
    before = path.read_bytes()

    async def main() -> None:
        with pytest.raises(SchemaTooOld) as refused:
            await SQLiteStore(str(path)).open()
        assert str(refused.value) == (
            f"{path} holds protocol-1 pads, which this relay cannot serve;"
            " keep it for a 0.1 relay or start a new store"
        )

    asyncio.run(main())
    assert path.read_bytes() == before  # not even converted to give pages back
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_an_empty_sqlite_store_of_schema_1_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    sqlite_schema_1(path, pad=False)

    async def main() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            await line(store, 2)
            await store.put_snapshot(CH, pid(2), b"s" * 32, b"S")
            assert await store.add_dispute(CH, b"s" * 32, b"d" * 32, b"D") == 2
            info = await store.channel(CH)
            assert info is not None
            assert info.read_hash == READ
            assert await store.add_session(CH, TAG, record(1)) is SessionAdded.STORED
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5


#: The tables of schema 2 (issue 12), as the relay made them in SQLite before schema 3.
SQLITE_SCHEMA_2 = """
CREATE TABLE channels (channel_id BLOB PRIMARY KEY, verify_key BLOB NOT NULL,
    head_seq INTEGER NOT NULL, head_id BLOB NOT NULL, floor_seq INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL, pad_bytes INTEGER NOT NULL, read_hash BLOB NOT NULL);
CREATE TABLE patches (channel_id BLOB NOT NULL, seq INTEGER NOT NULL, id BLOB NOT NULL,
    envelope BLOB NOT NULL, PRIMARY KEY (channel_id, seq));
CREATE UNIQUE INDEX patches_by_id ON patches (channel_id, id);
CREATE TABLE tombstones (channel_id BLOB NOT NULL, id BLOB NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (channel_id, id)) WITHOUT ROWID;
CREATE INDEX tombstones_by_seq ON tombstones (channel_id, seq);
CREATE TABLE snapshots (channel_id BLOB NOT NULL, x_seq INTEGER NOT NULL, x_id BLOB NOT NULL,
    id BLOB NOT NULL, envelope BLOB NOT NULL, PRIMARY KEY (channel_id, x_seq));
CREATE TABLE disputes (channel_id BLOB NOT NULL, snapshot_id BLOB NOT NULL, id BLOB NOT NULL,
    envelope BLOB NOT NULL, PRIMARY KEY (channel_id, id)) WITHOUT ROWID;
CREATE INDEX disputes_by_snapshot ON disputes (channel_id, snapshot_id);
"""

#: The tables of schema 2 in PostgreSQL, as the relay made them before schema 3.
PG_SCHEMA_2 = """
CREATE TABLE blindpad_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE channels (channel_id bytea PRIMARY KEY, verify_key bytea NOT NULL,
    head_seq bigint NOT NULL, head_id bytea NOT NULL, floor_seq bigint NOT NULL,
    stored_bytes bigint NOT NULL, pad_bytes bigint NOT NULL, read_hash bytea NOT NULL);
CREATE TABLE patches (channel_id bytea NOT NULL, seq bigint NOT NULL, id bytea NOT NULL,
    envelope bytea NOT NULL, PRIMARY KEY (channel_id, seq));
ALTER TABLE patches ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX patches_by_id ON patches (channel_id, id);
CREATE TABLE tombstones (channel_id bytea NOT NULL, id bytea NOT NULL, seq bigint NOT NULL,
    PRIMARY KEY (channel_id, id));
CREATE INDEX tombstones_by_seq ON tombstones (channel_id, seq);
CREATE TABLE snapshots (channel_id bytea NOT NULL, x_seq bigint NOT NULL, x_id bytea NOT NULL,
    id bytea NOT NULL, envelope bytea NOT NULL, PRIMARY KEY (channel_id, x_seq));
ALTER TABLE snapshots ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE SEQUENCE blindpad_nodes;
CREATE TABLE disputes (channel_id bytea NOT NULL, snapshot_id bytea NOT NULL,
    id bytea NOT NULL, envelope bytea NOT NULL, PRIMARY KEY (channel_id, id));
CREATE INDEX disputes_by_snapshot ON disputes (channel_id, snapshot_id);
INSERT INTO blindpad_meta VALUES ('schema_version', '2'), ('site', '0123456789abcdef');
"""

#: A schema-2 pad: MIGRATED patches, trimmed (tombstones) up to MIGRATED_FLOOR.
MIGRATED, MIGRATED_FLOOR = 20_600, 20_520
OTHER = b"d" * 32  # an untrimmed pad beside it
#: Its stored bytes under schema 2: 80 live patches, two snapshots, a dispute.
STORED_2 = 300 * (MIGRATED - MIGRATED_FLOOR) + 400 + 500 + len(b"dispute")


def hid(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest()


def schema_2_rows() -> dict[str, list[tuple[object, ...]]]:
    """The rows of the schema-2 store the migration tests start from."""
    n, floor = MIGRATED, MIGRATED_FLOOR
    live = [(CH, s, hid(s), bytes([s % 256]) * 300) for s in range(floor + 1, n + 1)]
    other = [(OTHER, s, pid(s), b"o%d" % s) for s in range(1, 4)]
    snapshots = [
        (CH, floor, hid(floor), b"s" * 32, b"SNAP" * 100),
        (CH, 20_560, hid(20_560), b"t" * 32, b"SNAP2" * 100),
    ]
    return {
        "channels": [
            (CH, KEY, n, hid(n), floor, STORED_2, 500 + 300 * 40, READ),
            (OTHER, KEY, 3, pid(3), 0, 6, 6, READ),
        ],
        "patches": live + other,
        "tombstones": [(CH, hid(s), s) for s in range(1, floor + 1)],
        "snapshots": snapshots,
        "disputes": [(CH, b"t" * 32, b"d" * 32, b"dispute")],
    }


def sqlite_schema_2(path: Path) -> None:
    """A SQLite file as the relay left it under schema 2, with a long trimmed pad."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum=2")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(f"BEGIN;{SQLITE_SCHEMA_2}PRAGMA user_version=2;COMMIT;")
    conn.execute("BEGIN")
    for table, rows in schema_2_rows().items():
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    conn.execute("COMMIT")
    conn.close()


async def check_migrated(store: Store) -> None:
    """What a migrated schema-2 store must answer: the trimmed pad's proofs fold, its
    live patches, snapshots and disputes are as they were, and the other pad too."""
    ids = [hid(s) for s in range(1, MIGRATED + 1)]
    floor = MIGRATED_FLOOR
    whole = floor // 256
    info = await store.channel(CH)
    assert info is not None
    kept = 32 * (whole + floor % 256)
    assert (info.head, info.floor_seq) == (Head(MIGRATED, hid(MIGRATED)), floor)
    assert info.stored_bytes == STORED_2 + kept  # 32 per root and partial id
    for start in (0, 300, 5_000, 20_480, 20_500):  # from old points to the snapshot's peaks
        first, nodes = await store.proof_nodes(CH, start, floor, 4096)
        inside = start % 256 and start < whole * 256  # a block kept as its root
        assert first == (start // 256 * 256 if inside else start)
        assert mmr.extends_by_nodes(mmr.of(ids[:first]), first, nodes, mmr.of(ids[:floor]), floor)
    first, nodes = await store.proof_nodes(CH, 0, MIGRATED, 4096)
    assert nodes == [(8, mmr.block_root(ids[b * 256 : b * 256 + 256])) for b in range(whole)] + [
        (0, i) for i in ids[whole * 256 :]
    ]
    assert await store.lookup(CH, hid(floor)) is None  # trimmed: no tombstone
    assert await store.lookup(CH, hid(floor + 1)) == floor + 1
    read = await store.read_from_snapshot(CH)
    assert read.snapshot is not None
    assert (read.snapshot.x_seq, read.snapshot.disputed, len(read.patches)) == (20_560, True, 40)
    assert [(s.x_seq, s.disputed) for s in await store.snapshots(CH)] == [
        (floor, False),
        (20_560, True),
    ]
    assert [p.seq for p in (await store.read_since(OTHER, 0)).patches] == [1, 2, 3]
    appended = await store.append(OTHER, pid(4), pid(3), b"o4")
    assert (appended.outcome, appended.seq) == (AppendOutcome.APPENDED, 4)
    await store.put_snapshot(CH, hid(20_590), b"u" * 32, b"S")
    assert await store.trim(CH, hid(20_590), 0) == 20_590  # a trim after the migration
    first, nodes = await store.proof_nodes(CH, 20_000, 20_590, 4096)
    assert mmr.extends_by_nodes(mmr.of(ids[:first]), first, nodes, mmr.of(ids[:20_590]), 20_590)
    assert await store.sessions(OTHER) == {}  # the sessions table, empty
    assert await store.add_session(OTHER, TAG, record(1)) is SessionAdded.STORED
    assert await store.sessions(OTHER) == {TAG: record(1)}


def test_a_sqlite_store_of_schema_2_is_migrated_in_place_and_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    sqlite_schema_2(path)
    before = path.stat().st_size

    async def main() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        try:
            await check_migrated(store)
        finally:
            await store.close()

    asyncio.run(main())
    migrated = path.stat().st_size
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert "sessions" in tables
        assert "tombstones" not in tables
        assert not {t for t in tables if t.endswith("_2")}
        conn.execute("VACUUM")
    assert migrated < before // 2  # the tombstones' pages went back
    assert path.stat().st_size <= migrated


def test_a_postgresql_store_of_schema_2_is_migrated_in_place(pg_url: str) -> None:
    schema = parse_url(pg_url).schema
    size = (
        "SELECT sum(pg_total_relation_size(c.oid)) AS n FROM pg_class AS c"
        " JOIN pg_namespace AS s ON s.oid = c.relnamespace"
        " WHERE s.nspname = $1 AND c.relkind = 'r'"
    )

    async def main() -> None:
        await pg_script(
            pg_url, f"CREATE SCHEMA {schema}; SET search_path = {schema};{PG_SCHEMA_2}"
        )
        for table, rows in schema_2_rows().items():
            columns = list(zip(*rows, strict=True))
            types = ["bytea" if isinstance(v, bytes) else "bigint" for v in rows[0]]
            unnest = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(types))
            await pg_sql(
                pg_url, f"INSERT INTO {table} SELECT * FROM unnest({unnest})", *map(list, columns)
            )
        before = (await pg_sql(pg_url, size, schema))[0]["n"]
        async with pg_stores(pg_url, 2) as stores:  # two relays racing to migrate it
            await check_migrated(stores[1])
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "5"
        gone = await pg_sql(pg_url, "SELECT to_regclass('tombstones') IS NULL AS gone")
        assert gone[0]["gone"]
        assert (await pg_sql(pg_url, size, schema))[0]["n"] < before

    asyncio.run(main())


async def pad_of_schema_4(make: Callable[[], Store]) -> None:
    """A pad of two patches, written by this relay: what the schema-3 tests downgrade."""
    async with opened(make) as store:
        await line(store, 2)


async def check_sessions_added(store: Store) -> None:
    """What a store migrated from schema 3 must answer: its pad as it was, and
    session records stored, read back and counted."""
    info = await store.channel(CH)
    assert info is not None
    assert (info.head, info.stored_bytes) == (Head(2, pid(2)), 4)
    assert await store.sessions(CH) == {}
    assert await store.add_session(CH, TAG, record(1)) is SessionAdded.STORED
    assert await store.add_session(CH, TAG, record(2)) is SessionAdded.TAKEN
    assert await store.sessions(CH, [TAG]) == {TAG: record(1)}
    assert await stored(store) == 4 + 200


def test_a_sqlite_store_of_schema_3_gains_the_sessions_table(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    asyncio.run(pad_of_schema_4(lambda: SQLiteStore(str(path))))
    with sqlite3.connect(path) as conn:  # as a schema-3 relay left it
        conn.execute("DROP TABLE sessions")
        conn.execute("PRAGMA user_version = 3")

    async def main() -> None:
        async with opened(lambda: SQLiteStore(str(path))) as store:
            await check_sessions_added(store)

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        assert conn.execute("SELECT tag FROM sessions").fetchall() == [(TAG,)]


def test_a_postgresql_store_of_schema_3_gains_the_sessions_table(pg_url: str) -> None:
    async def main() -> None:
        await pad_of_schema_4(lambda: PostgreSQLStore(pg_url))
        await pg_sql(pg_url, "DROP TABLE sessions")  # as a schema-3 relay left it
        await pg_sql(pg_url, "UPDATE blindpad_meta SET value = '3' WHERE key = 'schema_version'")
        async with pg_stores(pg_url, 2) as stores:  # two relays racing to migrate it
            await check_sessions_added(stores[1])
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "5"

    asyncio.run(main())


#: The sessions table of schema 4 in SQLite, as the relay made it before schema 5.
SQLITE_SESSIONS_4 = """
CREATE TABLE sessions_4 (ch INTEGER NOT NULL, tag BLOB NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (ch, tag)) WITHOUT ROWID;
INSERT INTO sessions_4 SELECT ch, tag, record FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_4 RENAME TO sessions;
PRAGMA user_version = 4;
"""


async def pad_with_records(make: Callable[[], Store]) -> int:
    """A pad whose records the schema-4 tests keep: A signed patches 1-2, B patch 3
    and the snapshot at 2; returns its stored bytes."""
    async with opened(make) as store:
        await store.create_channel(CH, KEY, READ)
        await register(store, "A", 0)
        await push(store, 1, "A")
        await push(store, 2, "A")
        await register(store, "B", 2)
        await store.put_snapshot(CH, pid(2), b"s" * 32, v2(2, "B", 2))
        await push(store, 3, "B")
        return await stored(store)


async def check_records_kept(store: Store, held: int) -> None:
    """What a store migrated from schema 4 must answer: its records as they were
    (registered at 0, for all it knows), until a trim drops the unneeded ones."""
    assert await kept_sessions(store) == {"A", "B"}
    assert await stored(store) == held
    assert await store.trim(CH, pid(2), 0) == 2
    assert await kept_sessions(store) == {"B"}  # A signed only trimmed patches
    assert await stored(store) == held - 2 * len(v2(1, "A", 1)) - 200 + 2 * 32
    await register(store, "C", 3)
    assert await store.trim(CH, pid(2), 100) == 2  # thinning again: C is newer than X
    assert await kept_sessions(store) == {"B", "C"}


def test_a_sqlite_store_of_schema_4_keeps_its_records(tmp_path: Path) -> None:
    path = tmp_path / "v4.sqlite3"
    held = asyncio.run(pad_with_records(lambda: SQLiteStore(str(path))))
    with sqlite3.connect(path) as conn:  # as a schema-4 relay left it
        conn.executescript(SQLITE_SESSIONS_4)
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 2

    async def main() -> None:
        async with opened(lambda: SQLiteStore(str(path))) as store:
            await check_records_kept(store, held)

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 5
        at = conn.execute("SELECT registered_at FROM sessions ORDER BY tag").fetchall()
        assert at == [(0,), (3,)]  # B's from the migration, C's as registered


def test_a_postgresql_store_of_schema_4_keeps_its_records(pg_url: str) -> None:
    async def main() -> None:
        held = await pad_with_records(lambda: PostgreSQLStore(pg_url))
        await pg_sql(pg_url, "ALTER TABLE sessions DROP COLUMN registered_at")  # schema 4
        await pg_sql(pg_url, "UPDATE blindpad_meta SET value = '4' WHERE key = 'schema_version'")
        async with pg_stores(pg_url, 2) as stores:  # two relays racing to migrate it
            await check_records_kept(stores[1], held)
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "5"
        at = await pg_sql(pg_url, "SELECT registered_at FROM sessions ORDER BY tag")
        assert [r["registered_at"] for r in at] == [0, 3]

    asyncio.run(main())


def test_sqlite_is_durable_and_full_sync(tmp_path: Path) -> None:
    path = str(tmp_path / "d.sqlite3")

    async def main() -> None:
        store = SQLiteStore(path)
        await store.open()
        assert await store.synchronous() >= 2
        await line(store, 3)
        await store.close()
        again = SQLiteStore(path)
        await again.open()
        assert (await again.read_since(CH, 0)).head == Head(3, pid(3))
        backup(path, str(tmp_path / "copy.sqlite3"))
        await again.close()
        copy = SQLiteStore(str(tmp_path / "copy.sqlite3"))
        await copy.open()
        assert len((await copy.read_since(CH, 0)).patches) == 3
        await copy.close()

    asyncio.run(main())


def pages(path: str) -> tuple[int, int]:
    """(page_count, freelist_count) of a SQLite file, read beside the store."""
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("PRAGMA page_count").fetchone()[0],
            conn.execute("PRAGMA freelist_count").fetchone()[0],
        )


def test_a_trim_gives_its_pages_back_to_the_file_system(tmp_path: Path) -> None:
    """After a trim the file stayed 2,340x the text: freed pages were never reclaimed."""
    path = str(tmp_path / "d.sqlite3")

    async def main() -> None:
        store = SQLiteStore(path)
        await store.open()
        await store.create_channel(CH, KEY, READ)
        parent = ZERO
        for n in range(1, 201):  # 200 patches of 4 KB: about 0.8 MB of pages
            await store.append(CH, pid(n), parent, bytes([n % 256]) * 4000)
            parent = pid(n)
        await store.put_snapshot(CH, pid(200), b"s" * 32, b"S" * 100)
        full, _ = pages(path)
        assert await store.trim(CH, pid(200), 0) == 200
        trimmed, free = pages(path)
        assert free == 0
        assert trimmed < full // 4  # what the patches held went back
        await store.close()

    asyncio.run(main())


def file_bytes(path: Path) -> int:
    """The database's bytes (its pages; the WAL checkpointed into it)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count = conn.execute("PRAGMA page_count").fetchone()[0]
        return int(count * conn.execute("PRAGMA page_size").fetchone()[0])


def test_a_stored_patch_costs_under_100_bytes_beside_its_envelope(tmp_path: Path) -> None:
    """Schema 2 spent 232 bytes of rows and indexes per patch of 309 (the 32-byte
    channel id in three places); schema 3 names channels by an integer and finds
    patches by an index on 8 bytes of their id.  After a trim, what the trimmed
    patches leave is 32 bytes per id of the cut block, 32 per block of 256."""
    path = tmp_path / "p.sqlite3"
    n = 2048

    async def main() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        await store.create_channel(CH, KEY, READ)
        empty = file_bytes(path)
        envelopes = [hashlib.sha256(b"%d" % i).digest() * 10 for i in range(n)]  # 320 bytes
        ids = [hashlib.sha256(e).digest() for e in envelopes]
        results = await asyncio.gather(
            *(store.append(CH, ids[i], ids[i - 1] if i else ZERO, envelopes[i]) for i in range(n))
        )
        assert results[-1].seq == n
        full = file_bytes(path)
        assert (full - empty) / n - 320 < 100
        await store.put_snapshot(CH, ids[2000], b"s" * 32, b"S" * 100)
        assert await store.trim(CH, ids[2000], 0) == 2001
        trimmed = file_bytes(path)
        assert trimmed - empty < (full - empty) // 20
        with sqlite3.connect(path) as conn:
            rows = conn.execute("SELECT first_block, length(roots) FROM block_roots").fetchall()
            partial = conn.execute("SELECT length(ids) FROM partial_ids").fetchall()
        assert (rows, partial) == ([(0, 7 * 32)], [(2001 % 256 * 32,)])
        await store.close()

    asyncio.run(main())


def test_a_million_trimmed_patches_keep_well_under_200_kb_on_disk(tmp_path: Path) -> None:
    """The block roots of 1,000,000 trimmed patches (3,906 of them, kept by 40
    trims) and the 64 ids of the block the floor cuts: about 32 bytes per 256."""
    from relay.store.sqlite import _keep_nodes

    path = tmp_path / "m.sqlite3"

    async def create() -> None:
        async with opened(lambda: SQLiteStore(str(path))) as store:
            await store.create_channel(CH, KEY, READ)

    asyncio.run(create())
    before = file_bytes(path)
    roots = [(b, hashlib.sha256(b"%d" % b).digest()) for b in range(1_000_000 // 256)]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        ch = conn.execute("SELECT ch FROM channels").fetchone()[0]
        for first in range(0, len(roots), 100):
            conn.execute("BEGIN")
            _keep_nodes(conn, ch, roots[first : first + 100], [b"p" * 32] * 64)
            conn.execute("COMMIT")
        packed = b"".join(
            r for (r,) in conn.execute("SELECT roots FROM block_roots ORDER BY first_block")
        )
    finally:
        conn.close()
    assert packed == b"".join(root for _, root in roots)  # in order, none lost
    assert file_bytes(path) - before < 150_000  # 127 KB of hashes


def test_an_older_file_is_converted_to_give_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)  # as the relay made it before
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(f"BEGIN;{SQLITE_SCHEMA_2}PRAGMA user_version=2;COMMIT;")
    conn.execute("INSERT INTO channels VALUES (?, ?, 0, ?, 0, 0, 0, ?)", (CH, KEY, ZERO, READ))
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()

    async def main() -> None:
        store = SQLiteStore(str(path))
        await store.open()
        assert await store.channel(CH) is not None  # the data survived the rewrite
        await store.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental


def test_newer_schema_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()

    async def main() -> None:
        with pytest.raises(SchemaTooNew, match="newer than this relay"):
            await SQLiteStore(str(path)).open()

    asyncio.run(main())


def test_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    assert isinstance(open_store("postgres://nope"), PostgreSQLStore)  # connects at open()
    assert isinstance(open_store("postgresql://u@h/db?schema=s_1"), PostgreSQLStore)
    with pytest.raises(ValueError, match="unknown store"):
        open_store("mysql://nope")


def test_a_postgresql_url_without_asyncpg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg fails
    monkeypatch.delitem(sys.modules, "relay.store.postgresql")
    with pytest.raises(ValueError, match=r"install blindpad\[scale\]"):
        open_store("postgresql://u@h/db")


def test_an_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    async def main() -> None:
        store = PostgreSQLStore("postgresql://u:secret@127.0.0.1:1/db?schema=x")
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/db") as caught:
            await store.open()
        assert "secret" not in str(caught.value)

    asyncio.run(main())


def test_postgresql_urls_are_taken_apart() -> None:
    url = parse_url("postgresql://u:pw@h:5433/db?sslmode=disable&schema=site_1&x=%2Fy#f")
    assert url.schema == "site_1"
    assert url.dsn == "postgresql://u:pw@h:5433/db?sslmode=disable&x=%2Fy#f"  # the rest is kept
    assert parse_url("postgres://h/db") == PostgresURL("postgres://h/db", None)
    assert parse_url("postgresql:///db?schema=_x").dsn == "postgresql:///db"
    bad = ["Site", "1site", "a-b", "", "x" * 64, "pg_site", "a;drop", 'a"b']
    for name in bad:
        with pytest.raises(ValueError, match="schema"):
            parse_url(f"postgresql://h/db?schema={name}")
    with pytest.raises(ValueError, match="more than one schema"):
        parse_url("postgresql://h/db?schema=a&schema=b")
    with pytest.raises(ValueError, match="postgresql://"):
        parse_url("mysql://h/db")
    with pytest.raises(ValueError, match="schema"):
        open_store("postgresql://h/db?schema=Bad")


# --- PostgreSQL: what a shared store does besides the suite ------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@asynccontextmanager
async def pg_stores(url: str, n: int) -> AsyncIterator[list[PostgreSQLStore]]:
    """``n`` stores on one schema, as ``n`` relay processes would have."""
    stores = [PostgreSQLStore(url) for _ in range(n)]
    try:
        await asyncio.gather(*(s.open() for s in stores))  # racing on the empty schema
        yield stores
    finally:
        for store in stores:
            await store.close()


async def pg_sql(url: str, statement: str, *args: object) -> list[asyncpg.Record]:
    """Run SQL beside the stores, in the URL's schema."""
    parsed = parse_url(url)
    conn = await asyncpg.connect(parsed.dsn)
    try:
        await conn.execute(f"SET search_path = {parsed.schema}")
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


def test_two_relays_appending_at_once_keep_one_line_per_channel(pg_url: str) -> None:
    """Writers on both relays race for the heads; every patch is pushed through both."""
    channels = [bytes([n]) * 32 for n in range(1, 4)]
    writers, target = 4, 15
    log: list[tuple[bytes, bytes, list[AppendResult]]] = []

    async def writer(stores: list[PostgreSQLStore], cid: bytes, w: int) -> None:
        parent, made, attempt = ZERO, 0, 0
        while made < target:
            attempt += 1
            patch = hashlib.sha256(b"%s/%d/%d" % (cid, w, attempt)).digest()
            envelope = parent + patch  # says its parent, for the check below
            one, other = stores[w % 2], stores[(w + 1) % 2]
            results = list(
                await asyncio.gather(
                    one.append(cid, patch, parent, envelope),
                    other.append(cid, patch, parent, envelope),
                )
            )
            log.append((cid, patch, results))
            outcomes = sorted(r.outcome.value for r in results)
            assert outcomes in (["appended", "duplicate"], ["stale", "stale"]), results
            if outcomes[0] == "appended":
                made += 1
                parent = patch
            else:
                parent = max((r.head for r in results), key=lambda h: h.seq).id

    async def main() -> None:
        async with pg_stores(pg_url, 2) as stores:
            for cid in channels:
                await stores[0].create_channel(cid, KEY, READ)
            await asyncio.gather(
                *(writer(stores, cid, w) for cid in channels for w in range(writers))
            )
            for cid in channels:
                read = await stores[1].read_since(cid, 0)
                assert [p.seq for p in read.patches] == list(range(1, writers * target + 1))
                parent = ZERO
                for patch in read.patches:  # one chain: each patch's parent is the one before
                    assert patch.envelope == parent + patch.id
                    parent = patch.id
                stored = {p.id: p.seq for p in read.patches}
                for _, patch_id, results in (entry for entry in log if entry[0] == cid):
                    for result in results:
                        if result.outcome is not AppendOutcome.STALE:
                            assert stored[patch_id] == result.seq
                    if results[0].outcome is AppendOutcome.STALE:
                        assert patch_id not in stored
            assert await stores[0].channels(channels) == await stores[1].channels(channels)

    asyncio.run(main())


def test_only_one_of_many_racing_appends_wins_across_relays(pg_url: str) -> None:
    async def main() -> None:
        async with pg_stores(pg_url, 2) as stores:
            await stores[1].create_channel(CH, KEY, READ)
            results = await asyncio.gather(
                *(stores[i % 2].append(CH, pid(i), ZERO, b"x") for i in range(1, 41))
            )
            assert sum(r.outcome is AppendOutcome.APPENDED for r in results) == 1
            assert all(r.head.seq == 1 for r in results)

    asyncio.run(main())


def test_every_relay_joins_with_its_own_node_on_one_site(pg_url: str) -> None:
    async def main() -> None:
        async with pg_stores(pg_url, 3) as stores:
            joined = [await store.join() for store in stores]
            joined.append(await stores[0].join())  # each join is a new number
            assert len({m.node for m in joined}) == 4
            assert all(0 <= m.node < 65536 for m in joined)
            assert len({m.site for m in joined}) == 1
            assert len(joined[0].site) == 16
            int(joined[0].site, 16)
            assert all(store.shared for store in stores)

    asyncio.run(main())


def test_a_second_open_of_a_schema_keeps_its_data(pg_url: str) -> None:
    async def main() -> None:
        first = PostgreSQLStore(pg_url)
        await first.open()
        await line(first, 3)
        await first.put_snapshot(CH, pid(2), b"s" * 32, b"SNAP")
        site = (await first.join()).site
        before = await first.channel(CH)
        await first.close()
        again = PostgreSQLStore(pg_url)
        await again.open()
        try:
            assert await again.channel(CH) == before
            assert (await again.join()).site == site
            read = await again.read_from_snapshot(CH)
            assert read.snapshot is not None
            assert (read.snapshot.envelope, [p.seq for p in read.patches]) == (b"SNAP", [3])
        finally:
            await again.close()

    asyncio.run(main())


def test_a_newer_postgresql_schema_refuses_to_start(pg_url: str) -> None:
    async def main() -> None:
        store = PostgreSQLStore(pg_url)
        await store.open()
        await store.close()
        await pg_sql(pg_url, "UPDATE blindpad_meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(SchemaTooNew, match="newer than this relay"):
            await PostgreSQLStore(pg_url).open()

    asyncio.run(main())


async def pg_script(url: str, script: str) -> None:
    """Run several SQL statements beside the stores (the simple query protocol)."""
    conn = await asyncpg.connect(parse_url(url).dsn)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


async def pg_schema_1(url: str, *, pad: bool) -> None:
    """Turn the URL's fresh schema into a schema-1 store (protocol 1), with a pad if ``pad``."""
    schema = parse_url(url).schema
    await pg_script(url, f"CREATE SCHEMA {schema}; SET search_path = {schema};{PG_SCHEMA_2}")
    if pad:
        await pg_sql(
            url, "INSERT INTO channels VALUES ($1, $2, 2, $3, 0, 4, 4, $4)", CH, KEY, pid(2), READ
        )
        await pg_sql(
            url,
            "INSERT INTO patches VALUES ($1, 1, $2, 'e1'), ($1, 2, $3, 'e2')",
            CH,
            pid(1),
            pid(2),
        )
    await pg_sql(url, "DROP TABLE disputes")
    await pg_sql(url, "DROP INDEX tombstones_by_seq")
    await pg_sql(url, "ALTER TABLE channels DROP COLUMN read_hash")
    await pg_sql(url, "UPDATE blindpad_meta SET value = '1' WHERE key = 'schema_version'")


def test_a_postgresql_store_of_protocol_1_pads_is_refused_and_left_alone(pg_url: str) -> None:
    schema = parse_url(pg_url).schema

    async def main() -> None:
        await pg_schema_1(pg_url, pad=True)
        with pytest.raises(SchemaTooOld) as refused:
            await PostgreSQLStore(pg_url).open()
        message = str(refused.value)
        assert message.startswith(f"PostgreSQL schema {schema} at ")
        assert message.endswith(
            " holds protocol-1 pads, which this relay cannot serve;"
            " keep it for a 0.1 relay or start a new store"
        )
        assert "\n" not in message
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "1"
        rows = await pg_sql(pg_url, "SELECT count(*) AS n FROM patches")
        assert rows[0]["n"] == 2

    asyncio.run(main())


def test_an_empty_postgresql_store_of_schema_1_is_upgraded_in_place(pg_url: str) -> None:
    async def main() -> None:
        await pg_schema_1(pg_url, pad=False)
        site = (await pg_sql(pg_url, "SELECT value FROM blindpad_meta WHERE key = 'site'"))[0]
        async with pg_stores(pg_url, 2) as stores:  # two relays racing to upgrade it
            await line(stores[0], 2)
            await stores[0].put_snapshot(CH, pid(2), b"s" * 32, b"S")
            assert await stores[1].add_dispute(CH, b"s" * 32, b"d" * 32, b"D") == 2
            info = await stores[1].channel(CH)
            assert info is not None
            assert info.read_hash == READ
            assert (await stores[1].join()).site == site["value"]  # the site is kept
            assert await stores[0].add_session(CH, TAG, record(1)) is SessionAdded.STORED
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "5"

    asyncio.run(main())


def test_appends_survive_lost_connections(pg_url: str) -> None:
    """A batch whose connection died before COMMIT runs again on a fresh one."""
    name = f"blindpad-store-test-{parse_url(pg_url).schema}"

    async def main() -> None:
        async with pg_stores(f"{pg_url}&application_name={name}", 1) as (store,):
            await line(store, 2)
            killed = await pg_sql(
                pg_url,
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE application_name = $1",
                name,
            )
            assert killed, "the store's connections were not found"
            result = await store.append(CH, pid(3), pid(2), b"e3")
            assert (result.outcome, result.seq) == (AppendOutcome.APPENDED, 3)
            assert [p.seq for p in (await store.read_since(CH, 0)).patches] == [1, 2, 3]

    asyncio.run(main())


def test_a_failed_transaction_reports_nothing_it_did_not_commit(pg_url: str) -> None:
    other = b"d" * 32

    async def main() -> None:
        async with pg_stores(pg_url, 1) as (store,):
            await line(store, 1)
            await store.create_channel(other, KEY, READ)
            # A row behind the store's back: appending seq 2 of CH now violates the key.
            await pg_sql(pg_url, "INSERT INTO patches VALUES ($1, 2, $2, 'x')", CH, pid(99))
            results = await asyncio.gather(
                store.append(CH, pid(2), pid(1), b"e2"),
                store.append(other, pid(1), ZERO, b"o1"),
                return_exceptions=True,
            )
            assert isinstance(results[0], StoreError)
            for result, (cid, patch) in zip(results, [(CH, pid(2)), (other, pid(1))], strict=True):
                if isinstance(result, AppendResult):
                    assert await store.lookup(cid, patch) == result.seq
                else:
                    assert isinstance(result, StoreError)
                    assert await store.lookup(cid, patch) is None
            await pg_sql(pg_url, "DELETE FROM patches WHERE id = $1", pid(99))
            result = await store.append(CH, pid(2), pid(1), b"e2")
            assert (result.outcome, result.seq) == (AppendOutcome.APPENDED, 2)

    asyncio.run(main())


def test_relays_racing_for_a_session_tag_store_one_record(pg_url: str) -> None:
    """Adds under one tag from two relays at once: one is stored, the same bytes are
    KNOWN and other bytes TAKEN (each waits for the channel row, then reads the tag
    afresh), never a key violation."""

    async def main() -> None:
        async with pg_stores(pg_url, 2) as stores:
            await stores[0].create_channel(CH, KEY, READ)
            for round_ in range(10):
                tag = round_.to_bytes(4, "big")
                results = await asyncio.gather(
                    *(stores[i % 2].add_session(CH, tag, record(i % 3)) for i in range(12))
                )
                stored_as = [i for i, r in enumerate(results) if r is SessionAdded.STORED]
                assert len(stored_as) == 1, results
                winner = record(stored_as[0] % 3)
                for i, result in enumerate(results):
                    if i != stored_as[0]:
                        same = record(i % 3) == winner
                        assert result is (SessionAdded.KNOWN if same else SessionAdded.TAKEN)
                assert await stores[1].sessions(CH, [tag]) == {tag: winner}
            assert await stored(stores[0]) == 10 * 200

    asyncio.run(main())


def test_commits_are_observed_in_batches(pg_url: str) -> None:
    async def main() -> None:
        async with pg_stores(pg_url, 1) as (store,):
            batches: list[int] = []
            store.observe_commits(batches.append)
            await line(store, 5)
            await asyncio.gather(*(store.append(CH, pid(i), ZERO, b"x") for i in range(10, 20)))
            assert sum(batches) == 15

    asyncio.run(main())


def test_a_read_cut_short_by_a_trim_is_read_again() -> None:
    """Rows missing between two statements of one read (a trim ran) make it start over."""

    class Conn:
        def __init__(self, rows: list[dict[str, object]]) -> None:
            self.rows = rows

        async def fetch(self, *args: object) -> list[dict[str, object]]:
            return self.rows

    first = [(1, pid(1), b"e1"), (2, pid(2), b"e2")]
    later = [{"seq": 3, "id": pid(3), "envelope": b"e3"}]
    head = Head(3, pid(3))
    whole = asyncio.run(_read_on(Conn(later), CH, 0, head, first, 2, 100))
    assert whole is not None
    assert [p.seq for p in whole] == [1, 2, 3]
    gap = [{"seq": 4, "id": pid(4), "envelope": b"e4"}]  # 3 was trimmed meanwhile
    assert asyncio.run(_read_on(Conn(gap), CH, 0, Head(4, pid(4)), first, 2, 100)) is None
    assert asyncio.run(_read_on(Conn([]), CH, 0, head, first, 2, 100)) is None


def test_block_folding_packing_and_holes() -> None:
    """The pure parts every backend shares: rows of packed roots fill up and start anew
    after a hole; a hole in the ids (a damaged migration) leaves its block without a
    root, and a proof stops there rather than name a wrong node."""
    from relay.store import blocks

    def r(b: int) -> bytes:
        return bytes([b]) * 32

    assert blocks.pack_roots(None, [(0, r(0)), (1, r(1)), (2, r(2))], 2) == {
        0: r(0) + r(1),
        2: r(2),
    }
    assert blocks.pack_roots((2, r(2)), [(3, r(3)), (4, r(4))], 2) == {2: r(2) + r(3), 4: r(4)}
    assert blocks.pack_roots((2, r(2)), [(5, r(5))], 2) == {5: r(5)}  # after a hole
    ids = ids_to(700)
    holed = [(s, ids[s - 1]) for s in range(1, 700) if s != 300]
    roots, partial = blocks.fold(0, [], holed, 699)
    assert (roots, partial) == ([(0, mmr.block_root(ids[:256]))], ids[512:699])
    start, nodes = blocks.proof_nodes(
        0, 699, 100, floor=699, roots=dict(roots), partial=partial, live_after=699, live=[]
    )
    assert (start, nodes) == (0, [(8, roots[0][1])])  # block 1: neither a root nor ids
    more = [(s, ids[s - 1]) for s in range(201, 251)]
    assert blocks.fold(200, ids[:150], more, 250) == ([], ids[:150])  # 151-200 missing
    assert blocks.fold(200, ids[:200], more, 250) == ([], ids[:250])

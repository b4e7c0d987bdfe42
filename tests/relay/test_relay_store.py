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
from contextlib import asynccontextmanager
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
    SnapshotDisputed,
    Store,
    StoreError,
    StoreStats,
    UnknownChannel,
    UnknownPatch,
    open_store,
    snapshot_parts,
)
from relay.store.postgresql import PostgreSQLStore, PostgresURL, _read_on, parse_url
from relay.store.sqlite import SQLiteStore, backup

CH = b"c" * 32
KEY = b"k" * 32
READ = hashlib.sha256(b"read token").digest()
ZERO = bytes(32)


def pid(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    if request.param == "memory":
        yield lambda: open_store("memory:")
    elif request.param == "sqlite":
        yield lambda: open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    else:
        with fresh_postgres() as url:
            yield lambda: open_store(url)


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
        whole = await store.read_from_snapshot(CH)  # no page: the envelope is there
        assert whole.snapshot is not None
        assert (whole.snapshot.size, whole.snapshot.envelope) == (len(big), big)
        await store.put_snapshot(CH, pid(4), b"t" * 32, b"S4")
        await store.trim(CH, pid(4))  # the older snapshot goes
        with pytest.raises(NoSnapshot):
            await store.read_snapshot(CH, 3, 0, 10)
        with pytest.raises(NoSnapshot):
            [p async for p in snapshot_parts(store, CH, paged.snapshot, 300_000)]

    run(make_store, body)


def test_trim_with_tombstones(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await line(store, 5)
        with pytest.raises(NoSnapshot):
            await store.trim(CH, pid(3))
        with pytest.raises(UnknownPatch):
            await store.trim(CH, pid(77))
        await store.put_snapshot(CH, pid(1), b"a" * 32, b"S1")
        await store.put_snapshot(CH, pid(3), b"b" * 32, b"S3")
        assert await store.trim(CH, pid(3)) == 3
        assert await store.trim(CH, pid(3)) == 3  # idempotent
        assert await store.lookup(CH, pid(2)) == 2  # tombstone
        dup = await store.append(CH, pid(1), ZERO, b"e1")
        assert (dup.outcome, dup.seq) == (AppendOutcome.DUPLICATE, 1)
        with pytest.raises(HistoryTrimmed):
            await store.read_since(CH, 2)
        assert [p.seq for p in (await store.read_since(CH, 3)).patches] == [4, 5]
        snap = await store.read_from_snapshot(CH)
        assert snap.snapshot is not None
        assert snap.snapshot.x_seq == 3
        info = await store.channel(CH)
        assert info is not None
        assert (info.floor_seq, info.stored_bytes) == (3, len(b"S3") + 4)
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
            await store.trim(CH, pid(4))
        with pytest.raises(SnapshotDisputed):
            await store.trim(CH, pid(2))
        # Another snapshot of patch 2 replaces the disputed one, and its dispute goes.
        await store.put_snapshot(CH, pid(2), b"u" * 32, b"SNAP2b")
        two = await store.snapshot(CH, 2)
        assert two is not None
        assert (two.id, two.disputed) == (b"u" * 32, False)
        with pytest.raises(UnknownPatch):
            await store.add_dispute(CH, b"s" * 32, b"g" * 32, b"D")  # replaced: gone
        assert await store.trim(CH, pid(2)) == 2
        await store.put_snapshot(CH, pid(5), b"v" * 32, b"SNAP5")
        await store.add_dispute(CH, b"v" * 32, b"h" * 32, b"D5")
        # Snapshot 4 is disputed, yet a trim at 5 (itself disputed) is refused, and a
        # trim at an undisputed later one would take 4 and its disputes with it.
        with pytest.raises(SnapshotDisputed):
            await store.trim(CH, pid(5))
        info = await store.channel(CH)
        assert info is not None
        patches = sum(len(b"e%d" % i) for i in (3, 4, 5))
        snaps = len(b"SNAP2b") + len(b"SNAP4") + len(b"SNAP5")
        assert info.stored_bytes == patches + snaps + len(b"D1") + len(b"D22") + len(b"D5")
        await store.append(CH, pid(6), pid(5), b"e6")
        await store.put_snapshot(CH, pid(6), b"w" * 32, b"SNAP6")
        assert await store.trim(CH, pid(6)) == 6
        info = await store.channel(CH)
        assert info is not None
        assert info.stored_bytes == len(b"SNAP6")  # patches, snapshots and disputes gone
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
        assert await store.trim(CH, pid(2)) == 2
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


def test_patch_ids_name_trimmed_patches_too(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        assert await store.patch_ids(CH, 0, 5) == []  # no such channel
        await line(store, 6)
        assert await store.patch_ids(CH, 0, 6) == [pid(n) for n in range(1, 7)]
        assert await store.patch_ids(CH, 2, 4) == [pid(3), pid(4)]
        assert await store.patch_ids(CH, 4, 99) == [pid(5), pid(6)]  # up to the head
        assert await store.patch_ids(CH, 6, 9) == []
        assert await store.patch_ids(CH, 4, 4) == []
        assert await store.patch_ids(CH, 5, 2) == []
        assert await store.patch_ids(CH, 2**64 - 2, 2**64 - 1) == []  # u64 bounds
        assert await store.patch_ids(CH, 3, 2**64 - 1) == [pid(4), pid(5), pid(6)]
        await store.put_snapshot(CH, pid(4), b"s" * 32, b"S4")
        assert await store.trim(CH, pid(4)) == 4
        assert await store.patch_ids(CH, 0, 6) == [pid(n) for n in range(1, 7)]  # tombstones
        assert await store.patch_ids(CH, 1, 3) == [pid(2), pid(3)]

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
        finally:
            await store.close()

    asyncio.run(main())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


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
        assert await store.trim(CH, pid(200)) == 200
        trimmed, free = pages(path)
        assert free == 0
        assert trimmed < full // 4  # what the patches held went back
        await store.close()

    asyncio.run(main())


def test_an_older_file_is_converted_to_give_pages_back(tmp_path: Path) -> None:
    from relay.store.sqlite import _SCHEMA

    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)  # as the relay made it before
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(f"BEGIN;{_SCHEMA}PRAGMA user_version=2;COMMIT;")
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


async def pg_schema_1(url: str, *, pad: bool) -> None:
    """Turn the URL's fresh schema into a schema-1 store (protocol 1), with a pad if ``pad``."""
    store = PostgreSQLStore(url)
    await store.open()
    try:
        if pad:
            await line(store, 2)
    finally:
        await store.close()
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
        version = await pg_sql(
            pg_url, "SELECT value FROM blindpad_meta WHERE key = 'schema_version'"
        )
        assert version[0]["value"] == "2"

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

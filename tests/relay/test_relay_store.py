"""One conformance suite for every storage backend (memory and SQLite)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from relay.store import (
    AppendOutcome,
    Head,
    HistoryTrimmed,
    NoSnapshot,
    SchemaTooNew,
    Store,
    UnknownChannel,
    UnknownPatch,
    open_store,
    snapshot_parts,
)
from relay.store.sqlite import SQLiteStore, backup

CH = b"c" * 32
KEY = b"k" * 32
ZERO = bytes(32)


def pid(n: int) -> bytes:
    return n.to_bytes(32, "big")


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    if request.param == "memory":
        return lambda: open_store("memory:")
    return lambda: open_store(f"sqlite:///{tmp_path / 'store.sqlite3'}")


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
    await store.create_channel(CH, KEY)
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
        assert await store.channel(b"z" * 32) is None

    run(make_store, body)


def test_concurrent_appends_keep_one_line(make_store: Callable[[], Store]) -> None:
    async def body(store: Store) -> None:
        await store.create_channel(CH, KEY)
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
        await store.create_channel(CH, KEY)
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
    conn.executescript(f"BEGIN;{_SCHEMA}PRAGMA user_version=1;COMMIT;")
    conn.execute("INSERT INTO channels VALUES (?, ?, 0, ?, 0, 0, 0)", (CH, KEY, ZERO))
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
    with pytest.raises(ValueError, match="unknown store"):
        open_store("postgres://nope")

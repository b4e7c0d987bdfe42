"""Scenario: a year of history — a long-lived pad stays small and opens as fast as a fresh one.

A typist engine (the SDK's engine, real crypto) makes ``n`` one-keystroke
patches at random places (seeded), inserting more than it deletes until the
text is about :data:`TEXT_CAP` characters and then holding it there, as a
document edited for a year would; it starts a new signing session (with its
session record) every :data:`RUN_KEYSTROKES`, as a pad opened again would.
Its patches and snapshots go straight into a SQLite store through the
relay's Store API in windows (the seeder's path: the bytes are those a
websocket would carry, without waiting a million round trips), and after
each stored snapshot the typist compacts exactly as the SDK
does by default: TRIM at its previous snapshot with the default ``keep_pct``
(:func:`client.snapshots.fitting_keep_pct`).

Reported: storage (SQLite bytes on disk minus an empty store's) ÷ the final
text, and the time to open the pad with the SDK (``Pad.open`` of the view
link, until ``synced``) against a relay on that file, beside the same for a
**fresh** pad holding the same text in one patch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crypto
from bench.codec import CryptoCodec
from bench.common import BenchFailure, Result, relay_process, store_bytes_on_disk, table
from bench.s_storage import empty_store_bytes
from client import Pad, textops
from client.doctype import TEXT, Text
from client.engine import Engine, SendPatch, SendSnapshot
from client.snapshots import fitting_keep_pct
from relay.store import AppendOutcome, open_store

SIZES = [1_000_000]
QUICK_SIZES = [20_000]
#: The text grows to about this many characters, then stays there.
TEXT_CAP = 100_000
#: A client run types this many keystrokes, then the next run (a new signing
#: session with its own record, PROTOCOL.md §9.3) goes on: a year's pad is
#: opened many times.
RUN_KEYSTROKES = 1_000
#: Appends in flight before waiting for them (one group commit each).
WINDOW = 256
CORPUS = "the quick brown fox jumps over the lazy dog; a year of notes, lists and drafts.\n"


@dataclasses.dataclass(frozen=True)
class Year:
    """A year's pad as written: its keys, final text, snapshots made, and the
    session records registered and still stored at rest (a trim drops those
    no stored envelope names, PROTOCOL.md §9.3)."""

    keys: crypto.PadKeys
    text: str
    snapshots: int
    sessions: int
    sessions_kept: int


async def write_year(
    path: Path,
    n: int,
    seed: int = 1,
    before_leaving: Callable[[crypto.PadKeys, str], object] | None = None,
) -> Year:
    """Type ``n`` keystrokes into a new pad in the SQLite store at ``path``; compact
    after every snapshot; leave the pad as the SDK does (after calling
    ``before_leaving(keys, text)`` in a thread, if given: the pad as a joiner
    finds it mid-typing)."""
    rng = random.Random(seed)
    store = open_store(f"sqlite:///{path}")
    await store.open()
    keys = crypto.PadKeys.generate()
    codec = CryptoCodec(keys, crypto.Author.generate("typist"))
    typist: Engine[Text, Any] = Engine(TEXT, codec, pipeline=1)
    pending: list[Any] = []
    previous: bytes | None = None  # the patch X of the typist's previous snapshot
    snapshots = 0

    seq = 0
    registered: set[bytes] = set()

    async def drain() -> None:
        for done in await asyncio.gather(*pending):
            if done.outcome is not AppendOutcome.APPENDED:
                raise BenchFailure(f"append was {done.outcome}")
        pending.clear()

    async def handle(events: list[Any]) -> None:
        """Store what the typist sends, as the relay would, and compact as the SDK does."""
        nonlocal seq, previous, snapshots
        for event in events:
            if isinstance(event, SendPatch):
                seq += 1
                sealed = event.sealed
                parent = crypto.envelope2.ref_of(sealed.data)
                tag = codec.session_tag
                if tag is not None and tag not in registered and codec.own_record:
                    await store.add_session(keys.channel_id, tag, codec.own_record)  # SESSION
                    registered.add(tag)
                pending.append(store.append(keys.channel_id, sealed.id, parent, sealed.data))
                typist.acked(sealed.id, seq)
            elif isinstance(event, SendSnapshot):
                await drain()
                snapshots += 1
                await store.put_snapshot(
                    keys.channel_id, event.of, event.sealed.id, event.sealed.data
                )
                if previous is not None:  # what the SDK does once its snapshot is stored
                    trim = typist.snapshots.seal_trim(typist.chain.nodes[previous])
                    keep = fitting_keep_pct(len(event.sealed.data), typist.snapshots.last_plain)
                    await store.trim(keys.channel_id, crypto.envelope2.ref_of(trim.data), keep)
                previous = event.of

    try:
        await store.create_channel(keys.channel_id, keys.verify_key, keys.read_token_hash)
        for i in range(n):
            if i and i % RUN_KEYSTROKES == 0:
                codec.new_session()  # the next client run
            size = len(typist.view)
            grow = 0.85 if size < TEXT_CAP else 0.45
            if size == 0 or rng.random() < grow:
                op = (rng.randint(0, size), 0, CORPUS[i % len(CORPUS)])
            else:
                op = (rng.randrange(size), 1, "")
            typist.edit(textops.normalize([op]))
            typist.flush()
            await handle(typist.events())
            if len(pending) >= WINDOW:
                await drain()
        await drain()
        if before_leaving is not None:  # a relay process takes the file meanwhile
            await store.close()
            await asyncio.to_thread(before_leaving, keys, str(typist.view))
            store = open_store(f"sqlite:///{path}")
            await store.open()
        # The typist leaves: its last patch is the head, so it snapshots a long
        # tail as the SDK does on closing (client.relayside.RelaySide.rest).
        typist.at_rest(head_author=True)
        await handle(typist.events())
        kept = len(await store.sessions(keys.channel_id))
        return Year(keys, str(typist.view), snapshots, len(registered), kept)
    finally:
        await store.close()


async def _open_time(link: str, expected: str) -> tuple[float, int]:
    """Seconds to open ``link`` until synced, and the patches replayed after its snapshot."""
    started = time.perf_counter()
    async with Pad.open(link, state_dir=None) as pad:
        await pad.synced()
        took = time.perf_counter() - started
        if pad.text != expected:
            raise BenchFailure("the opened pad does not hold the text")
        engine = pad.session.engine
        return took, engine.head.height - engine.snapshots.height


async def _fresh(url: str, text: str) -> str:
    links = await Pad.create(url)
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.synced()
        await pad.replace(text)
        await pad.synced()
    return links.view_link


def opens(
    path: Path, keys: crypto.PadKeys, text: str, *, fresh: bool = True, tries: int = 5
) -> dict[str, float]:
    """Median seconds to open the long-lived pad (and, if ``fresh``, a fresh one
    with the same text, on the same relay)."""
    with relay_process(store=f"sqlite:///{path}") as server:
        links = {"long_lived": str(crypto.PadLink(server.http_url, keys).view_link())}
        if fresh:
            links["fresh"] = asyncio.run(_fresh(server.http_url, text))
        for link in links.values():  # a first open warms the relay (imports, caches)
            asyncio.run(_open_time(link, text))
        took: dict[str, list[tuple[float, int]]] = {name: [] for name in links}
        for _ in range(tries):  # in turns, so that neither pad gets the quieter moments
            for name, link in links.items():
                took[name].append(asyncio.run(_open_time(link, text)))
    times: dict[str, float] = {}
    for name, runs in took.items():
        times[f"{name}_s"] = statistics.median(t for t, _ in runs)
        times[f"{name}_tail"] = runs[-1][1]
    return times


def _mid_typing(path: Path, busy: dict[str, float], keys: crypto.PadKeys, text: str) -> None:
    """Open the pad as a joiner finds it while typed into (before its typist leaves)."""
    started = time.perf_counter()
    timing = opens(path, keys, text, fresh=False)
    busy["typing_s"], busy["typing_tail"] = timing["long_lived_s"], timing["long_lived_tail"]
    busy["measuring_s"] = time.perf_counter() - started


def run(runs: int, quick: bool) -> Result:
    """One pad per size: storage at rest, and open time beside a fresh pad's."""
    result = Result("year")
    baseline = empty_store_bytes()
    rows = []
    for n in QUICK_SIZES if quick else SIZES:
        with tempfile.TemporaryDirectory(prefix="bench-year-") as tmp:
            path = Path(tmp) / "relay.sqlite3"
            busy: dict[str, float] = {}
            mid_typing = functools.partial(_mid_typing, path, busy)
            started = time.perf_counter()
            year = asyncio.run(write_year(path, n, before_leaving=mid_typing))
            keys, text, snapshots = year.keys, year.text, year.snapshots
            wrote = time.perf_counter() - started - busy.pop("measuring_s")
            disk = store_bytes_on_disk(path) - baseline
            timing = opens(path, keys, text) | busy
        text_bytes = len(text.encode("utf-8"))
        result.data[str(n)] = {
            "text_bytes": text_bytes,
            "disk_bytes": disk,
            "snapshots": snapshots,
            "sessions": year.sessions,
            "sessions_kept": year.sessions_kept,
            "write_s": wrote,
            **timing,
        }
        rows.append(
            [
                f"{n:,}",
                f"{text_bytes:,}",
                snapshots,
                f"{year.sessions:,} / {year.sessions_kept}",
                disk / text_bytes,
                f"{timing['long_lived_s'] * 1000:.1f} ({timing['long_lived_tail']:g})",
                f"{timing['typing_s'] * 1000:.1f} ({timing['typing_tail']:g})",
                f"{timing['fresh_s'] * 1000:.1f} ({timing['fresh_tail']:g})",
            ]
        )
    result.tables.append(
        table(
            "A year of history: one-keystroke patches with default compaction "
            f"(storage = SQLite bytes minus an empty store's {baseline:,} B); open = "
            "Pad.open of the view link until synced, median of 5 after one to warm up, "
            "the pads in turns, with the patches it replays after the snapshot in brackets",
            [
                "patches",
                "text bytes",
                "snapshots",
                "session records made / kept",
                "storage ÷ text",
                "open ms at rest",
                "open ms while typed into",
                "open ms, fresh pad, same text",
            ],
            rows,
        )
    )
    return result

"""Scenario 5: relay bytes at rest after each trace, divided by the UTF-8 size of the text.

Worst case (every keystroke its own patch, as at human typing speed): one
typist drives the SDK (:class:`client.Pad`, with a state directory, default
options: compaction on, default retention) against a real relay process on
its SQLite default, awaiting ``synced()`` after every txn of the trace, so
each keystroke is sealed, written ahead, pushed and acknowledged alone.  The
relay runs with the bench's raised rate limits (``RELAY_BENCH_ARGS``: one
typist awaiting each ACK never reaches the default 200 frames/s, but the
limit is raised for every scenario alike).  Then the pad is closed and the
relay stopped, and the SQLite file is measured (**at rest**); a relay is
started again on the same file, the pad opened and owner-trimmed
(``Pad.trim()``), and the file measured again (**after owner trim**).
Storage is the file's bytes (with any -wal/-shm) minus those of an empty
store made the same way.  Full speed: the end-to-end runs of the trace
scenario (reused when it ran in the same invocation, else run here).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import s_trace
from bench.common import (
    TRACE_NAMES,
    BenchFailure,
    Result,
    load_trace,
    relay_process,
    store_bytes_on_disk,
    summary,
    table,
)
from client import Pad, textops

#: Quick mode types this many keystrokes of each small trace.
QUICK_KEYSTROKES = 3_000


def traces(result: Result, quick: bool) -> Iterator[tuple[str, list[dict[str, Any]], str]]:
    """``(name, txns, final text)`` of each trace a scenario types (quick: the small
    traces' first :data:`QUICK_KEYSTROKES`); an absent trace is noted in ``result``."""
    for name in s_trace.QUICK_TRACES if quick else TRACE_NAMES:
        trace = load_trace(name)
        if trace is None:
            result.note(f"trace {name} is absent: skipped")
            continue
        txns = trace["txns"][:QUICK_KEYSTROKES] if quick else trace["txns"]
        yield name, txns, s_trace.target_text(txns)


def empty_store_bytes() -> int:
    """The bytes on disk of a store that holds nothing (the baseline)."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        with relay_process(keep_dir=Path(tmp)) as server:
            path = server.store_path
        return store_bytes_on_disk(path)


async def type_txns(
    url: str, txns: list[dict[str, Any]], state: Path | None
) -> tuple[str, str, float]:
    """Type every txn as its own patch; return the edit link, the text and the seconds."""
    links = await Pad.create(url)
    started = time.perf_counter()
    async with Pad.open(links.edit_link, state_dir=state, name="typist") as pad:
        await pad.synced()
        for txn in txns:
            for pos, delete, insert in txn["patches"]:  # in order, each on the last
                await pad.apply(textops.normalize([(pos, delete, insert)]))
            await pad.synced()
        text = pad.text
    return links.edit_link, text, time.perf_counter() - started


async def _owner_trim(link: str, state: Path) -> tuple[str, int]:
    async with Pad.open(link, state_dir=state, name="typist") as pad:
        await pad.synced()
        floor = await pad.trim()
        return pad.text, floor


def every_keystroke(txns: list[dict[str, Any]], target: str, baseline: int) -> dict[str, Any]:
    """At rest and after owner trim, one patch per keystroke through the SDK."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        state = folder / "state"
        with relay_process(keep_dir=folder) as server:
            url, path = server.http_url, server.store_path
            link, text, wall = asyncio.run(type_txns(url, txns, state))
        if text != target:
            raise BenchFailure("every-keystroke storage run did not end on the text")
        at_rest = store_bytes_on_disk(path) - baseline
        with relay_process(store=f"sqlite:///{path}") as server:
            # The link names the first relay's port: reach this one at its own.
            moved = link.replace(url, server.http_url)
            trimmed_text, floor = asyncio.run(_owner_trim(moved, state))
        if trimmed_text != target:
            raise BenchFailure("owner trim changed the text")
        trimmed = store_bytes_on_disk(path) - baseline
    return {
        "keystrokes": len(txns),
        "seconds": wall,
        "at_rest": at_rest,
        "after_trim": trimmed,
        "floor": floor,
    }


def run(runs: int, quick: bool) -> Result:
    """Each trace: every keystroke its own patch (at rest, after owner trim), and full speed."""
    result = Result("storage")
    rows = []
    baseline = empty_store_bytes()
    result.data["empty_store_bytes"] = baseline
    for name, txns, target in traces(result, quick):
        text_bytes = len(target.encode("utf-8"))
        worst = every_keystroke(txns, target, baseline)
        fast = s_trace.CACHE.get(name) or [s_trace.blindpad_run(name, txns, target)]
        result.data[name] = {
            "text_bytes": text_bytes,
            "every_keystroke": worst,
            "full_speed": [{k: v for k, v in r.items() if k not in ("a", "b")} for r in fast],
        }
        rows.append(
            [
                name,
                "every keystroke its own patch (SDK)",
                worst["keystrokes"],
                worst["at_rest"] / text_bytes,
                worst["after_trim"] / text_bytes,
            ]
        )
        rows.append(
            [
                name,
                "full speed (end-to-end run, no trim)",
                summary([r["patches"] for r in fast]),
                summary([(r["disk_bytes"] - baseline) / text_bytes for r in fast]),
                "-",
            ]
        )
    result.tables.append(
        table(
            "Storage ÷ UTF-8 size of the final text (SQLite bytes on disk minus an empty "
            f"store's {baseline:,} B; default options, compaction on)",
            [
                "trace",
                "cadence",
                "keystrokes / patches",
                "at rest ÷ text",
                "after owner trim ÷ text",
            ],
            rows,
        )
    )
    return result

"""Scenario 5: relay bytes at rest after each trace, divided by the UTF-8 size of the text.

Worst case (every edit its own patch, as at human typing speed): the typist
engine seals one patch per txn and each is acknowledged before the next edit;
the patches (and the snapshots the engine makes) go straight into a SQLite
store through the relay's Store API (the bytes are the same as through the
websocket, without waiting 260k round trips); a watcher engine opens every
patch and must end on the text.  Full speed: the end-to-end runs of the trace
scenario (reused when it ran in the same invocation, else run here).
Reported: envelope bytes stored (the relay's ``stored_bytes``) and the
SQLite file size, each divided by len(text.encode()).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import crypto
from bench import s_trace
from bench.codec import CryptoCodec
from bench.common import (
    TRACE_NAMES,
    BenchFailure,
    Result,
    load_trace,
    store_bytes_on_disk,
    summary,
    table,
)
from client import textops
from client.doctype import TEXT
from client.engine import Engine, SendPatch, SendSnapshot
from relay.store import AppendOutcome, open_store

WINDOW = 256


async def every_edit(txns: list[dict[str, Any]], target: str, folder: Path) -> dict[str, Any]:
    """Seal one patch per txn through the engine into a SQLite store."""
    path = folder / "relay.sqlite3"
    store = open_store(f"sqlite:///{path}")
    await store.open()
    keys = crypto.PadKeys.generate()
    typist: Engine[str, Any] = Engine(
        TEXT, CryptoCodec(keys, crypto.Author.generate("typist")), pipeline=1
    )
    watcher: Engine[str, Any] = Engine(
        TEXT, CryptoCodec(keys.view(), crypto.Author.generate("w")), writer=False
    )
    try:
        await store.create_channel(keys.channel_id, keys.verify_key, keys.read_token_hash)
        pending: list[Any] = []
        snaps = 0

        async def drain() -> None:
            results = await asyncio.gather(*pending)
            pending.clear()
            for res in results:
                if res is not None and getattr(res, "outcome", None) not in (
                    None,
                    AppendOutcome.APPENDED,
                ):
                    raise BenchFailure(f"append was {res.outcome}")

        seq = 0
        for txn in txns:
            for pos, delete, insert in txn["patches"]:
                typist.edit(textops.normalize([(pos, delete, insert)]))
            typist.flush()
            for event in typist.events():
                if isinstance(event, SendPatch):
                    seq += 1
                    s = event.sealed
                    parent = crypto.parse_header(s.data).ref
                    pending.append(store.append(keys.channel_id, s.id, parent, s.data))
                    watcher.receive(s.data, seq)
                    typist.acked(s.id, seq)
                elif isinstance(event, SendSnapshot):
                    await drain()
                    snaps += 1
                    s = event.sealed
                    await store.put_snapshot(keys.channel_id, event.of, s.id, s.data)
            for event in typist.events():
                if isinstance(event, SendSnapshot):
                    await drain()
                    snaps += 1
                    await store.put_snapshot(
                        keys.channel_id, event.of, event.sealed.id, event.sealed.data
                    )
            if len(pending) >= WINDOW:
                await drain()
        await drain()
        if typist.view != target or watcher.view != target or not typist.saved:
            raise BenchFailure("every-edit storage run did not end on the text")
        info = await store.channel(keys.channel_id)
        assert info is not None
        stored = info.stored_bytes
    finally:
        await store.close()
    return {"patches": seq, "snapshots": snaps, "stored_bytes": stored, "disk": path}


def run(runs: int, quick: bool) -> Result:
    """Each trace: every edit its own patch, and at full speed."""
    result = Result("storage")
    rows = []
    names = s_trace.QUICK_TRACES if quick else TRACE_NAMES
    for name in names:
        trace = load_trace(name)
        if trace is None:
            result.note(f"trace {name} is absent: skipped")
            continue
        txns = trace["txns"][: s_trace.QUICK_TXNS] if quick else trace["txns"]
        target = s_trace.target_text(txns)
        text_bytes = len(target.encode("utf-8"))
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            worst = asyncio.run(every_edit(txns, target, Path(tmp)))
            worst["disk_bytes"] = store_bytes_on_disk(worst.pop("disk"))
        fast = s_trace.CACHE.get(name) or [s_trace.blindpad_run(name, txns, target)]
        result.data[name] = {
            "text_bytes": text_bytes,
            "every_edit": worst,
            "full_speed": [{k: v for k, v in r.items() if k not in ("a", "b")} for r in fast],
        }
        rows.append(
            [
                name,
                "every edit its own patch",
                worst["patches"],
                worst["snapshots"],
                worst["stored_bytes"] / worst["patches"],
                worst["stored_bytes"] / text_bytes,
                worst["disk_bytes"] / text_bytes,
            ]
        )
        rows.append(
            [
                name,
                "full speed (end-to-end run)",
                summary([r["patches"] for r in fast]),
                summary([r["snapshots"] for r in fast]),
                summary([r["stored_bytes"] / max(1, r["patches"]) for r in fast]),
                summary([r["stored_bytes"] / text_bytes for r in fast]),
                summary([r["disk_bytes"] / text_bytes for r in fast]),
            ]
        )
    result.tables.append(
        table(
            "Storage at rest ÷ UTF-8 size of the final text (default retention, no trim)",
            [
                "trace",
                "cadence",
                "patches",
                "snapshots",
                "stored bytes per patch",
                "stored envelope bytes ÷ text",
                "SQLite file ÷ text",
            ],
            rows,
        )
    )
    return result

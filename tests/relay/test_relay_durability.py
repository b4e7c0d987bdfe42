"""Durability: synchronous=FULL, SIGKILL during pushes, no plaintext on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
from relay_support import Client, Pad, RelayProcess

from crypto.envelope import parse_header, verify_channel_signature
from wire import frames as f

MARKER = b"MARKER-7f3a-plaintext-never-on-disk"


async def push_until_killed(proc: RelayProcess, pad: Pad, stop_after: int) -> dict[bytes, int]:
    """Push a stream of patches; SIGKILL the relay after ``stop_after`` acks."""
    acked: dict[bytes, int] = {}
    parent = f.ZERO_ID
    async with Client.connect(proc.handle) as client:
        await client.subscribe(pad)
        try:
            for i in range(100_000):
                envelope, pid = pad.patch(parent, MARKER + b" %d" % i)
                await client.send(f.Push(client.request_id(), envelope))
                answer = await client.expect(f.Ack)
                acked[pid] = answer.seq
                parent = pid
                if len(acked) == stop_after:
                    # keep one push in flight while the relay dies
                    nxt, _ = pad.patch(parent, MARKER)
                    await client.send(f.Push(client.request_id(), nxt))
                    proc.kill()
                    await client.recv()
        except Exception:  # the connection dies with the relay
            pass
    return acked


def test_sigkill_during_pushes_loses_nothing_acked(tmp_path: Path) -> None:
    db = tmp_path / "relay.sqlite3"
    store = f"sqlite:///{db}"
    pad = Pad()
    first = RelayProcess("--store", store, "--rate-per-second", "100000", "--rate-burst", "100000")
    try:
        acked = asyncio.run(push_until_killed(first, pad, 150))
    finally:
        first.stop()
    assert len(acked) == 150
    second = RelayProcess("--store", store)
    try:

        async def check() -> None:
            async with Client.connect(second.handle) as client:
                got = await client.subscribe(pad)
            history = [g for g in got if isinstance(g, f.History)]
            assert [h.seq for h in history] == list(range(1, len(history) + 1))
            for item in history:
                parse_header(item.envelope)
                verify_channel_signature(item.envelope, pad.keys.verify_key)
            from crypto.envelope import envelope_id

            stored = {envelope_id(h.envelope): h.seq for h in history}
            for pid, seq in acked.items():
                assert stored[pid] == seq
            async with httpx.AsyncClient(base_url=second.handle.url) as http:
                metrics = (await http.get("/metrics")).text
            assert "blindpad_sqlite_synchronous 2" in metrics

        asyncio.run(check())
    finally:
        second.stop()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("relay"))
    assert MARKER not in on_disk
    assert MARKER[:12] not in on_disk

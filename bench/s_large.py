"""Scenario: one large insert through the SDK, beside the same bytes pushed pre-sealed.

Issue 20 asks that a 10 MB insert reach "saved" through the SDK in at most
5x the time a push of pre-sealed patches takes on the same relay.  Per size
and run, on one relay process (SQLite; the bench's raised rate limits, the
same for both sides):

* **SDK**: ``Pad.create``, ``Pad.open(state_dir=None)``, ``insert(0, text)``
  (split, sealed and queued: the time it returns), then ``synced()`` (every
  piece acknowledged: the time to "saved").
* **pre-sealed**: the same text sealed beforehand by an engine (its default
  patch limit, as the SDK's), then a raw websocket sends the PUSH frames, 32 in flight,
  until every one is acknowledged: the relay's own cost for those bytes.

The text is word-like (a seeded vocabulary over a-z, é, 中 and 😀), so it
compresses like prose.

Then, in the same pad, :data:`KEYS` one-character inserts at random places,
each awaited to "saved" (``synced()``): issue 20 asks that a keystroke in a
10 MB pad take at most 2x what it takes in a 10 KB pad (the 10 KB size is
measured for that only).
"""

from __future__ import annotations

import asyncio
import random
import time

from websockets.asyncio.client import connect

import crypto
from bench.codec import CryptoCodec
from bench.common import BenchFailure, Result, percentile, relay_process, summary, table
from client import Pad
from client.doctype import TEXT, Text
from client.engine import Engine, SendPatch
from client.textops import normalize
from wire import frames as f

WINDOW = 32
TIMEOUT = 900.0
#: Keystrokes typed into the pad after the insert, each awaited to "saved".
KEYS = 50


def _text(size: int) -> str:
    """About ``size`` UTF-8 bytes of word-like text (seeded)."""
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyzé中😀"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 9))) for _ in range(5000)]
    words: list[str] = []
    total = 0
    while total < size:
        words.append(rng.choice(vocab))
        total += len(words[-1].encode()) + 1
    return " ".join(words)


async def _sdk(url: str, text: str) -> tuple[float, float, int, list[float]]:
    """Insert returns, saved (s), patches, then each keystroke -> saved (ms)."""
    links = await Pad.create(url)
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.synced(TIMEOUT)
        t0 = time.perf_counter()
        await pad.insert(0, text)
        inserted = time.perf_counter() - t0
        await pad.synced(TIMEOUT)
        saved = time.perf_counter() - t0
        patches = int(pad.session.debug_state()["height"])
        if pad.text != text:
            raise BenchFailure("large: the SDK's pad does not hold the text")
        rng = random.Random(11)
        keys = []
        for _ in range(KEYS):
            t1 = time.perf_counter()
            await pad.insert(rng.randrange(len(text)), "k")
            await pad.synced(TIMEOUT)
            keys.append((time.perf_counter() - t1) * 1000)
        if len(pad.text) != len(text) + KEYS:
            raise BenchFailure("large: the keystrokes did not all land")
    return inserted, saved, patches, keys


def _sealed(keys: crypto.PadKeys, text: str) -> list[bytes]:
    """``text`` sealed as one insert by an engine with its default patch limit."""
    engine: Engine[Text, object] = Engine(
        TEXT,  # type: ignore[arg-type]
        CryptoCodec(keys, crypto.Author.generate("bench")),
        pipeline=1 << 20,
    )
    engine.edit(normalize([(0, 0, text)]))
    engine.flush()
    return [e.sealed.data for e in engine.events() if isinstance(e, SendPatch)]


async def _presealed(ws_url: str, keys: crypto.PadKeys, sealed: list[bytes]) -> float:
    async with connect(ws_url, max_size=None, compression=None) as ws:
        await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION, b"")))
        welcome = f.decode(await ws.recv())  # type: ignore[arg-type]
        if not isinstance(welcome, f.Welcome):
            raise BenchFailure(f"large: expected WELCOME, got {welcome!r}")
        sub = f.Subscribe(
            1, keys.channel_id, f.SubscribeFrom.SINCE, 0, keys.verify_key, keys.read_token
        )
        await ws.send(f.encode(sub))
        while not isinstance(f.decode(await ws.recv()), f.HistoryEnd):  # type: ignore[arg-type]
            pass
        t0 = time.perf_counter()
        sent = acked = 0
        frames = {n + 2: f.encode(f.Push(n + 2, data)) for n, data in enumerate(sealed)}
        while acked < len(sealed):
            while sent < len(sealed) and sent - acked < WINDOW:
                await ws.send(frames[sent + 2])
                sent += 1
            answer = f.decode(await ws.recv())  # type: ignore[arg-type]
            if isinstance(answer, f.Ack):
                acked += 1
            elif isinstance(answer, f.Refuse) and answer.code == 2:  # RATE_LIMITED
                await asyncio.sleep(answer.retry_after_ms / 1000)
                await ws.send(frames[answer.request_id])
            elif isinstance(answer, f.Refuse | f.Error):
                raise BenchFailure(f"large: the relay refused a pre-sealed push: {answer!r}")
        return time.perf_counter() - t0


def run(runs: int, quick: bool) -> Result:
    """Each size: the SDK's insert and the pre-sealed push, alternating, ``runs`` times."""
    result = Result("large")
    rows = []
    keyrows: list[tuple[str, int, float, float]] = []
    for size in (10_000, 1_000_000) if quick else (10_000, 1_000_000, 10_000_000):
        text = _text(size)
        sdk: list[tuple[float, float, int, list[float]]] = []
        pushed: list[float] = []
        with relay_process() as server:
            for _ in range(runs):
                sdk.append(asyncio.run(_sdk(server.http_url, text)))
                keys = crypto.PadKeys.generate()
                sealed = _sealed(keys, text)
                pushed.append(asyncio.run(_presealed(server.ws_url, keys, sealed)))
        inserted, saved = summary([s[0] for s in sdk]), summary([s[1] for s in sdk])
        ratio = sorted(s[1] / p for s, p in zip(sdk, pushed, strict=True))[len(sdk) // 2]
        result.data[str(size)] = {
            "sdk": sdk,
            "presealed": pushed,
            "presealed_patches": len(sealed),
        }
        typed = sorted(ms for s in sdk for ms in s[3])
        label = f"{size / 1e6:g} MB"
        keyrows.append((label, len(typed), percentile(typed, 0.5), percentile(typed, 0.9)))
        if size < 1_000_000:
            continue  # measured for the keystrokes only
        rows.append(
            [f"{size / 1e6:g} MB", sdk[0][2], len(sealed), inserted, saved, summary(pushed), ratio]
        )
    result.tables.append(
        table(
            "One large insert: the SDK (insert returns, then saved) beside the same text "
            "pushed pre-sealed, 32 in flight (seconds; median (min-max))",
            [
                "text",
                "SDK patches",
                "pre-sealed patches",
                "SDK insert returns",
                "SDK saved",
                "pre-sealed push acked",
                "saved ÷ push (median)",
            ],
            rows,
        )
    )
    base = keyrows[0][2]
    result.tables.append(
        table(
            f"A keystroke in the pad after the insert, to saved (ms; {KEYS} a run, each awaited)",
            ["text", "keystrokes", "median", "p90", "median ÷ 10 KB's"],
            [[*row, row[2] / base if base else 0.0] for row in keyrows],
        )
    )
    return result

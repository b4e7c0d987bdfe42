"""A minimal blindpad client loop for the bench: engine + crypto + real websockets.

This is the one adapter between scenarios and a blindpad client.  Scenarios
use only :func:`open_session` and the :class:`Session` surface (``edit``,
``pump``, ``view``, ``wait_saved``, ``wait_until``, counters), so when the
SDK (``client/pad.py``, ``Pad.open(link)``) lands, a second implementation of
that surface over the SDK replaces this one in one place.

The loop follows docs/PROTOCOL.md §3: HELLO/WELCOME, SUBSCRIBE (since 0, or
from the latest snapshot), then every frame is fed to the engine as it
arrives: HISTORY/BROADCAST -> ``receive``, ACK -> ``acked``, REFUSE STALE ->
``refused`` (and RATE_LIMITED -> resend later); after each frame the engine is
flushed and what it asks to send is sent (pushes pipelined up to the engine's
``pipeline``; snapshots as SNAPSHOT_CHUNK frames).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

import crypto
from bench.codec import CryptoCodec
from client.doctype import TEXT, Text
from client.engine import Alarm, Engine, RemoteChange, SendPatch, SendSnapshot
from crypto import envelope2
from wire import frames as f

STALE = 1
RATE_LIMITED = 2
YIELD = 31  # PROTOCOL.md §13.3: a writer we outran goes first; resend later
CHUNK = 192 * 1024


class Session:
    """One blindpad session over a websocket (see the module docstring)."""

    def __init__(
        self,
        ws: ClientConnection,
        keys: crypto.PadKeys,
        author: crypto.Author,
        *,
        writer: bool = True,
        pipeline: int = 4,
        snapshots: bool = True,
    ) -> None:
        self.ws = ws
        self.keys = keys
        self.codec = CryptoCodec(keys, author)
        self.engine: Engine[Text, Any] = Engine(TEXT, self.codec, writer=writer, pipeline=pipeline)
        self.snapshots = snapshots
        self._req = 0
        self._pending: dict[int, tuple[str, bytes, bytes]] = {}  # req -> (what, id, frame)
        self._history_end = asyncio.Event()
        self._changed = asyncio.Event()
        self._snapshot_parts: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._registered: set[bytes] = set()  # session tags sent SESSION on this connection
        self.on_change: Callable[[], None] | None = None
        self.error: BaseException | None = None
        # counters
        self.bytes_out = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.frames_in = 0
        self.pushes = 0
        self.snapshots_sent = 0
        self.acks = 0
        self.refusals = 0
        self.rate_limited = 0
        self.refusal_run = 0
        self.longest_refusal_run = 0
        self.alarms: list[str] = []
        self.acked_edits = 0
        self.history_frames = 0

    # --- the surface scenarios use ----------------------------------------

    @property
    def view(self) -> str:
        """The text the user sees."""
        return str(self.engine.view)

    @property
    def saved(self) -> bool:
        """Every local edit is on the chain."""
        return self.engine.saved

    def edit(self, ops: list[tuple[int, int, str]]) -> None:
        """A local edit in view coordinates (a list of ``(pos, delete, insert)``)."""
        from client import textops

        self.engine.edit(textops.normalize(ops))

    async def pump(self) -> None:
        """Flush the engine and send what it asks to send."""
        self.engine.flush()
        await self._drain_events()

    async def wait_saved(self, timeout: float) -> None:
        """Wait until every local edit is acknowledged and on the chain."""
        await self.wait_until(lambda: self.engine.saved, timeout)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (pumping) until ``predicate()``; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.error is not None:
                raise RuntimeError(f"session failed: {self.error!r}") from self.error
            await self.pump()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not reached in time")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))

    async def close(self) -> None:
        """Close the websocket and stop the reader."""
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # --- the protocol -------------------------------------------------------

    def _next_req(self) -> int:
        self._req += 1
        return self._req

    async def _send(self, frame: f.Frame) -> bytes:
        data = f.encode(frame)
        self.bytes_out += len(data)
        self.frames_out += 1
        await self.ws.send(data)
        return data

    async def _register(self, envelope: bytes) -> None:
        """SESSION before the first envelope of a version-2 session (PROTOCOL.md §9.3)."""
        tag = envelope2.tag_of(envelope)
        record = None if tag is None else self.codec.record(tag)
        if tag is None or record is None or tag in self._registered:
            return
        self._registered.add(tag)
        req = self._next_req()
        self._pending[req] = ("session", b"", b"")
        await self._send(f.Session(req, self.keys.channel_id, record))

    async def _drain_events(self) -> None:
        for event in self.engine.events():
            if isinstance(event, SendPatch):
                await self._register(event.sealed.data)
                req = self._next_req()
                frame = f.Push(req, event.sealed.data, channel_id=self.keys.channel_id)
                data = await self._send(frame)
                self._pending[req] = ("patch", event.sealed.id, data)
                self.pushes += 1
            elif isinstance(event, SendSnapshot):
                if self.snapshots:
                    await self._send_snapshot(event.sealed.data)
            elif isinstance(event, RemoteChange):
                if self.on_change is not None:
                    self.on_change()
            elif isinstance(event, Alarm):
                self.alarms.append(f"{event.kind.value}: {event.detail}")

    async def _send_snapshot(self, data: bytes) -> None:
        await self._register(data)
        req = self._next_req()
        self._pending[req] = ("snapshot", b"", b"")
        self.snapshots_sent += 1
        cid = self.keys.channel_id
        for offset in range(0, len(data), CHUNK):
            part = data[offset : offset + CHUNK]
            await self._send(f.SnapshotChunk(req, len(data), offset, part, channel_id=cid))

    async def hello(self) -> None:
        """HELLO / WELCOME."""
        await self._send(f.Hello(f.PROTOCOL_VERSION, b""))
        raw = await asyncio.wait_for(self.ws.recv(), 30)
        assert isinstance(raw, bytes)
        self.bytes_in += len(raw)
        self.frames_in += 1
        welcome = f.decode(raw)
        if not isinstance(welcome, f.Welcome):
            raise RuntimeError(f"expected WELCOME, got {welcome!r}")

    async def subscribe(self, *, from_snapshot: bool, timeout: float) -> None:
        """SUBSCRIBE and wait until the history is loaded (HISTORY_END processed)."""
        self._reader = asyncio.create_task(self._read())
        start = f.SubscribeFrom.SNAPSHOT if from_snapshot else f.SubscribeFrom.SINCE
        req = self._next_req()
        self._pending[req] = ("subscribe", b"", b"")
        keys = self.keys
        await self._send(
            f.Subscribe(req, keys.channel_id, start, 0, keys.verify_key, keys.read_token)
        )
        await asyncio.wait_for(self._history_end.wait(), timeout)
        if self.error is not None:
            raise RuntimeError(f"subscribe failed: {self.error!r}")

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                assert isinstance(raw, bytes)
                self.bytes_in += len(raw)
                self.frames_in += 1
                await self._handle(f.decode(raw))
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.error = error
            self._history_end.set()
            self._changed.set()

    async def _handle(self, frame: f.Frame) -> None:
        engine = self.engine
        if isinstance(frame, f.Broadcast | f.History):
            if isinstance(frame, f.History):
                self.history_frames += 1
            engine.receive(frame.envelope, frame.seq)
        elif isinstance(frame, f.Ack):
            what, _, _ = self._pending.pop(frame.request_id, ("?", b"", b""))
            if what == "patch":
                self.acks += 1
                self.refusal_run = 0
                engine.acked(frame.id, frame.seq)
        elif isinstance(frame, f.Refuse):
            what, pid, data = self._pending.pop(frame.request_id, ("?", b"", b""))
            if frame.code in (RATE_LIMITED, YIELD) and data:
                self.rate_limited += 1
                await asyncio.sleep(frame.retry_after_ms / 1000)
                self._pending[frame.request_id] = (what, pid, data)
                await self.ws.send(data)
                return
            if what == "patch" and frame.code == STALE:
                self.refusals += 1
                self.refusal_run += 1
                self.longest_refusal_run = max(self.longest_refusal_run, self.refusal_run)
                engine.refused(pid, frame.head_id if frame.head_seq else None)
            elif what == "subscribe":
                raise RuntimeError(f"SUBSCRIBE refused with code {frame.code}")
            elif what != "snapshot":
                raise RuntimeError(f"{what} refused with code {frame.code}")
        elif isinstance(frame, f.Snapshot):
            if frame.flags & f.SNAPSHOT_LIVE:
                return  # another typist's snapshot, sent live: a bench peer does not check it
            self._snapshot_parts.append(frame.data)
            if sum(map(len, self._snapshot_parts)) >= frame.total:
                engine.load_snapshot(b"".join(self._snapshot_parts), frame.x_seq)
                self._snapshot_parts = []
        elif isinstance(frame, f.Record):
            self.codec.learn(frame.envelope)
        elif isinstance(frame, f.HistoryEnd):
            self._pending.pop(frame.request_id, None)
            self._history_end.set()
        elif isinstance(frame, f.Error):
            raise RuntimeError(f"relay ERROR {frame.code}: {frame.message}")
        await self._drain_events()
        if engine.writer:
            engine.flush()
            await self._drain_events()


async def open_session(
    ws_url: str,
    keys: crypto.PadKeys,
    author: crypto.Author | None = None,
    *,
    writer: bool = True,
    pipeline: int = 4,
    from_snapshot: bool = True,
    snapshots: bool = True,
    timeout: float = 120.0,
) -> Session:
    """Connect, say HELLO, subscribe and load the pad's history.

    The bench's single entry point to a blindpad client (swap for the SDK here).
    """
    ws = await connect(ws_url, max_size=None, open_timeout=30, compression=None)
    session = Session(
        ws,
        keys,
        author or crypto.Author.generate("bench"),
        writer=writer,
        pipeline=pipeline,
        snapshots=snapshots,
    )
    try:
        await session.hello()
        await session.subscribe(from_snapshot=from_snapshot, timeout=timeout)
    except BaseException:
        await session.close()
        raise
    return session

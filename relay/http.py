"""Plain HTTP beside the websocket: health, metrics, one-shot reads, the page.

Theory of operation
-------------------
Handlers are small functions of a request; they find the relay state in the
lifespan state (``request.state.relay``), never in a global.  One-shot
readers (``blindpad cat``, ``blindpad history``) use the read endpoints with
httpx and need no websocket:

* ``GET /v1/channels/{hex}/head`` -> JSON ``{"channel", "seq", "id", "floor"}``;
* ``GET /v1/channels/{hex}/snapshots`` -> JSON ``{"channel", "floor", "head",
  "snapshots": [{"seq", "id", "bytes", "disputed"}, ...]}``, every kept
  snapshot (the checkpoints a trim kept below the floor too), oldest first:
  what a history view offers to open;
* ``GET /v1/channels/{hex}/history?since=N``, ``?from=snapshot`` or
  ``?from=snapshot&at=SEQ`` -> a binary body of records (PROTOCOL.md §4.2):
  ``0x01`` snapshot, ``0x02`` patch, ``0x00`` end with the head.  ``at``
  names the snapshot of exactly seq SEQ (404 ``NO_SNAPSHOT`` if none is
  kept); the patches after it follow only while SEQ is at or above the floor
  (below it they are trimmed: the snapshot alone, then the end).  The body is
  streamed a page
  (``HISTORY_PAGE_BYTES``) at a time up to the head of the first read, so a
  read holds the snapshot and one page, never the whole pad; at most
  ``max_history_reads`` run at once (503 ``BUSY`` beyond), each counted
  until its response is finished or abandoned.  A trim that removes the rest
  while it is sent ends the body without its end record: the reader sees a
  cut body and reads again.

The read endpoints need the pad's read token in the header
``Authorization: Blindpad-Read <64 lower-case hex digits>``: one that is
missing, malformed or does not hash to the channel's registered read hash
gets exactly the 404 ``UNKNOWN_CHANNEL`` of a channel that does not exist
(:func:`readable`), so a channel id in a log or a URL reads nothing.

Errors are JSON ``{"code": NAME, "message": ...}`` with a matching status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.types import Message, Receive, Scope, Send

from crypto import envelope2
from relay.connection import PatchPages, RelayState, rolled_back
from relay.hub import SessionsSent, load_records
from relay.limits import HISTORY_PAGE_BYTES
from relay.metrics import CONTENT_TYPE, Gauges
from relay.store import (
    ChannelInfo,
    HistoryRead,
    HistoryTrimmed,
    NoSnapshot,
    StoredSnapshot,
    snapshot_parts,
)
from wire.history import (
    RECORD_PATCH,
    RECORD_SESSION,
    RECORD_SNAPSHOT,
    end_record,
    record,
    record_header,
)

log = logging.getLogger("blindpad.relay")

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>blindpad relay</title></head>
<body><h1>blindpad relay</h1>
<p>The blindpad relay is running. It stores only encrypted, signed patches and cannot
read the pads it hosts.</p>
<p>The web editor is not installed on this relay yet.</p></body></html>
"""


def relay_of(conn: HTTPConnection) -> RelayState:
    """Return the relay state the lifespan put in the app state."""
    relay = conn.state.relay
    if not isinstance(relay, RelayState):  # pragma: no cover - wiring error
        raise TypeError("the app was started without its lifespan")
    return relay


def error(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    """A JSON error body ``{"code", "message"}`` (and any ``extra`` fields)."""
    return JSONResponse({"code": code, "message": message, **extra}, status_code=status)


async def healthz(request: Request) -> Response:
    """``GET /healthz``: 200 "ok" while the relay serves."""
    relay_of(request)
    return PlainTextResponse("ok\n")


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text."""
    relay = relay_of(request)
    stats = await relay.store.stats()
    synchronous = getattr(relay.store, "synchronous", None)
    outboxes = {
        id(sub.outbox): sub.outbox
        for ch in relay.hub.channels.values()
        for sub in ch.subscribers.values()
    }
    gauges = Gauges(
        channels=stats.channels,
        storage_bytes=stats.stored_bytes,
        live_channels=len(relay.hub.channels),
        queue_depths=[len(outbox) for outbox in outboxes.values()],
        sqlite_synchronous=None if synchronous is None else await synchronous(),
    )
    return Response(relay.metrics.exposition(gauges), media_type=CONTENT_TYPE)


#: ``Authorization: Blindpad-Read <read token as 64 lower-case hex digits>``.
_READ_AUTH = re.compile(r"(?i:blindpad-read) ([0-9a-f]{64})")


def unknown_channel() -> JSONResponse:
    """The 404 of a channel that does not exist, or of a read without its token."""
    return error(404, "UNKNOWN_CHANNEL", "no such channel")


def read_token(request: Request) -> bytes | None:
    """The read token of the request's ``Authorization`` header, or None."""
    found = _READ_AUTH.fullmatch(request.headers.get("authorization", ""))
    return bytes.fromhex(found.group(1)) if found else None


async def readable(request: Request, relay: RelayState, cid: bytes) -> ChannelInfo | None:
    """The channel's info if it exists and the request carries its read token, else None."""
    info = await relay.store.channel(cid)
    token = read_token(request)
    given = hashlib.sha256(token if token is not None else b"").digest()
    if info is None or not hmac.compare_digest(info.read_hash, given) or token is None:
        return None
    return info


def _channel_id(request: Request) -> bytes | None:
    try:
        raw = bytes.fromhex(request.path_params["channel"])
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


async def _open_channel(request: Request) -> tuple[RelayState, bytes, ChannelInfo] | Response:
    """The relay, channel id and channel of a read, or the error answering it:
    400 for a malformed id, the 404 of an unknown channel for a wrong token."""
    cid = _channel_id(request)
    if cid is None:
        return error(400, "BAD_CHANNEL_ID", "channel ids are 64 hex digits")
    relay = relay_of(request)
    info = await readable(request, relay, cid)
    if info is None:
        return unknown_channel()
    return relay, cid, info


async def head(request: Request) -> Response:
    """``GET /v1/channels/{hex}/head``."""
    opened = await _open_channel(request)
    if isinstance(opened, Response):
        return opened
    relay, cid, info = opened
    head = info.head  # one row: the head never reads the pad's patches
    if relay.faults.rollback is not None:
        head = rolled_back(await relay.store.read_from_snapshot(cid), relay.faults, cid).head
    body = {"channel": cid.hex(), "seq": head.seq, "id": head.id.hex()}
    return JSONResponse({**body, "floor": info.floor_seq})


async def snapshots(request: Request) -> Response:
    """``GET /v1/channels/{hex}/snapshots``: the kept snapshots, oldest first."""
    opened = await _open_channel(request)
    if isinstance(opened, Response):
        return opened
    relay, cid, info = opened
    kept = await relay.store.snapshots(cid)
    return JSONResponse(
        {
            "channel": cid.hex(),
            "floor": info.floor_seq,
            "head": info.head.seq,
            "snapshots": [
                {"seq": s.x_seq, "id": s.id.hex(), "bytes": s.size, "disputed": s.disputed}
                for s in kept
            ],
        }
    )


async def history(request: Request) -> Response:
    """``GET /v1/channels/{hex}/history?since=N``, ``?from=snapshot`` or
    ``?from=snapshot&at=SEQ``."""
    opened = await _open_channel(request)
    if isinstance(opened, Response):
        return opened
    relay, cid, info = opened
    try:
        query = history_query(request.query_params)
    except ValueError:
        return error(
            400,
            "BAD_QUERY",
            "use ?since=N, ?from=snapshot or ?from=snapshot&at=N (0 <= N < 2**64)",
        )
    if relay.history_reads >= relay.limits.max_history_reads:
        busy = error(503, "BUSY", "too many history reads at once; retry after a second")
        busy.headers["Retry-After"] = "1"
        return busy
    relay.history_reads += 1
    try:
        if query.at is not None:
            snapshot = await relay.store.snapshot(cid, query.at)
            if snapshot is None:
                relay.history_reads -= 1
                return error(404, "NO_SNAPSHOT", f"no snapshot of seq {query.at} is kept")
            read = await read_at(relay, cid, snapshot, info)
        elif query.since is None:
            read = await relay.store.read_from_snapshot(cid, HISTORY_PAGE_BYTES)
        else:
            read = await relay.store.read_since(cid, query.since, HISTORY_PAGE_BYTES)
    except HistoryTrimmed as exc:
        relay.history_reads -= 1
        floor = exc.floor_seq
        return error(410, "HISTORY_TRIMMED", f"history up to seq {floor} was trimmed", floor=floor)
    except BaseException:
        relay.history_reads -= 1
        raise
    return _CountedStream(history_pages(relay, cid, read), relay)


class _CountedStream(StreamingResponse):
    """A streamed body that holds one of ``max_history_reads`` until it is done.

    Released when the response ends however it ends (finished, client gone,
    cancelled), even if the body was never started.
    """

    def __init__(self, body: AsyncIterator[bytes], relay: RelayState) -> None:
        super().__init__(body, media_type="application/octet-stream")
        self._relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stall = self._relay.limits.history_stall_seconds

        async def guarded(message: Message) -> None:
            try:
                async with asyncio.timeout(stall):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await super().__call__(scope, receive, guarded)
        except* _Stalled:
            log.info("history reader took nothing for %d s: response abandoned", stall)
        finally:
            self._relay.history_reads -= 1


class _Stalled(Exception):
    """The reader of a history response took no part of it for ``history_stall_seconds``."""


async def _sessions(
    relay: RelayState, cid: bytes, sessions: SessionsSent, envelopes: list[bytes]
) -> bytes:
    """The §4.2 records of the session records ``envelopes`` need and the body
    has not carried yet."""
    tags = [envelope2.tag_of(envelope) for envelope in envelopes]
    await load_records(relay.store, cid, sessions.records, tags)
    found = (sessions.first(tag) for tag in tags)
    return b"".join(record(RECORD_SESSION, 0, sealed) for sealed in found if sealed is not None)


async def history_pages(relay: RelayState, cid: bytes, read: HistoryRead) -> AsyncIterator[bytes]:
    """The §4.2 records of ``read`` and the pages after it, up to its head, then the end.

    Holds one page of the snapshot or of patches at a time.  If a trim removes the next
    page meanwhile, stops without the end record (the reader reads again).
    """
    pages = PatchPages(relay, cid, read, to_first_head=True)
    head = pages.head
    sessions = SessionsSent({})
    if read.snapshot is not None:
        snapshot = read.snapshot
        header = record_header(RECORD_SNAPSHOT, snapshot.x_seq, snapshot.size)
        try:
            async for part in snapshot_parts(relay.store, cid, snapshot, HISTORY_PAGE_BYTES):
                if header:  # the first part: its session's record goes first
                    part = await _sessions(relay, cid, sessions, [part]) + header + part
                    header = b""
                yield part
        except NoSnapshot:
            log.info("history read cut in its snapshot: trimmed while it was sent")
            return
    try:
        async for page in pages:
            envelopes = [patch.envelope for patch in page]
            yield await _sessions(relay, cid, sessions, envelopes) + b"".join(
                record(RECORD_PATCH, p.seq, p.envelope) for p in page
            )
    except HistoryTrimmed:
        log.info("history read cut at seq %d: trimmed while it was sent", pages.after)
        return
    yield end_record(head.seq, head.id)


async def read_at(
    relay: RelayState, cid: bytes, snapshot: StoredSnapshot, info: ChannelInfo
) -> HistoryRead:
    """The snapshot of ``?from=snapshot&at=SEQ`` and the first page of the patches
    after it, or none when SEQ is below the floor (they are trimmed)."""
    try:
        read = await relay.store.read_since(cid, snapshot.x_seq, HISTORY_PAGE_BYTES)
    except HistoryTrimmed:
        fresh = await relay.store.channel(cid)
        return HistoryRead(snapshot, (), (fresh or info).head)
    return HistoryRead(snapshot, read.patches, read.head)


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A parsed history query: ``since`` (None: from a snapshot) and ``at`` (the
    snapshot of exactly that seq; None: the latest)."""

    since: int | None
    at: int | None = None


def _u64(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**64:
        raise ValueError(text)
    return int(text)


def history_query(params: Mapping[str, str]) -> HistoryQuery:
    """Parse a history query: ``since=N`` (a u64), ``from=snapshot``, or
    ``from=snapshot&at=SEQ`` (a u64).

    Nothing given means ``since=0``.

    Raises:
        ValueError: ``since`` with ``from`` or ``at``, an unknown ``from``,
            ``at`` without ``from=snapshot``, or a number that is not a plain
            decimal u64 (no sign, space or underscore).
    """
    since, start, at = params.get("since"), params.get("from"), params.get("at")
    if start is not None:
        if start != "snapshot" or since is not None:
            raise ValueError(start)
        return HistoryQuery(None, None if at is None else _u64(at))
    if at is not None:
        raise ValueError(at)
    return HistoryQuery(0 if since is None else _u64(since))


def page_handler(web_dir: Path | None) -> Callable[[Request], Awaitable[Response]]:
    """Return the handler of ``/`` and ``/p/``: ``web/index.html`` or a placeholder."""

    async def page(request: Request) -> Response:
        del request
        index = web_dir / "index.html" if web_dir else None
        if index is not None and index.is_file():
            return HTMLResponse(index.read_bytes())
        return HTMLResponse(PLACEHOLDER)

    return page

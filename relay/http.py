"""Plain HTTP beside the websocket: health, metrics, one-shot reads, the page.

Theory of operation
-------------------
Handlers are small functions of a request; they find the relay state in the
lifespan state (``request.state.relay``), never in a global.  One-shot
readers (``blindpad cat``, ``blindpad history``) use the read endpoints with
httpx and need no websocket:

* ``GET /v1/channels/{hex}/head`` -> JSON ``{"channel", "seq", "id", "floor"}``;
* ``GET /v1/channels/{hex}/history?since=N`` or ``?from=snapshot`` -> a binary
  body of records (PROTOCOL.md §4.2): ``0x01`` snapshot, ``0x02`` patch,
  ``0x00`` end with the head.

Errors are JSON ``{"code": NAME, "message": ...}`` with a matching status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from relay.connection import RelayState, rolled_back
from relay.metrics import CONTENT_TYPE, Gauges
from relay.store import HistoryRead, HistoryTrimmed
from wire.history import HistoryBody, encode_history

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


def error(status: int, code: str, message: str) -> JSONResponse:
    """A JSON error body ``{"code", "message"}``."""
    return JSONResponse({"code": code, "message": message}, status_code=status)


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


def _channel_id(request: Request) -> bytes | None:
    try:
        raw = bytes.fromhex(request.path_params["channel"])
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


async def head(request: Request) -> Response:
    """``GET /v1/channels/{hex}/head``."""
    cid = _channel_id(request)
    if cid is None:
        return error(400, "BAD_CHANNEL_ID", "channel ids are 64 hex digits")
    relay = relay_of(request)
    info = await relay.store.channel(cid)
    if info is None:
        return error(404, "UNKNOWN_CHANNEL", "no such channel")
    read = rolled_back(await relay.store.read_from_snapshot(cid), relay.faults, cid)
    body = {"channel": cid.hex(), "seq": read.head.seq, "id": read.head.id.hex()}
    return JSONResponse({**body, "floor": info.floor_seq})


async def history(request: Request) -> Response:
    """``GET /v1/channels/{hex}/history?since=N`` or ``?from=snapshot``."""
    cid = _channel_id(request)
    if cid is None:
        return error(400, "BAD_CHANNEL_ID", "channel ids are 64 hex digits")
    relay = relay_of(request)
    if await relay.store.channel(cid) is None:
        return error(404, "UNKNOWN_CHANNEL", "no such channel")
    params = request.query_params
    try:
        if params.get("from") == "snapshot":
            read = await relay.store.read_from_snapshot(cid)
        else:
            since = int(params.get("since", "0"))
            if not 0 <= since < 2**64:
                raise ValueError(since)
            read = await relay.store.read_since(cid, since)
    except ValueError:
        return error(400, "BAD_QUERY", "use ?since=N (0 <= N < 2**64) or ?from=snapshot")
    except HistoryTrimmed as exc:
        return error(410, "HISTORY_TRIMMED", f"history up to seq {exc.floor_seq} was trimmed")
    body = encode_history(history_body(rolled_back(read, relay.faults, cid)))
    return Response(body, media_type="application/octet-stream")


def history_body(read: HistoryRead) -> HistoryBody:
    """The wire form (:mod:`wire.history`, PROTOCOL.md §4.2) of a store read."""
    snapshot = read.snapshot
    return HistoryBody(
        snapshot=None if snapshot is None else (snapshot.x_seq, snapshot.envelope),
        patches=[(patch.seq, patch.envelope) for patch in read.patches],
        head_seq=read.head.seq,
        head_id=read.head.id,
    )


def page_handler(web_dir: Path | None) -> Callable[[Request], Awaitable[Response]]:
    """Return the handler of ``/`` and ``/p/``: ``web/index.html`` or a placeholder."""

    async def page(request: Request) -> Response:
        del request
        index = web_dir / "index.html" if web_dir else None
        if index is not None and index.is_file():
            return HTMLResponse(index.read_bytes())
        return HTMLResponse(PLACEHOLDER)

    return page

"""The Starlette app factory: the websocket endpoint and the HTTP routes.

Theory of operation
-------------------
:func:`create_app` is thin: it builds the routes and a lifespan that opens the
store (``async with``-style: opened on startup, closed on shutdown) and
yields the typed :class:`relay.connection.RelayState` as the app state, so
nothing is global and tests can run several relays in one process.  Fault
hooks (:class:`relay.edge.faults.Faults`) are injected here.

Each websocket connection runs two tasks: the *reader* (this endpoint) feeds
binary messages one at a time to :class:`relay.connection.Connection`; the
*writer* drains the connection's :class:`relay.hub.Outbox` onto the socket.
A frame offered to an empty Outbox while nothing is being written skips the
queue and the writer task: whoever offers it writes it (``_Writer.direct``).
A fatal condition, whoever detects it (a bad frame in the reader, an
overflow in another connection's broadcast), ends in the writer: it sends
``ERROR(code, message)`` and closes with close code ``4000 + code``.  When the
``Origin`` header is present and ``public_url`` is configured, they must
match or the handshake is refused (HTTP 403).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from relay import http
from relay.bus import check_spec, open_bus
from relay.cluster import POLL_SECONDS, Cluster
from relay.connection import Connection, RelayState
from relay.corked import FRAMED_SEND
from relay.edge import web
from relay.edge.faults import Faults
from relay.errors import ProtocolViolation
from relay.hub import Outbox
from relay.limits import Limits
from relay.metrics import TimedStore
from relay.store import Store, StoreStats, open_store
from relay.verifier import Verifier
from wire import frames
from wire.codes import ErrorCode
from wire.frames import FrameType

log = logging.getLogger("blindpad.relay")
_ANSWERS: dict[int, str] = {FrameType.ACK: "ack", FrameType.REFUSE: "refuse"}

#: Where ``web/`` lives in a source checkout.
CHECKOUT_WEB_DIR = Path(__file__).resolve().parent.parent / "web"
#: The page served by default: a checkout's ``web/``, else the one a wheel carries.
DEFAULT_WEB_DIR = (
    CHECKOUT_WEB_DIR if (CHECKOUT_WEB_DIR / "app.js").is_file() else web.PACKAGED_WEB_DIR
)


@dataclasses.dataclass(frozen=True, slots=True)
class RelayConfig:
    """How to run a relay.

    Attributes:
        store_url: ``sqlite:///PATH`` (default ``./blindpad.sqlite3``) or ``memory:``.
        limits: every limit and quota.
        public_url: the address users reach (behind a proxy); the websocket
            Origin must match it when given.
        create_token: when set, creating a channel needs HELLO to carry it.
        web_dir: the web client's files; a placeholder page when absent.
        trusted_proxies: peer addresses whose ``X-Forwarded-For`` names the
            client address that per-address limits key on.
        embed_origins: origins whose pages may frame the pad (``/embed/``,
            ``docs/EMBED.md``); none by default.
        bus: how relays sharing a PostgreSQL store hear of each other's
            commits (:mod:`relay.bus`): ``postgres`` (LISTEN/NOTIFY, the
            default for such a store), ``redis://HOST:PORT/DB``, or ``none``
            (polling the store only).  A store only one process may open
            (SQLite, memory) takes none.
        poll_seconds: how often relays sharing a store read the heads of
            their channels while the bus is up (it is every 0.5 s while down).
        verify_processes: 1 to check pushes' channel signatures in a helper
            process, off the event loop (:mod:`relay.verifier`); 0 to check
            them on the loop.
    """

    store_url: str = "sqlite:///./blindpad.sqlite3"
    limits: Limits = dataclasses.field(default_factory=Limits)
    public_url: str | None = None
    create_token: bytes | None = None
    web_dir: Path | None = DEFAULT_WEB_DIR
    trusted_proxies: frozenset[str] = frozenset()
    embed_origins: tuple[str, ...] = ()
    bus: str | None = None
    poll_seconds: float = POLL_SECONDS
    verify_processes: int = 0


class AppState(TypedDict):
    """What the lifespan yields (available as ``request.state.relay``)."""

    relay: RelayState


def create_app(
    config: RelayConfig,
    *,
    faults: Faults | None = None,
    store: Store | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """Build the relay's ASGI app.

    Args:
        config: the relay's configuration.
        faults: test hooks; None for a healthy relay.
        store: an unopened store to use instead of ``config.store_url``.
        clock: the relay's monotonic clock in seconds (tests inject one).

    Returns:
        The Starlette app; serve it with uvicorn (``ws="websockets-sansio"``).

    Raises:
        ValueError: ``config.store_url`` names no known store.
    """
    chosen = store if store is not None else open_store(config.store_url)
    check_spec(config.bus)
    if config.bus not in (None, "none") and not chosen.shared:
        raise ValueError(
            f"--bus {config.bus}: a bus joins relays that share a PostgreSQL store;"
            " this store serves one relay process"
        )
    mimetypes.add_type("application/wasm", ".wasm")
    mimetypes.add_type("text/javascript", ".mjs")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        del app
        await chosen.open()
        try:
            membership = await chosen.join()
            relay = RelayState(
                chosen,
                config.limits,
                faults=faults or Faults(),
                create_token=config.create_token,
                node=membership.node,
            )
            if clock is not None:
                relay.clock = clock
            relay.verifier = relay.metrics.verifier = Verifier(
                config.verify_processes, relay.clock
            )
            await relay.verifier.start()
            observe = getattr(chosen, "observe_commits", None)
            if observe is not None:
                observe(relay.metrics.observe_batch)
            relay.store = TimedStore.wrap(chosen, relay.metrics)
            relay.hub.observe_fanout = relay.metrics.fanout.observe
            overhead = config.limits.channel_overhead_bytes

            def counted(stats: StoreStats) -> None:
                relay.storage_bytes = stats.stored_bytes + stats.channels * overhead

            counted(await chosen.stats())
            spec = config.bus or ("postgres" if chosen.shared else "none")
            bus = open_bus(spec, config.store_url, membership.site)
            relay.cluster = Cluster(
                relay.store,
                relay.hub,
                bus,
                membership,
                counted,
                config.poll_seconds,
                chunk_bytes=config.limits.chunk_bytes,
            )
            relay.metrics.cluster = relay.cluster
            await relay.cluster.start()
            sweeper = asyncio.create_task(_sweep(relay))
            try:
                yield {"relay": relay}
            finally:
                sweeper.cancel()
                await relay.cluster.close()
                await relay.verifier.close()
        finally:
            await chosen.close()

    async def endpoint(websocket: WebSocket) -> None:
        await serve_websocket(websocket, config.public_url, config.trusted_proxies)

    return Starlette(routes=_routes(config, endpoint), lifespan=lifespan)


def _routes(
    config: RelayConfig, endpoint: Callable[[WebSocket], Awaitable[None]]
) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        WebSocketRoute("/ws", endpoint),
        Route("/healthz", http.healthz),
        Route("/metrics", http.metrics),
        Route("/v1/channels/{channel}/head", http.head),
        Route("/v1/channels/{channel}/history", http.history),
        Route("/v1/channels/{channel}/snapshots", http.snapshots),
    ]
    required = config.create_token is not None
    embedders = config.embed_origins
    return routes + web.routes(config.web_dir, token_required=required, embed_origins=embedders)


def origin_allowed(origin: str | None, public_url: str | None) -> bool:
    """Whether a websocket ``Origin`` may connect.

    Args:
        origin: the header, or None (non-browser clients send none).
        public_url: the configured public address, or None (any origin).

    Returns:
        True when there is nothing to check or scheme, host and port match.
    """
    if origin is None or public_url is None:
        return True
    want, got = urlsplit(public_url), urlsplit(origin)
    return (want.scheme, want.netloc.lower()) == (got.scheme, got.netloc.lower())


async def _sweep(relay: RelayState) -> None:
    """Close idle connections even when no frame arrives (once a second)."""
    while True:
        await asyncio.sleep(1.0)
        relay.sweep_idle()


_warned_proxies: set[str] = set()


def client_address(websocket: WebSocket, trusted_proxies: frozenset[str]) -> str:
    """The address per-address limits key on.

    The peer's address, unless the peer is a trusted proxy: then the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy.
    A peer that sends ``X-Forwarded-For`` without being trusted is logged
    once: every client behind it shares one per-address budget.
    """
    peer = websocket.client.host if websocket.client else "unknown"
    forwarded = websocket.headers.get("x-forwarded-for")
    if forwarded is None:
        return peer
    if peer not in trusted_proxies:
        if peer not in _warned_proxies:
            _warned_proxies.add(peer)
            log.warning(
                "per-address limits key on %s, which sends X-Forwarded-For; if it is your"
                " reverse proxy, add it to --trusted-proxies",
                peer,
            )
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted_proxies:
            return hop
    return peer


async def serve_websocket(
    websocket: WebSocket, public_url: str | None, trusted_proxies: frozenset[str] = frozenset()
) -> None:
    """Run one websocket connection to its end.

    Args:
        websocket: the Starlette websocket (not yet accepted).
        public_url: the configured public address for the Origin check.
        trusted_proxies: addresses whose X-Forwarded-For is believed.
    """
    relay = http.relay_of(websocket)
    if not origin_allowed(websocket.headers.get("origin"), public_url):
        relay.metrics.errors["ORIGIN_REFUSED"] += 1
        await websocket.close(code=1008)
        return
    await websocket.accept()
    address = client_address(websocket, trusted_proxies)
    over = relay.admit(address)
    if over is not None:
        code = ErrorCode.TOO_MANY_CONNECTIONS
        relay.metrics.errors[code.name] += 1
        await websocket.send_bytes(frames.encode(frames.Error(code, over + "; retry later")))
        await websocket.close(code=code.close_code)
        return
    outbox = Outbox(relay.limits.outgoing_queue_frames, relay.limits.outgoing_queue_bytes)
    conn = Connection(relay, outbox, address)
    relay.connections[conn.id] = conn
    relay.per_address[address] += 1
    relay.metrics.connections += 1
    relay.metrics.connections_total += 1
    pushes: dict[int, float] = {}  # request id -> when read (push -> ACK latency)
    sender = _Writer(websocket, outbox, relay, conn.id, pushes)
    outbox.attach(sender.direct)
    writer = asyncio.create_task(sender.run())
    try:
        await _read(websocket, conn, outbox, pushes)
    finally:
        await conn.drain()  # pushes already handed to the store are answered (or dropped)
        conn.close()
        if outbox.failure is None:
            outbox.stop()
        await writer
        relay.metrics.connections -= 1
        del relay.connections[conn.id]
        relay.per_address[address] -= 1
        if not relay.per_address[address]:
            del relay.per_address[address]


async def _read(
    websocket: WebSocket, conn: Connection, outbox: Outbox, pushes: dict[int, float]
) -> None:
    while outbox.failure is None and not outbox.stopped:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            outbox.stop()
            return
        data = message.get("bytes")
        if data and data[0] == FrameType.PUSH and len(data) >= 5:
            conn.relay.metrics.push_received(pushes, int.from_bytes(data[1:5]))
        try:
            if data is None:
                raise ProtocolViolation(
                    ErrorCode.PROTOCOL, "text frames are not part of the protocol"
                )
            await conn.handle(data)
        except ProtocolViolation as violation:
            outbox.fail(violation, flush=True)
        except Exception:
            log.exception("internal error on connection %d", conn.id)
            outbox.fail(ProtocolViolation(ErrorCode.INTERNAL, "internal relay error"), flush=True)


class _Writer:
    """Writes one connection's frames onto its websocket, in the Outbox's order.

    A frame offered while the Outbox is empty and nothing is being written
    goes out at once, from whichever task offered it (:meth:`direct`): the
    send coroutine takes its first step in place, as asyncio 3.12's eager
    tasks do.  Uvicorn's send completes in that step unless the socket's
    buffer is over its high-water mark; then it yields a future, and a task
    (:meth:`_finish`) finishes the send the way a task would have, and the
    Outbox keeps further frames until it is done.  Everything else waits in
    the Outbox for :meth:`run`, the writer task.  So one frame at most is
    outside the Outbox's byte bound, as when the writer task holds one, and
    frames leave in the order offered.  A fatal condition ends here:
    ``ERROR(code, message)`` and the close code ``4000 + code``.
    """

    def __init__(
        self,
        websocket: WebSocket,
        outbox: Outbox,
        relay: RelayState,
        cid: int,
        pushes: dict[int, float],
    ) -> None:
        self._ws = websocket
        self._outbox = outbox
        self._relay = relay
        self._cid = cid
        self._pushes = pushes
        self._sent = 0
        self._writing = False  # the writer task holds a frame taken from the Outbox
        self._stalled: Coroutine[Any, Any, None] | None = None  # a direct send that waits
        self._finishing: asyncio.Task[None] | None = None  # the task finishing it
        self._fault_close = False
        extension = websocket.scope.get("extensions", {}).get(FRAMED_SEND, {})
        #: The server's direct send (relay.corked), or None: every frame goes the ASGI way.
        self._framed: Callable[[bytes], bool] | None = extension.get("send")

    def direct(self, frame: bytes) -> bool:
        """Write ``frame`` now if nothing else is being written (see Outbox.attach)."""
        if self._writing or self._stalled is not None:
            return False
        if self._framed is not None and self._framed(frame):
            self._count(frame)
            return True
        send = self._ws.send_bytes(frame)
        try:
            waiting = send.send(None)
        except StopIteration:
            self._count(frame)
            return True
        except Exception:  # the peer is gone; the reader sees the disconnect
            self._outbox.stop()
            return True
        if waiting is not None:
            # What Task.__step does with a future a coroutine yields: without
            # it, the future refuses to be awaited again ("await wasn't used
            # with future") and the send never finishes.
            waiting._asyncio_future_blocking = False
        self._stalled = send
        self._finishing = asyncio.create_task(self._finish(send, waiting, frame))
        return True

    async def _finish(self, send: Coroutine[Any, Any, None], waiting: Any, frame: bytes) -> None:
        """Drive a direct send that yielded ``waiting`` (a future, or None) to its end."""
        try:
            while True:
                if waiting is None:
                    await asyncio.sleep(0)
                else:
                    # The send sees the future's outcome itself when it resumes.
                    await asyncio.wait({waiting})
                try:
                    waiting = send.send(None)
                except StopIteration:
                    break
                if waiting is not None:
                    waiting._asyncio_future_blocking = False
            self._count(frame)
        except asyncio.CancelledError:
            send.close()
            raise
        except Exception:  # the peer is gone; the reader sees the disconnect
            self._outbox.stop()
        finally:
            self._stalled = None
            self._finishing = None

    def _count(self, frame: bytes) -> None:
        self._sent += 1
        relay = self._relay
        relay.metrics.frames_out += 1
        if frame[0] in _ANSWERS and self._pushes:  # request id: bytes 1-4 of ACK and REFUSE
            outcome = _ANSWERS[frame[0]]
            relay.metrics.answer_sent(self._pushes, int.from_bytes(frame[1:5]), outcome)
        close_after = relay.faults.close_after
        if close_after is not None and close_after(self._cid, self._sent):
            self._fault_close = True
            self._outbox.fail(ProtocolViolation(ErrorCode.FAULT_INJECTED, "fault"), flush=False)

    async def _settle(self) -> None:
        """Wait for a direct send still in flight."""
        finishing = self._finishing
        if finishing is not None:
            await asyncio.wait({finishing})

    async def run(self) -> None:
        """Drain the Outbox until it stops or fails (the writer task)."""
        outbox = self._outbox
        try:
            while (frame := await outbox.next()) is not None:
                # Taken from the Outbox: no direct send may overtake it now.
                self._writing = True
                try:
                    await self._settle()
                    if self._framed is None or not self._framed(frame):
                        await self._ws.send_bytes(frame)
                finally:
                    self._writing = False
                self._count(frame)
            await self._settle()
            if self._fault_close:
                await self._ws.close(code=ErrorCode.FAULT_INJECTED.close_code)
                return
            failure = outbox.failure
            if failure is not None and not outbox.stopped:
                self._relay.metrics.errors[failure.code.name] += 1
                error = frames.Error(failure.code, failure.message)
                await self._ws.send_bytes(frames.encode(error))
                await self._ws.close(code=failure.code.close_code)
        except Exception:  # the peer is gone; the reader sees the disconnect
            outbox.stop()
        finally:
            if self._finishing is not None:
                self._finishing.cancel()
            if self._stalled is not None:  # cancelled before it could take a step
                self._stalled.close()

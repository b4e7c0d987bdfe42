"""The transport seam: one small interface for every way of moving frames.

Theory of operation
-------------------
The SDK (:class:`client.Pad`) never touches a socket itself.  A
:class:`Connector` turns a relay websocket URL into an open
:class:`Transport`, which sends and receives whole binary messages and
closes.  Every connection failure (refused or timed-out connection, reset,
close frame, a text message) surfaces as one exception,
:class:`TransportClosed`, chained from the foreign one (httpx's habit: map at
the seam), so the pad's reconnect loop has one transport error to handle
(beside :class:`client.errors.ProtocolError` for bytes that are not a frame).

Implementations:

* :class:`WebsocketsConnector` — CPython, over the ``websockets`` package,
  imported only when a connection is made, so ``import client`` stays light
  and runs under Pyodide.
* :class:`MemoryTransport` — an in-memory pipe for tests:
  :meth:`MemoryTransport.pair` returns the two ends.

When to try again is the same decision for every front end, so it lives here,
sans-I/O: :class:`Backoff` (exponential, capped, jittered delays) and
:class:`Reconnect` (counts failed attempts; a connection that went live
resets it).  The asyncio SDK sleeps its delays; the browser page sets a timer
and shows the countdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random as _random
from collections.abc import Callable
from typing import Protocol


class TransportClosed(Exception):
    """The transport is closed or could not be opened; the message says why."""


class Transport(Protocol):
    """An open, message-oriented, binary connection to a relay."""

    async def send(self, data: bytes) -> None:
        """Send one message.

        Raises:
            TransportClosed: the connection is gone.
        """
        ...

    async def recv(self) -> bytes:
        """Receive one message.

        Raises:
            TransportClosed: the connection is gone.
        """
        ...

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        ...


class Connector(Protocol):
    """Opens transports."""

    async def connect(self, url: str) -> Transport:
        """Open a transport to ``url`` (``ws://host/ws`` or ``wss://``).

        Raises:
            TransportClosed: the relay could not be reached.
        """
        ...


def websocket_url(base_url: str) -> str:
    """The websocket endpoint of a relay base URL (``http`` -> ``ws``, + ``/ws``)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/ws"
    return base + "/ws"


class WebsocketsTransport:
    """A :class:`Transport` over a ``websockets`` client connection."""

    def __init__(self, connection: object) -> None:
        from websockets.asyncio.client import ClientConnection

        assert isinstance(connection, ClientConnection)
        self._ws = connection

    async def send(self, data: bytes) -> None:
        """Send one binary message."""
        from websockets.exceptions import WebSocketException

        try:
            await self._ws.send(data)
        except (WebSocketException, OSError) as error:
            raise TransportClosed(f"send failed: {error}") from error

    async def recv(self) -> bytes:
        """Receive one message (text messages are an error)."""
        from websockets.exceptions import WebSocketException

        try:
            data = await self._ws.recv()
        except (WebSocketException, OSError) as error:
            raise TransportClosed(str(error) or type(error).__name__) from error
        if isinstance(data, str):
            raise TransportClosed("the relay sent a text message")
        return data

    async def close(self) -> None:
        """Close the websocket."""
        await self._ws.close()


class WebsocketsConnector:
    """Opens :class:`WebsocketsTransport` connections.

    Args:
        open_timeout: seconds to wait for the websocket handshake.
    """

    def __init__(self, open_timeout: float = 10.0) -> None:
        self.open_timeout = open_timeout

    async def connect(self, url: str) -> Transport:
        """Open a websocket to ``url``.

        Raises:
            TransportClosed: the relay could not be reached or refused.
        """
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        try:
            ws = await connect(
                url, max_size=None, open_timeout=self.open_timeout, compression=None
            )
        except (WebSocketException, OSError, TimeoutError) as error:
            raise TransportClosed(f"cannot connect to {url}: {error}") from error
        return WebsocketsTransport(ws)


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnection delays: ``initial * factor**(attempt-1)``, capped, with jitter.

    Attributes:
        initial: first delay in seconds.
        factor: growth per failed attempt.
        cap: the longest delay.
        jitter: each delay is drawn in ``[d * (1 - jitter), d]``.
    """

    initial: float = 0.2
    factor: float = 2.0
    cap: float = 15.0
    jitter: float = 0.5

    def delay(self, attempt: int, draw: Callable[[], float]) -> float:
        """The delay before attempt number ``attempt`` (1 = first retry)."""
        base = min(self.cap, self.initial * self.factor ** max(0, attempt - 1))
        return base * (1 - self.jitter * draw())


class Reconnect:
    """When to connect again: the reconnect policy every front end shares.

    Args:
        backoff: the delays.
        draw: a uniform draw in ``[0, 1)`` for the jitter (inject a seeded one in tests).

    Example:
        >>> policy = Reconnect(Backoff(jitter=0), draw=lambda: 0.0)
        >>> policy.ended(live=False), policy.ended(live=False), policy.ended(live=True)
        (0.2, 0.4, 0.2)
    """

    def __init__(
        self, backoff: Backoff | None = None, draw: Callable[[], float] = _random.random
    ) -> None:
        self.backoff = backoff or Backoff()
        self.draw = draw
        self.attempt = 0

    def ended(self, *, live: bool) -> float:
        """A connection (or an attempt) ended; seconds to wait before the next one.

        Args:
            live: whether that connection reached the live phase (the count restarts).
        """
        self.attempt = 1 if live else self.attempt + 1
        return self.backoff.delay(self.attempt, self.draw)


class MemoryTransport:
    """One end of an in-memory message pipe (for tests)."""

    def __init__(self, inbox: asyncio.Queue[bytes | None], peer: asyncio.Queue[bytes | None]):
        self._inbox = inbox
        self._peer = peer
        self.closed = False

    @classmethod
    def pair(cls) -> tuple[MemoryTransport, MemoryTransport]:
        """Two connected ends."""
        a: asyncio.Queue[bytes | None] = asyncio.Queue()
        b: asyncio.Queue[bytes | None] = asyncio.Queue()
        return cls(a, b), cls(b, a)

    async def send(self, data: bytes) -> None:
        """Deliver ``data`` to the other end."""
        if self.closed:
            raise TransportClosed("closed")
        self._peer.put_nowait(bytes(data))

    async def recv(self) -> bytes:
        """Take the next message from the other end."""
        if self.closed:
            raise TransportClosed("closed")
        data = await self._inbox.get()
        if data is None:
            self.closed = True
            raise TransportClosed("closed by the other end")
        return data

    async def close(self) -> None:
        """Close both directions."""
        if not self.closed:
            self.closed = True
            self._peer.put_nowait(None)
            self._inbox.put_nowait(None)


__all__ = [
    "Backoff",
    "Connector",
    "MemoryTransport",
    "Reconnect",
    "Transport",
    "TransportClosed",
    "WebsocketsConnector",
    "WebsocketsTransport",
    "websocket_url",
]

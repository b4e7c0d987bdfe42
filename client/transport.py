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

The web page does not use this seam: :mod:`client.browser` drives a
:class:`client.session.PadSession` over the browser's own ``WebSocket``.
"""

from __future__ import annotations

import asyncio
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
    "Connector",
    "MemoryTransport",
    "Transport",
    "TransportClosed",
    "WebsocketsConnector",
    "WebsocketsTransport",
    "websocket_url",
]

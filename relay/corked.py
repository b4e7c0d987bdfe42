"""Uvicorn's websocket protocol with its writes corked: one ``send`` per loop turn.

Theory of operation
-------------------
A relay fans one push out to every subscriber, and a group commit lands
tens of pushes at once, so in one turn of the event loop the same socket is
handed many small frames.  Uvicorn's sans-I/O websocket protocol writes each
one to the transport as it is sent, and each write to an idle socket is a
``send`` system call: the largest single cost of the relay's hot path
(issue 15's profile: 36 % of the relay's time at 1 -> 10 fan-out).

:class:`CorkedWebSocketProtocol` is that protocol with its transport wrapped
in a :class:`CorkedTransport`: ``write`` appends to a buffer, and the first
write of a turn schedules one flush (``loop.call_soon``), so everything the
turn wrote to the socket leaves in one ``send``.  Nothing else changes: the
frames are the same bytes in the same order, only packed into fewer
segments, and they leave within the same loop turn, before the loop next
waits for I/O.  The buffer is flushed at once when it reaches
:data:`FLUSH_BYTES` (the transport's own default high-water mark, so its
``pause_writing`` back-pressure still trips as it would have) and before the
transport is closed or half-closed, so a close never overtakes data.

The protocol also turns Nagle's algorithm off on its socket (:func:`no_delay`):
asyncio leaves it on when the listening socket was made with protocol 0,
and then a segment that follows another within a round trip waits for the
peer's delayed acknowledgement (issue 15: 8 typists at human pace went from
a key -> saved p99 of 116-236 ms to 22 ms when it was turned off).

Run uvicorn with ``ws=CorkedWebSocketProtocol`` (:func:`relay.cli.uvicorn_config`
does).  Any ASGI server serves the app; this one only packs its writes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

#: The ASGI scope extension through which the relay's writer sends a binary
#: message straight to the transport: ``scope["extensions"][FRAMED_SEND]["send"]``
#: is :meth:`CorkedWebSocketProtocol.send_framed`.  Absent under other servers;
#: the relay then sends every message the ASGI way.
FRAMED_SEND = "blindpad.framed_send"

#: Bytes buffered before a write goes out within the turn (asyncio's default
#: write high-water mark is 64 KiB).
FLUSH_BYTES = 64 * 1024


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Set TCP_NODELAY on ``transport``'s socket, if it is a TCP one.

    asyncio sets it on accepted sockets only when the listening socket was
    made with ``proto=IPPROTO_TCP``; one made as ``socket(AF_INET,
    SOCK_STREAM)`` (proto 0, as the relay's tests and many launchers make
    theirs) leaves Nagle's algorithm on.  Then a small write that follows
    another before the peer has acknowledged it waits for that
    acknowledgement, which the peer delays by up to 40 ms: a REFUSE after a
    BROADCAST, or a frame after a flush, arrives tens of milliseconds late.
    Corking sends one segment per turn, but the next turn's may follow
    within a round trip, so the relay turns it off itself.
    """
    sock = transport.get_extra_info("socket")
    tcp = sock is not None and sock.type == socket.SOCK_STREAM
    if tcp and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CorkedTransport:
    """A transport whose writes within one loop turn leave in one ``write``.

    Args:
        transport: the real transport (every other method is delegated).
        loop: the loop the flush is scheduled on.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []
        self._size = 0
        self.flushes = 0  # writes handed to the real transport (tests read it)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer ``data``; the first write of a turn schedules the flush."""
        if not data:
            return
        if not self._parts:
            self._loop.call_soon(self.flush)
        self._parts.append(bytes(data))
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def writelines(self, lines: Any) -> None:
        """Buffer each of ``lines``."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Hand everything buffered to the real transport in one write."""
        if not self._parts:
            return
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self.flushes += 1
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Flush, then close (the real transport sends what it holds first)."""
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        """Flush, then half-close."""
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        """Drop the buffer and abort at once."""
        self._parts.clear()
        self._size = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        """Bytes not yet sent: the buffer's plus the real transport's."""
        return self._size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CorkedWebSocketProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's sans-I/O websocket protocol, writing through a :class:`CorkedTransport`,
    with a direct send for the relay's hot path (:data:`FRAMED_SEND`)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Turn Nagle's algorithm off, wrap the transport, then set up as uvicorn does."""
        no_delay(transport)
        corked = CorkedTransport(cast(asyncio.Transport, transport), self.loop)
        super().connection_made(cast(asyncio.Transport, corked))

    def handle_connect(self, event: Any) -> None:
        """Set up the ASGI scope as uvicorn does, offering :data:`FRAMED_SEND` in it."""
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # None: the handshake was refused
            scope["extensions"][FRAMED_SEND] = {"send": self.send_framed}

    def send_framed(self, payload: bytes) -> bool:
        """Write ``payload`` as one binary message now, or return False to have the caller
        send it the ASGI way (the connection is not open, is closing, or its transport
        pushes back: uvicorn's own send then waits or fails as it should).

        The bytes are those uvicorn's send would write (a server's frames are not
        masked, and no extension is negotiated: permessage-deflate is off), minus
        the layers between: ASGI message, Starlette's checks, uvicorn's send
        coroutine and websockets' frame object.
        """
        if (
            self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.conn.extensions
            or self.conn.expect_continuation_frame
        ):
            return False
        size = len(payload)
        if size < 126:
            head = bytes((0x82, size))
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x82, 126, size)
        else:
            head = struct.pack("!BBQ", 0x82, 127, size)
        self.transport.write(head)
        self.transport.write(payload)
        return True

"""The corked transport: a loop turn's writes leave in one write, in order, before a
close; and the direct send's frames, read back by a real websocket client."""

from __future__ import annotations

import asyncio
import socket

from relay_support import Client, Pad, RelayHandle, running_relay

from relay.app import RelayConfig
from relay.cli import _bind
from relay.corked import FLUSH_BYTES, CorkedTransport, no_delay
from relay.limits import Limits
from wire import frames as f


class Recorder:
    """The real transport's side: what was written, and when it was closed."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.events.append(("write", data))

    def close(self) -> None:
        self.closing = True
        self.events.append(("close", b""))

    def abort(self) -> None:
        self.closing = True
        self.events.append(("abort", b""))

    def write_eof(self) -> None:
        self.events.append(("eof", b""))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def corked() -> tuple[Recorder, CorkedTransport]:
    real = Recorder()
    return real, CorkedTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]


def test_a_turns_writes_leave_in_one_write_in_order_after_the_turn() -> None:
    async def main() -> None:
        real, transport = corked()
        transport.write(b"one ")
        transport.write(b"")
        transport.writelines([b"two ", bytearray(b"three")])
        assert real.events == []  # nothing leaves within the turn
        assert transport.get_write_buffer_size() == len(b"one two three")
        await asyncio.sleep(0)
        assert real.events == [("write", b"one two three")]
        transport.write(b"four")
        await asyncio.sleep(0)
        assert real.events[1:] == [("write", b"four")]
        assert transport.flushes == 2
        assert transport.get_extra_info("peername") == "extra peername"  # delegated

    asyncio.run(main())


def test_a_full_buffer_leaves_at_once_so_back_pressure_still_trips() -> None:
    async def main() -> None:
        real, transport = corked()
        transport.write(b"a" * (FLUSH_BYTES - 1))
        assert real.events == []
        transport.write(b"b")
        assert real.events == [("write", b"a" * (FLUSH_BYTES - 1) + b"b")]
        transport.write(b"c")
        await asyncio.sleep(0)
        assert real.events[1:] == [("write", b"c")]

    asyncio.run(main())


def test_a_close_never_overtakes_data_and_an_abort_drops_it() -> None:
    async def main() -> None:
        real, transport = corked()
        transport.write(b"close frame")
        transport.close()
        assert real.events == [("write", b"close frame"), ("close", b"")]
        await asyncio.sleep(0)  # the scheduled flush finds nothing more to write
        assert len(real.events) == 2
        transport.write(b"after close")
        await asyncio.sleep(0)
        assert len(real.events) == 2  # a closing transport is not written to

        real, transport = corked()
        transport.write(b"last")
        transport.write_eof()
        assert real.events == [("write", b"last"), ("eof", b"")]

        real, transport = corked()
        transport.write(b"dropped")
        transport.abort()
        await asyncio.sleep(0)
        assert real.events == [("abort", b"")]

    asyncio.run(main())


def test_frames_of_every_length_form_reach_a_subscriber_intact_through_the_direct_send() -> None:
    """Through a real relay (which sends broadcasts with CorkedWebSocketProtocol.send_framed):
    payloads under 126 bytes, under 64 KiB and over it use the three length forms of
    RFC 6455; the subscriber's websocket library reads each one back byte for byte,
    with permessage-deflate declined although the client offers it."""

    async def main(handle: RelayHandle) -> None:
        async with Client.connect(handle) as writer, Client.connect(handle) as reader:
            assert writer.ws.protocol.extensions == []  # offered by the client, declined
            pad = Pad()
            await writer.subscribe(pad)
            await reader.subscribe(pad)
            parent = bytes(32)
            for size in (1, 200, 70_000):
                envelope, parent = pad.patch(parent, b"p" * size)
                await writer.send(f.Push(writer.request_id(), envelope))
                await writer.expect(f.Ack)
                got = await reader.expect(f.Broadcast)
                assert got.envelope == envelope

    limits = Limits(max_patch_bytes=128 * 1024)
    with running_relay(RelayConfig(store_url="memory:", web_dir=None, limits=limits)) as handle:
        asyncio.run(main(handle))


async def nodelay_of_a_connection_to(listener: socket.socket, fix: bool) -> bool:
    """Accept one connection on ``listener`` with asyncio; whether its socket has
    TCP_NODELAY (after :func:`no_delay` if ``fix``)."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set_result(transport)

    server = await loop.create_server(Accept, sock=listener)
    _, client = await asyncio.open_connection(*listener.getsockname()[:2])
    transport = await accepted
    if fix:
        no_delay(transport)
    sock = transport.get_extra_info("socket")
    nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    client.close()
    transport.close()
    server.close()
    await server.wait_closed()
    return nodelay


def test_the_relay_turns_nagle_off_on_sockets_asyncio_leaves_it_on() -> None:
    """A listening socket made without proto=IPPROTO_TCP (the test harness's, many
    launchers') gives accepted sockets on which asyncio leaves Nagle's algorithm
    on, and no_delay (CorkedWebSocketProtocol.connection_made) turns it off; on the
    relay's own listening socket (relay.cli._bind) asyncio turns it off itself."""

    def plain() -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        return listener

    async def main() -> None:
        assert not await nodelay_of_a_connection_to(plain(), fix=False)  # the trap
        assert await nodelay_of_a_connection_to(plain(), fix=True)
        assert await nodelay_of_a_connection_to(_bind("127.0.0.1", 0), fix=False)

    asyncio.run(main())

"""The connection writer's direct sends (relay.app._Writer) against a socket that
applies flow control as uvicorn's does: ``send`` waits while the socket is not
writable.  No network and no clock: the socket is a fake whose writability the
test switches.  Every test runs twice: the ASGI way only, and with the server's
direct send (relay.corked.FRAMED_SEND), which declines while not writable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.app import _Writer
from relay.connection import RelayState
from relay.corked import FRAMED_SEND
from relay.errors import ProtocolViolation
from relay.hub import Outbox
from relay.limits import Limits
from relay.store.memory import MemoryStore
from wire import frames as f
from wire.codes import ErrorCode


class FlowControlledSocket:
    """What _Writer needs of a Starlette WebSocket; ``send_bytes`` waits, as
    uvicorn's send does, while ``writable`` is clear."""

    #: Whether sockets offer the direct send (set per test by the ``framed`` fixture).
    framed = False

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent: list[bytes] = []
        self.closed: int | None = None
        extensions = {FRAMED_SEND: {"send": self.send_framed}} if self.framed else {}
        self.scope: dict[str, Any] = {"extensions": extensions}

    def send_framed(self, data: bytes) -> bool:
        if not self.writable.is_set():
            return False
        self.sent.append(data)
        return True

    async def send_bytes(self, data: bytes) -> None:
        await self.writable.wait()
        self.sent.append(data)

    async def close(self, code: int = 1000) -> None:
        self.closed = code


def writer(outbox: Outbox) -> tuple[FlowControlledSocket, asyncio.Task[None]]:
    socket = FlowControlledSocket()
    relay = RelayState(MemoryStore(), Limits())
    sender = _Writer(socket, outbox, relay, 1, {})  # type: ignore[arg-type]
    outbox.attach(sender.direct)
    return socket, asyncio.create_task(sender.run())


@pytest.fixture(autouse=True, params=[False, True], ids=["asgi", "framed"])
def framed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FlowControlledSocket, "framed", request.param)


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_direct_send_that_meets_flow_control_finishes_and_order_holds() -> None:
    async def scenario(steps: int) -> None:
        outbox = Outbox(max_frames=100)
        socket, task = writer(outbox)
        await settle()
        outbox.offer(b"1")  # written in place
        assert socket.sent == [b"1"]
        socket.writable.clear()
        outbox.offer(b"2")  # starts, then waits for the socket
        outbox.offer(b"3")  # queued behind it
        await settle()
        assert socket.sent == [b"1"]  # "3" waits (in the writer task) for "2"
        socket.writable.set()
        for _ in range(steps):  # somewhere between "2" finishing and "3" leaving
            await asyncio.sleep(0)
        outbox.offer(b"4")  # must not overtake "3"
        await settle()
        assert socket.sent == [b"1", b"2", b"3", b"4"], steps
        outbox.stop()
        await task

    for steps in range(8):
        asyncio.run(scenario(steps))


def test_a_reader_that_stops_reading_gets_its_error_once_it_reads_again() -> None:
    async def scenario() -> None:
        outbox = Outbox(max_frames=3)
        socket, task = writer(outbox)
        await settle()
        socket.writable.clear()
        for n in range(10):  # the first waits in the socket, three fill the queue
            outbox.offer(b"%d" % n)
        assert outbox.failure is not None
        assert outbox.failure.code is ErrorCode.SLOW_CONSUMER
        await settle()  # the reader is still not reading
        assert socket.sent == []
        socket.writable.set()
        await task
        *delivered, last = socket.sent
        assert delivered == [b"0"]  # the queue is dropped, not flushed
        assert f.decode(last) == f.Error(ErrorCode.SLOW_CONSUMER, outbox.failure.message)
        assert socket.closed == ErrorCode.SLOW_CONSUMER.close_code

    asyncio.run(scenario())


def test_a_writer_cancelled_with_a_send_stalled_closes_it() -> None:
    async def scenario() -> None:
        outbox = Outbox(max_frames=10)
        socket, task = writer(outbox)
        await settle()
        socket.writable.clear()
        outbox.offer(b"stalled")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await settle()
        assert socket.sent == []
        assert not socket.writable._waiters  # type: ignore[attr-defined]
        outbox.fail(ProtocolViolation(ErrorCode.INTERNAL, "late"), flush=False)

    asyncio.run(scenario())

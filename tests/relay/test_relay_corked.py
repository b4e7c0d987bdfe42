"""The corked transport: a loop turn's writes leave in one write, in order, before a close."""

from __future__ import annotations

import asyncio

from relay.corked import FLUSH_BYTES, CorkedTransport


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

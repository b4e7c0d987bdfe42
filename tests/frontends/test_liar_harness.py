"""The lying relay (tests/liar.py) told to be honest: the real SDK works against it.

These prove the harness, not the client's defences: with no hook set the
liar must behave like a relay (convergence, reconnect, snapshot join), and
its routing must be able to keep connections on separate branches.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from liar import LyingRelay
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client import Backoff, Pad, Status
from crypto.envelope import envelope_id
from wire import frames as f
from wire.codes import ErrorCode

HANG = 120.0  # a hang guard, not a speed limit
FAST = Backoff(initial=0.05, cap=0.5)


def opener(link: str) -> contextlib.AbstractAsyncContextManager[Pad]:
    return Pad.open(link, state_dir=None, backoff=FAST)


async def until(condition: Callable[[], bool], *pads: Pad) -> None:
    """Wait, on the pads' own wake-ups, until ``condition()`` holds."""
    while not condition():
        waits = [asyncio.ensure_future(pad.changed()) for pad in pads]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def type_at(pad: Pad, letters: str, at_end: bool) -> None:
    for letter in letters:
        await pad.insert(len(pad.text) if at_end else 0, letter)


def acked_ids(liar: LyingRelay) -> set[bytes]:
    """Ids of every patch the liar acknowledged (there are no snapshots in these;
    session records are left out)."""
    acked = {
        frame.id for conn in liar.connections for frame in conn.sent if isinstance(frame, f.Ack)
    }
    return acked - {envelope_id(record) for record in liar.sessions}


async def settle(*pads: Pad) -> None:
    for pad in pads:
        await pad.synced(HANG)
    await until(lambda: len({pad.text for pad in pads}) == 1, *pads)


def test_honest_liar_two_pads_converge() -> None:
    async def main() -> None:
        async with asyncio.timeout(HANG), LyingRelay() as liar:
            links = await Pad.create(liar.url)
            async with opener(links.edit_link) as a, opener(links.edit_link) as b:
                await asyncio.gather(type_at(a, "abc", True), type_at(b, "XYZ", False))
                await settle(a, b)
                assert sorted(a.text) == sorted("abcXYZ")
                assert a.status == b.status == Status.SAVED
                assert a.alarms == b.alarms == []
            patches = liar.branches["main"].patches
            assert len(patches) >= 1
            assert len(patches) == len(acked_ids(liar))
            assert all(conn.branch == "main" for conn in liar.connections)

    asyncio.run(main())


def test_honest_liar_close_all_and_the_pads_resume() -> None:
    async def main() -> None:
        async with asyncio.timeout(HANG), LyingRelay() as liar:
            links = await Pad.create(liar.url)
            async with opener(links.edit_link) as a, opener(links.edit_link) as b:
                await asyncio.gather(type_at(a, "one", True), type_at(b, "two", False))
                await settle(a, b)
                before = len(liar.connections)
                await liar.close_all()
                await type_at(a, "3", True)  # offline or just back: either way it is kept
                await type_at(b, "4", False)
                await until(lambda: len(liar.connections) >= before + 2, a, b)
                await settle(a, b)
                assert sorted(a.text) == sorted("onetwo34")
                assert a.alarms == b.alarms == []
                assert a.status == b.status == Status.SAVED
            resumed = [
                frame
                for conn in liar.connections[before:]
                for frame in conn.received
                if isinstance(frame, f.Subscribe)
            ]
            assert any(
                frame.start is f.SubscribeFrom.SINCE and frame.since_seq > 0 for frame in resumed
            )

    asyncio.run(main())


def test_honest_liar_serves_a_snapshot_after_an_owner_trim() -> None:
    async def main() -> None:
        async with asyncio.timeout(HANG), LyingRelay() as liar:
            links = await Pad.create(liar.url)
            async with opener(links.edit_link) as owner:
                await type_at(owner, "hello world", True)
                await owner.synced(HANG)
                floor = await owner.trim(HANG)
                assert floor > 0
                main_branch = liar.branches["main"]
                assert main_branch.floor == floor
                assert main_branch.snapshot is not None
                assert main_branch.snapshot[0] == floor
                async with opener(links.view_link) as reader:
                    assert reader.text == owner.text == "hello world"
                    assert reader.alarms == []
            assert any(isinstance(frame, f.Snapshot) for frame in liar.connections[-1].sent), (
                "the fresh reader was not served the snapshot"
            )

    asyncio.run(main())


def test_liar_routes_connections_onto_separate_branches() -> None:
    async def main() -> None:
        async with asyncio.timeout(HANG), LyingRelay() as liar:
            liar.fork("a")
            liar.fork("b")
            liar.route = lambda number: "a" if number % 2 == 0 else "b"
            links = await Pad.create(liar.url)  # connection 0: branch a
            async with (
                opener(links.edit_link) as odd,  # connection 1: branch b
                opener(links.edit_link) as even,  # connection 2: branch a
            ):
                await type_at(odd, "odd", True)
                await type_at(even, "even", True)
                await odd.synced(HANG)
                await even.synced(HANG)
                branch_a, branch_b = liar.branches["a"], liar.branches["b"]
                assert branch_a.patches
                assert branch_b.patches
                assert not set(branch_a.patches) & set(branch_b.patches)
                assert liar.branches["main"].patches == []
                assert [conn.branch for conn in liar.connections[:3]] == ["a", "b", "a"]

    asyncio.run(main())


def test_liar_closes_on_a_wrong_version_and_on_garbage() -> None:
    async def fatal(url: str, message: bytes) -> tuple[f.Frame, int | None]:
        async with connect(url + "/ws", max_size=None) as ws:
            await ws.send(message)
            frame = f.decode(await ws.recv())
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
            return frame, ws.close_code

    async def main() -> None:
        async with asyncio.timeout(HANG), LyingRelay() as liar:
            url = liar.url.replace("http://", "ws://")
            frame, code = await fatal(url, f.encode(f.Hello(f.PROTOCOL_VERSION + 1)))
            assert frame == f.Error(ErrorCode.VERSION_MISMATCH, "please reload")
            assert code == ErrorCode.VERSION_MISMATCH.close_code
            frame, code = await fatal(url, b"\x7f")
            assert isinstance(frame, f.Error)
            assert frame.code == ErrorCode.PROTOCOL
            assert code == ErrorCode.PROTOCOL.close_code

    asyncio.run(main())

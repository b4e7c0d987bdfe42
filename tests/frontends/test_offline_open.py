"""Opening a pad without the relay (issue 19, item 4): ``Pad.open(..., offline=True)``.

A real relay on a loopback port with a SQLite file, stopped and restarted on
the same port.  The pad is opened from its local copy (:mod:`client.offline`)
while the relay is down, edited, and the edits must reach the relay exactly
once when it returns, whatever happened there meanwhile (someone else
typed, a trim past the copy, a rollback).  No timing assertions; waits are
on the pads' own wake-ups under generous hang guards.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from relay_support import RelayHandle, free_port, running_relay
from test_sdk_e2e import TIMEOUT, opener, until

from client import AlarmKind, ConnectionFailed, Pad, Status
from client.doctype import TEXT
from client.offline import LocalCopy, decode, encode, fits
from relay.app import RelayConfig
from relay.edge.faults import Faults


class Relay:
    """A relay on a fixed port over one SQLite file, started and stopped at will."""

    def __init__(self, tmp_path: Path, faults: Faults | None = None) -> None:
        self.port = free_port()
        self.config = RelayConfig(
            store_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}", web_dir=None
        )
        self.faults = faults
        self._running: contextlib.AbstractContextManager[RelayHandle] | None = None
        self.url = f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        assert self._running is None
        running = running_relay(self.config, port=self.port, faults=self.faults)
        await asyncio.to_thread(running.__enter__)
        self._running = running

    async def stop(self) -> None:
        # From another thread: this loop must stay free to answer closing handshakes.
        if self._running is not None:
            running, self._running = self._running, None
            await asyncio.to_thread(running.__exit__, None, None, None)


@contextlib.asynccontextmanager
async def relay_for(tmp_path: Path, faults: Faults | None = None) -> AsyncIterator[Relay]:
    relay = Relay(tmp_path, faults)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def offline_opener(
    link: str, state: Path, **options: object
) -> contextlib.AbstractAsyncContextManager[Pad]:
    return opener(link, state_dir=state, offline=True, retry_first_connect=False, **options)


async def type_at_end(pad: Pad, letters: str) -> None:
    for letter in letters:
        await pad.insert(len(pad.text), letter)


def test_a_pad_opened_once_opens_offline_takes_edits_and_syncs_them(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        async with relay_for(tmp_path) as relay:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=state) as pad:
                await type_at_end(pad, "online 🙂 ")
                await pad.synced(TIMEOUT)
            await relay.stop()
            # Without offline=True a dead relay is still an error, at once.
            with pytest.raises(ConnectionFailed, match="cannot reach"):
                async with opener(links.edit_link, state_dir=state, retry_first_connect=False):
                    pass
            async with offline_opener(links.edit_link, state) as pad:
                assert pad.opened_offline
                assert pad.status is Status.OFFLINE
                assert pad.text == "online 🙂 "
                await type_at_end(pad, "offline")
                await pad.insert(0, ">")
                assert pad.text == ">online 🙂 offline"
            # Closed while offline: a second offline open has the edits, unsent.
            async with offline_opener(links.edit_link, state) as pad:
                assert pad.text == ">online 🙂 offline"
                await type_at_end(pad, "!")
                await relay.start()
                await pad.synced(TIMEOUT)
                assert pad.text == ">online 🙂 offline!"
                assert not pad.alarms
            async with opener(links.view_link) as reader:
                assert reader.text == ">online 🙂 offline!"

    asyncio.run(main())


def test_without_a_local_copy_offline_fails_with_one_clear_line(tmp_path: Path) -> None:
    async def main() -> None:
        async with relay_for(tmp_path) as relay:
            links = await Pad.create(relay.url)
            await relay.stop()
            with pytest.raises(ConnectionFailed, match="no local copy of this pad"):
                async with offline_opener(links.edit_link, tmp_path / "state"):
                    pass

    asyncio.run(main())


def test_offline_open_with_the_relay_up_is_an_ordinary_open(tmp_path: Path) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        async with relay_for(tmp_path) as relay:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=state) as pad:
                await type_at_end(pad, "one")
                await pad.synced(TIMEOUT)
            async with opener(links.edit_link) as other:
                await type_at_end(other, " two")
                await other.synced(TIMEOUT)
            async with offline_opener(links.edit_link, state) as pad:
                await until(lambda: pad.text == "one two", pad)
                await type_at_end(pad, " three")
                await pad.synced(TIMEOUT)
            async with opener(links.view_link) as reader:
                assert reader.text == "one two three"

    asyncio.run(main())


def test_someone_else_edits_meanwhile_and_offline_work_is_rebased_not_lost(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        async with relay_for(tmp_path) as relay:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=state) as pad:
                await type_at_end(pad, "middle")
                await pad.synced(TIMEOUT)
            async with opener(links.edit_link) as other:  # while we are away
                await other.insert(0, "start ")
                await other.delete(len(other.text) - 6, 6)
                await type_at_end(other, "end")
                await other.synced(TIMEOUT)
            await relay.stop()
            async with offline_opener(links.edit_link, state) as pad:
                assert pad.text == "middle"  # what this device last verified
                await pad.insert(3, "[A]")
                await type_at_end(pad, "[B]")
                await relay.start()
                await pad.synced(TIMEOUT)
                assert not pad.alarms
                final = pad.text
            # Both runs of ours survive exactly once; theirs stands around them.
            assert final.count("[A]") == 1, final
            assert final.count("[B]") == 1, final
            assert final.startswith("start "), final
            assert "end" in final, final
            async with opener(links.view_link) as reader:
                assert reader.text == final

    asyncio.run(main())


def test_a_relay_trimmed_past_the_copy_rejoins_and_keeps_the_offline_work(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"

    async def main() -> None:
        async with relay_for(tmp_path) as relay:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=state) as pad:
                await type_at_end(pad, "kept ")
                await pad.synced(TIMEOUT)
            async with opener(links.edit_link) as other:  # trims past our copy
                await type_at_end(other, "theirs ")
                await other.synced(TIMEOUT)
                await other.trim(TIMEOUT)
            await relay.stop()
            async with offline_opener(links.edit_link, state) as pad:
                assert pad.text == "kept "
                await pad.insert(0, "mine: ")
                await relay.start()
                await pad.synced(TIMEOUT)
                assert pad.text == "mine: kept theirs "
                assert not [a for a in pad.alarms if a.kind is AlarmKind.ROLLBACK]
            async with opener(links.view_link) as reader:
                assert reader.text == "mine: kept theirs "

    asyncio.run(main())


def test_a_relay_that_returns_without_the_stored_head_is_a_rollback(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rollback: list[int] = []

    async def main() -> None:
        faults = Faults(rollback=lambda _: rollback[0] if rollback else None)
        async with relay_for(tmp_path, faults) as relay:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=state) as pad:
                for letter in "abc":
                    await pad.insert(len(pad.text), letter)
                    await pad.synced(TIMEOUT)
            await relay.stop()
            async with offline_opener(links.edit_link, state) as pad:
                await type_at_end(pad, "d")
                rollback.append(1)  # the relay comes back serving one patch only
                await relay.start()
                await until(lambda: pad.distrust is not None, pad)
                assert pad.distrust is not None
                assert pad.distrust.kind in (AlarmKind.ROLLBACK, AlarmKind.FORK)
                assert pad.status is not Status.SAVED
                assert pad.text.endswith("d")  # the offline work is still here

    asyncio.run(main())


async def crash_after_someone_else_typed(
    relay: Relay, unacked: list[bool], state: Path, crashed: Path
) -> tuple[str, str, bytes]:
    """We type "one" (acknowledged), someone else " two", we " three" (stored,
    never acknowledged: ``unacked`` on), then the process dies: ``crashed`` is
    what it leaves on disk.  Returns the edit and view links, and the copy as
    it was before " two" (older than the log at the crash)."""
    links = await Pad.create(relay.url)
    async with opener(links.edit_link, state_dir=state) as pad:
        await type_at_end(pad, "one")
        await pad.synced(TIMEOUT)
        before = (next((state / "pads").iterdir()) / "copy").read_bytes()
        async with opener(links.edit_link) as other:
            await type_at_end(other, " two")
            await other.synced(TIMEOUT)
        await until(lambda: pad.text == "one two", pad)
        unacked.append(True)  # stored, never acknowledged: stays in the log
        await type_at_end(pad, " three")
        shutil.copytree(state, crashed)  # what a crash right now leaves on disk
    return links.edit_link, links.view_link, before


def test_a_crash_after_someone_else_typed_still_opens_offline_with_the_work(
    tmp_path: Path,
) -> None:
    """The log moved to a later head (someone else's patch came between) and
    the process died before its periodic copy: the copy written before the
    log's new base still fits it, so the pad opens offline with the work."""
    unacked: list[bool] = []

    async def main() -> None:
        async with relay_for(tmp_path, Faults(drop_ack=lambda _: bool(unacked))) as relay:
            crashed = tmp_path / "crashed"
            edit, view, _ = await crash_after_someone_else_typed(
                relay, unacked, tmp_path / "state", crashed
            )
            await relay.stop()
            async with offline_opener(edit, crashed) as pad:
                assert pad.opened_offline
                assert pad.text == "one two three"
                unacked.clear()
                await relay.start()
                await pad.synced(TIMEOUT)
                assert pad.text == "one two three"
            async with opener(view) as reader:
                assert reader.text == "one two three"

    asyncio.run(main())


def test_a_copy_older_than_the_log_is_refused_with_one_line_saying_so(tmp_path: Path) -> None:
    unacked: list[bool] = []

    async def main() -> None:
        async with relay_for(tmp_path, Faults(drop_ack=lambda _: bool(unacked))) as relay:
            crashed = tmp_path / "crashed"
            edit, _, before = await crash_after_someone_else_typed(
                relay, unacked, tmp_path / "state", crashed
            )
            await relay.stop()
            (next((crashed / "pads").iterdir()) / "copy").write_bytes(before)
            with pytest.raises(ConnectionFailed, match="older than its unsent edits"):
                async with offline_opener(edit, crashed):
                    pass

    asyncio.run(main())


# --- the format ------------------------------------------------------------------------


def copies() -> Iterator[LocalCopy]:
    yield LocalCopy(0, bytes(32), 0, "")
    yield LocalCopy(7, bytes(range(32)), 7, "a\r\nb 🙂 中", None, {b"s" * 8: (3, 7)}, (50, 1))


@pytest.mark.parametrize("copy", list(copies()))
def test_the_copy_format_round_trips_and_detects_damage(copy: LocalCopy) -> None:
    data = encode(TEXT, copy)
    assert decode(TEXT, data) == copy
    damaged = data[:-1] + bytes([data[-1] ^ 1]) if copy.doc else data + b"x"
    with pytest.raises(ValueError, match="damaged"):
        decode(TEXT, damaged)


def test_a_log_made_on_another_head_does_not_fit_the_copy() -> None:
    assert fits([], bytes(32))
    assert not fits([b"\x00" * 10], bytes(32))

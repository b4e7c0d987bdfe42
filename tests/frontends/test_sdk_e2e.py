"""End-to-end: SDK clients against a real relay on loopback (issue 5's "Done when").

Every test starts the real relay (uvicorn, real websockets), drives
:class:`client.Pad` and asserts what a user would see: the text, the status,
the alarms, the peers.  No timing assertions; waits are on events
(:meth:`Pad.changed`) under generous timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from relay_support import Client, RelayHandle, free_port, running_relay

import client.pad
import crypto
from client import (
    AlarmKind,
    Backoff,
    ConnectionFailed,
    Pad,
    PadNotFound,
    ReadOnly,
    RelayRefused,
    Status,
)
from client.transport import Transport, TransportClosed, WebsocketsConnector
from relay.app import RelayConfig
from relay.edge.faults import Faults
from relay.limits import Limits
from wire import frames as f

TIMEOUT = 300.0  # a hang guard (one wait this long has hung), not a speed limit
ROOT = Path(__file__).resolve().parents[2]
FAST = Backoff(initial=0.05, cap=0.5)


def relay_on(port: int, config: RelayConfig) -> contextlib.AbstractContextManager[RelayHandle]:
    """A relay on a fixed port, so it can be restarted under the same links."""
    return running_relay(config, port=port)


async def until(condition: Callable[[], bool], *pads: Pad, timeout: float = TIMEOUT) -> None:
    """Wait, on the pads' own wake-ups, until ``condition()`` holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            waits = [asyncio.ensure_future(pad.changed()) for pad in pads]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def refusals(url: str) -> dict[str, float]:
    text = httpx.get(url.rstrip("/") + "/metrics", timeout=TIMEOUT).text
    found = re.findall(r'blindpad_refusals_total\{reason="(\w+)"\} ([0-9.e+]+)', text)
    return {reason: float(value) for reason, value in found}


def opener(link: str, **options: object) -> contextlib.AbstractAsyncContextManager[Pad]:
    options = {"state_dir": None, "backoff": FAST, **options}
    return Pad.open(link, **options)  # type: ignore[arg-type]


# --- three typists -------------------------------------------------------------------


async def _type(pad: Pad, letters: str, rng: random.Random) -> None:
    for letter in letters:
        await pad.insert(rng.randrange(len(pad.text) + 1), letter)
        await asyncio.sleep(rng.random() * 0.004)


def test_three_clients_converge_exactly_once_through_refusals_and_a_cut() -> None:
    cut: list[int] = []

    def close_after(connection: int, sent: int) -> bool:
        # Early (the typing lasts ~0.1 s), so the cut lands while work is
        # unacknowledged and the pad must reconnect before synced() returns.
        if not cut and sent == 8:
            cut.append(connection)
            return True
        return False

    limits = Limits(rate_per_second=60, rate_burst=30)
    config = RelayConfig(store_url="memory:", web_dir=None, limits=limits)
    alphabets = ["abcdefghijklmnopqrstuvwxyz" * 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 2, "😀中文" * 17]
    with running_relay(config, faults=Faults(close_after=close_after)) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with (
                opener(links.edit_link) as a,
                opener(links.edit_link) as b,
                opener(links.edit_link) as c,
            ):
                pads = (a, b, c)
                await asyncio.gather(
                    *(
                        _type(pad, letters, random.Random(i))
                        for i, (pad, letters) in enumerate(zip(pads, alphabets, strict=True))
                    )
                )
                for pad in pads:
                    await pad.synced(TIMEOUT)
                await until(lambda: a.text == b.text == c.text, *pads)
                assert sorted(a.text) == sorted("".join(alphabets))
                assert all(pad.status == Status.SAVED for pad in pads)
                assert sum(pad.session.reconnects for pad in pads) >= 1
            async with opener(links.view_link) as fresh:
                assert fresh.text == a.text

        asyncio.run(main())
        seen = refusals(relay.url)
        assert cut, "the fault hook never cut a connection"
        assert seen.get("STALE", 0) + seen.get("RATE_LIMITED", 0) > 0, seen


# --- relay restarts -----------------------------------------------------------------


def test_cut_mid_typing_and_offline_edits_survive_a_relay_restart(tmp_path: Path) -> None:
    port = free_port()
    config = RelayConfig(store_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}", web_dir=None)

    async def type_some(pad: Pad, letters: str) -> None:
        for letter in letters:
            await pad.insert(len(pad.text), letter)

    async def main() -> None:
        first = relay_on(port, config)
        links = await Pad.create(first.__enter__().url)
        pad = await Pad.open(links.edit_link, state_dir=tmp_path / "state", backoff=FAST)
        try:
            await type_some(pad, "before ")
            await pad.synced(TIMEOUT)
            news = pad.events()
            await type_some(pad, "cut ")  # in flight when the relay goes away
            # Stop the relay from another thread: this loop must stay free to
            # answer the closing handshake.
            await asyncio.to_thread(first.__exit__, None, None, None)
            await until(lambda: pad.status == Status.OFFLINE, pad)
            await type_some(pad, "offline ")  # kept, rebased, sent once it is back
            assert pad.text == "before cut offline "
            second = relay_on(port, config)
            await asyncio.to_thread(second.__enter__)
            try:
                await pad.synced(TIMEOUT)
                async with opener(links.view_link) as reader:
                    assert reader.text == "before cut offline "
                kinds: list[str] = []
                while not kinds or kinds[-1] != "ConnectionRestored":
                    kinds.append(type(await anext(news)).__name__)
                assert "ConnectionLost" in kinds
                news.close()
            finally:
                await pad.aclose()
                await asyncio.to_thread(second.__exit__, None, None, None)
        finally:
            await pad.aclose()

    asyncio.run(main())


# --- a crash with a lost ack ----------------------------------------------------------

CRASHER = """
import asyncio, sys
from client import Pad, Backoff

async def main(link, state):
    pad = await Pad.open(link, state_dir=state, backoff=Backoff(0.05, cap=0.5))
    for letter in "ab":
        await pad.insert(len(pad.text), letter)
        await pad.synced(60)
    for letter in "cde":
        await pad.insert(len(pad.text), letter)
    assert len(pad.session.pending()) == 3, pad.session.pending()
    print("typed", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def crasher_faults() -> Faults:
    """Faults that lose the acks of the crasher's "c", "d" and "e" (the 3rd to 5th patch)."""
    stored: list[bytes] = []

    def drop_ack(patch_id: bytes) -> bool:
        stored.append(patch_id)
        return 3 <= len(stored) <= 5

    return Faults(drop_ack=drop_ack)


async def run_crasher(folder: Path, link: str, state: Path, witness: Pad) -> None:
    """Run CRASHER in its own process until ``witness`` shows its "abcde", then SIGKILL it."""
    script = folder / "crasher.py"
    script.write_text(CRASHER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        link,
        str(state),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
        assert line.strip() == b"typed"
        await until(lambda: witness.text == "abcde", witness)
    finally:
        proc.kill()
        await proc.wait()


def test_lost_acks_and_a_killed_client_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with running_relay(faults=crasher_faults()) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.view_link) as watcher:
                await run_crasher(tmp_path, links.edit_link, state, watcher)
                async with opener(links.edit_link, state_dir=state) as reopened:
                    assert reopened.text == "abcde"
                    assert reopened.status == Status.SAVED
                    await reopened.insert(5, "f")
                    await reopened.synced(TIMEOUT)
                await until(lambda: watcher.text == "abcdef", watcher)

        asyncio.run(main())


# --- integrity alarms -----------------------------------------------------------------


def test_a_rolled_back_history_raises_the_alarm(tmp_path: Path) -> None:
    target: list[int] = []
    with running_relay(faults=Faults(rollback=lambda _: target[0] if target else None)) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, state_dir=tmp_path) as pad:
                for letter in "abc":
                    await pad.insert(len(pad.text), letter)
                    await pad.synced(TIMEOUT)
                assert not pad.alarms
            target.append(1)
            async with opener(links.edit_link, state_dir=tmp_path) as again:
                assert any(alarm.kind is AlarmKind.ROLLBACK for alarm in again.alarms)

        asyncio.run(main())


def test_a_stored_invalid_patch_is_skipped_with_an_alarm() -> None:
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            keys = crypto.parse_link(links.edit_link).keys
            async with opener(links.edit_link) as pad:
                await pad.insert(0, "ok")
                await pad.synced(TIMEOUT)
                head = pad.session.last_head
                assert head is not None
                junk = crypto.seal(
                    keys,
                    crypto.Author.generate("vandal"),
                    crypto.Kind.PATCH,
                    head[1],
                    b"this is not a patch",
                )
                async with Client.connect(RelayHandle(relay.url)) as raw:
                    await raw.send(
                        f.Subscribe(
                            1,
                            keys.channel_id,
                            f.SubscribeFrom.SINCE,
                            head[0],
                            keys.verify_key,
                            keys.read_token,
                        )
                    )
                    assert isinstance(await raw.push(junk), f.Ack)
                await until(lambda: bool(pad.alarms), pad)
                assert pad.alarms[0].kind is AlarmKind.INVALID_PATCH
                await pad.insert(2, "!")
                await pad.synced(TIMEOUT)
            async with opener(links.view_link) as fresh:
                assert fresh.text == "ok!"
                assert [a.kind for a in fresh.alarms] == [AlarmKind.INVALID_PATCH]

        asyncio.run(main())


# --- view links, presence, status -------------------------------------------------------


class Recording:
    """A connector that records the type byte of every frame sent."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.inner = WebsocketsConnector()

    async def connect(self, url: str) -> Transport:
        transport = await self.inner.connect(url)
        recording = self

        class Recorded:
            async def send(self, data: bytes) -> None:
                recording.sent.append(data[0])
                await transport.send(data)

            async def recv(self) -> bytes:
                return await transport.recv()

            async def close(self) -> None:
                await transport.close()

        return Recorded()


def test_a_view_link_reads_watches_and_shows_presence_but_never_writes() -> None:
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            recording = Recording()
            async with (
                opener(links.edit_link, name="editor") as editor,
                opener(links.view_link, name="viewer", connector=recording) as viewer,
            ):
                changes = viewer.events()
                await editor.insert(0, "hello")
                await editor.set_presence(cursor=(5, 5))
                await until(lambda: viewer.text == "hello" and bool(viewer.peers), viewer)
                assert viewer.peers[0].name == "editor"
                assert viewer.peers[0].cursor == (5, 5)
                await viewer.set_presence(cursor=(1, 3))
                await until(lambda: bool(editor.peers), editor)
                assert editor.peers[0].name == "viewer"
                assert editor.peers[0].cursor == (1, 3)
                with pytest.raises(ReadOnly):
                    await viewer.insert(0, "x")
                assert viewer.read_only
                changes.close()
            writes = {f.FrameType.PUSH, f.FrameType.SNAPSHOT_CHUNK, f.FrameType.TRIM}
            assert recording.sent
            assert not writes & set(recording.sent)

        asyncio.run(main())


def test_status_is_saved_only_after_the_ack() -> None:
    stored: list[bytes] = []

    def drop_ack(patch_id: bytes) -> bool:
        stored.append(patch_id)
        return len(stored) == 1

    with running_relay(faults=Faults(drop_ack=drop_ack)) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link) as pad, opener(links.view_link) as watcher:
                assert pad.status == Status.SAVED
                await pad.insert(0, "x")
                assert pad.status == Status.SYNCING
                await until(lambda: watcher.text == "x", watcher)  # committed, ack dropped
                assert pad.status == Status.SYNCING
                await pad.insert(1, "y")  # its ack proves "x" landed too
                await pad.synced(TIMEOUT)
                assert pad.status == Status.SAVED == "saved"
                assert pad.text == "xy"

        asyncio.run(main())


def test_a_writer_leaving_snapshots_its_head_so_the_next_opens_from_it() -> None:
    """Issue 14: a pad left at rest opens from a snapshot of its head, however
    long its history; a short tail (fewer than REST_TAIL patches) is left as it is."""
    from client.snapshots import REST_TAIL

    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link) as pad:
                for i in range(REST_TAIL - 1):
                    await pad.insert(i, "a")
                    await pad.synced(TIMEOUT)
            async with opener(links.view_link) as reader:
                engine = reader.session.engine
                assert engine.head.height == REST_TAIL - 1  # a short tail: no snapshot
                assert engine.snapshots.height == 0
                assert reader.vouched is None
            async with opener(links.edit_link) as pad:
                await pad.insert(0, "b")
                await pad.synced(TIMEOUT)
            async with opener(links.view_link) as reader:
                engine = reader.session.engine
                assert reader.text == "b" + "a" * (REST_TAIL - 1)
                assert engine.snapshots.height == engine.head.height == REST_TAIL
                assert reader.vouched is not None  # it opened from the writer's snapshot

        asyncio.run(main())


def test_a_lost_ack_with_nothing_after_it_is_found_by_a_resume() -> None:
    """The only ACK lost: the client stayed "syncing" for as long as the connection
    lived.  Now it re-reads after DEFAULT_RESUME_AFTER_MS of its injected clock."""
    from client.relayside import DEFAULT_RESUME_AFTER_MS

    stored: list[bytes] = []
    now = [1_800_000_000_000]

    def drop_ack(patch_id: bytes) -> bool:
        stored.append(patch_id)
        return len(stored) == 1

    with running_relay(faults=Faults(drop_ack=drop_ack)) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with (
                opener(links.edit_link, clock=lambda: now[0]) as pad,
                opener(links.view_link) as watcher,
            ):
                await pad.insert(0, "x")
                await until(lambda: watcher.text == "x", watcher)  # committed, ack dropped
                await asyncio.sleep(0.2)
                assert pad.status == Status.SYNCING
                now[0] += DEFAULT_RESUME_AFTER_MS
                await pad.synced(TIMEOUT)  # the re-read brings "x" back as ours
                assert (pad.status, pad.text, pad.alarms) == (Status.SAVED, "x", [])

        asyncio.run(main())


def test_peers_expire_after_the_presence_timeout() -> None:
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link, presence_timeout=0.6) as watcher:
                events = watcher.events()
                # The quiet peer heartbeats every 20 s: to the watcher it falls silent.
                async with opener(links.edit_link, presence_timeout=60) as quiet:
                    await quiet.set_presence(name="quiet")
                    kinds = [type(await anext(events)).__name__ for _ in range(2)]
                    assert kinds == ["PeerJoined", "PeerLeft"]
                    assert not watcher.peers
                events.close()

        asyncio.run(main())


# --- opening: a missing pad, nothing listening, two processes (issue 13) -------------


class Counting:
    """Counts connection attempts; refuses the first ``refuse`` of them itself."""

    def __init__(self, refuse: int = 0) -> None:
        self.attempts = 0
        self.refuse = refuse

    async def connect(self, url: str) -> Transport:
        self.attempts += 1
        if self.attempts <= self.refuse:
            raise TransportClosed(f"cannot connect to {url}: refused by the test")
        return await WebsocketsConnector().connect(url)


def test_opening_a_pad_the_relay_does_not_have_raises_and_creates_nothing() -> None:
    with running_relay() as relay:

        async def main() -> None:
            stranger = crypto.PadLink.new(relay.url)
            for link in (stranger, stranger.view_link()):
                with pytest.raises(PadNotFound, match="no such pad") as raised:
                    await Pad.open(link, state_dir=None)
                assert isinstance(raised.value, RelayRefused)  # what callers caught before
            head = httpx.get(f"{relay.url}/v1/channels/{stranger.keys.channel_id.hex()}/head")
            assert head.status_code == 404  # opening created nothing
            async with Pad.open(stranger, state_dir=None, create=True) as made:
                assert made.text == ""
            links = await Pad.create(relay.url)
            async with Pad.open(links.edit_link, state_dir=None) as pad:
                assert pad.text == ""

        asyncio.run(main())


def test_no_retry_after_connection_refused_when_retry_first_connect_is_off() -> None:
    link = crypto.PadLink.new(f"http://127.0.0.1:{free_port()}")  # nothing listens there

    async def main() -> None:
        counting = Counting()
        with pytest.raises(ConnectionFailed, match="cannot reach the relay"):
            await Pad.open(
                link,
                state_dir=None,
                connector=counting,
                backoff=FAST,
                open_timeout=3600,
                retry_first_connect=False,
            )
        assert counting.attempts == 1
        creating = Counting()
        with pytest.raises(ConnectionFailed):
            await Pad.create(
                str(link.base_url),
                connector=creating,
                open_timeout=3600,
                retry_first_connect=False,
            )
        assert creating.attempts == 1

    asyncio.run(main())


def test_the_first_connect_is_retried_by_default_and_later_ones_always() -> None:
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            counting = Counting(refuse=2)
            async with opener(links.edit_link, connector=counting) as pad:
                assert counting.attempts == 3
                assert pad.text == ""
            late = Counting(refuse=0)
            async with opener(links.edit_link, connector=late, retry_first_connect=False) as pad:
                await pad.insert(0, "x")
                await pad.synced(TIMEOUT)
            assert late.attempts == 1

        asyncio.run(main())


def test_two_processes_of_one_user_share_a_state_dir_and_a_dead_ones_slot_is_adopted(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with running_relay(faults=crasher_faults()) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            # This process holds slot 0 for the whole test, as a `watch` would;
            # the crasher writes beside it, in slot 1.
            async with opener(links.edit_link, state_dir=state) as resident:
                await run_crasher(tmp_path, links.edit_link, state, resident)
                channel = crypto.parse_link(links.edit_link).keys.channel_id.hex()
                left = state / "pads" / channel / "slot-1" / "pending"
                assert left.stat().st_size > 0  # the dead process's log
                async with opener(links.edit_link, state_dir=state) as adopter:
                    # Slot 1's log held c, d, e (acks lost): resent, found
                    # stored, counted once.
                    assert adopter.text == "abcde"
                    assert adopter.status == Status.SAVED
                    await adopter.insert(5, "f")
                    await resident.insert(0, ">")
                    await adopter.synced(TIMEOUT)
                    await resident.synced(TIMEOUT)
                    await until(lambda: resident.text == adopter.text == ">abcdef", resident)
                assert left.stat().st_size == 0  # adopted, acknowledged, cleared

        asyncio.run(main())


class HoldingPushes:
    """Holds the PUSH frames (type 0x04) it is given while ``held`` is set; sends
    them, in order, when :meth:`release` is called."""

    def __init__(self) -> None:
        self.held = False
        self.kept: list[bytes] = []
        self.inner: Transport | None = None

    async def connect(self, url: str) -> Transport:
        self.inner = await WebsocketsConnector().connect(url)
        return self  # type: ignore[return-value]

    async def send(self, data: bytes) -> None:
        assert self.inner is not None
        if self.held and data[0] == 0x04:
            self.kept.append(data)
        else:
            await self.inner.send(data)

    async def recv(self) -> bytes:
        assert self.inner is not None
        return await self.inner.recv()

    async def close(self) -> None:
        assert self.inner is not None
        await self.inner.close()

    async def release(self) -> None:
        self.held = False
        assert self.inner is not None
        for data in self.kept:
            await self.inner.send(data)
        self.kept.clear()


def test_a_live_writer_far_ahead_of_the_relay_waits_for_its_work_to_land(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Backpressure (issue 15): with others writing, past BACKLOG edits since
    one of ours last landed, a write waits until one lands; the edit is
    applied meanwhile, nothing is lost, and the wait ends when the relay
    catches up (or the pad closes).  Alone, a writer never waits."""
    monkeypatch.setattr(client.pad, "BACKLOG", 3)
    holding = HoldingPushes()
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with (
                opener(links.edit_link, connector=holding) as pad,
                opener(links.edit_link) as other,
            ):
                holding.held = True
                for i in range(5):  # alone: never waits, even past the backlog
                    await asyncio.wait_for(pad.insert(i, "a"), TIMEOUT)  # a hang guard
                await holding.release()
                await pad.synced(TIMEOUT)
                await other.insert(0, "b")  # someone else writes
                await until(lambda: pad.text == "baaaaa", pad)
                holding.held = True
                for i in range(3):
                    await pad.insert(i, "x")  # returns at once: within the backlog
                waiting = asyncio.create_task(pad.insert(3, "y"))
                for _ in range(50):
                    await asyncio.sleep(0)
                assert not waiting.done()  # nothing of ours can land: its push is held
                assert pad.text == "xxxybaaaaa"  # the edit is in, only the caller waits
                await holding.release()
                await asyncio.wait_for(waiting, TIMEOUT)  # a hang guard
                await pad.synced(TIMEOUT)
                await until(lambda: other.text == pad.text == "xxxybaaaaa", pad, other)
                holding.held = True
                for _ in range(3):
                    await pad.insert(0, "z")
                closing = asyncio.create_task(pad.insert(0, "w"))
                for _ in range(50):
                    await asyncio.sleep(0)
                assert not closing.done()
            await asyncio.wait_for(closing, TIMEOUT)  # closing the pad ends the wait

        asyncio.run(main())

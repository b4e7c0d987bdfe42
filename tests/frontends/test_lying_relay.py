"""A lying relay against the real SDK over real websockets (docs/SECURITY.md, client.trust).

Each case scripts :class:`liar.LyingRelay` to lie one way and asserts what a
user would see: the documented alarm, a status that never reads "saved" over
a rolled-back or forked text, and text that is not replaced by the suspect
one.  Deadlines (the watchdog's resumes) run on an injected clock the test
moves; nothing here asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from liar import LyingRelay

import crypto
from client import AlarmKind, Backoff, Distrusted, Pad, Status
from client.relayside import DEFAULT_RESUME_AFTER_MS
from crypto.envelope import Kind, envelope_id
from wire import frames as f

HANG = 120.0  # a hang guard, not a speed limit
FAST = Backoff(initial=0.05, cap=0.5)


class Clock:
    """A shared injected clock: real time plus what the test adds."""

    def __init__(self) -> None:
        self.skew = 0

    def __call__(self) -> int:
        return int(asyncio.get_running_loop().time() * 1000) + 1_700_000_000_000 + self.skew


def opener(
    link: str, state_dir: Path | None = None, **options: object
) -> contextlib.AbstractAsyncContextManager[Pad]:
    return Pad.open(link, state_dir=state_dir, backoff=FAST, **options)  # type: ignore[arg-type]


async def a_change(*pads: Pad) -> None:
    """Until something happens on one of the pads, or a second passed."""
    waits = [asyncio.ensure_future(pad.changed()) for pad in pads]
    _, pending = await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def until(condition: Callable[[], bool], *pads: Pad) -> None:
    while not condition():
        await a_change(*pads)


async def type_patches(pad: Pad, letters: str) -> None:
    """One acknowledged patch per letter, at the end."""
    for letter in letters:
        await pad.insert(len(pad.text), letter)
        await pad.synced(HANG)


def kinds(pad: Pad) -> list[AlarmKind]:
    return [alarm.kind for alarm in pad.alarms]


async def alarmed(pad: Pad, kind: AlarmKind, clock: Clock | None = None) -> None:
    """Wait for ``kind``; with ``clock``, move it past each resume deadline meanwhile."""
    while kind not in kinds(pad):
        if clock is not None:
            clock.skew += DEFAULT_RESUME_AFTER_MS // 4
        await a_change(pad)


async def distrusted(pad: Pad, kind: AlarmKind) -> None:
    """The pad never says "saved" and synced() says why, in the alarm's words."""
    assert pad.status is not Status.SAVED
    with pytest.raises(Distrusted) as caught:
        await pad.synced(HANG)
    assert caught.value.kind == kind.value


def run(main: Callable[[LyingRelay], object]) -> None:
    async def wrapped() -> None:
        async with asyncio.timeout(HANG * 2), LyingRelay() as liar:
            await main(liar)  # type: ignore[misc]

    asyncio.run(wrapped())


# --- rollback --------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["truth", "real head", "higher"])
def test_a_restarted_client_served_an_older_history_raises_rollback(
    tmp_path: Path, claim: str
) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, tmp_path) as pad:
            await type_patches(pad, "abcdef")
        branch = liar.branches["main"]
        real = (branch.head_seq, branch.head_id)
        branch.patches = branch.patches[:3]
        if claim == "real head":
            liar.claim = lambda conn, b: real
        elif claim == "higher":
            liar.claim = lambda conn, b: (99, os.urandom(32))
        async with opener(links.edit_link, tmp_path) as again:
            assert again.text == "abc"
            await alarmed(again, AlarmKind.ROLLBACK)
            await distrusted(again, AlarmKind.ROLLBACK)
        # the remembered point did not move back
        head = json.loads((next(tmp_path.glob("pads/*")) / "head.json").read_text())
        assert (head["height"], head["id"]) == (6, real[1].hex())

    run(main)


def test_a_genuine_old_snapshot_with_the_real_head_claimed_raises_rollback(
    tmp_path: Path,
) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, tmp_path) as pad:
            await type_patches(pad, "abc")
            assert await pad.trim(HANG) == 3
            old = dataclasses.replace(liar.branches["main"], patches=[])
            await type_patches(pad, "def")
        branch = liar.branches["main"]
        real = (branch.head_seq, branch.head_id)
        liar.branches["main"] = old  # snapshot at 3, nothing after it
        liar.claim = lambda conn, b: real
        async with opener(links.edit_link, tmp_path) as again:
            assert again.text == "abc"
            await alarmed(again, AlarmKind.ROLLBACK)
            await distrusted(again, AlarmKind.ROLLBACK)

    run(main)


# --- forks ---------------------------------------------------------------------------


def _route_next_to(liar: LyingRelay, branch: str) -> None:
    target = len(liar.connections)
    liar.route = lambda n: branch if n == target else "main"


def test_a_fork_served_on_reconnect_under_new_numbers_is_caught_and_not_shown() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        liar.forward_ephemerals = False  # this case is about what a reconnect is served
        async with opener(links.edit_link) as a:
            await type_patches(a, "ab")
            liar.fork("evil", at_seq=1)
            _route_next_to(liar, "evil")
            async with opener(links.edit_link) as c:
                assert c.text == "a"
                await type_patches(c, "XY")
            evil = liar.branches["evil"].patches[1:]  # the branch beside a's second patch
            liar.serve = lambda conn, served: [(3 + i, e) for i, e in enumerate(evil)]
            await liar.close_all()
            await alarmed(a, AlarmKind.FORK)
            assert a.text == "ab"  # the suspect branch is never shown
            await distrusted(a, AlarmKind.FORK)

    run(main)


def test_two_clients_kept_on_different_branches_at_equal_height_both_alarm() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as owner:
            await type_patches(owner, "x")
        liar.fork("a")
        liar.fork("b")
        first = len(liar.connections)
        liar.route = lambda n: "a" if n == first else "b"
        async with opener(links.edit_link) as a, opener(links.edit_link) as b:
            await a.set_presence(name="alice")
            await b.set_presence(name="bob")
            await type_patches(a, "1")
            await type_patches(b, "2")
            await alarmed(a, AlarmKind.FORK)
            await alarmed(b, AlarmKind.FORK)
            assert "bob" in next(x for x in a.alarms if x.kind is AlarmKind.FORK).detail
            assert "alice" in next(x for x in b.alarms if x.kind is AlarmKind.FORK).detail
            assert (a.text, b.text) == ("x1", "x2")
            for pad in (a, b):
                await distrusted(pad, AlarmKind.FORK)

    run(main)


def test_a_restart_across_a_snapshot_proves_descent_or_catches_the_fork(tmp_path: Path) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, tmp_path) as a:
            await type_patches(a, "ab")
        # honest: someone else writes on, snapshots at 5, history kept
        async with opener(links.edit_link) as b:
            await type_patches(b, "cde")
            kept = list(liar.branches["main"].patches)
            assert await b.trim(HANG) == 5
        main_branch = liar.branches["main"]
        main_branch.patches, main_branch.floor = kept, 0
        async with opener(links.edit_link, tmp_path) as again:
            await again.synced(HANG)
            assert (again.text, again.alarms) == ("abcde", [])
            since = [x.since_seq for x in liar.connections[-1].received if _sub(x)]
            assert since == [0, 2]  # the snapshot, then the proof from the remembered point
        # a fork across a compaction: another branch from patch 1, snapshotted above
        liar.fork("evil", at_seq=1)
        _route_next_to(liar, "evil")
        async with opener(links.edit_link) as c:
            await type_patches(c, "WXYZ")
            kept = list(liar.branches["evil"].patches)
            assert await c.trim(HANG) == 5
        evil = liar.branches["evil"]
        evil.patches, evil.floor = kept, 0
        other = tmp_path / "other"  # a device that verified "ab" (patch 2) only
        folder = other / "pads" / (liar.channel_id or b"").hex()
        folder.mkdir(parents=True)
        second = envelope_id(liar.branches["main"].patches[1])
        folder.joinpath("head.json").write_text(json.dumps({"height": 2, "id": second.hex()}))
        _route_next_to(liar, "evil")
        async with opener(links.edit_link, other) as victim:
            await alarmed(victim, AlarmKind.FORK)
            await distrusted(victim, AlarmKind.FORK)

    run(main)


def _sub(frame: object) -> bool:
    return isinstance(frame, f.Subscribe)


def test_history_trimmed_past_the_remembered_point_is_reported_unverified(
    tmp_path: Path,
) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, tmp_path) as a:
            await type_patches(a, "ab")
        async with opener(links.edit_link) as b:
            await type_patches(b, "cde")
            assert await b.trim(HANG) == 5
        async with opener(links.edit_link, tmp_path) as again:
            await alarmed(again, AlarmKind.UNVERIFIED)
            await again.synced(HANG)  # said, then accepted: docs/SECURITY.md names the window
            assert again.text == "abcde"

    run(main)


# --- gaps and withholding ------------------------------------------------------------


def test_a_dropped_broadcast_heals_at_once_by_a_resume() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as a, opener(links.edit_link) as b:
            await type_patches(b, "1")
            await until(lambda: a.text == "1", a)
            a_conn = liar.connections[-2]
            dropped: list[int] = []

            def drop(conn: object, seq: int, envelope: bytes) -> bool:
                if conn is a_conn and not dropped:
                    dropped.append(seq)
                    return True
                return False

            liar.drop_broadcast = drop  # type: ignore[assignment]
            await type_patches(b, "23")
            await until(lambda: a.text == "123" and a.status is Status.SAVED, a)
            assert a.alarms == []
            resumes = [x for x in a_conn.received if _sub(x)]
            assert [x.since_seq for x in resumes] == [0, 1]  # resumed from the last it held

    run(main)


def test_a_history_that_skips_a_patch_resumes_then_says_withheld() -> None:
    clock = Clock()

    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as pad:
            await type_patches(pad, "abc")
        liar.serve = lambda conn, served: [(s, e) for s, e in served if s != 2]
        async with opener(links.view_link, clock=clock) as viewer:
            await alarmed(viewer, AlarmKind.WITHHELD, clock)
            assert viewer.status is not Status.SAVED
            assert "patch number 2" in viewer.alarms[-1].detail

    run(main)


def test_a_claimed_head_never_delivered_resumes_then_says_withheld() -> None:
    clock = Clock()

    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as pad:
            await type_patches(pad, "abc")
        liar.claim = lambda conn, branch: (branch.head_seq + 3, os.urandom(32))
        async with opener(links.view_link, clock=clock) as viewer:
            assert viewer.status is not Status.SAVED
            await alarmed(viewer, AlarmKind.WITHHELD, clock)
            assert "its history named" in viewer.alarms[-1].detail

    run(main)


# --- snapshots and strangers ---------------------------------------------------------


def test_a_snapshot_of_another_pad_is_refused_and_the_history_read() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as pad:
            await type_patches(pad, "abc")
        branch = liar.branches["main"]
        other = crypto.PadKeys.generate()
        content = json.dumps(
            {"height": 3, "doc": "forged", "h": hashlib.sha256(b"forged").hexdigest()}
        ).encode()
        forged = crypto.seal(
            other, crypto.Author.generate("m"), Kind.SNAPSHOT, branch.head_id, content
        )
        branch.snapshot = (3, forged)
        async with opener(links.view_link) as joiner:
            assert joiner.text == "abc"
            assert kinds(joiner) == [AlarmKind.BAD_SNAPSHOT]

    run(main)


def test_junk_ephemerals_from_a_stranger_are_counted_never_shown() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as victim:
            keys = crypto.PadKeys.generate()  # a stranger: the channel id, no key
            session = crypto.Session.new()
            author = crypto.Author.generate("spam")
            conn = liar.connections[-1]
            for _ in range(300):
                junk = crypto.seal_ephemeral(keys, author, session, b"{}", now_ms=0)
                conn.send(f.EphemeralRelayed(liar.channel_id or b"", 77, junk))
            await until(lambda: victim.session.debug_state()["dropped_ephemerals"] >= 300, victim)
            assert victim.alarms == []
            await victim.insert(0, "ok")
            await victim.synced(HANG)

    run(main)

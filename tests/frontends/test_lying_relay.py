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
from wire import mmr

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


def test_a_head_claimed_at_a_verified_height_with_another_id_is_a_fork() -> None:
    """Alone on a fork: nothing new is served, but the head the relay names sits
    where this device verified another patch."""

    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as a:
            await type_patches(a, "ab")
            liar.claim = lambda conn, branch: (2, os.urandom(32))
            await liar.close_all()
            await alarmed(a, AlarmKind.FORK)
            assert "as its head at number 2" in a.alarms[-1].detail
            assert a.text == "ab"
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


def _device_that_verified(root: Path, liar: LyingRelay, branch: str, height: int) -> Path:
    """A state directory that remembers patch ``height`` of ``branch`` and its peaks."""
    folder = root / "pads" / (liar.channel_id or b"").hex()
    folder.mkdir(parents=True)
    b = liar.branches[branch]
    ids = [pid for pid, seq in sorted(b.trimmed.items(), key=lambda item: item[1])]
    ids += [envelope_id(e) for e in b.patches]
    head = {
        "height": height,
        "id": ids[height - 1].hex(),
        "peaks": mmr.to_hex(mmr.of(ids[:height])),
    }
    folder.joinpath("head.json").write_text(json.dumps(head))
    return root


def test_a_restart_across_a_trimmed_snapshot_proves_descent_from_the_ids(tmp_path: Path) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, tmp_path) as a:
            await type_patches(a, "ab")
        async with opener(links.edit_link) as b:  # someone else writes on and trims at 5
            await type_patches(b, "cde")
            assert await b.trim(HANG) == 5
        assert liar.branches["main"].floor == 5  # patches 1-5 are gone
        async with opener(links.edit_link, tmp_path) as again:
            await again.synced(HANG)
            assert (again.text, again.alarms) == ("abcde", [])
            asked = [x for x in liar.connections[-1].received if isinstance(x, f.ProofRequest)]
            assert [(x.from_seq, x.to_seq) for x in asked] == [(2, 5)]

    run(main)


def test_a_fork_served_across_a_compaction_is_caught(tmp_path: Path) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as a:
            await type_patches(a, "ab")
        victim = _device_that_verified(tmp_path / "victim", liar, "main", 2)
        liar.fork("evil", at_seq=1)  # another branch from patch 1, snapshotted and trimmed
        _route_next_to(liar, "evil")
        async with opener(links.edit_link) as c:
            await type_patches(c, "WXYZ")
            assert await c.trim(HANG) == 5
        liar.route = lambda n: "evil"
        async with opener(links.edit_link, victim) as pad:
            await alarmed(pad, AlarmKind.FORK)
            assert "does not descend from patch 2" in pad.alarms[-1].detail
            await distrusted(pad, AlarmKind.FORK)
        # the relay cannot name ids that lead there, and naming none is withheld
        liar.prove = lambda conn, start, end: b""
        async with opener(links.edit_link, victim) as pad:
            await alarmed(pad, AlarmKind.WITHHELD)
            await distrusted(pad, AlarmKind.WITHHELD)

    run(main)


def test_a_point_remembered_without_peaks_is_reported_unverified(tmp_path: Path) -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link) as b:
            await type_patches(b, "abcde")
            assert await b.trim(HANG) == 5
        folder = tmp_path / "pads" / (liar.channel_id or b"").hex()
        folder.mkdir(parents=True)
        second = liar.branches["main"].trimmed
        id2 = next(pid for pid, seq in second.items() if seq == 2)
        folder.joinpath("head.json").write_text(json.dumps({"height": 2, "id": id2.hex()}))
        async with opener(links.edit_link, tmp_path) as again:
            await alarmed(again, AlarmKind.UNVERIFIED)
            await again.synced(HANG)  # said, then accepted: docs/SECURITY.md names it
            assert again.text == "abcde"

    run(main)


def _sub(frame: object) -> bool:
    return isinstance(frame, f.Subscribe)


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


def test_a_peer_ahead_whose_patches_never_come_is_withheld_naming_the_peer() -> None:
    clock = Clock()

    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, clock=clock) as a:
            await a.set_presence(name="alice")
            await type_patches(a, "1")
            async with opener(links.view_link, clock=clock) as b:
                await until(lambda: b.text == "1", b)
                b_conn = liar.connections[-1]
                # b is kept at patch 1: no broadcasts, and resumes serve nothing new
                liar.drop_broadcast = lambda conn, seq, env: conn is b_conn
                liar.serve = lambda conn, served: [x for x in served if conn is not b_conn]
                first = (1, liar.branches["main"].head_id)
                liar.claim = lambda conn, br: (
                    first if conn is b_conn else (br.head_seq, br.head_id)
                )
                await type_patches(a, "23")
                await alarmed(b, AlarmKind.WITHHELD, clock)
                assert "alice" in b.alarms[-1].detail
                assert b.text == "1"

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


# --- snapshots checked by someone who can -----------------------------------------------


def _forged_snapshot(keys: crypto.PadKeys, x_id: bytes, height: int, text: str) -> bytes:
    """What a malicious editor uploads: a snapshot of patch ``x_id`` that is not its text."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    content = json.dumps({"height": height, "doc": text, "h": digest}).encode()
    return crypto.seal(keys, crypto.Author.generate("mallory"), Kind.SNAPSHOT, x_id, content)


def test_a_forged_snapshot_is_disputed_by_a_live_holder_and_skipped_by_joiners() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        keys = crypto.parse_link(links.edit_link).keys
        async with opener(links.edit_link) as holder:
            await type_patches(holder, "abc")
            branch = liar.branches["main"]
            forged = _forged_snapshot(keys, branch.head_id, 3, "forged")
            branch.snapshot = (3, forged)
            liar.send_snapshot(liar.connections[-1], 3, forged, f.SNAPSHOT_LIVE)
            await until(lambda: bool(liar.disputes), holder)
            assert kinds(holder) == [AlarmKind.SNAPSHOT_MISMATCH]
            assert holder.text == "abc"  # a snapshot never changes anyone's text
            dispute = crypto.envelope2.parse(liar.disputes[0])  # the holder's session signed it
            assert dispute.kind == Kind.DISPUTE
            assert dispute.ref == envelope_id(forged)
        async with opener(links.view_link) as joiner:
            assert joiner.text == "abc"  # read from history, not from the disputed snapshot
            assert kinds(joiner) == [AlarmKind.BAD_SNAPSHOT]
            assert "disputed" in joiner.alarms[0].detail
            assert joiner.vouched is None

    run(main)


def test_a_forged_snapshot_trimmed_at_at_once_still_alarms_holder_and_joiner() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        keys = crypto.parse_link(links.edit_link).keys
        async with opener(links.edit_link) as holder:
            await type_patches(holder, "abc")
            branch = liar.branches["main"]
            forged = _forged_snapshot(keys, branch.head_id, 3, "forged")
            # the forger uploads and trims before anyone can dispute
            branch.snapshot, branch.floor_id = (3, forged), branch.head_id
            branch.floor, branch.patches = 3, []
            liar.send_snapshot(liar.connections[-1], 3, forged, f.SNAPSHOT_LIVE)
            await until(lambda: bool(liar.disputes), holder)
            assert holder.text == "abc"
        async with opener(links.view_link) as joiner:
            # nothing older is left: the joiner opens from it, and says so
            assert joiner.text == "forged"
            assert kinds(joiner) == [AlarmKind.BAD_SNAPSHOT, AlarmKind.BAD_SNAPSHOT]
            assert "rests on that snapshot's author alone" in joiner.alarms[1].detail

    run(main)


def test_verify_history_replays_every_stored_patch_and_a_snapshot_names_its_author() -> None:
    async def main(liar: LyingRelay) -> None:
        links = await Pad.create(liar.url)
        async with opener(links.edit_link, name="carol") as writer:
            await type_patches(writer, "abc")
            assert await writer.trim(HANG) == 3
            await type_patches(writer, "d")
            author = writer.session.author.public_key.hex()
        async with opener(links.view_link) as joiner:
            assert joiner.text == "abcd"
            assert joiner.vouched == ("carol", author)
        async with opener(links.view_link, verify="history") as checker:
            assert checker.text == "abcd"
            start = [x.start for x in liar.connections[-1].received if _sub(x)]
            assert start == [f.SubscribeFrom.EARLIEST]
        with pytest.raises(ValueError, match="verify must be"):
            Pad.open(links.view_link, verify="trust me")

    run(main)

"""Push signatures checked in a helper process (relay.verifier).

What a relay operator and a client rely on: every verdict is the one the
loop would have given, verdicts come back in the order they were asked (so a
connection's pushes reach the store in order), and a helper that dies or
cannot start costs speed, never a push: the checks it held are made on the
loop and a new helper comes back after RESTART_SECONDS of the injected clock.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import urllib.request
from collections.abc import Callable

import pytest
from relay_support import TIMEOUT, Client, Pad, RelayHandle, running_relay

from crypto.envelope import Kind
from relay.app import RelayConfig
from relay.verifier import (
    BATCH_CHECKS,
    RESTART_SECONDS,
    STALL_SECONDS,
    Verdict,
    Verifier,
    verdict,
)
from wire import frames as f
from wire.codes import RefuseCode

ZERO = bytes(32)


def _forged(envelope: bytes) -> bytes:
    bad = bytearray(envelope)
    bad[-1] ^= 1
    return bytes(bad)


def _envelopes(pad: Pad, n: int) -> tuple[list[bytes], list[Verdict]]:
    """``n`` envelopes, every 7th with a broken signature, every 11th truncated."""
    envelopes, expected = [], []
    for i in range(n):
        envelope = pad.sealed(Kind.PATCH, ZERO, f"edit {i}".encode())
        if i % 11 == 10:
            envelope, want = envelope[:-1], Verdict.MALFORMED
        elif i % 7 == 6:
            envelope, want = _forged(envelope), Verdict.BAD_SIGNATURE
        else:
            want = Verdict.GOOD
        envelopes.append(envelope)
        expected.append(want)
    return envelopes, expected


async def _check_all(v: Verifier, envelopes: list[bytes], key: bytes) -> list[Verdict]:
    """Ask for every verdict at once; assert they resolve in the order asked."""
    order: list[int] = []
    futures = [v.check(envelope, key) for envelope in envelopes]
    for i, future in enumerate(futures):
        future.add_done_callback(lambda _, i=i: order.append(i))
    got = list(await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT))
    await asyncio.sleep(0)  # the last done-callbacks run
    assert order == list(range(len(envelopes))), "verdicts resolved out of order"
    return got


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(wait(), TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"waited {TIMEOUT} s for {what}") from None


def test_the_helper_gives_the_loops_verdicts_in_the_order_asked() -> None:
    pad = Pad()
    envelopes, expected = _envelopes(pad, 5 * BATCH_CHECKS + 3)
    key = pad.keys.verify_key
    assert [verdict(e, key) for e in envelopes] == expected
    assert {Verdict.GOOD, Verdict.BAD_SIGNATURE, Verdict.MALFORMED} <= set(expected)

    async def scenario() -> None:
        v = Verifier(1)
        await v.start()
        try:
            assert v.alive
            assert await _check_all(v, envelopes, key) == expected
            assert await _check_all(v, envelopes[:3], key) == expected[:3]
            assert (v.remote, v.inline, v.lost) == (len(envelopes) + 3, 0, 0)
            # A wrong key is a bad signature, not an error.
            assert await v.check(envelopes[0], Pad().keys.verify_key) is Verdict.BAD_SIGNATURE
        finally:
            await v.close()
        assert not v.alive

    asyncio.run(scenario())


def test_a_helper_that_dies_costs_no_check_and_comes_back_after_the_restart_delay() -> None:
    pad = Pad()
    envelopes, expected = _envelopes(pad, 3 * BATCH_CHECKS)
    key = pad.keys.verify_key
    now = [100.0]

    async def scenario() -> None:
        v = Verifier(1, clock=lambda: now[0])
        await v.start()
        try:
            first = v.helper_pid
            assert first is not None
            # Killed while it holds checks: each still gets the right verdict, in order.
            futures = [v.check(envelope, key) for envelope in envelopes]
            await asyncio.sleep(0)  # one batch handed over
            os.kill(first, signal.SIGKILL)
            got = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
            assert list(got) == expected
            await _until(lambda: not v.alive, "the reader to see the pipe close")
            assert v.lost == 1
            assert v.remote + v.inline == len(envelopes)
            # Within the restart delay: checked on the loop, no new helper.
            inline = v.inline
            assert await _check_all(v, envelopes, key) == expected
            assert v.inline == inline + len(envelopes)
            assert v.started == 1
            # After it, the next check starts a helper; the checks after it use it.
            now[0] += RESTART_SECONDS
            assert await v.check(envelopes[0], key) is Verdict.GOOD
            await _until(lambda: v.alive, "a new helper to start")
            assert v.started == 2
            assert v.helper_pid != first
            remote = v.remote
            assert await _check_all(v, envelopes, key) == expected
            assert v.remote == remote + len(envelopes)
        finally:
            await v.close()

    asyncio.run(scenario())


def test_a_helper_that_answers_nothing_is_dropped_after_the_stall_limit() -> None:
    """A stopped helper (SIGSTOP) holds checks: nothing happens before
    STALL_SECONDS of the injected clock, then the sweep kills it and makes
    its checks on the loop, in order."""
    pad = Pad()
    envelopes, expected = _envelopes(pad, 2 * BATCH_CHECKS)
    now = [50.0]

    async def scenario() -> None:
        v = Verifier(1, clock=lambda: now[0])
        await v.start()
        try:
            assert await v.check(envelopes[0], pad.keys.verify_key) is Verdict.GOOD
            pid = v.helper_pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            futures = [v.check(envelope, pad.keys.verify_key) for envelope in envelopes]
            await asyncio.sleep(0.05)  # handed over, unanswered
            now[0] += STALL_SECONDS - 0.5
            v.sweep()
            assert not any(future.done() for future in futures)
            assert v.alive
            now[0] += 0.5
            v.sweep()
            assert [future.result() for future in futures] == expected
            assert v.lost == 1
            assert not v.alive
            await asyncio.sleep(0.05)  # the reader sees the killed helper's pipe close
            assert v.lost == 1  # counted once
        finally:
            await v.close()

    asyncio.run(scenario())


def test_the_helper_ignores_a_ctrl_c_meant_for_the_relay() -> None:
    """A Ctrl-C in a terminal reaches the whole process group; the helper goes on
    (the relay stops it when it stops)."""
    pad = Pad()
    envelopes, expected = _envelopes(pad, BATCH_CHECKS)

    async def scenario() -> None:
        v = Verifier(1)
        await v.start()
        try:
            assert await _check_all(v, envelopes, pad.keys.verify_key) == expected
            pid = v.helper_pid
            assert pid is not None
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
            assert await _check_all(v, envelopes, pad.keys.verify_key) == expected
            assert (v.remote, v.lost, v.helper_pid) == (2 * len(envelopes), 0, pid)
        finally:
            await v.close()

    asyncio.run(scenario())


def test_a_helper_that_keeps_dying_is_started_again_less_and_less_often() -> None:
    """A helper that exits at once (it cannot run): 1, 2, 4 s of the injected
    clock between starts, every check answered on the loop meanwhile."""
    pad = Pad()
    envelope, key = pad.patch(ZERO)[0], pad.keys.verify_key
    now = [0.0]

    async def scenario() -> None:
        v = Verifier(1, clock=lambda: now[0], command=[sys.executable, "-c", "pass"])
        await v.start()
        try:
            starts = []
            for t in range(12):
                now[0] = float(t)
                assert await v.check(envelope, key) is Verdict.GOOD
                await _until(lambda: v._spawning is None or v._spawning.done(), "a start")
                await _until(lambda: not v.alive, "the helper to exit")
                starts.append(v.started)
            # started at 0 (start), then at 1, 3, 7: 1, 2, 4 s after each loss
            assert starts == [1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4]
            assert v.lost == 4
            assert v.inline == 12
        finally:
            await v.close()

    asyncio.run(scenario())


def test_a_helper_that_cannot_start_leaves_the_checks_on_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No such executable: every check on the loop, and the attempts (each a
    warning in the log) come 1, 2, 4 s of the injected clock apart."""
    pad = Pad()
    envelopes, expected = _envelopes(pad, BATCH_CHECKS + 1)
    now = [0.0]

    def attempts() -> int:
        return sum("did not start" in r.getMessage() for r in caplog.records)

    async def scenario() -> None:
        v = Verifier(1, clock=lambda: now[0], command=["/nonexistent/python"])
        await v.start()
        try:
            assert not v.alive
            assert v.started == 0
            assert await _check_all(v, envelopes, pad.keys.verify_key) == expected
            assert v.inline == len(envelopes)
            seen = []
            for t in range(1, 9):
                now[0] = float(t)
                assert await v.check(envelopes[0], pad.keys.verify_key) is Verdict.GOOD
                await _until(lambda: v._spawning is None or v._spawning.done(), "an attempt")
                seen.append(attempts())
            # attempts at 0 (start), 1, 3 and 7
            assert seen == [2, 2, 3, 3, 3, 3, 4, 4]
            assert v.started == 0
        finally:
            await v.close()

    asyncio.run(scenario())


#: A helper that answers its first batch with five verdicts, whatever its size.
_LIAR = (
    "import sys, time; sys.stdin.buffer.read(4);"
    " sys.stdout.buffer.write(bytes([0, 0, 0, 5]) + bytes(5)); sys.stdout.flush(); time.sleep(60)"
)


def test_a_helper_that_answers_nonsense_is_dropped_and_its_checks_made_on_the_loop() -> None:
    pad = Pad()
    envelopes, expected = _envelopes(pad, BATCH_CHECKS)  # a batch of 32, not 5

    async def scenario() -> None:
        v = Verifier(1, command=[sys.executable, "-c", _LIAR])
        await v.start()
        try:
            assert v.alive
            assert await _check_all(v, envelopes, pad.keys.verify_key) == expected
            assert (v.remote, v.inline, v.lost) == (0, len(envelopes), 1)
            assert not v.alive
        finally:
            await v.close()

    asyncio.run(scenario())


def test_closing_answers_what_the_helper_still_held() -> None:
    pad = Pad()
    envelopes, expected = _envelopes(pad, 4 * BATCH_CHECKS)

    async def scenario() -> None:
        v = Verifier(1)
        await v.start()
        futures = [v.check(envelope, pad.keys.verify_key) for envelope in envelopes]
        await v.close()
        assert all(future.done() for future in futures)
        assert [future.result() for future in futures] == expected
        # A closed verifier checks on the loop and starts nothing.
        assert await v.check(envelopes[0], pad.keys.verify_key) is Verdict.GOOD
        assert not v.alive
        assert v.started == 1

    asyncio.run(scenario())


def test_only_zero_or_one_helper() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        Verifier(2)


def test_pipelined_pushes_through_the_helper_are_answered_in_order() -> None:
    """A relay checking signatures in its helper: 40 pushes sent without waiting,
    the 25th forged.  The first 24 are ACKed with seqs 1-24, the forged one is
    refused BAD_SIGNATURE, the ones after it (whose parent never landed) STALE,
    every answer in the order of the pushes; the metrics say the helper checked."""
    config = RelayConfig(store_url="memory:", web_dir=None, verify_processes=1)
    pad = Pad()
    chain, parent = [], ZERO
    for i in range(40):
        envelope, parent = pad.patch(parent, f"k{i}".encode())
        chain.append(_forged(envelope) if i == 24 else envelope)

    async def scenario(client: Client) -> list[f.Frame]:
        await client.subscribe(pad)
        ids = [client.request_id() for _ in chain]
        for rid, envelope in zip(ids, chain, strict=True):
            await client.send(f.Push(rid, envelope))
        answers: list[f.Frame] = []
        while len(answers) < len(chain):
            frame = await client.recv()
            if isinstance(frame, f.Ack | f.Refuse):
                answers.append(frame)
        assert [a.request_id for a in answers] == ids  # type: ignore[union-attr]
        return answers

    async def run(relay: RelayHandle) -> list[f.Frame]:
        async with Client.connect(relay) as client:
            return await scenario(client)

    with running_relay(config) as relay:
        answers = asyncio.run(run(relay))
        with urllib.request.urlopen(relay.url + "metrics", timeout=TIMEOUT) as response:
            metrics = response.read().decode()
    acks = answers[:24]
    assert all(isinstance(a, f.Ack) for a in acks)
    assert [a.seq for a in acks] == list(range(1, 25))  # type: ignore[union-attr]
    refused = answers[24:]
    assert all(isinstance(a, f.Refuse) for a in refused)
    codes = [a.code for a in refused]  # type: ignore[union-attr]
    assert codes == [RefuseCode.BAD_SIGNATURE] + [RefuseCode.STALE] * 15
    assert 'blindpad_signature_checks_total{where="helper"} 40.0' in metrics
    assert "blindpad_signature_helper_up 1.0" in metrics

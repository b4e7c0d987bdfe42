"""Signatures of pushes (channel or session signatures), checked off the event loop.

Theory of operation
-------------------
Ed25519 verification is the largest single cost of a push (about a third of
the event loop at 500 channels x 2 clients), and the event loop is the
relay's bottleneck.  PyNaCl releases the GIL while it verifies, but a thread
does not help: a thread waiting for the GIL behind a busy event loop waits a
whole switch interval (5 ms) after *every* verification, measured at 70 us a
check alone and 5.2 ms each beside a busy loop.  So the checks run in a
**helper process** (``python -m relay.verifier``) that the relay starts with
its store and feeds through a pipe:

- :meth:`Verifier.check` queues ``(key, channel, envelope)`` (the channel's
  verify key for a version-1 envelope; for a version-2 one, its session's key
  and the channel id the signature covers) and returns a future; the queue
  goes to the helper as one batch
  (``u32 length || (key 32 || channel 32 || u32 n || envelope n)*``, one
  write) when it holds :data:`BATCH_CHECKS` or at the end of the loop turn, whichever
  comes first, so the helper starts on a turn's first checks while the loop
  reads on;
- the helper answers each batch with one byte per envelope, in order
  (:class:`Verdict`); a reader task resolves the batch's futures together;
- answers come back in the order the checks were asked, so a connection's
  pushes reach the store in the order they arrived.

If the helper cannot start, dies, answers nonsense or answers nothing for
:data:`STALL_SECONDS` (:meth:`Verifier.sweep`), the checks it held and
every check until it is back are made on the loop (``inline``), and a new
helper is started :data:`RESTART_SECONDS` later (twice as long after each
helper in a row that answered nothing, up to :data:`RESTART_MAX_SECONDS`, so
a helper that cannot run does not fill the log); nothing waits on
a dead helper and no push is lost or reordered.  ``processes=0`` (the
default of :func:`relay.app.create_app`; ``blindpad relay --verify-processes``
chooses, 1 by default where there is more than one CPU) checks everything on
the loop, through the same futures.

Only pushes come here: snapshots, trims and disputes are rare and checked
where they arrive.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence

import crypto
from crypto import envelope2
from crypto.envelope import Header, verify_channel_signature

log = logging.getLogger("blindpad.relay")

#: A dead helper is started again at most this often (checks run on the loop meanwhile).
RESTART_SECONDS = 1.0

#: The longest wait before another start, after helpers in a row that answered nothing.
RESTART_MAX_SECONDS = 64.0

#: A helper that answers nothing for this long while it holds checks is
#: dropped (killed; its checks made on the loop): a batch takes milliseconds.
STALL_SECONDS = 10.0

#: Most checks in one batch: the helper starts on the first ones while the loop
#: reads on (one batch per loop turn, thousands of checks at 500 x 2, left every
#: stage idle while another worked through a wave).
BATCH_CHECKS = 32

_U32 = struct.Struct(">I")
_NO_CHANNEL = bytes(32)  # a version-1 envelope names its own channel


class Verdict(enum.IntEnum):
    """The helper's answer for one envelope (one byte)."""

    GOOD = 0
    BAD_SIGNATURE = 1
    MALFORMED = 2


def verdict(
    envelope: bytes, key: bytes, header: Header | None = None, channel_id: bytes = _NO_CHANNEL
) -> Verdict:
    """Check ``envelope``'s signature (the relay's check): a version-1
    envelope's channel signature under the channel's verify ``key``
    (``header`` is ``parse_header(envelope)`` if the caller has it), a
    version-2 envelope's session signature under its session ``key`` for
    ``channel_id`` (PROTOCOL.md §9.1: the channel is signed, not sent)."""
    try:
        if envelope2.is_version_2(envelope):
            envelope2.verify(envelope, key, channel_id)
        else:
            verify_channel_signature(envelope, key, header)
    except (crypto.BadChannelSignature, crypto.BadSessionSignature):
        return Verdict.BAD_SIGNATURE
    except crypto.MalformedEnvelope:
        return Verdict.MALFORMED
    return Verdict.GOOD


_Check = tuple[bytes, bytes, bytes, "asyncio.Future[Verdict]"]  # (envelope, key, channel, answer)


class Verifier:
    """Checks channel signatures for the relay, in a helper process or on the loop.

    Args:
        processes: 1 to use a helper process, 0 to check on the event loop.
        clock: monotonic seconds (restart pacing).
        command: the helper's command line (tests replace it).
    """

    def __init__(
        self,
        processes: int = 0,
        clock: Callable[[], float] = time.monotonic,
        command: Sequence[str] = (sys.executable, "-m", "relay.verifier"),
    ) -> None:
        if processes not in (0, 1):
            raise ValueError(f"verify processes must be 0 or 1, not {processes}")
        self.processes = processes
        self._clock = clock
        self._command = tuple(command)
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._turn: list[_Check] = []
        self._sent: collections.deque[list[_Check]] = collections.deque()
        self._next_start = 0.0
        self._futile = 0  # helpers in a row lost before answering anything
        self._reaping: set[asyncio.Task[int]] = set()  # dropped helpers being waited for
        self._progress = 0.0  # when the helper last answered, or was first given work
        self._spawning: asyncio.Task[None] | None = None
        self._closed = False
        #: Checks made by the helper and on the loop; helpers started; helpers lost.
        self.remote = 0
        self.inline = 0
        self.started = 0
        self.lost = 0

    @property
    def alive(self) -> bool:
        """Whether a helper process is taking checks."""
        return self._proc is not None

    @property
    def helper_pid(self) -> int | None:
        """The helper process's id, while it runs."""
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        """Start the helper (with ``processes=1``); checks run on the loop if it fails."""
        if self.processes:
            await self._spawn()

    async def _spawn(self) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("signature helper did not start (%s); checking on the event loop", exc)
            self._pace()
            return
        if self._closed:
            proc.kill()
            await proc.wait()
            return
        self._proc = proc
        self.started += 1
        self._reader = asyncio.create_task(self._read(proc))

    def verdict_now(
        self,
        envelope: bytes,
        key: bytes,
        header: Header | None = None,
        channel_id: bytes = _NO_CHANNEL,
    ) -> Verdict | None:
        """The verdict, checked on the loop now, if no helper runs and no check
        waits for one (so answering now keeps the order); else None: ask
        :meth:`check`.  A helper that is due to come back is started here."""
        if self._proc is not None or self._turn or self._sent:
            return None
        spawning = self._spawning is not None and not self._spawning.done()
        if self.processes and not (self._closed or spawning) and self._clock() >= self._next_start:
            self._spawning = asyncio.get_running_loop().create_task(self._spawn())
        self.inline += 1
        return verdict(envelope, key, header, channel_id)

    def check(
        self, envelope: bytes, key: bytes, channel_id: bytes = _NO_CHANNEL
    ) -> asyncio.Future[Verdict]:
        """Return the verdict to come on ``envelope``'s signature (:func:`verdict`).

        Verdicts of one :class:`Verifier` resolve in the order they were asked
        (:meth:`verdict_now` included).
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Verdict] = loop.create_future()
        now = self.verdict_now(envelope, key, channel_id=channel_id)
        if now is not None:
            answer.set_result(now)
            return answer
        if not self._turn:
            loop.call_soon(self._hand_over)
        self._turn.append((envelope, key, channel_id, answer))
        if len(self._turn) >= BATCH_CHECKS:
            self._hand_over()
        return answer

    def _hand_over(self) -> None:
        batch, self._turn = self._turn, []
        if not batch:
            return
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            self._settle_inline(batch)
            return
        parts: list[bytes] = []
        for envelope, key, channel_id, _ in batch:
            parts += (key, channel_id, _U32.pack(len(envelope)), envelope)
        body = b"".join(parts)
        if not self._sent:
            self._progress = self._clock()
        self._sent.append(batch)
        proc.stdin.write(_U32.pack(len(body)) + body)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        out = proc.stdout
        assert out is not None
        try:
            while True:
                count = _U32.unpack(await out.readexactly(4))[0]
                answers = await out.readexactly(count)
                if not self._sent or len(self._sent[0]) != count:
                    raise ValueError(f"{count} answers for a batch of another size")
                batch = self._sent.popleft()
                self._progress = self._clock()
                for (_, _, _, future), byte in zip(batch, answers, strict=True):
                    if not future.done():
                        future.set_result(Verdict(byte))
                self.remote += count
                self._futile = 0
        except (asyncio.IncompleteReadError, ConnectionError, ValueError) as exc:
            if not self._closed and self._proc is proc:
                log.warning("signature helper lost (%s); checking on the event loop", exc)
                self.lost += 1
        finally:
            self._drop(proc)

    def sweep(self) -> None:
        """Drop a helper that has answered nothing for :data:`STALL_SECONDS`
        while it holds checks (the relay calls this once a second)."""
        proc = self._proc
        if proc is None or not self._sent or self._clock() - self._progress < STALL_SECONDS:
            return
        log.warning(
            "signature helper answered nothing for %.0f s; checking on the event loop",
            STALL_SECONDS,
        )
        self.lost += 1
        self._drop(proc)

    def _pace(self) -> None:
        """A helper was lost (or did not start): the next one waits RESTART_SECONDS,
        doubled for each loss in a row without an answer, up to RESTART_MAX_SECONDS."""
        delay = RESTART_SECONDS * float(1 << min(self._futile, 16))
        self._next_start = self._clock() + min(delay, RESTART_MAX_SECONDS)
        self._futile += 1

    def _drop(self, proc: asyncio.subprocess.Process) -> None:
        """Forget ``proc``: what it held and what waits to be sent are checked here."""
        if self._proc is not proc:
            return
        self._proc = None
        if not self._closed:
            self._pace()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        reaper = asyncio.get_running_loop().create_task(proc.wait())
        self._reaping.add(reaper)
        reaper.add_done_callback(self._reaping.discard)
        while self._sent:
            self._settle_inline(self._sent.popleft())
        batch, self._turn = self._turn, []
        self._settle_inline(batch)

    def _settle_inline(self, batch: list[_Check]) -> None:
        for envelope, key, channel_id, future in batch:
            if not future.done():
                self.inline += 1
                future.set_result(verdict(envelope, key, None, channel_id))

    async def close(self) -> None:
        """Stop the helper; checks not yet answered are made here first."""
        self._closed = True
        if self._spawning is not None:
            await self._spawning
        proc, reader = self._proc, self._reader
        if proc is not None:
            self._drop(proc)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        while self._reaping:
            await asyncio.gather(*self._reaping)


def _serve() -> int:
    """The helper: read batches from stdin, write one verdict byte per envelope.

    It ignores SIGINT and SIGTERM (a Ctrl-C in a terminal or a service
    manager's stop reaches the whole process group): it ends when the relay
    closes the pipe, stops it, or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    read, write = sys.stdin.buffer.read, sys.stdout.buffer
    while True:
        head = read(4)
        if len(head) < 4:
            return 0
        size = _U32.unpack(head)[0]
        body = memoryview(read(size))
        if len(body) < size:
            return 0
        answers = bytearray()
        at = 0
        while at < size:
            key, channel_id = bytes(body[at : at + 32]), bytes(body[at + 32 : at + 64])
            n = _U32.unpack_from(body, at + 64)[0]
            envelope = bytes(body[at + 68 : at + 68 + n])
            at += 68 + n
            answers.append(verdict(envelope, key, None, channel_id))
        write.write(_U32.pack(len(answers)) + answers)
        write.flush()


if __name__ == "__main__":
    sys.exit(_serve())

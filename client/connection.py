"""What a session keeps about the relay: requests out, snapshot chunks in, liveness, heads.

Theory of operation
-------------------
Four small sans-I/O pieces a :class:`~client.session.PadSession` holds,
kept apart so the session reads as the protocol's phases.

Requests (:class:`Outbox`).  Every frame that expects an answer carries a
request id.  :class:`Outbox` numbers them, queues their frames and remembers what each request was
(:class:`Request`) until the relay answers it (:meth:`Outbox.answered`).
A RATE_LIMITED refusal parks the very same frames until the relay's
``retry_after_ms`` (:meth:`Outbox.retry_at`, :meth:`Outbox.due`).  A dropped
connection forgets every request (:meth:`Outbox.reset`): the engine resends
its patches on the next connection, with the same bytes.  Sans-I/O: frames go
out only when the front end takes them (:meth:`Outbox.take`).  Before the
first envelope of a version-2 session on a connection, the outbox registers
that session (SESSION with its record, PROTOCOL.md §9.3): the relay answers
it before anything sent after it, so the envelopes need not wait.

Snapshots in (:class:`SnapshotChunks`).  A snapshot arrives in chunks at
increasing offsets; a chunk out of order drops the partial one (the next
snapshot starts afresh at offset 0).

Liveness (:class:`Keepalive`).  After ``interval_ms`` without a frame from the
relay a PING is due; if nothing at all arrives for ``interval_ms`` after it,
the connection is *stalled* and the front end drops it.  Only a PING that
went unanswered counts, so a tab whose timers the browser throttles is not
declared dead for having looked late.

Progress (:class:`Watchdog`).  A live session waiting on the relay without
progress re-reads from its last contiguous sequence number, and after two
re-reads without progress says the relay withholds something.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from collections.abc import Callable

from client.engine import Sealed
from crypto import envelope2
from wire import frames as p

DEFAULT_MAX_FRAME_BYTES = 256 * 1024


class Want(enum.Enum):
    """What a request asked for."""

    SUBSCRIBE = "subscribe"
    PATCH = "patch"
    SNAPSHOT = "snapshot"
    TRIM = "trim"
    DISPUTE = "dispute"
    PROOF = "proof"
    SESSION = "session"


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One request in flight: what it wants, its frames (for a resend), its patch id."""

    want: Want
    frames: tuple[bytes, ...]
    id: bytes = b""


class Outbox:
    """Request ids, the frames to send, and the requests awaiting an answer.

    Args:
        channel_id: the channel the envelopes are for (frames name it).
        records: a version-2 session's record by tag, if known.
    """

    def __init__(
        self,
        channel_id: bytes = p.ZERO_ID,
        records: Callable[[bytes], bytes | None] = lambda tag: None,
    ) -> None:
        self.channel_id = channel_id
        self._records = records
        self._ids = itertools.count(1)
        self._frames: list[bytes] = []
        self._requests: dict[int, Request] = {}
        self._retries: list[tuple[int, int, Request]] = []
        self._registered: set[bytes] = set()  # session tags sent on this connection

    def next_id(self) -> int:
        """A fresh request id."""
        return next(self._ids)

    def send(self, frame: p.ClientFrame) -> None:
        """Queue a frame that expects no tracked answer."""
        self._frames.append(p.encode(frame))

    def request(self, req: int, request: Request) -> None:
        """Queue ``request``'s frames and remember it under ``req`` until answered."""
        self._requests[req] = request
        self._frames.extend(request.frames)

    def _register(self, envelope: bytes) -> None:
        """Queue SESSION for ``envelope``'s session if this connection has not yet."""
        tag = envelope2.tag_of(envelope)
        if tag is None or tag in self._registered:
            return
        record = self._records(tag)
        if record is None:
            return  # not ours to register: the relay answers UNKNOWN_SESSION
        self._registered.add(tag)
        req = self.next_id()
        frame = p.encode(p.Session(req, self.channel_id, record))
        self.request(req, Request(Want.SESSION, (frame,), tag))

    def forget(self, tag: bytes) -> None:
        """Session ``tag`` is not registered after all (its SESSION was refused):
        the next envelope of it registers it again."""
        self._registered.discard(tag)

    def push(self, sealed: Sealed) -> None:
        """Queue a PUSH of a sealed patch."""
        self._register(sealed.data)
        req = self.next_id()
        frame = p.encode(p.Push(req, sealed.data, channel_id=self.channel_id))
        self.request(req, Request(Want.PATCH, (frame,), sealed.id))

    def upload(self, sealed: Sealed, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        """Queue a snapshot in chunks that each fit in a frame."""
        self._register(sealed.data)
        step = max(1024, max_frame_bytes - 1024)
        req = self.next_id()
        data, total, cid = sealed.data, len(sealed.data), self.channel_id
        frames = tuple(
            p.encode(p.SnapshotChunk(req, total, at, data[at : at + step], channel_id=cid))
            for at in range(0, total, step)
        )
        self.request(req, Request(Want.SNAPSHOT, frames, sealed.id))

    def trim(self, sealed: Sealed, keep_pct: int = 0) -> None:
        """Queue a TRIM of a sealed trim envelope; the relay keeps older snapshots
        within ``keep_pct`` % of the newest one's bytes (0: none)."""
        self._register(sealed.data)
        req = self.next_id()
        frame = p.Trim(req, keep_pct, sealed.data, channel_id=self.channel_id)
        self.request(req, Request(Want.TRIM, (p.encode(frame),), sealed.id))

    def dispute(self, sealed: Sealed) -> None:
        """Queue a DISPUTE of a snapshot that differs from our text."""
        self._register(sealed.data)
        req = self.next_id()
        frame = p.encode(p.Dispute(req, sealed.data, channel_id=self.channel_id))
        self.request(req, Request(Want.DISPUTE, (frame,), sealed.id))

    def unanswered(self, want: Want) -> int:
        """Requests of kind ``want`` on this connection that neither ACK nor REFUSE answered."""
        return len(self.unanswered_ids(want))

    def unanswered_ids(self, want: Want) -> set[bytes]:
        """The envelope ids of the unanswered requests of kind ``want``."""
        return {request.id for request in self._requests.values() if request.want is want}

    def answered(self, req: int) -> Request | None:
        """Forget request ``req`` (answered); None if it was not ours or is forgotten."""
        return self._requests.pop(req, None)

    def retry_at(self, due_ms: int, req: int, request: Request) -> None:
        """Send ``request``'s frames again at ``due_ms`` (after RATE_LIMITED)."""
        self._retries.append((due_ms, req, request))

    def due(self, now_ms: int, moot: Callable[[Request], bool] | None = None) -> None:
        """Queue again the retries that are due, but those ``moot`` says need no
        answer any more (a patch sealed again since: its bytes would be stale)."""
        due = [r for r in self._retries if r[0] <= now_ms]
        self._retries = [r for r in self._retries if r[0] > now_ms]
        for _, req, request in due:
            if moot is None or not moot(request):
                self.request(req, request)

    def next_retry_ms(self) -> int | None:
        """When the next retry is due, if any."""
        return min((due for due, _, _ in self._retries), default=None)

    def take(self) -> list[bytes]:
        """Take the queued frames, in order."""
        frames, self._frames = self._frames, []
        return frames

    def reset(self) -> None:
        """The connection dropped: forget every frame, request and retry."""
        self._frames.clear()
        self._requests.clear()
        self._retries.clear()
        self._registered.clear()


@dataclasses.dataclass(slots=True)
class _Partial:
    x_seq: int
    total: int
    data: bytearray


class SnapshotChunks:
    """Reassembles a snapshot sent in chunks."""

    def __init__(self) -> None:
        self._partial: _Partial | None = None

    def add(self, x_seq: int, total: int, offset: int, data: bytes) -> tuple[int, bytes] | None:
        """Take one chunk; ``(x_seq, sealed snapshot)`` once the last one is in."""
        if offset == 0:
            self._partial = _Partial(x_seq, total, bytearray())
        partial = self._partial
        if partial is None or offset != len(partial.data):
            return None
        partial.data += data
        if len(partial.data) < partial.total:
            return None
        self._partial = None
        return partial.x_seq, bytes(partial.data)

    def reset(self) -> None:
        """Forget a partial snapshot (the connection dropped)."""
        self._partial = None


class Keepalive:
    """When to PING a quiet relay, and when a connection counts as stalled.

    Args:
        interval_ms: the silence after which a PING is due; as long again
            without an answer and the connection is stalled.
    """

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms
        self._heard_ms = 0
        self._pinged_ms = 0

    def opened(self, now_ms: int) -> None:
        """A connection opened (it counts as heard from)."""
        self._heard_ms = self._pinged_ms = now_ms

    def heard(self, now_ms: int) -> None:
        """A frame arrived."""
        self._heard_ms = now_ms

    def ping_due(self, now_ms: int) -> bool:
        """Whether to PING now (then call :meth:`pinged`)."""
        return now_ms >= self.next_deadline_ms()

    def pinged(self, now_ms: int) -> None:
        """A PING was queued."""
        self._pinged_ms = now_ms

    def stalled(self, now_ms: int) -> bool:
        """Whether a PING went unanswered for ``interval_ms``."""
        return self._pinged_ms > self._heard_ms and now_ms - self._pinged_ms >= self.interval_ms

    def next_deadline_ms(self) -> int:
        """When the next PING is due if nothing arrives."""
        return max(self._heard_ms, self._pinged_ms) + self.interval_ms


class Watchdog:
    """When a live session waiting on the relay re-reads from its last position.

    The session is *waiting* while it holds patches the relay has not
    answered, or misses something the relay named (:attr:`Engine.missing`).
    Progress is the contiguous sequence number moving (every ACK and every
    patch in order moves it).  Waiting with no progress for ``after_ms``, the
    session re-subscribes since its last contiguous sequence number (a
    *resume*: the relay sends what it skipped, and our patches it stored come
    back as ours); after ``alarm_after`` resumes without progress the relay
    is withholding something, and the session says so.

    Args:
        after_ms: how long the relay may make no progress while we wait.
        alarm_after: resumes without progress before :meth:`should_alarm`.
    """

    def __init__(self, after_ms: int, alarm_after: int = 2) -> None:
        self.after_ms = after_ms
        self.alarm_after = alarm_after
        self.resumes = 0  # resumes since the last progress
        self.alarmed = False
        self._since: int | None = None
        self._mark: int | None = None

    def watch(self, now_ms: int, waiting: bool, mark: int) -> None:
        """Note the state: whether we wait on the relay, and the contiguous seq."""
        if mark != self._mark:  # progress
            self._mark, self.resumes, self.alarmed = mark, 0, False
            self._since = now_ms if waiting else None
        if not waiting:
            self._since, self.resumes, self.alarmed = None, 0, False
        elif self._since is None:
            self._since = now_ms

    def due(self, now_ms: int) -> bool:
        """Whether to resume now (then call :meth:`resumed`)."""
        return self._since is not None and now_ms - self._since >= self.after_ms

    def resumed(self, now_ms: int) -> None:
        """A resume was queued."""
        self.resumes += 1
        self._since = now_ms

    def should_alarm(self) -> bool:
        """Whether the relay is withholding something (alarm once, until progress)."""
        return self.resumes >= self.alarm_after and not self.alarmed

    def next_deadline_ms(self) -> int | None:
        """When the next resume is due, if we are waiting."""
        return None if self._since is None else self._since + self.after_ms


__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "Keepalive",
    "Outbox",
    "Request",
    "SnapshotChunks",
    "Want",
    "Watchdog",
]

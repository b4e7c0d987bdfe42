"""The session's requests to the relay: numbered, remembered until answered, retried when told.

Theory of operation
-------------------
Every frame that expects an answer carries a request id.  :class:`Outbox`
numbers them, queues their frames and remembers what each request was
(:class:`Request`) until the relay answers it (:meth:`Outbox.answered`).
A RATE_LIMITED refusal parks the very same frames until the relay's
``retry_after_ms`` (:meth:`Outbox.retry_at`, :meth:`Outbox.due`).  A dropped
connection forgets every request (:meth:`Outbox.reset`): the engine resends
its patches on the next connection, with the same bytes.  Sans-I/O: frames go
out only when the front end takes them (:meth:`Outbox.take`).
"""

from __future__ import annotations

import dataclasses
import enum
import itertools

from client import protocol as p
from client.engine import Sealed

DEFAULT_MAX_FRAME_BYTES = 256 * 1024


class Want(enum.Enum):
    """What a request asked for."""

    SUBSCRIBE = "subscribe"
    PATCH = "patch"
    SNAPSHOT = "snapshot"


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One request in flight: what it wants, its frames (for a resend), its patch id."""

    want: Want
    frames: tuple[bytes, ...]
    id: bytes = b""


class Outbox:
    """Request ids, the frames to send, and the requests awaiting an answer."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._frames: list[bytes] = []
        self._requests: dict[int, Request] = {}
        self._retries: list[tuple[int, int, Request]] = []

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

    def push(self, sealed: Sealed) -> None:
        """Queue a PUSH of a sealed patch."""
        req = self.next_id()
        self.request(req, Request(Want.PATCH, (p.encode(p.Push(req, sealed.data)),), sealed.id))

    def upload(self, sealed: Sealed, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        """Queue a snapshot in chunks that each fit in a frame."""
        step = max(1024, max_frame_bytes - 1024)
        req = self.next_id()
        data, total = sealed.data, len(sealed.data)
        frames = tuple(
            p.encode(p.SnapshotChunk(req, total, at, data[at : at + step]))
            for at in range(0, total, step)
        )
        self.request(req, Request(Want.SNAPSHOT, frames, sealed.id))

    def answered(self, req: int) -> Request | None:
        """Forget request ``req`` (answered); None if it was not ours or is forgotten."""
        return self._requests.pop(req, None)

    def retry_at(self, due_ms: int, req: int, request: Request) -> None:
        """Send ``request``'s frames again at ``due_ms`` (after RATE_LIMITED)."""
        self._retries.append((due_ms, req, request))

    def due(self, now_ms: int) -> None:
        """Queue again the retries that are due."""
        due = [r for r in self._retries if r[0] <= now_ms]
        self._retries = [r for r in self._retries if r[0] > now_ms]
        for _, req, request in due:
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


__all__ = ["DEFAULT_MAX_FRAME_BYTES", "Outbox", "Request", "Want"]

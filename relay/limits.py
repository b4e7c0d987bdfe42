"""Limits and quotas, all on by default, and the token bucket behind rates.

Theory of operation
-------------------
:class:`Limits` is one frozen dataclass holding every limit with its documented
default (PROTOCOL.md §5.3 lists them with the code each one produces).  The CLI
builds it from options named after the fields (``--max-frame-bytes`` and so
on); tests build it directly.  A value is enforced exactly where it is named:
frame size on receipt, patch/snapshot/ephemeral size, rate, pad size and quotas
in the push pipeline, channels per connection at subscribe, the
pre-subscription budget on every frame received before the first successful
subscription, the outgoing queue when fanning out.

:class:`TokenBucket` is the per-connection rate limiter: ``rate`` tokens per
second, at most ``burst`` stored.  It takes the clock as an argument, so tests
can drive it deterministically.  A refused request is told how long to wait
(``retry_after_ms``) and loses nothing: the client simply sends it again.
"""

from __future__ import annotations

import dataclasses
import math

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Every limit the relay enforces.  Byte sizes are in bytes.

    Attributes:
        max_frame_bytes: largest websocket message accepted (fatal FRAME_TOO_LARGE).
        max_patch_bytes: largest sealed patch or trim envelope (PATCH_TOO_LARGE).
        max_snapshot_bytes: largest sealed snapshot (SNAPSHOT_TOO_LARGE).
        max_ephemeral_bytes: largest sealed ephemeral (EPHEMERAL_TOO_LARGE).
        max_pad_bytes: latest snapshot + patches after it, per channel (PAD_TOO_LARGE).
        channel_quota_bytes: everything stored for one channel (CHANNEL_QUOTA).
        max_storage_bytes: everything stored by this relay (STORAGE_FULL).
        rate_per_second: frames per second per connection, sustained (RATE_LIMITED).
        rate_burst: frames a connection may send at once before the rate applies.
        max_channels: channels subscribed at once per connection (TOO_MANY_CHANNELS).
        presubscribe_bytes: bytes a connection may send before its first
            successful subscription (fatal PRESUBSCRIBE_BUFFER).
        outgoing_queue_frames: frames queued for one connection before it is
            closed as too slow (fatal SLOW_CONSUMER; resume "since seq N").
        max_connections: open websocket connections, relay-wide (fatal
            TOO_MANY_CONNECTIONS).
        max_connections_per_address: open connections per client address
            (fatal TOO_MANY_CONNECTIONS; behind a proxy see ``--trusted-proxies``).
        idle_timeout_seconds: a connection that sends no frame (PING counts)
            for this long is closed (fatal IDLE_TIMEOUT).
        outgoing_queue_bytes: bytes queued for one connection before it is
            closed as too slow (fatal SLOW_CONSUMER), besides the frame count.
        upload_timeout_seconds: a snapshot upload unfinished this long after
            its first chunk closes the connection (fatal SLOW_UPLOAD).
        max_upload_bytes: bytes held by unfinished snapshot uploads, relay-wide
            (a new upload over it is refused RATE_LIMITED, retry_after_ms 1000).
        max_history_reads: concurrent HTTP history reads (over it: 503 with
            ``Retry-After``).
        push_bytes_in_flight: envelope bytes of one connection's pushes handed
            to the store and not yet answered; past it the relay reads no more
            frames from that connection until the oldest is answered.
        create_per_minute: pads one client address may create per minute,
            sustained (CREATE_RATE_LIMITED with retry_after_ms).
        create_burst: pads one client address may create at once.
        channel_overhead_bytes: what an empty pad costs against
            ``max_storage_bytes`` and its ``channel_quota_bytes``.
        new_pad_storage_percent: new pads are refused (STORAGE_FULL) once
            storage would pass this percentage of ``max_storage_bytes``, so
            existing pads keep the rest.
        history_stall_seconds: an HTTP history response whose reader takes
            no part of it for this long is abandoned (the connection closes,
            the reader sees a cut body), so stalled readers cannot hold the
            ``max_history_reads`` places.
    """

    max_frame_bytes: int = 256 * KIB
    max_patch_bytes: int = 64 * KIB
    max_snapshot_bytes: int = 16 * MIB
    max_ephemeral_bytes: int = 4 * KIB
    max_pad_bytes: int = 64 * MIB
    channel_quota_bytes: int = 256 * MIB
    max_storage_bytes: int = 10 * GIB
    rate_per_second: int = 200
    rate_burst: int = 400
    max_channels: int = 64
    presubscribe_bytes: int = 64 * KIB
    outgoing_queue_frames: int = 4096
    max_connections: int = 1024
    max_connections_per_address: int = 64
    idle_timeout_seconds: int = 900
    outgoing_queue_bytes: int = 2 * MIB
    upload_timeout_seconds: int = 300
    max_upload_bytes: int = 64 * MIB
    max_history_reads: int = 4
    push_bytes_in_flight: int = 1 * MIB
    create_per_minute: int = 10
    create_burst: int = 20
    channel_overhead_bytes: int = 4 * KIB
    new_pad_storage_percent: int = 90
    history_stall_seconds: int = 60

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"limit {field.name} must be a positive integer, not {value!r}")
        if self.new_pad_storage_percent > 100:
            raise ValueError("new_pad_storage_percent must be at most 100")
        if self.max_frame_bytes < 4 * KIB:
            raise ValueError("max_frame_bytes must be at least 4096")

    @property
    def chunk_bytes(self) -> int:
        """Largest payload a SNAPSHOT chunk frame may carry under the frame limit."""
        return self.max_frame_bytes - 64


BASE_BYTES = 64 * MIB  # interpreter, code, SQLite page cache, empty relay (measured 42-62 MiB)
HISTORY_PAGE_BYTES = 256 * KIB  # a SUBSCRIBE's history is read and sent in pages this large
#: What waits to be written to one socket beside the outgoing queue: a loop turn's
#: corked writes (below relay.corked.FLUSH_BYTES, 64 KiB) and the transport's
#: buffer up to its high-water mark (64 KiB), past which sending waits.
WRITE_BUFFER_BYTES = 128 * KIB


#: Pushes of one connection handed on and not yet answered; past it the
#: connection stops reading until the oldest is answered (backpressure).
MAX_PUSHES_IN_FLIGHT = 256

#: What the pipe to the signature helper holds per push beside its envelope:
#: the verify key and the envelope's length (:mod:`relay.verifier`).
HELPER_BYTES_PER_PUSH = 32 + 4


def memory_ceiling(limits: Limits, base: int = BASE_BYTES) -> int:
    """The relay's worst-case memory under ``limits``: PROTOCOL.md §5.3's formula.

    ``M = base + C * (Q + f + W + P + I + S) + U + R * H``: per connection its
    outgoing queue in bytes (Q) plus the one frame always admitted (f), what
    waits to be written to its socket (W, :data:`WRITE_BUFFER_BYTES`), its
    unanswered pushes (P), held twice while the signature helper has them
    (the connection's copy and the pipe's, with a key and a length each),
    one incoming message being read (I) and the history
    read answering its SUBSCRIBE while it is sent (S: one chunk of the
    snapshot read and encoded, and one page of patches, which ends with the
    patch that reaches ``HISTORY_PAGE_BYTES``; and one chunk of a live
    snapshot read and encoded, :mod:`relay.live`); relay-wide the unfinished
    snapshot uploads (U) and the concurrent HTTP history reads (R), each
    streamed a page at a time, a page held twice (its records and their
    encoding; H).  The reliability suite holds a live relay's RSS under it
    (tests/reliability).
    """
    page = HISTORY_PAGE_BYTES + limits.max_patch_bytes
    per_connection = (
        limits.outgoing_queue_bytes
        + limits.max_frame_bytes
        + WRITE_BUFFER_BYTES
        + 2 * limits.push_bytes_in_flight
        + MAX_PUSHES_IN_FLIGHT * HELPER_BYTES_PER_PUSH
        + limits.max_frame_bytes
        + 64 * KIB
        + 2 * limits.max_frame_bytes
        + page
        + 2 * limits.max_frame_bytes  # a live snapshot's chunk, beside the SUBSCRIBE's
    )
    http_history_read = 2 * page
    return (
        base
        + limits.max_connections * per_connection
        + limits.max_upload_bytes
        + limits.max_history_reads * http_history_read
    )


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst``.

    Args:
        rate: tokens added per second.
        burst: capacity; the bucket starts full.
        now: the current time in seconds (monotonic).
    """

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float) -> int:
        """Take one token if there is one.

        Args:
            now: the current time in seconds (same clock as the constructor).

        Returns:
            0 if a token was taken, else the milliseconds to wait for one (>= 1).
        """
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self._tokens) / self._rate * 1000))

    def full(self, now: float) -> bool:
        """Whether the bucket would be full at ``now`` (so forgetting it loses nothing)."""
        return self._tokens + (now - self._stamp) * self._rate >= self._burst

"""Live snapshots: a stored snapshot goes to the channel's live subscribers.

Theory of operation
-------------------
When a snapshot is stored (its uploader has its ACK), every *other*
subscriber of the channel whose SUBSCRIBE is answered (HISTORY_END sent: the
subscription is LIVE) gets it as SNAPSHOT frames with flag LIVE (and
DISPUTED if a dispute of it is stored already), so a client holding the same
patch can compare it with its own text and dispute it (PROTOCOL.md §10.3,
§12.5).  A snapshot stored by another relay process of the site arrives as a
:class:`relay.bus.SnapshotStored` hint and is sent the same way; with no bus
(or a lost hint) it is not sent.

Nothing is held whole: :meth:`LiveSnapshots.stored` picks the receivers at
once, reads the snapshot's size and disputed flag (one row), and queues it on
each receiving *connection*.  One sender task per connection sends its queue
in order, one snapshot at a time (chunks of one snapshot are never
interleaved with another's), reading each chunk from the store
(:func:`relay.store.snapshot_parts`) and waiting for room in the connection's
outgoing queue (``put``), exactly as a SUBSCRIBE's snapshot is sent: a slow
reader holds one chunk, read and encoded, until it reads on or is closed as
a slow consumer (BROADCASTs offered meanwhile still count against its queue).
BROADCASTs may come between the chunks; a client assembles a snapshot by
its ``x_seq``, ``total`` and ``offset``.

Closing the subscription (UNSUBSCRIBE, the connection ends) cancels its
snapshot in flight, so no chunk follows an UNSUBSCRIBED.  A snapshot removed
while it is sent (a trim, or a newer snapshot of the same patch replacing it)
is abandoned: no more of it is sent, and the connection goes on.  The client
drops the part it holds when the next snapshot begins (offset 0): a live
snapshot is only there to be compared, and a newer one stands.  (A trim
used to end the connection with SLOW_CONSUMER, as for a SUBSCRIBE's snapshot,
which the subscriber needs: typists snapshot and trim as a pad grows, and
``bench --only fair`` saw seven of eight reconnect at once.  A replaced one
went on with the new one's bytes: :func:`relay.store.snapshot_parts` reads
by snapshot id now.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging

from relay.errors import ProtocolViolation
from relay.hub import Hub, Subscription, SubState, record_before
from relay.store import NoSnapshot, Store, StoredSnapshot, snapshot_parts
from wire import frames
from wire.codes import ErrorCode

log = logging.getLogger("blindpad.relay")

#: Snapshots queued for one connection beyond which the oldest is dropped
#: (uploads are rate limited; this only bounds a pathological backlog).
MAX_QUEUED = 64


@dataclasses.dataclass(eq=False)
class _Sender:
    """One connection's queue of live snapshots and the task sending it."""

    queue: collections.deque[tuple[Subscription, StoredSnapshot]] = dataclasses.field(
        default_factory=collections.deque
    )
    task: asyncio.Task[None] | None = None


class LiveSnapshots:
    """Sends stored snapshots to live subscribers (see the module docstring).

    Args:
        store: where snapshots are read from, a chunk at a time.
        hub: this process's subscriptions.
        chunk_bytes: the largest chunk of a SNAPSHOT frame.
    """

    def __init__(self, store: Store, hub: Hub, chunk_bytes: int) -> None:
        self.store = store
        self.hub = hub
        self.chunk_bytes = chunk_bytes
        self._senders: dict[int, _Sender] = {}
        self._lookups: set[asyncio.Task[None]] = set()
        self.sent = 0  # snapshots sent whole (metrics, tests)
        self.abandoned = 0  # snapshots removed while they were sent (tests)

    def stored(self, channel_id: bytes, x_seq: int, origin: int | None) -> None:
        """The snapshot of patch ``x_seq`` was stored (by connection ``origin`` of
        this process, or elsewhere: None); send it to the live subscribers but ``origin``."""
        state = self.hub.channels.get(channel_id)
        if state is None:
            return
        receivers = [
            sub
            for sub in state.subscribers.values()
            if sub.connection_id != origin and sub.state is SubState.LIVE
        ]
        if receivers:
            task = asyncio.create_task(self._look_up(channel_id, x_seq, receivers))
            self._lookups.add(task)
            task.add_done_callback(self._lookups.discard)

    async def _look_up(self, channel_id: bytes, x_seq: int, receivers: list[Subscription]) -> None:
        try:
            snapshot = await self.store.snapshot(channel_id, x_seq)
        except Exception:
            log.exception("reading the snapshot of seq %d to send it live failed", x_seq)
            return
        if snapshot is None:
            return  # replaced or trimmed already: its successor is sent instead
        for sub in receivers:
            if sub.state is SubState.LIVE:
                self._queue(sub, snapshot)

    def _queue(self, sub: Subscription, snapshot: StoredSnapshot) -> None:
        sender = self._senders.get(sub.connection_id)
        if sender is None:
            sender = self._senders[sub.connection_id] = _Sender()
        if len(sender.queue) >= MAX_QUEUED:
            sender.queue.popleft()
        sender.queue.append((sub, snapshot))
        if sender.task is None:
            sender.task = asyncio.create_task(self._send_queue(sub.connection_id, sender))

    async def _send_queue(self, connection_id: int, sender: _Sender) -> None:
        try:
            while sender.queue:
                sub, snapshot = sender.queue.popleft()
                if sub.state is not SubState.LIVE:
                    continue
                one = asyncio.create_task(self._send(sub, snapshot))
                sub.sending = one
                try:
                    # Not ``await one``: cancelling one subscription's snapshot
                    # (it closed) must not end the sender of the connection.
                    await asyncio.wait({one})
                finally:
                    if sub.sending is one:
                        sub.sending = None
                    if not one.done():
                        one.cancel()
        finally:
            del self._senders[connection_id]

    async def _send(self, sub: Subscription, snapshot: StoredSnapshot) -> None:
        cid, outbox = sub.channel_id, sub.outbox
        flags = frames.SNAPSHOT_LIVE | (frames.SNAPSHOT_DISPUTED if snapshot.disputed else 0)
        offset = 0
        try:
            async for chunk in snapshot_parts(self.store, cid, snapshot, self.chunk_bytes):
                if outbox.failure is not None or outbox.stopped:
                    return
                record = await record_before(self.store, sub, chunk) if not offset else None
                if record is not None:
                    await outbox.put(record)
                frame = frames.Snapshot(cid, snapshot.x_seq, flags, snapshot.size, offset, chunk)
                await outbox.put(frames.encode(frame))
                offset += len(chunk)
        except NoSnapshot:
            self.abandoned += 1  # removed meanwhile: the rest is not sent, the connection goes on
            return
        except Exception:
            log.exception("sending a live snapshot failed")
            outbox.fail(ProtocolViolation(ErrorCode.INTERNAL, "internal relay error"), flush=True)
            return
        self.sent += 1

    async def close(self) -> None:
        """Stop every lookup and sender (the relay is stopping)."""
        tasks = [*self._lookups, *(s.task for s in self._senders.values() if s.task)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

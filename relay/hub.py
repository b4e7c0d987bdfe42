"""Fan-out inside one relay process: outboxes, subscriptions, the channel hub.

Theory of operation
-------------------
Every connection owns one FIFO bounded in frames and in bytes, its
:class:`Outbox`. A single writer task per connection drains it onto the
websocket.  A frame offered while the FIFO is empty and the writer idle is
written at once by whoever offers it (:meth:`Outbox.attach`: the fan-out
loop of a broadcast writes to each receiver's socket as a bare broadcaster
does, with no task to wake per receiver); the FIFO holds only what cannot go
yet.  Frames produced by the connection's own requests wait for room
(``await put``: backpressure on that client only); frames produced by
*other* connections (broadcasts, peer notices) never wait: if the FIFO is
full the connection is failed with SLOW_CONSUMER (close code 4004) and the
client resumes "since seq N". Ephemerals are dropped instead for a
connection whose FIFO is half full.

A :class:`Subscription` is one connection's view of one channel.  It emits a
channel's patches in strictly increasing, contiguous seq order, whatever
order they are offered in: every committed patch is *offered* (from history
or live) with its seq, offers below ``next_seq`` are duplicates and dropped,
offers above it wait in ``pending`` until the gap fills.  The pusher's own
patch is offered as its ACK frame rather than a BROADCAST, so a client sees
ACKs and BROADCASTs of one channel in seq order too.

Subscribing registers the subscription (state ``CATCHING_UP``, ``next_seq``
unknown) *before* history is read; live offers meanwhile wait in
``pending``.  When the history read is delivered, ``next_seq`` is set past the
head the read returned, older pending offers are dropped (they were in the
history) and the subscription turns ``LIVE``.  Nothing committed between
registration and the read can be lost (it is offered live) or doubled (the
seq filter).

:class:`Hub` maps channel ids to their subscriptions and the cached
:class:`ChannelState` (verify key and sizes) used by the push checks.  When
several relay processes share a store, :mod:`relay.cluster` calls
:meth:`Hub.publish` for commits made elsewhere (read back from the store); the
seq filter makes an offer made twice harmless, and an ACK held for the pusher
is never replaced by the same patch's BROADCAST.

A version-2 envelope is signed by a *session* whose record (its key, sealed
author) the receiver needs first (PROTOCOL.md §8.4): a subscription sends a
session's RECORD right before the first envelope of that session it emits,
from history, a snapshot or live, and remembers the tags it sent.  The
channel's records are cached in :attr:`ChannelState.sessions`; whoever is
about to emit an envelope makes sure its record is there
(:func:`load_records`: the push path registered it, the history and the
cluster's fill read the store), so emitting never waits.  A trim drops the
records no stored envelope names any more (:meth:`relay.store.Store.trim`);
the cache is checked against the store after a trim here, or when a poll
finds the floor moved by another process (:func:`recheck_records`): a
dropped record is forgotten, so its session is refused UNKNOWN_SESSION and
registers again, unless it verified an envelope here meanwhile, which may
have been stored after the trim: then it is stored again.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
from collections.abc import Callable, Iterable

from crypto import envelope2
from relay.errors import ProtocolViolation
from relay.store import SessionAdded, Store
from wire import frames
from wire.codes import ErrorCode
from wire.turns import Turns


class Outbox:
    """A bounded FIFO of encoded frames for one connection.

    Args:
        max_frames: capacity in frames; offers beyond it fail the connection.
        max_bytes: capacity in bytes (one frame is always admitted into an
            empty queue, so the bound is ``max_bytes`` + one frame).
    """

    def __init__(self, max_frames: int, max_bytes: int = 2**62) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._max = max_frames
        self._max_bytes = max_bytes
        self.bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self.held = 0  # bytes of offers its subscriptions hold out of order (same budget)
        self.failure: ProtocolViolation | None = None
        self.flush_before_failure = True
        self.stopped = False
        self._direct: Callable[[bytes], bool] | None = None

    def attach(self, direct: Callable[[bytes], bool]) -> None:
        """Write offers at once while nothing is queued.

        Args:
            direct: called with a frame offered into an empty FIFO; it writes
                the frame (or starts writing it) and returns True, or returns
                False when the writer is busy and the frame must wait its turn.
        """
        self._direct = direct

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def half_full(self) -> bool:
        """Whether droppable traffic (ephemerals) should be dropped."""
        return len(self._frames) * 2 >= self._max or self.bytes * 2 >= self._max_bytes

    def over_budget(self) -> bool:
        """Whether queued plus held-back bytes exceed the byte bound."""
        return self.bytes + self.held > self._max_bytes

    def _full(self, size: int) -> bool:
        if len(self._frames) >= self._max:
            return True
        return bool(self._frames) and self.bytes + size > self._max_bytes

    def offer(self, frame: bytes) -> None:
        """Queue a frame without waiting; on overflow fail with SLOW_CONSUMER."""
        if self.failure is not None or self.stopped:
            return
        if self._full(len(frame)):
            violation = ProtocolViolation(
                ErrorCode.SLOW_CONSUMER,
                "outgoing queue overflow; reconnect and resume since your last seq",
            )
            self.fail(violation, flush=False)
            return
        if not self._frames and self._direct is not None and self._direct(frame):
            return
        self._frames.append(frame)
        self.bytes += len(frame)
        self._wake.set()

    async def put(self, frame: bytes) -> None:
        """Queue a frame, waiting for room (backpressure on the owning connection)."""
        while self._full(len(frame)) and self.failure is None and not self.stopped:
            self._room.clear()
            await self._room.wait()
        self.offer(frame)

    def fail(self, violation: ProtocolViolation, *, flush: bool) -> None:
        """End the connection with ``violation`` (after queued frames if ``flush``)."""
        if self.failure is None:
            self.failure = violation
            self.flush_before_failure = flush
            self._wake.set()
            self._room.set()

    def stop(self) -> None:
        """End the writer without an error (the peer went away)."""
        self.stopped = True
        self._wake.set()
        self._room.set()

    async def next(self) -> bytes | None:
        """Return the next frame to send, or None when the writer must stop."""
        while True:
            if self.stopped:
                return None
            if self.failure is not None and not (self.flush_before_failure and self._frames):
                return None
            if self._frames:
                frame = self._frames.popleft()
                self.bytes -= len(frame)
                self._room.set()
                return frame
            self._wake.clear()
            await self._wake.wait()


class SubState(enum.Enum):
    """A subscription's lifecycle."""

    CATCHING_UP = "catching-up"
    LIVE = "live"
    CLOSED = "closed"


@dataclasses.dataclass(slots=True)
class _Offer:
    frame: bytes | None
    is_ack: bool
    tag: bytes | None = None  # the session of a version-2 envelope's BROADCAST


class SessionsSent:
    """The session records one reader (a subscription, an HTTP history body) was
    sent: each once, right before the first envelope of its session.

    Args:
        records: the channel's session records known here, tag -> record.
    """

    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records
        self._sent: set[bytes] = set()

    def first(self, tag: bytes | None) -> bytes | None:
        """The record to send before an envelope of session ``tag`` (None: a
        version-1 envelope's): the record the first time, else None.  A record
        not loaded is not sent: the reader resumes (PROTOCOL.md §8.4)."""
        if tag is None or tag in self._sent:
            return None
        record = self.records.get(tag)
        if record is not None:
            self._sent.add(tag)
        return record


class Subscription:
    """One connection's ordered view of one channel.

    Args:
        channel_id: the channel.
        connection_id: the owning connection.
        outbox: where frames go.
        max_pending: most out-of-order offers held before failing as slow.
    """

    def __init__(
        self, channel_id: bytes, connection_id: int, outbox: Outbox, max_pending: int
    ) -> None:
        self.channel_id = channel_id
        self.connection_id = connection_id
        self.outbox = outbox
        self.state = SubState.CATCHING_UP
        self.next_seq: int | None = None
        self._pending: dict[int, _Offer] = {}
        self._max_pending = max_pending
        #: The live snapshot being sent on this subscription (relay.live), if any:
        #: closing the subscription cancels it, so no chunk follows an UNSUBSCRIBED.
        self.sending: asyncio.Task[None] | None = None
        #: The session records this subscription sent (and the channel's, cached:
        #: :attr:`ChannelState.sessions`, set by :meth:`Hub.register`).
        self.sessions = SessionsSent({})

    @property
    def records(self) -> dict[bytes, bytes]:
        """The channel's session records known here, tag -> record."""
        return self.sessions.records

    def record_frame(self, tag: bytes | None) -> bytes | None:
        """The RECORD to send before an envelope of session ``tag`` (None: a
        version-1 envelope): the session's record the first time, else None."""
        record = self.sessions.first(tag)
        if record is None:
            return None
        return frames.encode(frames.Record(self.channel_id, envelope2.SESSION, record))

    def _emit(self, offer: _Offer) -> None:
        if offer.frame is None:
            return
        record = self.record_frame(offer.tag)
        if record is not None:
            self.outbox.offer(record)
        self.outbox.offer(offer.frame)

    def offer(
        self, seq: int, frame: bytes | None, *, is_ack: bool = False, tag: bytes | None = None
    ) -> None:
        """Offer patch ``seq`` (its BROADCAST or ACK frame; None = send nothing;
        ``tag``: the session of a version-2 BROADCAST's envelope)."""
        if self.state is SubState.CLOSED:
            return
        if self.next_seq is not None and seq < self.next_seq:
            if is_ack and frame is not None:
                self.outbox.offer(frame)
            return
        held = self._pending.get(seq)
        if held is not None:  # offered twice (a fill and a hint, or a fill and an ACK)
            if held.is_ack or not is_ack:
                return
            self.outbox.held -= len(held.frame or b"")  # the pusher gets its ACK
        self._pending[seq] = _Offer(frame, is_ack, tag)
        self.outbox.held += len(frame or b"")
        if len(self._pending) > self._max_pending or self.outbox.over_budget():
            violation = ProtocolViolation(ErrorCode.SLOW_CONSUMER, "too many undelivered patches")
            self.outbox.fail(violation, flush=False)
            return
        if self.state is SubState.LIVE:
            self._flush()

    def close(self) -> None:
        """Stop emitting (a live snapshot too); give back the bytes of offers held out
        of order."""
        self.state = SubState.CLOSED
        if self.sending is not None:
            self.sending.cancel()
            self.sending = None
        for offer in self._pending.values():
            self.outbox.held -= len(offer.frame or b"")
        self._pending.clear()

    def go_live(self, next_seq: int) -> None:
        """History up to ``next_seq - 1`` is delivered: drop older offers, emit the rest."""
        self.next_seq = next_seq
        for seq in [s for s in self._pending if s < next_seq]:
            offer = self._pending.pop(seq)
            self.outbox.held -= len(offer.frame or b"")
            if offer.is_ack and offer.frame is not None:
                self.outbox.offer(offer.frame)
        self.state = SubState.LIVE
        self._flush()

    def _flush(self) -> None:
        assert self.next_seq is not None  # LIVE implies known
        while self.next_seq in self._pending:
            offer = self._pending.pop(self.next_seq)
            self.outbox.held -= len(offer.frame or b"")
            self._emit(offer)
            self.next_seq += 1


@dataclasses.dataclass(slots=True)
class ChannelState:
    """What the push checks need about a channel, cached per process.

    ``read_hash`` is SHA-256 of the read token registered at the channel's
    creation: every SUBSCRIBE's token must hash to it.

    ``offered`` is the highest seq offered to this process's subscribers with
    none missing below it: where a fill from the store starts when other relay
    processes commit (:mod:`relay.cluster`); ``wanted`` is the highest seq
    known to be committed, where that fill ends.
    """

    verify_key: bytes
    read_hash: bytes
    pad_bytes: int
    stored_bytes: int
    offered: int = 0
    wanted: int = 0
    subscribers: dict[int, Subscription] = dataclasses.field(default_factory=dict)
    #: Turns (PROTOCOL.md §13.3) among this process's connections.
    turns: Turns = dataclasses.field(default_factory=Turns)
    #: Session records of the channel known here, tag -> record (version 2).
    sessions: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    #: The trimmed floor last seen here: when it moves, a trim may have dropped
    #: records cached in :attr:`sessions` (:func:`recheck_records`).
    floor_seq: int = 0
    #: The records that verified an envelope here since :func:`recheck_records`
    #: last ran, tag -> record.
    used: dict[bytes, bytes] = dataclasses.field(default_factory=dict)


class Hub:
    """Channel id -> subscribers and cached state; publishes commits in-process."""

    def __init__(self) -> None:
        self.channels: dict[bytes, ChannelState] = {}
        #: Called with the number of subscribers each committed patch is offered to.
        self.observe_fanout: Callable[[float], None] | None = None
        #: Whether a state dropped with records in :attr:`ChannelState.used` is kept
        #: in :attr:`retired` (a shared store: the cluster's next poll checks it).
        self.keep_retired = False
        #: Channel states dropped (their last subscriber left) holding records that
        #: verified envelopes here since their last check: checked once more by
        #: the next poll (:meth:`relay.cluster.Cluster.poll`, :func:`recheck_records`).
        self.retired: dict[bytes, ChannelState] = {}

    def register(self, state: ChannelState, channel_id: bytes, sub: Subscription) -> None:
        """Add ``sub`` (before its history is read) and tell the other subscribers."""
        state = self.channels.setdefault(channel_id, state)
        self.notify(channel_id, frames.encode(frames.PeerJoined(channel_id, sub.connection_id)))
        state.subscribers[sub.connection_id] = sub
        sub.sessions.records = state.sessions

    def peers(self, channel_id: bytes, connection_id: int) -> list[int]:
        """Return the other connections subscribed to the channel."""
        state = self.channels.get(channel_id)
        subs = state.subscribers if state else {}
        return [cid for cid in subs if cid != connection_id]

    def unregister(self, channel_id: bytes, connection_id: int) -> None:
        """Remove a subscription and tell the remaining subscribers."""
        state = self.channels.get(channel_id)
        if state is None or connection_id not in state.subscribers:
            return
        state.subscribers.pop(connection_id).close()
        state.turns.left(connection_id)  # nobody waits for a connection that left
        self.notify(channel_id, frames.encode(frames.PeerLeft(channel_id, connection_id)))
        if not state.subscribers:
            del self.channels[channel_id]
            if self.keep_retired and state.used:
                earlier = self.retired.get(channel_id)
                if earlier is not None:  # checked once, from the older floor
                    state.used = {**earlier.used, **state.used}
                    state.sessions.update(earlier.sessions)
                    state.floor_seq = min(state.floor_seq, earlier.floor_seq)
                self.retired[channel_id] = state

    def publish(
        self, channel_id: bytes, seq: int, envelope: bytes, origin: int, ack: bytes | None
    ) -> bool:
        """Offer committed patch ``seq`` to every subscriber; the origin gets ``ack``.

        Returns:
            Whether the origin connection was subscribed (and so took the ack).
        """
        state = self.channels.get(channel_id)
        if state is None:
            return False
        frame = frames.encode(frames.Broadcast(channel_id, seq, envelope))
        tag = envelope2.tag_of(envelope)
        if self.observe_fanout is not None:
            self.observe_fanout(len(state.subscribers))
        for sub in state.subscribers.values():
            if sub.connection_id == origin:
                sub.offer(seq, ack, is_ack=True)
            else:
                sub.offer(seq, frame, tag=tag)
        return origin in state.subscribers

    def notify(self, channel_id: bytes, frame: bytes) -> None:
        """Give a notice (a peer, here or on another relay, joined or left) to every
        subscriber."""
        state = self.channels.get(channel_id)
        if state is not None:
            for sub in state.subscribers.values():
                sub.outbox.offer(frame)

    def relay_ephemeral(self, channel_id: bytes, origin: int, frame: bytes) -> None:
        """Give an ephemeral frame to every live subscriber except the origin (droppable)."""
        state = self.channels.get(channel_id)
        if state is None:
            return
        for sub in state.subscribers.values():
            if sub.connection_id != origin and not sub.outbox.half_full:
                sub.outbox.offer(frame)


async def record_before(store: Store, sub: Subscription, envelope_head: bytes) -> bytes | None:
    """The RECORD ``sub`` must send before an envelope starting with
    ``envelope_head`` (a whole envelope or its first chunk), read from the
    store if need be; None if it needs none."""
    tag = envelope2.tag_of(envelope_head)
    await load_records(store, sub.channel_id, sub.records, (tag,))
    return sub.record_frame(tag)


async def load_records(
    store: Store, channel_id: bytes, records: dict[bytes, bytes], tags: Iterable[bytes | None]
) -> None:
    """Make sure ``records`` (a channel's cached session records) holds those of
    ``tags`` the store has (None, a version-1 envelope's, needs none)."""
    missing = {tag for tag in tags if tag is not None and tag not in records}
    if missing:
        records.update(await store.sessions(channel_id, missing))


async def recheck_records(store: Store, channel_id: bytes, state: ChannelState) -> None:
    """After a trim (here, or found by a poll), bring the channel's cached session
    records in line with the store, which dropped those no stored envelope named
    (:meth:`relay.store.Store.trim`).

    A dropped record is forgotten here (the subscriptions share the dict), so
    its session's next envelope is refused UNKNOWN_SESSION and registers it
    again; but one that verified an envelope here since the last check
    (:attr:`ChannelState.used`) is stored again instead: that envelope may have
    been accepted from this cache after the trim (a push in flight during our
    trim, or one made before this process heard of another's), and no reader
    could open it without its record.  What was used before the trim and
    trimmed since is stored again needlessly, until a later trim drops it."""
    cached = list(state.sessions)
    kept = await store.sessions(channel_id, cached) if cached else {}
    # Synchronous from here to the first re-add: an envelope checked after it
    # finds its record gone from the cache and asks the store, or finds it
    # being stored again; one checked before it is in ``used``.
    used, state.used = state.used, {}
    dropped = [tag for tag in cached if tag not in kept]
    for tag in dropped:
        if tag not in used:
            state.sessions.pop(tag, None)
    for tag in dropped:
        record = used.get(tag)
        if record is not None:
            added = await store.add_session(channel_id, tag, record)
            if added is SessionAdded.TAKEN:  # another record took the tag meanwhile
                state.sessions.pop(tag, None)

"""Many relay processes on one store: hints out, hints in, filling from the store.

Theory of operation
-------------------
Relays that share a store (``Store.shared``: PostgreSQL) are *nodes* of one
site.  Each serves its own websocket clients; the store alone orders every
channel's line (its append is a compare-and-set on the head), so nodes never
coordinate writes.  What a node must learn from the others is only that a
channel moved, and their clients' ephemerals and comings and goings.  That is
what the hint bus (:mod:`relay.bus`) carries:

* after a commit, a node publishes ``Committed(channel, seq)``; a node with
  subscribers on that channel reads the patches it has not offered yet from
  the store, a page at a time, and offers them to its hub exactly like its
  own commits (:meth:`relay.hub.Hub.publish`: the subscriptions' seq filter
  makes anything offered twice harmless);
* ``Relayed`` ephemerals and ``PeerNotice`` joins and leaves go to the local
  subscribers of their channel;
* after storing a snapshot, a node publishes ``SnapshotStored(channel,
  x_seq)``; the others send it, read from the store, to their live
  subscribers of that channel (:mod:`relay.live`), as the storing node does
  for its own.  A lost one is not sent again (the poll carries no snapshots).

The store is the truth and a hint is only a nudge, so a lost hint delays and
never loses: every ``poll_seconds`` a node reads the heads of the channels it
serves in one query and fills what it lacks, and while the bus is down it
does so every ``outage_poll_seconds`` (a log line and the
``blindpad_bus_up`` gauge say so).  A local commit above a gap (a patch
committed elsewhere whose hint has not arrived) starts a fill too.  Each
channel has at most one fill task; hints that arrive meanwhile only raise its
``wanted`` seq; at most ``FILL_CONCURRENCY`` fills read at once, so a node holds at
most that many pages of history (256 KiB each) however many channels lag.
A fill that finds the history trimmed past what this node offered ends its
subscribers' connections with SLOW_CONSUMER: their clients resume and take
the snapshot, as after any overflow.

A trim drops the session records no stored envelope names
(:meth:`relay.store.Store.trim`); a poll that finds a channel's floor moved
checks this node's cache of them (:func:`relay.hub.recheck_records`): a
dropped record is forgotten, so its session registers again before its next
envelope, but one that verified an envelope here since the last check is
stored again.  So an envelope this node accepted from its cache after
another's trim dropped its record (its session quiet through a whole
compaction, then sending again) is without its record in the store for at
most one ``poll_seconds``: readers of other nodes that meet it meanwhile
miss the record and resume (PROTOCOL.md §12.4), and find it then.  A
channel whose last subscriber here leaves is checked so by the next poll
all the same (:attr:`relay.hub.Hub.retired`).

Quotas that must hold across nodes are enforced from the store: a fill adds
the bytes of what it offers to the channel's sizes, and each poll replaces
every local channel's sizes (others' snapshots and trims included) and the
relay-wide total with the store's.  A node's view can lag by one poll, so a
quota can be passed by what the other nodes accept meanwhile; the
per-connection rate and size limits bound that.

A relay on an unshared store (SQLite, memory) runs the same code with
:class:`relay.bus.NoBus` and never polls: every commit is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from crypto import envelope2
from relay.bus import Bus, BusMessage, Committed, PeerNotice, Relayed, SnapshotStored
from relay.errors import ProtocolViolation
from relay.hub import Hub, load_records, recheck_records
from relay.limits import HISTORY_PAGE_BYTES, Limits
from relay.live import LiveSnapshots
from relay.store import HistoryTrimmed, Membership, Store, StoreStats
from wire import frames
from wire.codes import ErrorCode

log = logging.getLogger("blindpad.relay")

#: How often a node reads the heads of its channels while the bus is up.
POLL_SECONDS = 5.0
#: How often while the bus is down.
OUTAGE_POLL_SECONDS = 0.5
#: Fills reading from the store at once: each holds one page of history, so a
#: node's fills hold at most this many pages however many channels lag.
FILL_CONCURRENCY = 4


class Cluster:
    """This node's side of a site: the bus, fills and polls (see the module docstring).

    Args:
        store: the shared store (or an unshared one: then nothing is polled).
        hub: this node's fan-out.
        bus: the hint bus (``NoBus`` for a single process).
        membership: this node's site and number.
        on_stats: called with the store's totals after each poll (the
            relay-wide storage quota).
        poll_seconds: the poll period while the bus is up.
        outage_poll_seconds: the poll period while it is down.
        chunk_bytes: the largest chunk of a SNAPSHOT frame (live snapshots).
    """

    def __init__(
        self,
        store: Store,
        hub: Hub,
        bus: Bus,
        membership: Membership,
        on_stats: Callable[[StoreStats], None] | None = None,
        poll_seconds: float = POLL_SECONDS,
        outage_poll_seconds: float = OUTAGE_POLL_SECONDS,
        chunk_bytes: int = Limits().chunk_bytes,
    ) -> None:
        self.store = store
        self.hub = hub
        self.bus = bus
        self.node = membership.node
        self.active = store.shared
        hub.keep_retired = self.active  # the poll checks them (poll)
        self._on_stats = on_stats
        self._poll_seconds = poll_seconds
        self._outage_poll_seconds = outage_poll_seconds
        self._fills: dict[bytes, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._reading = asyncio.Semaphore(FILL_CONCURRENCY)
        self.live = LiveSnapshots(store, hub, chunk_bytes)
        self.fills = 0  # fill reads done (metrics)
        self.filled = 0  # patches offered from fills (metrics)

    @property
    def bus_up(self) -> bool:
        """Whether hints flow (always, for a single process)."""
        return self.bus.healthy

    async def start(self) -> None:
        """Start listening to the bus and, on a shared store, polling."""
        await self.bus.start(self.node, self._deliver, self._health)
        if self.active:
            self._poller = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        """Stop polling, filling and sending live snapshots, then close the bus."""
        tasks = [t for t in [self._poller, *self._fills.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fills.clear()
        await self.live.close()
        await self.bus.close()

    # --- what this node tells the others ----------------------------------------

    def committed(self, channel_id: bytes, seq: int) -> None:
        """This node committed ``seq`` of the channel and offered it to its hub."""
        if not self.active:
            return
        self.bus.publish(Committed(channel_id, seq))
        state = self.hub.channels.get(channel_id)
        if state is None:
            return
        if seq == state.offered + 1:
            state.offered = seq
        elif seq > state.offered + 1:
            self.behind(channel_id, seq)  # committed elsewhere first: fill the gap

    def snapshot_stored(self, channel_id: bytes, x_seq: int, origin: int) -> None:
        """Connection ``origin`` stored a snapshot of patch ``x_seq``: send it live
        to the channel's other subscribers, here and on the other nodes."""
        self.live.stored(channel_id, x_seq, origin)
        if self.active:
            self.bus.publish(SnapshotStored(channel_id, x_seq))

    def ephemeral(self, channel_id: bytes, origin: int, frame: bytes) -> None:
        """An ephemeral (an encoded EPHEMERAL_RELAYED frame) for the other nodes."""
        if self.active:
            self.bus.publish(Relayed(channel_id, origin, frame))

    def peer(self, channel_id: bytes, peer: int, *, joined: bool) -> None:
        """A local connection subscribed to (or left) the channel."""
        if self.active:
            self.bus.publish(PeerNotice(channel_id, peer, joined))

    # --- what the others tell this node -------------------------------------------

    def _deliver(self, message: BusMessage) -> None:
        cid = message.channel_id
        if cid not in self.hub.channels:
            return  # no subscriber here
        if isinstance(message, Committed):
            self.behind(cid, message.seq)
        elif isinstance(message, Relayed):
            self.hub.relay_ephemeral(cid, message.origin, message.frame)
        elif isinstance(message, SnapshotStored):
            self.live.stored(cid, message.x_seq, None)
        else:
            notice: frames.PeerJoined | frames.PeerLeft = (
                frames.PeerJoined(cid, message.peer)
                if message.joined
                else frames.PeerLeft(cid, message.peer)
            )
            self.hub.notify(cid, frames.encode(notice))

    def _health(self, healthy: bool) -> None:
        if healthy:
            log.info("hint bus up: commits of other relays arrive as hints")
        else:
            log.warning(
                "hint bus down: reading channel heads from the store every %s s until it is back",
                self._outage_poll_seconds,
            )
        self._wake.set()  # poll now: whatever was hinted during the outage is lost

    def behind(self, channel_id: bytes, seq: int) -> None:
        """The channel's head is at least ``seq``: offer what this node lacks."""
        state = self.hub.channels.get(channel_id)
        if state is None or seq <= state.offered:
            return
        state.wanted = max(state.wanted, seq)
        if channel_id not in self._fills:
            self._fills[channel_id] = asyncio.create_task(self._fill(channel_id))

    async def _fill(self, channel_id: bytes) -> None:
        try:
            while True:
                state = self.hub.channels.get(channel_id)
                if state is None or state.wanted <= state.offered:
                    return
                try:
                    async with self._reading:
                        read = await self.store.read_since(
                            channel_id, state.offered, HISTORY_PAGE_BYTES
                        )
                except HistoryTrimmed as trimmed:
                    self._lost(channel_id, trimmed.floor_seq)
                    return
                self.fills += 1
                state = self.hub.channels.get(channel_id)
                if state is None:
                    return
                if not read.patches:  # a hint beyond the head: nothing to offer
                    state.wanted = state.offered
                    return
                tags = [envelope2.tag_of(patch.envelope) for patch in read.patches]
                await load_records(self.store, channel_id, state.sessions, tags)
                for patch in read.patches:
                    self.hub.publish(channel_id, patch.seq, patch.envelope, 0, None)
                    if patch.seq > state.offered:  # new here: its bytes count, as for ours
                        state.pad_bytes += len(patch.envelope)
                        state.stored_bytes += len(patch.envelope)
                    self.filled += 1
                state.offered = max(state.offered, read.patches[-1].seq)
                state.wanted = max(state.wanted, read.head.seq)
        except Exception:
            log.exception("filling channel %s from the store failed", channel_id.hex()[:16])
        finally:
            self._fills.pop(channel_id, None)

    def _lost(self, channel_id: bytes, floor: int) -> None:
        """History this node never offered was trimmed: its subscribers resume."""
        state = self.hub.channels.get(channel_id)
        if state is None:
            return
        message = f"history trimmed to seq {floor} before this relay sent it; resume"
        for sub in list(state.subscribers.values()):
            sub.outbox.fail(ProtocolViolation(ErrorCode.SLOW_CONSUMER, message), flush=True)

    async def _poll_forever(self) -> None:
        while True:
            period = self._poll_seconds if self.bus.healthy else self._outage_poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)
            self._wake.clear()
            try:
                await self.poll()
            except Exception:
                log.exception("reading channel heads from the store failed; trying again")

    async def poll(self) -> None:
        """Read this node's channels (heads and sizes, one query) and the store's
        totals; fill what lags; after a trim elsewhere, check the cached session
        records (those of channels whose last subscriber here left since the
        last poll too: :attr:`relay.hub.Hub.retired`)."""
        retired, self.hub.retired = self.hub.retired, {}
        channels = list(self.hub.channels.keys() | retired.keys())
        if channels:
            for cid, info in (await self.store.channels(channels)).items():
                gone = retired.get(cid)
                if gone is not None and info.floor_seq != gone.floor_seq:
                    await recheck_records(self.store, cid, gone)
                state = self.hub.channels.get(cid)
                if state is not None:  # sizes as the store has them (others' trims too)
                    state.pad_bytes, state.stored_bytes = info.pad_bytes, info.stored_bytes
                    if info.floor_seq != state.floor_seq:  # trimmed elsewhere
                        state.floor_seq = info.floor_seq
                        await recheck_records(self.store, cid, state)
                self.behind(cid, info.head.seq)
        if self._on_stats is not None:
            self._on_stats(await self.store.stats())

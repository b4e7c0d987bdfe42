"""An in-memory :class:`~relay.store.base.Store` for tests and throwaway relays.

Theory of operation
-------------------
Plain dictionaries per channel.  Every method runs to completion without an
``await`` inside, so on one event loop each is atomic, exactly like one
SQLite transaction; that is all the compare-and-append needs.  What a trim
keeps of the history it removes (block roots, the cut block's ids) is kept
as :mod:`relay.store.blocks` computes it, as the other backends do.  Nothing
is durable: a restart forgets everything.  It passes the same conformance suite
as the SQLite store (``tests/relay/test_relay_store.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from relay.store import blocks
from relay.store.base import (
    TAG_AT,
    TAG_LEN,
    VERSION_2,
    AppendOutcome,
    AppendResult,
    ChannelInfo,
    Head,
    HistoryRead,
    HistoryTrimmed,
    Membership,
    NoSnapshot,
    SessionAdded,
    SnapshotDisputed,
    StoredPatch,
    StoredSnapshot,
    StoreStats,
    UnknownChannel,
    UnknownPatch,
    page,
    session_added,
)


@dataclasses.dataclass
class _Channel:
    verify_key: bytes
    read_hash: bytes
    patches: dict[int, StoredPatch] = dataclasses.field(default_factory=dict)
    ids: dict[bytes, int] = dataclasses.field(default_factory=dict)
    #: block number -> root of the trimmed block's 256 ids
    roots: dict[int, bytes] = dataclasses.field(default_factory=dict)
    #: group number -> root of the aged group's 256 blocks
    groups: dict[int, bytes] = dataclasses.field(default_factory=dict)
    #: the trimmed ids of the floor's block (leaves floor // 256 * 256 + 1 on)
    partial: list[bytes] = dataclasses.field(default_factory=list)
    keep_pct: int = 0  # the last trim's
    snapshots: dict[int, StoredSnapshot] = dataclasses.field(default_factory=dict)
    #: snapshot id -> dispute id -> dispute envelope
    disputes: dict[bytes, dict[bytes, bytes]] = dataclasses.field(default_factory=dict)
    #: session tag -> session record
    sessions: dict[bytes, bytes] = dataclasses.field(default_factory=dict)
    #: session tag -> the head seq when its record was registered
    registered_at: dict[bytes, int] = dataclasses.field(default_factory=dict)
    head: Head = dataclasses.field(default_factory=Head)
    floor_seq: int = 0

    def latest_snapshot(self) -> StoredSnapshot | None:
        return self.snapshots[max(self.snapshots)] if self.snapshots else None

    def shown(self, snap: StoredSnapshot | None, *, load: bool) -> StoredSnapshot | None:
        """``snap`` as a read returns it: its disputed flag, its envelope if ``load``."""
        if snap is None:
            return None
        envelope = snap.envelope if load else None
        disputed = bool(self.disputes.get(snap.id))
        return dataclasses.replace(snap, envelope=envelope, disputed=disputed)

    def drop_disputes(self, snapshot_id: bytes) -> None:
        self.disputes.pop(snapshot_id, None)

    def stored_bytes(self) -> int:
        patches = sum(len(p.envelope) for p in self.patches.values())
        disputes = sum(len(e) for d in self.disputes.values() for e in d.values())
        sessions = sum(len(r) for r in self.sessions.values())
        nodes = blocks.HASH * (len(self.roots) + len(self.groups) + len(self.partial))
        snapshots = sum(s.size for s in self.snapshots.values())
        return patches + snapshots + disputes + sessions + nodes

    def pad_bytes(self) -> int:
        snap = self.latest_snapshot()
        after = snap.x_seq if snap else 0
        size = sum(len(p.envelope) for s, p in self.patches.items() if s > after)
        return size + (snap.size if snap else 0)


class MemoryStore:
    """Dictionaries behind the :class:`~relay.store.base.Store` protocol."""

    shared = False

    def __init__(self) -> None:
        self._channels: dict[bytes, _Channel] = {}

    async def open(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to close."""

    def _get(self, channel_id: bytes) -> _Channel:
        try:
            return self._channels[channel_id]
        except KeyError:
            raise UnknownChannel(channel_id.hex()) from None

    async def channel(self, channel_id: bytes) -> ChannelInfo | None:
        """See :meth:`relay.store.base.Store.channel`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return None
        return ChannelInfo(
            channel_id,
            ch.verify_key,
            ch.read_hash,
            ch.head,
            ch.floor_seq,
            ch.stored_bytes(),
            ch.pad_bytes(),
        )

    async def create_channel(
        self, channel_id: bytes, verify_key: bytes, read_hash: bytes
    ) -> ChannelInfo:
        """See :meth:`relay.store.base.Store.create_channel`."""
        self._channels.setdefault(channel_id, _Channel(verify_key, read_hash))
        info = await self.channel(channel_id)
        assert info is not None  # just created
        return info

    async def append(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> AppendResult:
        """See :meth:`relay.store.base.Store.append`."""
        ch = self._get(channel_id)
        known = ch.ids.get(patch_id)
        if known is not None:
            return AppendResult(AppendOutcome.DUPLICATE, known, ch.head)
        if parent_id != ch.head.id:
            return AppendResult(AppendOutcome.STALE, 0, ch.head)
        seq = ch.head.seq + 1
        ch.patches[seq] = StoredPatch(seq, patch_id, envelope)
        ch.ids[patch_id] = seq
        ch.head = Head(seq, patch_id)
        return AppendResult(AppendOutcome.APPENDED, seq, ch.head)

    async def lookup(self, channel_id: bytes, patch_id: bytes) -> int | None:
        """See :meth:`relay.store.base.Store.lookup`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return None
        return ch.ids.get(patch_id)

    async def put_snapshot(
        self, channel_id: bytes, x_id: bytes, snapshot_id: bytes, envelope: bytes
    ) -> int:
        """See :meth:`relay.store.base.Store.put_snapshot`."""
        ch = self._get(channel_id)
        x_seq = ch.ids.get(x_id)
        if x_seq is None:
            raise UnknownPatch(x_id.hex())
        old = ch.snapshots.get(x_seq)
        if old is not None and old.id != snapshot_id:
            ch.drop_disputes(old.id)
        ch.snapshots[x_seq] = StoredSnapshot(x_seq, x_id, snapshot_id, len(envelope), envelope)
        return x_seq

    async def read_since(
        self, channel_id: bytes, since_seq: int, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_since`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return HistoryRead(None, (), Head())
        if since_seq < ch.floor_seq:
            raise HistoryTrimmed(ch.floor_seq)
        items = page((ch.patches[s] for s in range(since_seq + 1, ch.head.seq + 1)), max_bytes)
        return HistoryRead(None, items, ch.head)

    async def read_from_snapshot(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_from_snapshot`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return HistoryRead(None, (), Head())
        snap = ch.latest_snapshot()
        start = snap.x_seq if snap else ch.floor_seq
        items = page((ch.patches[s] for s in range(start + 1, ch.head.seq + 1)), max_bytes)
        # A paged read leaves the envelope to read_snapshot (streamed).
        return HistoryRead(ch.shown(snap, load=max_bytes is None), items, ch.head)

    async def read_from_floor(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_from_floor`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return HistoryRead(None, (), Head())
        snap = ch.snapshots.get(ch.floor_seq) if ch.floor_seq else None
        start = ch.floor_seq
        items = page((ch.patches[s] for s in range(start + 1, ch.head.seq + 1)), max_bytes)
        return HistoryRead(ch.shown(snap, load=max_bytes is None), items, ch.head)

    async def proof_nodes(
        self, channel_id: bytes, from_seq: int, to_seq: int, max_nodes: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """See :meth:`relay.store.base.Store.proof_nodes`."""
        ch = self._channels.get(channel_id)
        to = min(to_seq, ch.head.seq if ch is not None else 0)
        if ch is None or from_seq >= to:
            return from_seq, []
        after = max(from_seq, ch.floor_seq)
        live = [ch.patches[s].id for s in range(after + 1, min(to, after + max_nodes) + 1)]
        return blocks.proof_nodes(
            from_seq,
            to,
            max_nodes,
            floor=ch.floor_seq,
            roots=ch.roots,
            partial=ch.partial,
            live_after=after,
            live=live,
            groups=ch.groups,
        )

    async def snapshots(self, channel_id: bytes) -> list[StoredSnapshot]:
        """See :meth:`relay.store.base.Store.snapshots`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return []
        found = (ch.shown(ch.snapshots[s], load=False) for s in sorted(ch.snapshots))
        return [snap for snap in found if snap is not None]

    async def snapshot(self, channel_id: bytes, x_seq: int) -> StoredSnapshot | None:
        """See :meth:`relay.store.base.Store.snapshot`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return None
        return ch.shown(ch.snapshots.get(x_seq), load=False)

    async def add_dispute(
        self, channel_id: bytes, snapshot_id: bytes, dispute_id: bytes, envelope: bytes
    ) -> int:
        """See :meth:`relay.store.base.Store.add_dispute`."""
        ch = self._get(channel_id)
        found = [s for s in ch.snapshots.values() if s.id == snapshot_id]
        if not found:
            raise UnknownPatch(snapshot_id.hex())
        ch.disputes.setdefault(snapshot_id, {}).setdefault(dispute_id, envelope)
        return found[0].x_seq

    async def add_session(self, channel_id: bytes, tag: bytes, record: bytes) -> SessionAdded:
        """See :meth:`relay.store.base.Store.add_session`."""
        ch = self._get(channel_id)
        added = session_added(ch.sessions.get(tag), record)
        if added is SessionAdded.STORED:
            ch.sessions[tag] = record
            ch.registered_at[tag] = ch.head.seq
        elif added is SessionAdded.KNOWN:  # registered again: as if registered now
            ch.registered_at[tag] = max(ch.registered_at[tag], ch.head.seq)
        return added

    async def sessions(
        self, channel_id: bytes, tags: Collection[bytes] | None = None
    ) -> dict[bytes, bytes]:
        """See :meth:`relay.store.base.Store.sessions`."""
        ch = self._channels.get(channel_id)
        if ch is None:
            return {}
        if tags is None:
            return dict(ch.sessions)
        return {tag: ch.sessions[tag] for tag in tags if tag in ch.sessions}

    async def read_snapshot(
        self,
        channel_id: bytes,
        x_seq: int,
        offset: int,
        size: int,
        *,
        snapshot_id: bytes | None = None,
    ) -> bytes:
        """See :meth:`relay.store.base.Store.read_snapshot`."""
        ch = self._channels.get(channel_id)
        snap = None if ch is None else ch.snapshots.get(x_seq)
        replaced = snap is not None and snapshot_id not in (None, snap.id)
        if snap is None or snap.envelope is None or replaced:
            raise NoSnapshot(f"no snapshot of seq {x_seq}")
        return snap.envelope[offset : offset + size]

    async def trim(self, channel_id: bytes, x_id: bytes, keep_pct: int) -> int:
        """See :meth:`relay.store.base.Store.trim`."""
        ch = self._get(channel_id)
        x_seq = ch.ids.get(x_id)
        if x_seq is None:
            at = [s.x_seq for s in ch.snapshots.values() if s.x_id == x_id]
            if not at:
                raise UnknownPatch(x_id.hex())
            x_seq = at[0]
        if x_seq <= ch.floor_seq:
            if x_seq == ch.floor_seq and keep_pct != ch.keep_pct:
                self._thin(ch, x_seq, keep_pct)
                self._prune_sessions(ch, x_seq)
            return ch.floor_seq
        if x_seq not in ch.snapshots:
            raise NoSnapshot(x_id.hex())
        if ch.disputes.get(ch.snapshots[x_seq].id):
            raise SnapshotDisputed(x_id.hex())
        deleted = []
        for seq in range(ch.floor_seq + 1, x_seq + 1):
            patch = ch.patches.pop(seq)
            del ch.ids[patch.id]
            deleted.append((seq, patch.id))
        roots, ch.partial = blocks.fold(ch.floor_seq, ch.partial, deleted, x_seq)
        ch.roots.update(roots)
        ch.roots, ch.groups = blocks.aged(ch.roots, ch.groups, x_seq)
        ch.floor_seq = x_seq
        self._thin(ch, x_seq, keep_pct)
        self._prune_sessions(ch, x_seq)
        return x_seq

    @staticmethod
    def _prune_sessions(ch: _Channel, x_seq: int) -> None:
        """Drop the session records no stored envelope names that were registered
        while the head was below ``x_seq`` (:meth:`relay.store.base.Store.trim`)."""
        stored = [
            *(p.envelope for p in ch.patches.values()),
            *(s.envelope for s in ch.snapshots.values() if s.envelope is not None),
            *(e for d in ch.disputes.values() for e in d.values()),
        ]
        named = {e[TAG_AT : TAG_AT + TAG_LEN] for e in stored if e[:1] == VERSION_2}
        for tag, at in list(ch.registered_at.items()):
            if at < x_seq and tag not in named:
                del ch.sessions[tag], ch.registered_at[tag]

    @staticmethod
    def _thin(ch: _Channel, x_seq: int, keep_pct: int) -> None:
        """Keep the snapshots from ``x_seq`` on and the checkpoints
        :func:`relay.store.blocks.retained` picks; drop the rest with their disputes."""
        newest = ch.latest_snapshot()
        older = [(s, snap.size) for s, snap in ch.snapshots.items() if s < x_seq]
        kept = blocks.retained(x_seq, keep_pct, older, newest.size if newest else 0)
        for seq, _ in older:
            if seq not in kept:
                ch.drop_disputes(ch.snapshots.pop(seq).id)
        ch.keep_pct = keep_pct

    async def stats(self) -> StoreStats:
        """See :meth:`relay.store.base.Store.stats`."""
        total = sum(ch.stored_bytes() for ch in self._channels.values())
        return StoreStats(len(self._channels), total)

    async def channels(self, channel_ids: Sequence[bytes]) -> dict[bytes, ChannelInfo]:
        """See :meth:`relay.store.base.Store.channels`."""
        found = [await self.channel(cid) for cid in channel_ids]
        return {info.channel_id: info for info in found if info is not None}

    async def join(self) -> Membership:
        """See :meth:`relay.store.base.Store.join`: dictionaries live in one process."""
        return Membership("", 0)

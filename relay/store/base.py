"""The storage interface: a small async Protocol every backend implements.

This module is the bottom of :mod:`relay.store`: the interface, its outcome
and record types, and the errors.  The backends import only this module; the
package (``relay/store/__init__.py``) re-exports it and picks a backend.

Theory of operation
-------------------
A channel is a line of sealed patches numbered ``1, 2, 3, ...`` (``seq``),
each known by its id (SHA-256 of its sealed bytes, computed by crypto), with
snapshots stored *beside* the line (keyed by the seq of the patch X whose
result they hold).  The head of an empty channel is ``(0, ZERO_ID)``.

The one write that orders the line is :meth:`Store.append`: in a single
atomic step it deduplicates by id against the *live* patches (a stored id
returns ``DUPLICATE`` with its seq), then compares the parent with the head
(``STALE`` with the current head if they differ), then appends at
``head + 1``.  Because the check and the write are one step inside the
backend (SQLite's single writer thread; a PostgreSQL transaction holding the
channel's row lock), any number of relay processes sharing a backend keep
one line per channel.  A resend of a patch a trim removed finds its parent
below the head and is STALE: clients tell whether such work landed from the
signed per-session counters of the snapshots (PROTOCOL.md §9.4), not from
the relay.

A trim at X (:meth:`Store.trim`) deletes the patches up to X and keeps, of
their ids, only what a proof of descent needs (:mod:`relay.store.blocks`):
the Merkle root of every whole block of 256 and the ids of the block the
floor cuts; :meth:`Store.proof_nodes` names them.  It keeps every snapshot
from X on and thins the older ones (checkpoints) to a geometric series
within ``keep_pct`` % of the newest snapshot's bytes, deleting the others
with their disputes.

Reads (:meth:`read_since`, :meth:`read_from_snapshot`) return the items and
the head *as of the same instant*, so a subscriber's HISTORY_END is
consistent with the history it got.  An awaited write is durable when it
returns (for SQLite: committed with ``synchronous=FULL``; for PostgreSQL:
committed); the relay sends acknowledgements only after that.

Backends: :mod:`relay.store.sqlite` (default; group commit; one process),
:mod:`relay.store.postgresql` (group commit; any number of processes, see
:mod:`relay.cluster`) and :mod:`relay.store.memory` (tests).
:func:`relay.store.open_store` picks one from a URL.  All three pass
``tests/relay/test_relay_store.py``.  Errors:

    StoreError
    ├── SchemaTooNew     (the database was written by a newer blindpad)
    ├── SchemaTooOld     (the store holds protocol-1 pads, which this relay cannot serve)
    ├── UnknownChannel   (no metadata for the channel)
    ├── UnknownPatch     (a snapshot, trim or dispute names a patch or snapshot not stored)
    ├── NoSnapshot       (a trim names a patch without a snapshot)
    ├── SnapshotDisputed (a trim names a patch whose snapshot is disputed)
    └── HistoryTrimmed   (asked for history before the trimmed floor)

Schema version 2 (protocol 2) added, per channel, ``read_hash``: SHA-256 of
the read token the creating SUBSCRIBE carried, which every later reader must
match; and ``disputes``: editors' signed claims that a stored snapshot is
not the text at its patch, kept beside that snapshot (a snapshot with one is
*disputed*) and deleted with it.  An empty schema-1 store is upgraded in
place; one that holds channels is refused with :class:`SchemaTooOld` (there
is no migration, PROTOCOL.md §15.2).  Schema version 3 (issue 14) drops the
id tombstones (one row per trimmed patch, forever) for the block roots and
partial ids above, and remembers each channel's last ``keep_pct``; a
schema-2 store is migrated in place (the roots computed from its
tombstones).  Schema version 4 (PROTOCOL.md §9.3) adds, per channel,
``sessions``: the session records editors register, one per 4-byte tag
(:meth:`Store.add_session`), opaque to the store; a schema-3 store gains the
empty table in place.  Schema version 5 remembers, per record, the channel's
head seq when it was registered (``registered_at``), so that a trim can drop
the records it no longer needs (:meth:`Store.trim`); a schema-4 store gains
the column in place, 0 for the records it holds.

**Session records at a trim.**  A reader verifies each version-2 envelope
with its session's record, so a record is needed while a stored envelope
names its tag (a v2 envelope's 4 bytes at :data:`TAG_AT`: the live patches
after the floor, the kept snapshots and their disputes), and by a session
that may still send.  A trim at X drops, in its transaction, every record of
the channel that (a) no stored envelope names once the trim is done and (b)
was registered (last registered again) while the head was below X's seq.
Rule (b) keeps a session that registered just before its first envelope (at
a head >= X) between its SESSION and its first PUSH.  A session of long ago
whose envelopes were all trimmed loses its record: if it sends again it is
refused UNKNOWN_SESSION, registers again and resends (PROTOCOL.md §9.3).

**Sizes.**  ``stored_bytes`` counts the bytes a channel keeps that grow with
its use: the envelopes of its live patches, of every kept snapshot and of
their disputes, the session records it keeps, plus 32 per kept block root
or partial id.  ``pad_bytes`` counts what a joiner reads: the newest
snapshot's envelope and the patches after its X.  Neither counts the rows'
own overhead (``channel_overhead_bytes`` stands for that).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from typing import Protocol

from crypto import envelope2
from wire.frames import ZERO_ID

#: The schema version this relay writes and understands.
SCHEMA_VERSION = 5

#: Where a version-2 session-signed envelope holds its 4-byte session tag, 0-based
#: (:func:`crypto.envelope2.tag_of`): the stores read the tags in SQL.
TAG_AT, TAG_LEN = envelope2.TAG_AT, envelope2.TAG_LEN
#: The first byte of a version-2 envelope (a version-1 one names no session).
VERSION_2 = bytes([envelope2.VERSION])


def protocol_one_message(store: str) -> str:
    """The one line refusing a schema-1 store that holds pads (PROTOCOL.md §15.2)."""
    return (
        f"{store} holds protocol-1 pads, which this relay cannot serve;"
        " keep it for a 0.1 relay or start a new store"
    )


class StoreError(Exception):
    """Root of storage errors."""


class SchemaTooNew(StoreError):
    """The store was written by a newer relay; refuse to start rather than corrupt it."""


class SchemaTooOld(StoreError):
    """The store holds pads of protocol 1 (schema 1): refuse it, change nothing."""


class UnknownChannel(StoreError):
    """No channel with that id has been created."""


class UnknownPatch(StoreError):
    """The referenced patch id is not (or no longer) stored in the channel."""


class NoSnapshot(StoreError):
    """A trim names a patch that has no snapshot."""


class SnapshotDisputed(StoreError):
    """A trim names a patch whose snapshot is disputed: trimming would erase the
    history that settles the dispute."""


class HistoryTrimmed(StoreError):
    """History was asked from before the channel's trimmed floor."""

    def __init__(self, floor_seq: int) -> None:
        super().__init__(f"history before seq {floor_seq} was trimmed")
        self.floor_seq = floor_seq


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """The last patch of a channel: ``(0, ZERO_ID)`` when it has none."""

    seq: int = 0
    id: bytes = ZERO_ID


@dataclasses.dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel's metadata and sizes.

    Attributes:
        channel_id: 32 bytes.
        verify_key: the Ed25519 verify key whose hash is the channel id.
        read_hash: SHA-256 of the read token registered when the channel was
            created; a reader's token must hash to it.
        head: the last patch.
        floor_seq: patches with seq <= floor were trimmed (0 = nothing trimmed).
        stored_bytes: bytes of the live patches, the kept snapshots and their
            disputes, the session records, and 32 per kept block root or
            partial id (module docstring).
        pad_bytes: bytes of the latest snapshot plus the patches after it.
    """

    channel_id: bytes
    verify_key: bytes
    read_hash: bytes
    head: Head
    floor_seq: int
    stored_bytes: int
    pad_bytes: int


class AppendOutcome(enum.Enum):
    """What :meth:`Store.append` did."""

    APPENDED = "appended"
    DUPLICATE = "duplicate"
    STALE = "stale"


@dataclasses.dataclass(frozen=True, slots=True)
class AppendResult:
    """Result of an append.

    Attributes:
        outcome: appended, duplicate (known id) or stale (parent is not head).
        seq: the patch's seq (APPENDED, DUPLICATE) or 0 (STALE).
        head: the channel head after the operation.
    """

    outcome: AppendOutcome
    seq: int
    head: Head


class SessionAdded(enum.Enum):
    """What :meth:`Store.add_session` did."""

    STORED = "stored"  # a new record
    KNOWN = "known"  # the same bytes were already stored under this tag (a resend)
    TAKEN = "taken"  # another record holds the tag on this channel (nothing stored)


def session_added(held: bytes | None, record: bytes) -> SessionAdded:
    """What adding ``record`` under a tag does, given the record the tag holds
    (None: the tag is free).  Only STORED stores anything."""
    if held is None:
        return SessionAdded.STORED
    return SessionAdded.KNOWN if held == record else SessionAdded.TAKEN


@dataclasses.dataclass(frozen=True, slots=True)
class StoredPatch:
    """One patch of the line."""

    seq: int
    id: bytes
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A snapshot of the result of patch ``x_seq`` / ``x_id``, ``size`` bytes sealed.

    ``envelope`` is None when the read did not load it (a paged read, see
    :meth:`Store.read_from_snapshot`): read it in parts with
    :meth:`Store.read_snapshot`.  ``disputed``: at least one dispute of this
    snapshot (its id) is stored.
    """

    x_seq: int
    x_id: bytes
    id: bytes
    size: int
    envelope: bytes | None
    disputed: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryRead:
    """A consistent read: optional snapshot, the patches after it, the head."""

    snapshot: StoredSnapshot | None
    patches: Sequence[StoredPatch]
    head: Head


def page(patches: Iterable[StoredPatch], max_bytes: int | None) -> list[StoredPatch]:
    """The patches up to and including the one that reaches ``max_bytes``."""
    out: list[StoredPatch] = []
    total = 0
    for patch in patches:
        out.append(patch)
        total += len(patch.envelope)
        if max_bytes is not None and total >= max_bytes:
            break
    return out


async def snapshot_parts(
    store: Store, channel_id: bytes, snapshot: StoredSnapshot, step: int
) -> AsyncIterator[bytes]:
    """The snapshot's envelope in parts of at most ``step`` bytes, read as needed.

    Raises:
        NoSnapshot: a trim removed the snapshot, or another replaced it, before
            its last part was read.
    """
    for offset in range(0, snapshot.size, step):
        yield await store.read_snapshot(
            channel_id, snapshot.x_seq, offset, step, snapshot_id=snapshot.id
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Membership:
    """A relay process's place among the processes that share one store.

    Attributes:
        site: names the store the processes share (hint-bus topics derive from
            it, so two sites on one PostgreSQL or Redis server never hear each
            other); ``""`` for a store only one process may open.
        node: this process's number, unique among the site's relays (0 to
            65535); the high 16 bits of its connection ids.
    """

    site: str
    node: int


@dataclasses.dataclass(frozen=True, slots=True)
class StoreStats:
    """Totals for metrics and the storage quota."""

    channels: int
    stored_bytes: int


class Store(Protocol):
    """What the relay needs from storage.  All methods are coroutines.

    ``shared`` says whether several relay processes may use the store at once
    (PostgreSQL).  Such relays learn of each other's commits from a hint bus
    (:mod:`relay.bus`) and, when hints are late or lost, from :meth:`channels`.
    """

    shared: bool

    async def open(self) -> None:
        """Open (creating or checking the schema).

        Raises:
            SchemaTooNew: the store's schema is newer than :data:`SCHEMA_VERSION`.
        """

    async def close(self) -> None:
        """Finish pending writes and release every resource."""

    async def channel(self, channel_id: bytes) -> ChannelInfo | None:
        """Return the channel's metadata and sizes, or None if it does not exist."""

    async def create_channel(
        self, channel_id: bytes, verify_key: bytes, read_hash: bytes
    ) -> ChannelInfo:
        """Create the channel if it does not exist (idempotent); return its info.

        An existing channel keeps its verify key and read hash: compare the
        returned ``read_hash`` with the one asked for.
        """

    async def append(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> AppendResult:
        """Dedupe by id, compare ``parent_id`` with the head, append (atomically).

        Raises:
            UnknownChannel: the channel does not exist.
        """

    async def lookup(self, channel_id: bytes, patch_id: bytes) -> int | None:
        """Return the seq of a live (untrimmed) patch with this id, else None."""

    async def put_snapshot(
        self, channel_id: bytes, x_id: bytes, snapshot_id: bytes, envelope: bytes
    ) -> int:
        """Store a snapshot of patch ``x_id`` beside the line; return X's seq.

        Storing the same snapshot id again is a no-op returning the same seq;
        a different snapshot of the same X replaces the old one (and its disputes).

        Raises:
            UnknownChannel: the channel does not exist.
            UnknownPatch: X is not a stored (untrimmed) patch of the channel.
        """

    async def read_since(
        self, channel_id: bytes, since_seq: int, max_bytes: int | None = None
    ) -> HistoryRead:
        """Return the patches with seq > ``since_seq`` and the head (no snapshot).

        ``max_bytes`` ends the read after the patch that reaches it (one patch
        at least): a page; read on from the last patch's seq for the next.

        Raises:
            HistoryTrimmed: ``since_seq`` is below the trimmed floor.
        """

    async def read_from_snapshot(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """Return the latest snapshot (if any), the patches after its X (a page
        of them with ``max_bytes``, as for :meth:`read_since`), and the head.

        A paged read (``max_bytes`` given) does not load the snapshot's
        envelope (``envelope`` None, ``size`` set): the reader streams it with
        :meth:`read_snapshot`, so it never holds a whole snapshot.
        """

    async def read_from_floor(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """Return the earliest point still stored: the snapshot at the trimmed
        floor if the channel was trimmed (else none), every patch after the
        floor (a page of them with ``max_bytes``), and the head.

        Paged reads leave the snapshot's envelope unloaded, as in
        :meth:`read_from_snapshot`.
        """

    async def proof_nodes(
        self, channel_id: bytes, from_seq: int, to_seq: int, max_nodes: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """PROOF's nodes: ``(start, nodes)`` covering the leaves ``start + 1`` on,
        contiguously, never past ``to_seq`` or the head, at most ``max_nodes``.

        Level 0 (an id) for the live patches and the kept partial ids, level 8
        for the kept block roots (:mod:`relay.store.blocks`).  ``start`` is
        ``from_seq`` unless that lies strictly inside a block kept only as a
        root: then ``from_seq // 256 * 256``.  Fewer nodes (or none) when the
        next is not known, or would cover past ``to_seq``; none for an unknown
        channel.  Any u64 is accepted.
        """

    async def snapshots(self, channel_id: bytes) -> list[StoredSnapshot]:
        """Return every kept snapshot of the channel, oldest first, without
        envelopes (``size`` and ``disputed`` set); none for an unknown channel."""

    async def snapshot(self, channel_id: bytes, x_seq: int) -> StoredSnapshot | None:
        """Return the stored snapshot of patch ``x_seq`` without its envelope
        (``envelope`` None; ``size`` and ``disputed`` set), or None."""

    async def add_dispute(
        self, channel_id: bytes, snapshot_id: bytes, dispute_id: bytes, envelope: bytes
    ) -> int:
        """Store a dispute of the snapshot whose envelope id is ``snapshot_id``;
        return that snapshot's X seq.

        Storing the same dispute id again is a no-op returning the same seq.

        Raises:
            UnknownChannel: the channel does not exist.
            UnknownPatch: ``snapshot_id`` is not a stored snapshot of the channel.
        """

    async def add_session(self, channel_id: bytes, tag: bytes, record: bytes) -> SessionAdded:
        """Register a session record under its 4-byte tag (PROTOCOL.md §9.3).

        The record counts in the channel's ``stored_bytes``, and is stored with
        the channel's head seq at this moment: a trim at a patch X drops it
        once no stored envelope names its tag, if that head was below X's seq
        (:meth:`trim`).  A KNOWN add (the same record again: its session
        registers again, on a new connection say) only moves that head seq up
        to the current head's, as if registered now; a TAKEN add changes
        nothing.

        Raises:
            UnknownChannel: the channel does not exist.
        """

    async def sessions(
        self, channel_id: bytes, tags: Collection[bytes] | None = None
    ) -> dict[bytes, bytes]:
        """The channel's session records, tag -> record: those of ``tags`` that exist
        (unknown tags are left out), or every one when ``tags`` is None; empty for an
        unknown channel."""

    async def read_snapshot(
        self,
        channel_id: bytes,
        x_seq: int,
        offset: int,
        size: int,
        *,
        snapshot_id: bytes | None = None,
    ) -> bytes:
        """Return bytes ``offset`` to ``offset + size`` of the snapshot of patch ``x_seq``
        (the one whose id is ``snapshot_id``, if given).

        Raises:
            NoSnapshot: that snapshot is no longer stored (a trim removed it, or
                a newer snapshot of the same patch replaced it: its parts must not
                be spliced onto the old one's).
        """

    async def trim(self, channel_id: bytes, x_id: bytes, keep_pct: int) -> int:
        """Remove patches with seq <= X's seq, keeping their block roots and the
        cut block's ids; keep the snapshots from X on and thin the older ones
        within ``keep_pct`` % of the newest snapshot's bytes (deleting the
        others with their disputes; :func:`relay.store.blocks.retained`).

        In the same transaction it drops the channel's session records that
        no envelope still stored names (a live patch after X, a kept snapshot,
        a kept dispute) and that were registered (last registered again, see
        :meth:`add_session`) while the head's seq was below X's, subtracting
        their bytes from ``stored_bytes`` (module docstring).  A thinning again
        at the floor (below) drops them too, with the floor as X.

        Returns:
            X's seq (the new floor).  Trimming at or below the current floor is
            a no-op returning the floor, except that a trim at the floor with
            another ``keep_pct`` than the last trim's thins again.  X is found
            among the live patches or the kept snapshots.

        Raises:
            UnknownChannel: the channel does not exist.
            UnknownPatch: X is neither a live patch nor the X of a kept snapshot.
            NoSnapshot: X has no stored snapshot.
            SnapshotDisputed: X's snapshot is disputed.
        """

    async def stats(self) -> StoreStats:
        """Return totals across channels."""

    async def channels(self, channel_ids: Sequence[bytes]) -> dict[bytes, ChannelInfo]:
        """Return the metadata of those of ``channel_ids`` that exist, in one read."""

    async def join(self) -> Membership:
        """Take this process's place among the relays sharing the store.

        Unshared stores answer ``Membership("", 0)``; a shared store hands out
        a node number no other live process of the site holds.
        """


def append_soon(
    store: Store, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
) -> asyncio.Future[AppendResult]:
    """Hand an append to ``store`` now and return its outcome to come.

    Appends handed over one after another reach the store in that order.  A
    backend with a queue of its own (SQLite) offers ``append_soon`` and
    returns its future without a task; any other runs :meth:`Store.append`
    as a task, whose first step (taken in creation order) hands it over.
    """
    soon: Callable[[bytes, bytes, bytes, bytes], asyncio.Future[AppendResult]] | None
    soon = getattr(store, "append_soon", None)
    if soon is not None:
        outcome: asyncio.Future[AppendResult] = soon(channel_id, patch_id, parent_id, envelope)
        return outcome
    return asyncio.ensure_future(store.append(channel_id, patch_id, parent_id, envelope))


__all__ = [
    "SCHEMA_VERSION",
    "TAG_AT",
    "TAG_LEN",
    "VERSION_2",
    "AppendOutcome",
    "AppendResult",
    "ChannelInfo",
    "Head",
    "HistoryRead",
    "HistoryTrimmed",
    "Membership",
    "NoSnapshot",
    "SchemaTooNew",
    "SchemaTooOld",
    "SessionAdded",
    "SnapshotDisputed",
    "Store",
    "StoreError",
    "StoreStats",
    "StoredPatch",
    "StoredSnapshot",
    "UnknownChannel",
    "UnknownPatch",
    "append_soon",
    "protocol_one_message",
    "session_added",
    "snapshot_parts",
]

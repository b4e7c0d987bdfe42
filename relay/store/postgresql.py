"""The PostgreSQL :class:`~relay.store.base.Store`: group commit, shared by many relays.

Theory of operation
-------------------
Any number of relay processes open the same database (and schema); the
database alone orders every channel's line.  Each process talks to it with
asyncpg: native asyncio (no thread hop), the binary protocol, prepared
statements cached per connection, and the LISTEN/NOTIFY that :mod:`relay.bus`
uses beside the store.

**Appends** wait in a queue (one FIFO lane per channel, taken round-robin as
in the SQLite store) for one of two *committer* tasks, which have a pool of
their own (one connection each), so reads never starve them.  A committer
takes what is queued (up to ``batch_max`` appends and ``batch_max_bytes`` of
envelopes) and runs it as ONE transaction (READ COMMITTED):

1. ``SELECT ... FROM channels WHERE channel_id = ANY($1) ORDER BY channel_id
   FOR UPDATE`` locks the batch's channel rows in sorted order, so two
   committers, or the committers of several processes, never deadlock; a
   channel that is not found fails only its own appends (UnknownChannel);
2. one statement reads which of the batch's ids are already stored
   (``patches``: live patches only, as every backend dedupes); being a later
   statement than the lock, it sees all that the previous holders of those
   rows committed;
3. Python decides every outcome in submission order per channel (duplicate,
   also of an id appended earlier in the batch; stale, with the head at that
   point; else appended at head + 1);
4. one statement inserts the new patches (``unnest`` of arrays) and moves the
   heads and sizes; then COMMIT, and only then are the callers' futures
   resolved, so an acknowledgement always follows durability (given the
   server's default ``synchronous_commit=on``: a database set to ``off``
   breaks that promise).

That is five round trips per batch, whatever its size.  While one committer
waits for its COMMIT (the server's fsync) the other runs the next batch.  A
channel in a running batch is not taken into another until that commits, so
one channel's appends commit in submission order (a pipelined client never
sees a spurious STALE).  A transaction that fails before COMMIT was sent
(connection lost, deadlock, serialization failure) runs once more on a fresh
connection; a failure during COMMIT, whose outcome is unknown, fails every
append of the batch with :class:`StoreError` (a client that pushes again gets
DUPLICATE if it was committed): nothing is reported APPENDED that is not
committed.

**Snapshots and trims** run in their own transaction on a pooled connection,
each locking its channel row first (one row: no deadlock with the
committers).  A trim reads the ids it deletes through a cursor, in seq
order, into :class:`relay.store.blocks.BlockFolder` (one block of ids held
at a time), and keeps the roots in ``block_roots`` (up to
:data:`ROOTS_PER_ROW` consecutive roots per row: 3,968 bytes stored inline,
two rows to a page; old groups of 256 blocks age into group roots,
:func:`relay.store.blocks.age`) and the cut block's ids in ``partial_ids``.
A proof reads them, and the live ids, in one read-only REPEATABLE READ
transaction.  **Reads** are one statement where they can be: the head, the
snapshot and the first page of patches come from one snapshot of the
database, with no transaction to open.  A page needing more rows reads on,
up to the first statement's head, and starts over if a trim took rows
meanwhile.  A paged read never loads the snapshot; :meth:`read_snapshot`
reads a slice with ``substring``, and envelopes are stored ``STORAGE
EXTERNAL`` (sealed bytes do not compress) so a slice reads only its own
TOAST chunks.  Every operation but an append runs once more if its
connection was lost; all of them are idempotent.

**Schema**: ``?schema=NAME`` in the URL keeps every table in that schema
(created if missing; the pool's ``search_path``).  ``blindpad_meta`` holds the
schema version (a newer one is refused with :class:`SchemaTooNew`) and a
random *site* name.  The first relay creates everything in one transaction
under ``pg_advisory_xact_lock``, so relays starting together on an empty
schema do not race.  A schema-1 store (protocol 1) holding channels is
refused with :class:`SchemaTooOld` and left as it is; an empty one is
migrated to schema 2 in place (read hashes, disputes).  A schema-2 store is
migrated to schema 3 in place, in the same transaction: each trimmed
channel's tombstones are folded into its block roots and partial ids, and
the tombstones table is dropped (``VACUUM`` then gives its space back to the
file system; autovacuum only makes it reusable).  A schema-3 store gains the
(empty) ``sessions`` table of schema 4, which keeps one session record per
channel and tag; a schema-4 store gains its ``registered_at`` column of
schema 5 (0 for the records it holds), the head seq at registration, by which
a trim drops the records no stored envelope needs any more.
:meth:`PostgreSQLStore.join` numbers each process from a sequence, modulo
65,536: two live processes share a number only if 65,536 starts happened in
between.  Sizes are columns of ``channels``, as in SQLite,
so quota checks read one row.

**Backups**: ``pg_dump -Fc -n SCHEMA DBNAME > blindpad.dump`` while relays run
(a consistent snapshot); restore with ``pg_restore -d DBNAME blindpad.dump``
into a database without that schema, before any relay starts on it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote_plus, urlsplit

import asyncpg  # type: ignore[import-untyped]

from relay.store import blocks
from relay.store.base import (
    SCHEMA_VERSION,
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
    SchemaTooNew,
    SchemaTooOld,
    SessionAdded,
    SnapshotDisputed,
    StoredPatch,
    StoredSnapshot,
    StoreError,
    StoreStats,
    UnknownChannel,
    UnknownPatch,
    protocol_one_message,
    session_added,
)

T = TypeVar("T")

#: asyncpg is untyped: its connections and pools are ``Any`` here.
Connection = Any

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_I64_MAX = (1 << 63) - 1
_I32_MAX = (1 << 31) - 1
#: Rows the first statement of a paged read asks for (then doubling, up to the cap).
_FIRST_ROWS = 1000
_MAX_ROWS = 16000
_NODES = 1 << 16
#: Block roots packed in one row of ``block_roots``: 124 x 32 = 3,968 bytes,
#: stored PLAIN (inline, never compressed or TOASTed), so two rows fill an 8 KiB
#: page: about 33 bytes on disk per 256 trimmed patches.
ROOTS_PER_ROW = 124
#: Rows a trim's cursor fetches at a time.
_PREFETCH = 4096

_DISPUTES = """
CREATE TABLE disputes (
    channel_id  bytea NOT NULL,
    snapshot_id bytea NOT NULL,
    id          bytea NOT NULL,
    envelope    bytea NOT NULL,
    PRIMARY KEY (channel_id, id)
);
CREATE INDEX disputes_by_snapshot ON disputes (channel_id, snapshot_id);
"""
#: What a trim keeps of the history it removes (schema 3; :mod:`relay.store.blocks`).
_NODES_TABLES = """
CREATE TABLE block_roots (
    channel_id  bytea NOT NULL,
    first_block bigint NOT NULL,
    roots       bytea NOT NULL,
    PRIMARY KEY (channel_id, first_block)
);
ALTER TABLE block_roots ALTER COLUMN roots SET STORAGE PLAIN;
CREATE TABLE partial_ids (
    channel_id bytea PRIMARY KEY,
    ids        bytea NOT NULL
);
ALTER TABLE partial_ids ALTER COLUMN ids SET STORAGE EXTERNAL;
"""
#: Session records (schema 4, PROTOCOL.md §9.3): one per channel and 4-byte tag,
#: with (schema 5) the channel's head seq when it was registered: a trim drops a
#: record registered below its X that no stored envelope names (_PRUNE_SESSIONS).
_SESSIONS = """
CREATE TABLE sessions (
    channel_id    bytea NOT NULL,
    tag           bytea NOT NULL,
    record        bytea NOT NULL,
    registered_at bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, tag)
);
"""
#: Schema 4 -> 5: the records held get 0 (registered before any trim to come).  A
#: store migrated from schema 3 made the table with the column already.
_SESSIONS_REGISTERED_AT = (
    "ALTER TABLE sessions ADD COLUMN IF NOT EXISTS registered_at bigint NOT NULL DEFAULT 0"
)
_TABLES = (
    """
CREATE TABLE blindpad_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE channels (
    channel_id   bytea PRIMARY KEY,
    verify_key   bytea NOT NULL,
    head_seq     bigint NOT NULL,
    head_id      bytea NOT NULL,
    floor_seq    bigint NOT NULL,
    stored_bytes bigint NOT NULL,
    pad_bytes    bigint NOT NULL,
    read_hash    bytea NOT NULL,
    keep_pct     integer NOT NULL DEFAULT 0
);
CREATE TABLE patches (
    channel_id bytea NOT NULL,
    seq        bigint NOT NULL,
    id         bytea NOT NULL,
    envelope   bytea NOT NULL,
    PRIMARY KEY (channel_id, seq)
);
ALTER TABLE patches ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX patches_by_id ON patches (channel_id, id);
CREATE TABLE snapshots (
    channel_id bytea NOT NULL,
    x_seq      bigint NOT NULL,
    x_id       bytea NOT NULL,
    id         bytea NOT NULL,
    envelope   bytea NOT NULL,
    PRIMARY KEY (channel_id, x_seq)
);
ALTER TABLE snapshots ALTER COLUMN envelope SET STORAGE EXTERNAL;
CREATE SEQUENCE blindpad_nodes;
"""
    + _DISPUTES
    + _NODES_TABLES
    + _SESSIONS
)

#: SQL taking the schema from version 1 to 2, run only on a store without
#: channels (a schema-1 store with channels is refused: PROTOCOL.md §15.2).
_MIGRATION_1 = (
    "ALTER TABLE channels ADD COLUMN read_hash bytea NOT NULL;"
    "CREATE INDEX tombstones_by_seq ON tombstones (channel_id, seq);" + _DISPUTES
)

# --- the append transaction ---------------------------------------------------------

_LOCK = """
SELECT channel_id, head_seq, head_id FROM channels
WHERE channel_id = ANY($1::bytea[]) ORDER BY channel_id FOR UPDATE
"""
_KNOWN = """
SELECT q.channel_id, q.id, k.seq
FROM unnest($1::bytea[], $2::bytea[]) AS q(channel_id, id)
CROSS JOIN LATERAL (
    SELECT seq FROM patches WHERE channel_id = q.channel_id AND id = q.id
    LIMIT 1
) AS k
"""
_ADD = """
WITH added AS (
    INSERT INTO patches (channel_id, seq, id, envelope)
    SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[])
)
UPDATE channels AS c
SET head_seq = u.seq, head_id = u.id,
    stored_bytes = c.stored_bytes + u.n, pad_bytes = c.pad_bytes + u.n
FROM unnest($5::bytea[], $6::bigint[], $7::bytea[], $8::bigint[]) AS u(channel_id, seq, id, n)
WHERE c.channel_id = u.channel_id
"""

# --- reads ---------------------------------------------------------------------------

_CHANNEL = """
SELECT verify_key, read_hash, head_seq, head_id, floor_seq, stored_bytes, pad_bytes
FROM channels WHERE channel_id = $1
"""
_LOOKUP = "SELECT seq FROM patches WHERE channel_id = $1 AND id = $2"
# Patches in seq order, at most $LIMIT rows and no rows after the one that
# reaches $BUDGET bytes (NULL: no bound); ``length`` of a TOASTed value reads
# only its header, and a row that is filtered out is never detoasted.
_PAGE = """
SELECT seq, id, envelope{extra} FROM (
    SELECT seq, id, envelope, row_number() OVER w AS n,
           sum(length(envelope)) OVER w - length(envelope) AS before
    FROM (
        SELECT seq, id, envelope FROM patches
        WHERE channel_id = {channel} AND seq > {after} {bound}
        ORDER BY seq LIMIT {limit}
    ) AS l
    WINDOW w AS (ORDER BY seq)
) AS w
WHERE {budget}::bigint IS NULL OR before < {budget}
"""
_READ_SINCE = f"""
SELECT c.head_seq, c.head_id, c.floor_seq, p.seq, p.id, p.envelope
FROM channels AS c
LEFT JOIN LATERAL ({
    _PAGE.format(
        extra="",
        channel="c.channel_id",
        after="$2",
        bound="AND $2 >= c.floor_seq",
        limit="$3",
        budget="$4",
    )
}) AS p ON true
WHERE c.channel_id = $1
"""
_DISPUTED = """EXISTS (
    SELECT 1 FROM disputes AS d WHERE d.channel_id = {s}.channel_id AND d.snapshot_id = {s}.id
)"""
# {which}: the latest snapshot, or the one at the trimmed floor.
_READ_WITH_SNAPSHOT = f"""
SELECT c.head_seq, c.head_id, c.floor_seq,
       s.x_seq, s.x_id, s.id AS snapshot_id, s.size, s.disputed,
       CASE WHEN $2::boolean AND COALESCE(p.n, 1) = 1 THEN s.envelope END AS snapshot,
       p.seq, p.id, p.envelope
FROM channels AS c
LEFT JOIN LATERAL (
    SELECT x_seq, x_id, id, length(envelope) AS size, envelope,
           {_DISPUTED.format(s="snapshots")} AS disputed
    FROM snapshots
    WHERE channel_id = c.channel_id {{which}}
) AS s ON true
LEFT JOIN LATERAL ({
    _PAGE.format(
        extra=", n",
        channel="c.channel_id",
        after="COALESCE(s.x_seq, c.floor_seq)",
        bound="",
        limit="$3",
        budget="$4",
    )
}) AS p ON true
WHERE c.channel_id = $1
"""
_READ_FROM_SNAPSHOT = _READ_WITH_SNAPSHOT.format(which="ORDER BY x_seq DESC LIMIT 1")
_READ_FROM_FLOOR = _READ_WITH_SNAPSHOT.format(which="AND x_seq = c.floor_seq AND x_seq > 0")
_SNAPSHOT_AT = f"""
SELECT x_seq, x_id, id, length(envelope) AS size, {_DISPUTED.format(s="s")} AS disputed
FROM snapshots AS s WHERE channel_id = $1 AND x_seq = $2
"""
_MORE = _PAGE.format(
    extra="", channel="$1", after="$2", bound="AND seq <= $3", limit="$4", budget="$5"
)
_SNAPSHOTS = f"""
SELECT x_seq, x_id, id, length(envelope) AS size, {_DISPUTED.format(s="s")} AS disputed
FROM snapshots AS s WHERE channel_id = $1 ORDER BY x_seq
"""
_SNAPSHOT_SLICE = """
SELECT substring(envelope FROM $3 FOR $4), id FROM snapshots WHERE channel_id = $1 AND x_seq = $2
"""

# --- other writes --------------------------------------------------------------------

_CREATE = """
INSERT INTO channels (channel_id, verify_key, head_seq, head_id, floor_seq, stored_bytes,
                      pad_bytes, read_hash)
VALUES ($1, $2, 0, $3, 0, 0, 0, $4) ON CONFLICT (channel_id) DO NOTHING
"""
_LOCK_ONE = "SELECT floor_seq FROM channels WHERE channel_id = $1 FOR UPDATE"
_PUT_SNAPSHOT = """
INSERT INTO snapshots VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (channel_id, x_seq)
DO UPDATE SET x_id = EXCLUDED.x_id, id = EXCLUDED.id, envelope = EXCLUDED.envelope
"""
_SIZES_AFTER_SNAPSHOT = """
UPDATE channels SET stored_bytes = stored_bytes + $2, pad_bytes =
    COALESCE((SELECT length(envelope) FROM snapshots WHERE channel_id = $1
              ORDER BY x_seq DESC LIMIT 1), 0)
  + COALESCE((SELECT sum(length(envelope)) FROM patches WHERE channel_id = $1
              AND seq > COALESCE((SELECT max(x_seq) FROM snapshots WHERE channel_id = $1), 0)), 0)
WHERE channel_id = $1
"""
_LOCK_TRIM = "SELECT floor_seq, keep_pct FROM channels WHERE channel_id = $1 FOR UPDATE"
_TRIMMED_X = "SELECT x_seq FROM snapshots WHERE channel_id = $1 AND x_id = $2 LIMIT 1"
_DELETE_PATCHES = """
WITH gone AS (
    DELETE FROM patches WHERE channel_id = $1 AND seq <= $2 RETURNING length(envelope) AS n
)
SELECT COALESCE(sum(n), 0) FROM gone
"""
_DELETE_SNAPSHOTS = """
WITH old AS (
    DELETE FROM snapshots WHERE channel_id = $1 AND x_seq = ANY($2::bigint[])
    RETURNING id, length(envelope) AS n
), argued AS (
    DELETE FROM disputes WHERE channel_id = $1 AND snapshot_id IN (SELECT id FROM old)
    RETURNING length(envelope) AS n
)
SELECT (SELECT COALESCE(sum(n), 0) FROM old) + (SELECT COALESCE(sum(n), 0) FROM argued)
"""
_PUT_ROOTS = """
INSERT INTO block_roots VALUES ($1, $2, $3)
ON CONFLICT (channel_id, first_block) DO UPDATE SET roots = EXCLUDED.roots
"""
_PUT_PARTIAL = """
INSERT INTO partial_ids VALUES ($1, $2) ON CONFLICT (channel_id) DO UPDATE SET ids = EXCLUDED.ids
"""
_DROP_DISPUTES = """
WITH argued AS (
    DELETE FROM disputes WHERE channel_id = $1 AND snapshot_id = $2
    RETURNING length(envelope) AS n
)
SELECT COALESCE(sum(n), 0) FROM argued
"""
_ADD_DISPUTE = """
INSERT INTO disputes VALUES ($1, $2, $3, $4) ON CONFLICT (channel_id, id) DO NOTHING
"""
_HELD_SESSION = "SELECT record FROM sessions WHERE channel_id = $1 AND tag = $2"
_ADD_SESSION = """
WITH added AS (
    INSERT INTO sessions (channel_id, tag, record, registered_at)
    SELECT $1, $2, $3, head_seq FROM channels WHERE channel_id = $1
)
UPDATE channels SET stored_bytes = stored_bytes + length($3::bytea) WHERE channel_id = $1
"""
#: A session registered again: as if registered now (its head seq moves up).
_TOUCH_SESSION = """
UPDATE sessions SET registered_at = greatest(
    registered_at, (SELECT head_seq FROM channels WHERE channel_id = $1)
) WHERE channel_id = $1 AND tag = $2
"""
#: The session tags of a table's version-2 envelopes (a version-1 one names none);
#: ``substring`` of an envelope stored EXTERNAL reads only its first TOAST chunk.
_TAGS_IN = (
    f"SELECT substring(envelope FROM {TAG_AT + 1} FOR {TAG_LEN}) FROM {{table}}"
    " WHERE channel_id = $1 AND substring(envelope FROM 1 FOR 1) = $3::bytea"
)
#: A trim's last step (after its deletions): drop the channel's session records
#: that no stored envelope names and that were registered while the head was
#: below X ($2); their bytes.
_PRUNE_SESSIONS = f"""
WITH named AS (
    {_TAGS_IN.format(table="patches")}
    UNION {_TAGS_IN.format(table="snapshots")}
    UNION {_TAGS_IN.format(table="disputes")}
), gone AS (
    DELETE FROM sessions
    WHERE channel_id = $1 AND registered_at < $2 AND tag NOT IN (SELECT * FROM named)
    RETURNING length(record) AS n
)
SELECT COALESCE(sum(n), 0) FROM gone
"""
_SESSIONS_OF = """
SELECT tag, record FROM sessions
WHERE channel_id = $1 AND ($2::bytea[] IS NULL OR tag = ANY($2::bytea[]))
"""

#: Errors of the database or of the way to it (anything else is a bug, and propagates).
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
#: Errors after which running the same transaction again may succeed.
_RETRYABLE = (
    asyncpg.exceptions.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    ConnectionError,
)


@dataclasses.dataclass(frozen=True, slots=True)
class PostgresURL:
    """A store URL taken apart: what asyncpg connects to, and the schema.

    Attributes:
        dsn: the URL without the ``schema`` parameter (the rest passes to asyncpg).
        schema: the schema holding the tables, or None for the server's
            ``search_path`` (normally ``public``).
    """

    dsn: str
    schema: str | None


def parse_url(url: str) -> PostgresURL:
    """Split a ``postgresql://`` (or ``postgres://``) store URL.

    Raises:
        ValueError: another scheme, or a ``schema`` that is not a plain
            lower-case identifier (``[a-z_][a-z0-9_]*``, at most 63
            characters, not ``pg_...``), or given twice.
    """
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise ValueError("a PostgreSQL store URL starts with postgresql:// or postgres://")
    base, _, rest = url.partition("?")
    query, hash_sign, fragment = rest.partition("#")
    kept: list[str] = []
    schemas: list[str] = []
    for field in filter(None, query.split("&")):
        key, _, value = field.partition("=")
        if unquote_plus(key) == "schema":
            schemas.append(unquote_plus(value))
        else:
            kept.append(field)
    if len(schemas) > 1:
        raise ValueError("the store URL names more than one schema")
    schema = schemas[0] if schemas else None
    if schema is not None and (not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_")):
        raise ValueError(
            f"schema={schema!r}: a schema name is [a-z_][a-z0-9_]*,"
            " at most 63 characters, not starting with pg_"
        )
    dsn = base + ("?" + "&".join(kept) if kept else "") + hash_sign + fragment
    return PostgresURL(dsn, schema)


def _lock_key(schema: str | None) -> int:
    """The advisory lock that serialises creating (or migrating) one schema's tables."""
    digest = hashlib.sha256(f"blindpad schema {schema or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _quoted(schema: str) -> str:
    return f'"{schema}"'  # a checked name: lower-case letters, digits and _


async def _keep_session(conn: Connection) -> None:
    """Pool reset: nothing (the pool still rolls back an unfinished transaction).

    The default reset (``RESET ALL``, ``UNLISTEN *``, ...) would cost a round
    trip per release, and this store leaves no session state behind.
    """
    del conn


@dataclasses.dataclass(eq=False)
class _Append:
    channel: bytes
    patch_id: bytes
    parent_id: bytes
    envelope: bytes
    future: asyncio.Future[AppendResult]

    @property
    def size(self) -> int:
        return len(self.envelope)


class _Lanes:
    """Appends waiting for a committer: one FIFO lane per channel, served round-robin.

    Like :class:`relay.store.sqlite.FairQueue`, and :meth:`take` skips the
    channels of batches still running, so one channel's appends commit in
    submission order although two committers run at once.
    """

    def __init__(self) -> None:
        self._lanes: dict[bytes, collections.deque[_Append]] = {}
        self._ring: collections.deque[bytes] = collections.deque()

    def __bool__(self) -> bool:
        return bool(self._ring)

    def add(self, op: _Append) -> None:
        lane = self._lanes.get(op.channel)
        if lane is None:
            lane = self._lanes[op.channel] = collections.deque()
            self._ring.append(op.channel)
        lane.append(op)

    def take(self, max_ops: int, max_bytes: int, busy: set[bytes]) -> list[_Append]:
        """Remove and return the next batch: empty when nothing waits outside ``busy``."""
        batch: list[_Append] = []
        size = misses = 0
        while self._ring and len(batch) < max_ops and misses < len(self._ring):
            key = self._ring[0]
            lane = self._lanes[key]
            if key in busy or (batch and size + lane[0].size > max_bytes):
                self._ring.rotate(-1)
                misses += 1
                continue
            op = lane.popleft()
            batch.append(op)
            size += op.size
            misses = 0
            self._ring.popleft()
            if lane:
                self._ring.append(key)
            else:
                del self._lanes[key]
        return batch

    def drain(self) -> list[_Append]:
        """Remove and return everything."""
        ops = [op for lane in self._lanes.values() for op in lane]
        self._lanes.clear()
        self._ring.clear()
        return ops


@dataclasses.dataclass
class _Decided:
    """What a batch does: each append's result, the rows to insert, the new heads."""

    results: list[AppendResult | StoreError]
    rows: tuple[list[bytes], list[int], list[bytes], list[bytes]]
    heads: dict[bytes, tuple[Head, int]]  # channel -> (new head, bytes added)


def _decide(
    batch: Sequence[_Append], heads: dict[bytes, Head], known: dict[tuple[bytes, bytes], int]
) -> _Decided:
    """Each append's outcome, in order, as :meth:`Store.append` one after another would."""
    heads = dict(heads)
    known = dict(known)
    decided = _Decided([], ([], [], [], []), {})
    for op in batch:
        head = heads.get(op.channel)
        if head is None:
            decided.results.append(UnknownChannel(op.channel.hex()))
            continue
        seq = known.get((op.channel, op.patch_id))
        if seq is not None:
            decided.results.append(AppendResult(AppendOutcome.DUPLICATE, seq, head))
            continue
        if op.parent_id != head.id:
            decided.results.append(AppendResult(AppendOutcome.STALE, 0, head))
            continue
        head = heads[op.channel] = Head(head.seq + 1, op.patch_id)
        known[op.channel, op.patch_id] = head.seq
        channels, seqs, ids, envelopes = decided.rows
        channels.append(op.channel)
        seqs.append(head.seq)
        ids.append(op.patch_id)
        envelopes.append(op.envelope)
        added = decided.heads.get(op.channel, (head, 0))[1]
        decided.heads[op.channel] = (head, added + len(op.envelope))
        decided.results.append(AppendResult(AppendOutcome.APPENDED, head.seq, head))
    return decided


class _Page:
    """The patches of a read, cut exactly as :func:`relay.store.base.page` cuts them."""

    def __init__(self, after: int, max_bytes: int | None) -> None:
        self.items: list[StoredPatch] = []
        self.next = after + 1
        self._total = 0
        self._max = max_bytes

    @property
    def full(self) -> bool:
        return self._max is not None and bool(self.items) and self._total >= self._max

    def budget(self) -> int | None:
        """Bytes still wanted (at least 1), or None for no bound."""
        return None if self._max is None else max(self._max - self._total, 1)

    def add(self, rows: Iterable[tuple[int, bytes, bytes]]) -> bool:
        """Take rows in seq order until full; False if a seq is missing (a trim ran)."""
        for seq, patch_id, envelope in rows:
            if self.full:
                break
            if seq != self.next:
                return False
            self.items.append(StoredPatch(seq, patch_id, envelope))
            self._total += len(envelope)
            self.next += 1
        return True


class PostgreSQLStore:
    """PostgreSQL storage, shared by any number of relay processes.

    Args:
        url: ``postgresql://USER@HOST:PORT/DB?schema=NAME`` (``postgres://``
            too; parameters other than ``schema`` pass to asyncpg).
        batch_max: most appends committed in one transaction.
        batch_max_bytes: most envelope bytes committed in one transaction
            (one append always fits).
        committers: transactions of appends in flight at once (each on a
            connection of the committers' own pool, so reads never starve them).
        pool_size: most connections this process opens, the committers' included.

    Raises:
        ValueError: the URL is not a PostgreSQL URL, or names a bad schema.
    """

    shared = True

    def __init__(
        self,
        url: str,
        batch_max: int = 512,
        batch_max_bytes: int = 1 << 20,
        committers: int = 2,
        pool_size: int = 10,
    ) -> None:
        self.url = parse_url(url)
        if pool_size <= committers:
            raise ValueError("pool_size must leave connections for reads beside the committers")
        self._batch_max = batch_max
        self._batch_max_bytes = batch_max_bytes
        self._committer_count = committers
        self._pool_size = pool_size
        self._pool: Any = None  # reads and the other writes
        self._commit_pool: Any = None  # one connection per committer
        self._site = ""
        self._lanes = _Lanes()
        self._busy: set[bytes] = set()
        self._wake: asyncio.Event | None = None
        self._committers: list[asyncio.Task[None]] = []
        self._closing = False
        self._observer: Callable[[int], None] | None = None
        parts = urlsplit(self.url.dsn)
        port = f":{parts.port}" if parts.port else ""
        self._where = f"{parts.hostname or 'localhost'}{port}{parts.path}"

    # --- lifecycle -----------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or check the schema, start the committers.

        Raises:
            SchemaTooNew: the schema was written by a newer blindpad.
            StoreError: the database cannot be reached or refuses.
        """
        if self._pool is not None:
            return
        settings = {"application_name": "blindpad-store"}
        if "application_name=" in self.url.dsn:
            del settings["application_name"]  # the URL's wins
        if self.url.schema is not None:
            settings["search_path"] = _quoted(self.url.schema)
        pools: list[Any] = []
        try:
            sizes = [(1, self._pool_size - self._committer_count)]
            sizes.append((self._committer_count, self._committer_count))
            for least, most in sizes:
                pools.append(
                    await asyncpg.create_pool(
                        self.url.dsn,
                        min_size=least,
                        max_size=most,
                        server_settings=settings,
                        reset=_keep_session,
                    )
                )
                if len(pools) == 1:
                    async with pools[0].acquire() as conn:
                        self._site = await self._prepare_schema(conn)
        except BaseException as exc:
            for pool in pools:
                pool.terminate()
            if isinstance(exc, _DB_ERRORS):
                raise StoreError(f"PostgreSQL at {self._where}: {exc}") from exc
            raise
        self._pool, self._commit_pool = pools
        self._closing = False
        self._wake = asyncio.Event()
        self._committers = [
            asyncio.create_task(self._commit_forever(), name=f"blindpad-pg-committer-{n}")
            for n in range(self._committer_count)
        ]

    async def _prepare_schema(self, conn: Connection) -> str:
        """Create the tables if missing (once, under the schema's lock); return the site."""
        schema = self.url.schema
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
            if schema is not None and not await conn.fetchval(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1", schema
            ):
                await conn.execute(f"CREATE SCHEMA {_quoted(schema)}")
            if not await conn.fetchval("SELECT to_regclass('blindpad_meta') IS NOT NULL"):
                await conn.execute(_TABLES)
                await conn.execute(
                    "INSERT INTO blindpad_meta VALUES ('schema_version', $1), ('site', $2)",
                    str(SCHEMA_VERSION),
                    secrets.token_hex(8),
                )
            meta = {r["key"]: r["value"] for r in await conn.fetch("SELECT * FROM blindpad_meta")}
            version = int(meta.get("schema_version", "0"))
            if version > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"PostgreSQL schema {schema or '(default)'} at {self._where} has schema"
                    f" version {version}, newer than this relay's {SCHEMA_VERSION}: upgrade"
                    " blindpad (or restore a backup) to use it"
                )
            if version == 1 and await conn.fetchval("SELECT EXISTS (SELECT 1 FROM channels)"):
                where = f"PostgreSQL schema {schema or '(default)'} at {self._where}"
                raise SchemaTooOld(protocol_one_message(where))
            while version < SCHEMA_VERSION:
                if version == 1:
                    await conn.execute(_MIGRATION_1)
                elif version == 2:
                    await _migrate_from_2(conn)
                elif version == 3:
                    await conn.execute(_SESSIONS)
                else:
                    await conn.execute(_SESSIONS_REGISTERED_AT)
                version += 1
                await conn.execute(
                    "UPDATE blindpad_meta SET value = $1 WHERE key = 'schema_version'",
                    str(version),
                )
            return str(meta["site"])

    async def close(self) -> None:
        """Commit what is queued, stop the committers, close the pools."""
        if self._pool is None:
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        await asyncio.gather(*self._committers, return_exceptions=True)
        self._committers = []
        leftover = self._lanes.drain()  # only if a committer died
        _settle(leftover, [StoreError("the store closed") for _ in leftover])
        pools = [self._pool, self._commit_pool]
        self._pool = self._commit_pool = None
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        """Call ``observer(batch_size)`` after every committed batch of appends."""
        self._observer = observer

    def _require_pool(self) -> Any:
        if self._pool is None or self._closing:
            raise StoreError("the PostgreSQL store is not open")
        return self._pool

    # --- the committers --------------------------------------------------------

    async def _commit_forever(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            batch = self._lanes.take(self._batch_max, self._batch_max_bytes, self._busy)
            if not batch:
                if self._closing and not self._busy:
                    return
                await self._wake.wait()
                continue
            channels = {op.channel for op in batch}
            self._busy |= channels
            try:
                await self._serve(batch)
            finally:
                self._busy -= channels
                self._wake.set()

    async def _serve(self, batch: list[_Append]) -> None:
        """Commit one batch (again, once, if that is safe) and settle its futures."""
        results: Sequence[AppendResult | StoreError] = []
        committed = False
        try:
            for attempt in (1, 2):
                committing = lost = False
                try:
                    async with self._commit_pool.acquire() as conn:
                        try:
                            async with conn.transaction():
                                decided = await self._transact(conn, batch)
                                committing = True
                        except Exception:
                            lost = _lost(conn)
                            raise
                    results, committed = decided.results, True
                    break
                except Exception as exc:
                    retry = lost or isinstance(exc, _RETRYABLE)
                    if attempt == 1 and not committing and retry:
                        continue
                    verb = "commit outcome unknown" if committing else "append transaction failed"
                    results = [StoreError(f"{verb}: {exc!r}") for _ in batch]
        except BaseException:
            _settle(batch, [StoreError("the store is closing") for _ in batch])
            raise
        _settle(batch, results)
        if committed and self._observer is not None:
            self._observer(len(batch))

    @staticmethod
    async def _transact(conn: Connection, batch: list[_Append]) -> _Decided:
        channels = sorted({op.channel for op in batch})
        heads = {
            r["channel_id"]: Head(r["head_seq"], r["head_id"])
            for r in await conn.fetch(_LOCK, channels)
        }
        asked = [op for op in batch if op.channel in heads]
        known: dict[tuple[bytes, bytes], int] = {}
        if asked:
            rows = await conn.fetch(
                _KNOWN, [op.channel for op in asked], [op.patch_id for op in asked]
            )
            known = {(r["channel_id"], r["id"]): r["seq"] for r in rows}
        decided = _decide(batch, heads, known)
        if decided.heads:
            moved = list(decided.heads.items())
            await conn.execute(
                _ADD,
                *decided.rows,
                [cid for cid, _ in moved],
                [head.seq for _, (head, _) in moved],
                [head.id for _, (head, _) in moved],
                [added for _, (_, added) in moved],
            )
        return decided

    # --- one operation on a pooled connection -------------------------------------

    async def _run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """``fn`` on a pooled connection, once more if the connection was lost.

        Every caller is idempotent (reads, creating a channel, storing the same
        snapshot, trimming to the floor), so running it again is safe even if
        the first run committed.
        """
        pool = self._require_pool()
        for attempt in (1, 2):
            lost = False
            try:
                async with pool.acquire() as conn:
                    try:
                        return await fn(conn)
                    except _DB_ERRORS:
                        lost = _lost(conn)
                        raise
            except _DB_ERRORS as exc:
                if attempt == 1 and (lost or isinstance(exc, _RETRYABLE)):
                    continue
                raise StoreError(f"PostgreSQL at {self._where}: {exc!r}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # --- the Store protocol --------------------------------------------------

    async def channel(self, channel_id: bytes) -> ChannelInfo | None:
        """See :meth:`relay.store.base.Store.channel`."""

        async def op(conn: Connection) -> ChannelInfo | None:
            return _info(channel_id, await conn.fetchrow(_CHANNEL, channel_id))

        return await self._run(op)

    async def create_channel(
        self, channel_id: bytes, verify_key: bytes, read_hash: bytes
    ) -> ChannelInfo:
        """See :meth:`relay.store.base.Store.create_channel`."""

        async def op(conn: Connection) -> ChannelInfo:
            await conn.execute(_CREATE, channel_id, verify_key, Head().id, read_hash)
            info = _info(channel_id, await conn.fetchrow(_CHANNEL, channel_id))
            assert info is not None  # channels are never deleted
            return info

        return await self._run(op)

    async def append(
        self, channel_id: bytes, patch_id: bytes, parent_id: bytes, envelope: bytes
    ) -> AppendResult:
        """See :meth:`relay.store.base.Store.append`: queued for the next batch."""
        self._require_pool()
        assert self._wake is not None
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._lanes.add(_Append(channel_id, patch_id, parent_id, envelope, future))
        self._wake.set()
        return await future

    async def lookup(self, channel_id: bytes, patch_id: bytes) -> int | None:
        """See :meth:`relay.store.base.Store.lookup`."""

        async def op(conn: Connection) -> int | None:
            seq = await conn.fetchval(_LOOKUP, channel_id, patch_id)
            return None if seq is None else int(seq)

        return await self._run(op)

    async def put_snapshot(
        self, channel_id: bytes, x_id: bytes, snapshot_id: bytes, envelope: bytes
    ) -> int:
        """See :meth:`relay.store.base.Store.put_snapshot`."""

        async def op(conn: Connection) -> int:
            async with conn.transaction():
                if await conn.fetchrow(_LOCK_ONE, channel_id) is None:
                    raise UnknownChannel(channel_id.hex())
                x_seq = await conn.fetchval(
                    "SELECT seq FROM patches WHERE channel_id = $1 AND id = $2", channel_id, x_id
                )
                if x_seq is None:
                    raise UnknownPatch(x_id.hex())
                old = await conn.fetchrow(
                    "SELECT id, length(envelope) AS size FROM snapshots"
                    " WHERE channel_id = $1 AND x_seq = $2",
                    channel_id,
                    x_seq,
                )
                if old is not None and old["id"] == snapshot_id and old["size"] == len(envelope):
                    return int(x_seq)  # stored already (the id is the hash of the bytes)
                freed = 0
                if old is not None:  # replaced: its disputes go with it
                    freed = await conn.fetchval(_DROP_DISPUTES, channel_id, old["id"])
                await conn.execute(_PUT_SNAPSHOT, channel_id, x_seq, x_id, snapshot_id, envelope)
                delta = len(envelope) - (old["size"] if old is not None else 0) - freed
                await conn.execute(_SIZES_AFTER_SNAPSHOT, channel_id, delta)
                return int(x_seq)

        return await self._run(op)

    async def read_since(
        self, channel_id: bytes, since_seq: int, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_since`."""
        since = min(since_seq, _I64_MAX)  # a u64 past i64: nothing is newer anyway
        limit = None if max_bytes is None else _FIRST_ROWS
        budget = None if max_bytes is None else max(max_bytes, 1)

        async def op(conn: Connection) -> HistoryRead | None:
            rows = await conn.fetch(_READ_SINCE, channel_id, since, limit, budget)
            if not rows:
                return HistoryRead(None, (), Head())
            first = rows[0]
            head = Head(first["head_seq"], first["head_id"])
            if since < first["floor_seq"]:
                raise HistoryTrimmed(first["floor_seq"])
            found = _patch_rows(rows)
            patches = await _read_on(conn, channel_id, since, head, found, limit, max_bytes)
            return None if patches is None else HistoryRead(None, patches, head)

        return await self._read(op)

    async def read_from_snapshot(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_from_snapshot`."""
        return await self._read_with_snapshot(_READ_FROM_SNAPSHOT, channel_id, max_bytes)

    async def read_from_floor(
        self, channel_id: bytes, max_bytes: int | None = None
    ) -> HistoryRead:
        """See :meth:`relay.store.base.Store.read_from_floor`."""
        return await self._read_with_snapshot(_READ_FROM_FLOOR, channel_id, max_bytes)

    async def _read_with_snapshot(
        self, statement: str, channel_id: bytes, max_bytes: int | None
    ) -> HistoryRead:
        limit = None if max_bytes is None else _FIRST_ROWS
        budget = None if max_bytes is None else max(max_bytes, 1)

        async def op(conn: Connection) -> HistoryRead | None:
            rows = await conn.fetch(statement, channel_id, max_bytes is None, limit, budget)
            if not rows:
                return HistoryRead(None, (), Head())
            rows = sorted(rows, key=lambda r: r["seq"] or 0)
            first = rows[0]
            head = Head(first["head_seq"], first["head_id"])
            snapshot = None
            if first["x_seq"] is not None:
                snapshot = StoredSnapshot(
                    first["x_seq"],
                    first["x_id"],
                    first["snapshot_id"],
                    first["size"],
                    first["snapshot"],
                    first["disputed"],
                )
            after = snapshot.x_seq if snapshot is not None else first["floor_seq"]
            found = _patch_rows(rows)
            patches = await _read_on(conn, channel_id, after, head, found, limit, max_bytes)
            return None if patches is None else HistoryRead(snapshot, patches, head)

        return await self._read(op)

    async def _read(
        self, op: Callable[[Connection], Awaitable[HistoryRead | None]]
    ) -> HistoryRead:
        """Run a read, again while a trim cuts it (None); each trim moves the floor on."""
        for _ in range(8):
            read = await self._run(op)
            if read is not None:
                return read
        raise StoreError("history read kept being cut by trims")

    async def proof_nodes(
        self, channel_id: bytes, from_seq: int, to_seq: int, max_nodes: int
    ) -> tuple[int, list[tuple[int, bytes]]]:
        """See :meth:`relay.store.base.Store.proof_nodes`: one read-only transaction."""

        async def op(conn: Connection) -> tuple[int, list[tuple[int, bytes]]]:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                row = await conn.fetchrow(
                    "SELECT head_seq, floor_seq FROM channels WHERE channel_id = $1", channel_id
                )
                if row is None:
                    return from_seq, []
                to = min(to_seq, row["head_seq"])  # also keeps a u64 past bigint out
                if from_seq >= to:
                    return from_seq, []
                floor = row["floor_seq"]
                roots: dict[int, bytes] = {}
                groups: dict[int, bytes] = {}
                if from_seq < floor // blocks.BLOCK * blocks.BLOCK:  # a few rows: roots age
                    roots, groups = await _roots(conn, channel_id)
                partial: list[bytes] = []
                if floor % blocks.BLOCK:
                    kept = await conn.fetchval(
                        "SELECT ids FROM partial_ids WHERE channel_id = $1", channel_id
                    )
                    partial = blocks.split_ids(kept) if kept is not None else []
                after = max(from_seq, floor)
                rows = await conn.fetch(
                    "SELECT id FROM patches WHERE channel_id = $1 AND seq > $2 AND seq <= $3"
                    " ORDER BY seq",
                    channel_id,
                    after,
                    min(to, after + max_nodes),
                )
                return blocks.proof_nodes(
                    from_seq,
                    to,
                    max_nodes,
                    floor=floor,
                    roots=roots,
                    partial=partial,
                    live_after=after,
                    live=[bytes(r["id"]) for r in rows],
                    groups=groups,
                )

        return await self._run(op)

    async def snapshots(self, channel_id: bytes) -> list[StoredSnapshot]:
        """See :meth:`relay.store.base.Store.snapshots`."""

        async def op(conn: Connection) -> list[StoredSnapshot]:
            rows = await conn.fetch(_SNAPSHOTS, channel_id)
            return [
                StoredSnapshot(r["x_seq"], r["x_id"], r["id"], r["size"], None, r["disputed"])
                for r in rows
            ]

        return await self._run(op)

    async def snapshot(self, channel_id: bytes, x_seq: int) -> StoredSnapshot | None:
        """See :meth:`relay.store.base.Store.snapshot`."""
        if not 0 <= x_seq <= _I64_MAX:
            return None

        async def op(conn: Connection) -> StoredSnapshot | None:
            row = await conn.fetchrow(_SNAPSHOT_AT, channel_id, x_seq)
            if row is None:
                return None
            return StoredSnapshot(
                row["x_seq"], row["x_id"], row["id"], row["size"], None, row["disputed"]
            )

        return await self._run(op)

    async def add_dispute(
        self, channel_id: bytes, snapshot_id: bytes, dispute_id: bytes, envelope: bytes
    ) -> int:
        """See :meth:`relay.store.base.Store.add_dispute`."""

        async def op(conn: Connection) -> int:
            async with conn.transaction():
                if await conn.fetchrow(_LOCK_ONE, channel_id) is None:
                    raise UnknownChannel(channel_id.hex())
                x_seq = await conn.fetchval(
                    "SELECT x_seq FROM snapshots WHERE channel_id = $1 AND id = $2",
                    channel_id,
                    snapshot_id,
                )
                if x_seq is None:
                    raise UnknownPatch(snapshot_id.hex())
                added = await conn.execute(
                    _ADD_DISPUTE, channel_id, snapshot_id, dispute_id, envelope
                )
                if added == "INSERT 0 1":
                    await conn.execute(
                        "UPDATE channels SET stored_bytes = stored_bytes + $2"
                        " WHERE channel_id = $1",
                        channel_id,
                        len(envelope),
                    )
                return int(x_seq)

        return await self._run(op)

    async def add_session(self, channel_id: bytes, tag: bytes, record: bytes) -> SessionAdded:
        """See :meth:`relay.store.base.Store.add_session`.

        Run again after a lost connection, an add that was committed is KNOWN.
        """

        async def op(conn: Connection) -> SessionAdded:
            async with conn.transaction():
                if await conn.fetchrow(_LOCK_ONE, channel_id) is None:
                    raise UnknownChannel(channel_id.hex())
                # A later statement than the lock (READ COMMITTED): it sees the record
                # a racing add committed while this one waited for the row.
                held = await conn.fetchval(_HELD_SESSION, channel_id, tag)
                added = session_added(None if held is None else bytes(held), record)
                if added is SessionAdded.STORED:
                    await conn.execute(_ADD_SESSION, channel_id, tag, record)
                elif added is SessionAdded.KNOWN:
                    await conn.execute(_TOUCH_SESSION, channel_id, tag)
                return added

        return await self._run(op)

    async def sessions(
        self, channel_id: bytes, tags: Collection[bytes] | None = None
    ) -> dict[bytes, bytes]:
        """See :meth:`relay.store.base.Store.sessions`: one query."""
        asked = None if tags is None else list(tags)

        async def op(conn: Connection) -> dict[bytes, bytes]:
            rows = await conn.fetch(_SESSIONS_OF, channel_id, asked)
            return {bytes(r["tag"]): bytes(r["record"]) for r in rows}

        return await self._run(op)

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
        if not 0 <= x_seq <= _I64_MAX:
            raise NoSnapshot(f"no snapshot of seq {x_seq}")
        start = min(max(offset, 0), _I32_MAX - 1) + 1  # substring counts from 1
        count = min(max(size, 0), _I32_MAX)

        async def op(conn: Connection) -> bytes:
            row = await conn.fetchrow(_SNAPSHOT_SLICE, channel_id, x_seq, start, count)
            if row is None or snapshot_id not in (None, bytes(row[1])):
                raise NoSnapshot(f"no snapshot of seq {x_seq}")
            return bytes(row[0])

        return await self._run(op)

    async def trim(self, channel_id: bytes, x_id: bytes, keep_pct: int) -> int:
        """See :meth:`relay.store.base.Store.trim`."""

        async def op(conn: Connection) -> int:
            async with conn.transaction():
                row = await conn.fetchrow(_LOCK_TRIM, channel_id)
                if row is None:
                    raise UnknownChannel(channel_id.hex())
                floor = int(row["floor_seq"])
                x_seq = await conn.fetchval(_LOOKUP, channel_id, x_id)
                if x_seq is None:  # trimmed: the X of a kept snapshot (the floor's, or older)
                    x_seq = await conn.fetchval(_TRIMMED_X, channel_id, x_id)
                    if x_seq is None:
                        raise UnknownPatch(x_id.hex())
                if x_seq <= floor:
                    if x_seq == floor and keep_pct != row["keep_pct"]:  # thin again
                        freed = await _thin(conn, channel_id, floor, keep_pct)
                        freed += await conn.fetchval(_PRUNE_SESSIONS, channel_id, floor, VERSION_2)
                        await conn.execute(
                            "UPDATE channels SET keep_pct = $2, stored_bytes = stored_bytes - $3"
                            " WHERE channel_id = $1",
                            channel_id,
                            keep_pct,
                            freed,
                        )
                    return floor
                snap = await conn.fetchrow(_SNAPSHOT_AT, channel_id, x_seq)
                if snap is None:
                    raise NoSnapshot(x_id.hex())
                if snap["disputed"]:
                    raise SnapshotDisputed(x_id.hex())
                kept = await conn.fetchval(
                    "SELECT ids FROM partial_ids WHERE channel_id = $1", channel_id
                )
                old_partial = blocks.split_ids(kept) if kept is not None else []
                folder = blocks.BlockFolder(floor, old_partial)
                partial = await _fold(conn, channel_id, folder, "patches", x_seq)
                nodes = blocks.HASH * (len(folder.roots) + len(partial) - len(old_partial))
                nodes -= await _age(conn, channel_id, x_seq)
                freed = await conn.fetchval(_DELETE_PATCHES, channel_id, x_seq)
                freed += await _thin(conn, channel_id, x_seq, keep_pct)
                freed += await conn.fetchval(_PRUNE_SESSIONS, channel_id, x_seq, VERSION_2)
                await conn.execute(
                    "UPDATE channels SET floor_seq = $2, keep_pct = $3,"
                    " stored_bytes = stored_bytes - $4 + $5 WHERE channel_id = $1",
                    channel_id,
                    x_seq,
                    keep_pct,
                    freed,
                    nodes,
                )
                return int(x_seq)

        return await self._run(op)

    async def stats(self) -> StoreStats:
        """See :meth:`relay.store.base.Store.stats`."""

        async def op(conn: Connection) -> StoreStats:
            row = await conn.fetchrow(
                "SELECT count(*) AS n, COALESCE(sum(stored_bytes), 0) AS total FROM channels"
            )
            return StoreStats(int(row["n"]), int(row["total"]))

        return await self._run(op)

    async def channels(self, channel_ids: Sequence[bytes]) -> dict[bytes, ChannelInfo]:
        """See :meth:`relay.store.base.Store.channels`: one query."""
        if not channel_ids:
            return {}

        async def op(conn: Connection) -> dict[bytes, ChannelInfo]:
            rows = await conn.fetch(
                "SELECT channel_id, verify_key, read_hash, head_seq, head_id, floor_seq,"
                " stored_bytes, pad_bytes FROM channels WHERE channel_id = ANY($1::bytea[])",
                list(channel_ids),
            )
            found = (_info(r["channel_id"], r) for r in rows)
            return {info.channel_id: info for info in found if info is not None}

        return await self._run(op)

    async def join(self) -> Membership:
        """See :meth:`relay.store.base.Store.join`.

        ``node`` is the next value of the schema's ``blindpad_nodes`` sequence
        modulo 65,536: every process that joins gets its own, and numbers come
        round again only after 65,536 joins.
        """

        async def op(conn: Connection) -> int:
            return int(await conn.fetchval("SELECT nextval('blindpad_nodes')")) % _NODES

        return Membership(self._site, await self._run(op))


async def _thin(conn: Connection, channel_id: bytes, x_seq: int, keep_pct: int) -> int:
    """Delete the checkpoints below ``x_seq`` that :func:`relay.store.blocks.retained`
    does not keep, with their disputes; return the bytes freed."""
    older = [
        (int(r["x_seq"]), int(r["n"]))
        for r in await conn.fetch(
            "SELECT x_seq, length(envelope) AS n FROM snapshots"
            " WHERE channel_id = $1 AND x_seq < $2",
            channel_id,
            x_seq,
        )
    ]
    if not older:
        return 0
    newest = await conn.fetchval(
        "SELECT length(envelope) FROM snapshots WHERE channel_id = $1 ORDER BY x_seq DESC LIMIT 1",
        channel_id,
    )
    kept = blocks.retained(x_seq, keep_pct, older, int(newest))
    gone = [seq for seq, _ in older if seq not in kept]
    if not gone:
        return 0
    return int(await conn.fetchval(_DELETE_SNAPSHOTS, channel_id, gone))


async def _fold(
    conn: Connection, channel_id: bytes, folder: blocks.BlockFolder, table: str, upto: int
) -> list[bytes]:
    """Fold the ids ``table`` (``patches`` or ``tombstones``) holds up to ``upto``,
    read in seq order through a cursor, into ``folder``; keep its roots and the
    ids of the block ``upto`` cuts, and return those ids."""
    async for r in conn.cursor(
        f"SELECT seq, id FROM {table} WHERE channel_id = $1 AND seq <= $2 ORDER BY seq",
        channel_id,
        upto,
        prefetch=_PREFETCH,
    ):
        folder.add(r["seq"], r["id"])
    partial = folder.partial(upto)
    await _keep_nodes(conn, channel_id, folder.roots, partial)
    return partial


async def _keep_nodes(
    conn: Connection,
    channel_id: bytes,
    roots: Sequence[tuple[int, bytes]],
    partial: Sequence[bytes],
) -> None:
    """Append ``roots`` to the channel's packed rows and keep ``partial``
    (:func:`relay.store.blocks.pack_roots`)."""
    if roots:
        last = await conn.fetchrow(
            "SELECT first_block, roots FROM block_roots WHERE channel_id = $1"
            " AND length(roots) % 32 = 0 ORDER BY first_block DESC LIMIT 1",
            channel_id,
        )
        before = (int(last["first_block"]), bytes(last["roots"])) if last else None
        rows = blocks.pack_roots(before, roots, ROOTS_PER_ROW)
        await conn.executemany(
            _PUT_ROOTS, [(channel_id, first, data) for first, data in rows.items()]
        )
    if partial:
        await conn.execute(_PUT_PARTIAL, channel_id, b"".join(partial))
    else:
        await conn.execute("DELETE FROM partial_ids WHERE channel_id = $1", channel_id)


async def _roots(conn: Connection, channel_id: bytes) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """The channel's block roots and group roots (:func:`relay.store.blocks.unpack_rows`)."""
    rows = await conn.fetch(
        "SELECT first_block, roots FROM block_roots WHERE channel_id = $1", channel_id
    )
    return blocks.unpack_rows((int(r["first_block"]), bytes(r["roots"])) for r in rows)


async def _age(conn: Connection, channel_id: bytes, floor: int) -> int:
    """Age the groups of block roots old enough at ``floor`` (:func:`relay.store.blocks.age_rows`;
    a file written before roots aged ages at its first trim): rewrite the
    channel's few rows.  Returns the bytes freed."""
    aged = blocks.age_rows(*await _roots(conn, channel_id), floor, ROOTS_PER_ROW)
    if aged is None:
        return 0
    rows, freed = aged
    await conn.execute("DELETE FROM block_roots WHERE channel_id = $1", channel_id)
    await conn.executemany(_PUT_ROOTS, [(channel_id, first, data) for first, data in rows.items()])
    return freed


async def _migrate_from_2(conn: Connection) -> None:
    """Schema 2 -> 3 inside the caller's transaction: fold every trimmed channel's
    tombstones (read in seq order through a cursor) into its block roots and
    partial ids, then drop them."""
    await conn.execute(
        "ALTER TABLE channels ADD COLUMN keep_pct integer NOT NULL DEFAULT 0;" + _NODES_TABLES
    )
    trimmed = await conn.fetch("SELECT channel_id, floor_seq FROM channels WHERE floor_seq > 0")
    for row in trimmed:
        channel_id, floor = row["channel_id"], int(row["floor_seq"])
        folder = blocks.BlockFolder(0, [])
        partial = await _fold(conn, channel_id, folder, "tombstones", floor)
        await conn.execute(
            "UPDATE channels SET stored_bytes = stored_bytes + $2 WHERE channel_id = $1",
            channel_id,
            blocks.HASH * (len(folder.roots) + len(partial)),
        )
    await conn.execute("DROP TABLE tombstones")


def _lost(conn: Connection) -> bool:
    """Whether the connection is gone (asyncpg detaches a pooled one that closes)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def _settle(batch: Sequence[_Append], results: Sequence[AppendResult | StoreError]) -> None:
    for op, result in zip(batch, results, strict=True):
        if op.future.done():
            continue  # the caller gave up waiting
        if isinstance(result, StoreError):
            op.future.set_exception(result)
        else:
            op.future.set_result(result)


def _info(channel_id: bytes, row: Any) -> ChannelInfo | None:
    if row is None:
        return None
    head = Head(row["head_seq"], row["head_id"])
    return ChannelInfo(
        channel_id,
        row["verify_key"],
        row["read_hash"],
        head,
        row["floor_seq"],
        row["stored_bytes"],
        row["pad_bytes"],
    )


def _patch_rows(rows: Iterable[Any]) -> list[tuple[int, bytes, bytes]]:
    """The (seq, id, envelope) of the rows that carry a patch, in seq order."""
    found = [(r["seq"], r["id"], r["envelope"]) for r in rows if r["seq"] is not None]
    found.sort(key=lambda row: row[0])
    return found


async def _read_on(
    conn: Connection,
    channel_id: bytes,
    after: int,
    head: Head,
    found: list[tuple[int, bytes, bytes]],
    limit: int | None,
    max_bytes: int | None,
) -> list[StoredPatch] | None:
    """The page of patches after ``after`` that starts with ``found`` (the first statement's).

    Reads on, at most up to ``head`` (the first statement's), while the page
    is not full and a statement returned all the rows it was allowed.
    Returns None if rows are missing: a trim ran since the first statement.
    """
    page = _Page(after, max_bytes)
    rows = found
    while True:
        if not page.add(rows):
            return None
        if page.full or page.next > head.seq:
            return page.items
        if limit is None or len(rows) < limit:
            return None  # the rows stopped before the head: they were trimmed
        limit = min(limit * 2, _MAX_ROWS)
        fetched = await conn.fetch(
            _MORE, channel_id, page.next - 1, head.seq, limit, page.budget()
        )
        rows = sorted(((r["seq"], r["id"], r["envelope"]) for r in fetched), key=lambda r: r[0])

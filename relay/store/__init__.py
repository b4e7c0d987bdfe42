"""The relay's storage: one interface, several backends, picked by URL.

* :mod:`relay.store.base`: the :class:`Store` protocol, its record and outcome
  types, and the error tree (read its docstring for the theory of operation);
* :mod:`relay.store.blocks`: what a trim keeps of the ids it removes (block
  roots, the cut block's ids), the nodes of a proof, and which older
  snapshots it keeps: pure functions every backend shares;
* :mod:`relay.store.memory`: :class:`MemoryStore`, dictionaries, for tests
  and throwaway relays;
* :mod:`relay.store.sqlite`: :class:`SQLiteStore`, one writer thread with
  group commit (the default), and :func:`backup`;
* :mod:`relay.store.postgresql`: ``PostgreSQLStore``, one transaction per
  batch of appends, shared by any number of relay processes (needs asyncpg,
  the ``scale`` extra, so it is imported only when a URL asks for it and not
  re-exported here: import it from its module).

Backends import only :mod:`relay.store.base` and :mod:`relay.store.blocks`;
this package re-exports the first and holds the factory :func:`open_store`.
A new backend is one module here plus one branch in :func:`open_store`, and
must pass ``tests/relay/test_relay_store.py``.
"""

from __future__ import annotations

from relay.store.base import (
    SCHEMA_VERSION,
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
    Store,
    StoredPatch,
    StoredSnapshot,
    StoreError,
    StoreStats,
    UnknownChannel,
    UnknownPatch,
    append_soon,
    snapshot_parts,
)
from relay.store.lockfile import StoreLocked
from relay.store.memory import MemoryStore
from relay.store.sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """Build (not yet open) the store a URL names.

    Args:
        url: ``memory:`` or ``sqlite:///relative/or/absolute/path`` (``sqlite:////abs``
            also works) or a bare path, or ``postgresql://USER@HOST:PORT/DB``
            (``postgres://`` too; ``?schema=NAME`` picks the schema).

    Returns:
        A store; call and await :meth:`Store.open` before use.

    Raises:
        ValueError: unknown scheme, a bad PostgreSQL URL, or asyncpg (the
            ``scale`` extra) not installed for one.
    """
    if url == "memory:":
        return MemoryStore()
    if url.startswith("sqlite://"):
        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from relay.store.postgresql import PostgreSQLStore
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise ValueError(
                "a PostgreSQL store needs asyncpg: install blindpad[scale]"
                " (pip install 'blindpad[relay,scale]')"
            ) from exc
        return PostgreSQLStore(url)
    if "://" in url or url.endswith(":"):
        raise ValueError(
            f"unknown store {url!r}: use 'sqlite:///PATH', 'postgresql://USER@HOST/DB'"
            " or 'memory:'"
        )
    return SQLiteStore(url)


def sqlite_path(url: str) -> str:
    """Return the file path of a ``sqlite:///PATH`` URL (``PATH`` may be relative)."""
    rest = url.removeprefix("sqlite://")
    return rest[1:] if rest.startswith("/") else rest


__all__ = [
    "SCHEMA_VERSION",
    "AppendOutcome",
    "AppendResult",
    "ChannelInfo",
    "Head",
    "HistoryRead",
    "HistoryTrimmed",
    "Membership",
    "MemoryStore",
    "NoSnapshot",
    "SQLiteStore",
    "SchemaTooNew",
    "SchemaTooOld",
    "SessionAdded",
    "SnapshotDisputed",
    "Store",
    "StoreError",
    "StoreLocked",
    "StoreStats",
    "StoredPatch",
    "StoredSnapshot",
    "UnknownChannel",
    "UnknownPatch",
    "append_soon",
    "open_store",
    "snapshot_parts",
    "sqlite_path",
]

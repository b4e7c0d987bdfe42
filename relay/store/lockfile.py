"""The advisory lock that keeps a second relay off a SQLite file.

Theory of operation
-------------------
Two relay processes on one database would each cache channel state and fan
out only their own commits: pads on one would never see the other's patches.
So the SQLite store takes an exclusive ``fcntl.flock`` on ``<db>.lock``
beside the database and writes ``pid host`` into it; a second process finds
the lock held, reads who holds it, and refuses with :class:`StoreLocked`
naming them.  The kernel drops the lock when the holder dies (even by
SIGKILL), so a stale file never blocks a restart.  The file is never removed
(removing it would let two processes lock two different inodes).

Within one process the lock is shared: :func:`acquire` of a path this process
already holds counts a reference instead of failing, so the CLI can check
before it starts serving and the store can take it again when it opens.
``blindpad relay backup`` does not lock: it reads through SQLite's online
backup API, which is safe beside a live writer.  Platforms without ``fcntl``
run unlocked.
"""

from __future__ import annotations

import os
import socket

from relay.store.base import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class StoreLocked(StoreError):
    """Another relay process holds the store's lock file."""


_HELD: dict[str, tuple[int, int]] = {}  # real path -> (fd, references)


def lock_path(database: str) -> str:
    """The lock file of a database file."""
    return database + ".lock"


def acquire(database: str) -> str:
    """Take the lock of ``database`` (reentrant within this process).

    Args:
        database: the SQLite file.

    Returns:
        The key to pass to :func:`release`.

    Raises:
        StoreLocked: another process holds it; the message names its pid and host.
    """
    key = os.path.realpath(lock_path(database))
    if key in _HELD:
        fd, refs = _HELD[key]
        _HELD[key] = (fd, refs + 1)
        return key
    if fcntl is None:  # pragma: no cover
        return key
    try:
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open the lock file {key}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
        os.close(fd)
        who = f"pid {holder[0]} on host {holder[1]}" if len(holder) == 2 else "another process"
        raise StoreLocked(
            f"{database} is in use by another relay ({who}); stop it first or use another store"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    _HELD[key] = (fd, 1)
    return key


def release(key: str) -> None:
    """Drop one reference taken by :func:`acquire`; unlock at the last one."""
    if key not in _HELD:
        return
    fd, refs = _HELD.pop(key)
    if refs > 1:
        _HELD[key] = (fd, refs - 1)
        return
    os.close(fd)  # closing the descriptor releases the flock

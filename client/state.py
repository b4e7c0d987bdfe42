"""The SDK's state directory: identity, write-ahead log and last head, per pad.

Theory of operation
-------------------
Layout (default root: :func:`default_state_dir`)::

    ROOT/author.json               the user's identity (crypto.Author.to_json), mode 0600
    ROOT/pads/<channel hex>/lock   held with fcntl.flock while a process has the pad open
    ROOT/pads/<channel hex>/pending  the sealed, unacknowledged patches (write-ahead log)
    ROOT/pads/<channel hex>/head.json  the last head seen: {"seq": n, "id": hex}

The write-ahead log is what makes a crash lose and duplicate nothing: a
front end writes :meth:`PadState.write_pending` (whole-file replace: write a
temporary file, fsync it, rename it over, fsync the directory) *before* it
sends any of those bytes.  At the next open the patches are handed back to
the engine (:meth:`client.engine.Engine.adopt`): those found in history
count as acknowledged, the rest are resent with the same bytes, which the
relay deduplicates by id.  The log holds at most the pipeline's few patches,
so rewriting it whole is cheap and never half-written.

``head.json`` feeds the rollback alarm; it is written without fsync (losing
the very last update only weakens the check by a few patches).

A second process opening the same pad gets :class:`client.errors.StateLocked`
rather than two writers racing on one log.  Where ``fcntl`` does not exist
(Windows, Pyodide) the lock is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from pathlib import Path
from typing import IO

import crypto
from client.errors import StateLocked

_LEN = struct.Struct(">I")


def default_state_dir() -> Path:
    """The per-user state folder: ``$BLINDPAD_STATE_DIR``, else the config dir + ``blindpad``.

    Returns:
        ``~/.config/blindpad`` (or ``$XDG_CONFIG_HOME/blindpad``) on Linux,
        ``~/Library/Application Support/blindpad`` on macOS,
        ``%APPDATA%\\blindpad`` on Windows.
    """
    override = os.environ.get("BLINDPAD_STATE_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "blindpad"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "blindpad"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "blindpad"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new file, whole.

    Args:
        path: the file.
        data: its new content.
        durable: fsync the file and its directory before returning.
        mode: permission bits of a new file.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


class StateDir:
    """A state root holding the identity and one folder per pad.

    Args:
        root: the folder (created on first use).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def author(self, name: str | None = None) -> crypto.Author:
        """Load the user's identity, creating it on first use.

        Args:
            name: a display name; replaces the stored one when given.

        Returns:
            The author.

        Raises:
            crypto.InvalidIdentity: the stored identity is damaged, or the
                name is too long.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "author.json"
        if path.exists():
            author = crypto.Author.from_json(path.read_text("utf-8"))
            if name is None or name == author.name:
                return author
            author = author.renamed(name)
        else:
            author = crypto.Author.generate(name or default_name())
        write_atomic(path, author.to_json().encode("utf-8"), mode=0o600)
        return author

    def open_pad(self, channel_id: bytes) -> PadState:
        """Open (and lock) the state of one pad.

        Raises:
            StateLocked: another process has this pad open.
        """
        folder = self.root / "pads" / channel_id.hex()
        folder.mkdir(parents=True, exist_ok=True)
        return PadState(folder)


def default_name() -> str:
    """A display name for a new identity: the login name, or ``"anonymous"``."""
    for var in ("BLINDPAD_NAME", "USER", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value[:32]
    return "anonymous"


class PadState:
    """One pad's folder, locked while open.  Use :meth:`StateDir.open_pad`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock: IO[bytes] | None = self._take_lock()
        self._pending: list[bytes] | None = None
        self._head: tuple[int, bytes] | None = None

    def _take_lock(self) -> IO[bytes]:
        handle = (self.folder / "lock").open("ab")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows, Pyodide
            return handle
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            handle.close()
            raise StateLocked(
                f"another process has this pad open (state in {self.folder})"
            ) from error
        return handle

    def recovered(self) -> list[bytes]:
        """The sealed patches a previous run logged and did not see acknowledged."""
        try:
            data = (self.folder / "pending").read_bytes()
        except FileNotFoundError:
            return []
        out: list[bytes] = []
        at = 0
        while at + _LEN.size <= len(data):
            (length,) = _LEN.unpack_from(data, at)
            at += _LEN.size
            out.append(data[at : at + length])
            at += length
        self._pending = out
        return out

    def write_pending(self, sealed: list[bytes]) -> None:
        """Durably record the unacknowledged patches (before sending them)."""
        if sealed == self._pending:
            return
        data = b"".join(_LEN.pack(len(s)) + s for s in sealed)
        write_atomic(self.folder / "pending", data)
        self._pending = list(sealed)

    def last_head(self) -> tuple[int, bytes] | None:
        """The last head a previous run saw, if any."""
        try:
            body = json.loads((self.folder / "head.json").read_text("utf-8"))
            head = (int(body["seq"]), bytes.fromhex(body["id"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        self._head = head
        return head

    def write_head(self, head: tuple[int, bytes] | None) -> None:
        """Remember the last head seen (for the rollback alarm)."""
        if head is None or head == self._head:
            return
        body = json.dumps({"seq": head[0], "id": head[1].hex()}).encode()
        write_atomic(self.folder / "head.json", body, durable=False)
        self._head = head

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


__all__ = ["PadState", "StateDir", "default_name", "default_state_dir", "write_atomic"]

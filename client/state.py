"""The SDK's state directory: identity, write-ahead logs and last head, per pad.

Theory of operation
-------------------
Layout (default root: :func:`default_state_dir`)::

    ROOT/author.json                   the user's identity (crypto.Author.to_json), mode 0600
    ROOT/pads/<channel hex>/head.json  the highest head verified: {"height", "id", "peaks"}
    ROOT/pads/<channel hex>/copy       the last verified document and its head (client.offline)
    ROOT/pads/<channel hex>/lock       slot 0: held with fcntl.flock while a process uses it
    ROOT/pads/<channel hex>/pending    slot 0's sealed, unacknowledged patches (write-ahead log)
    ROOT/pads/<channel hex>/base-<id>  the text they were made on, after patch <id> (hex)
    ROOT/pads/<channel hex>/slot-N/    slots 1, 2, ...: the same ``lock``, ``pending``, ``base-*``

**Slots.**  Several processes of one user may have one pad open at once (a
``blindpad watch`` in one terminal, ``blindpad append`` in another): each
takes its own *slot*, the first whose lock is free, and logs only its own
patches there, so exactly-once holds per slot.  Slot 0 is the pad folder
itself, where versions before slots kept their only log, so an upgrade
loses nothing.  A slot whose lock is free but whose log is not empty was
left by a process that died with work unacknowledged; the next process
prefers such a slot and adopts it.

The write-ahead log is what makes a crash lose and duplicate nothing: a
front end writes :meth:`PadState.write_pending` *before* it sends any of
those bytes.  On the typing path that is one append and one fsync: new
patches that continue the last one logged are appended (a record cut short
by a crash was never sent and is dropped when read), and an acknowledgement
alone writes nothing (the acknowledged patches stay at the front of the log
until it is next written whole, and recovery finds them landed).  The log is
written whole (write a temporary file, fsync it, rename it over, fsync the
directory), with a new base, when new patches start elsewhere (someone
else's patch came between), every :data:`MAX_LOG` patches, and at a clean
close.  At the next open of that slot the patches are
handed back to the engine (:meth:`client.engine.Engine.adopt`): those found
in history count as acknowledged, the rest are resent with the same bytes,
which the relay deduplicates by id, or merged onto a text the chain no
longer leads to from them (:mod:`client.recovery`).  The log holds at most :data:`MAX_LOG` patches
plus the pipeline's few, so rewriting it whole is cheap and never half-written.

**Base files.**  The text the logged patches were made on is the whole
document, so it is written only when the log's first parent changes (an
acknowledgement, a squash), to a file named by that parent: first the new
``base-<id>`` (atomic, fsync), then ``pending``, then the older base files
are removed.  A crash anywhere in between leaves a base that fits the log
(:func:`client.recovery.pick_base` also takes a base past acknowledged
patches).  Format: ``blindpad-base 1`` and a JSON line
``{"parent": hex, "height": n}``, then the text as UTF-8: plaintext, so
mode 0600 like ``author.json`` (docs/SECURITY.md).  A log from
before base files (none beside it) still reads; :mod:`client.recovery` says
what it can recover.

``head.json`` is the remembered point of :mod:`client.trust` (the rollback
and fork checks) and is shared by the slots: a process never writes a lower
height over a higher one (every value written is a head a process really
verified on the same line).  It is written without fsync, and by the SDK
at most once a second while typing and at close (a crash losing the last
updates only makes the next check start a few patches lower).  Temporary
files carry the process id, so two processes replacing one file never write
into each other's.

:class:`client.errors.StateLocked` is raised only when all
:data:`MAX_SLOTS` slots are taken.  Where ``fcntl`` does not exist
(Windows, Pyodide) locks are skipped and every process uses slot 0.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import crypto
from client import offline
from client.doctype import DocType, InvalidPatch
from client.errors import StateLocked
from client.jsondoc import JSON, canonical
from client.offline import LocalCopy
from client.recovery import Base
from client.rope import plain
from crypto import envelope2
from wire import mmr

_LEN = struct.Struct(">I")
_BASE_MAGIC = b"blindpad-base 1\n"

#: How many processes of one user may have one pad open at once.
MAX_SLOTS = 64
#: Patches appended to a log before it is written whole again (with a new base).
MAX_LOG = 64


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
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
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
        if not path.exists():
            _create_once(path, crypto.Author.generate(name or default_name()))
        author = crypto.Author.from_json(path.read_text("utf-8"))
        if name is None or name == author.name:
            return author
        author = author.renamed(name)
        write_atomic(path, author.to_json().encode("utf-8"), mode=0o600)
        return author

    def remembered(self, channel_id: bytes) -> tuple[tuple[int, bytes], mmr.Peaks | None] | None:
        """The point a run verified of this pad, read without taking a slot."""
        return read_head(self.root / "pads" / channel_id.hex() / "head.json")

    def open_pad(self, channel_id: bytes) -> PadState:
        """Open the state of one pad in a free slot (see the module docstring).

        A free slot holding a dead process's unacknowledged patches is taken
        first, so they are resent; else the lowest free slot.

        Raises:
            StateLocked: all :data:`MAX_SLOTS` slots are in use.
        """
        folder = self.root / "pads" / channel_id.hex()
        folder.mkdir(parents=True, exist_ok=True)
        slots = range(MAX_SLOTS)
        left = [n for n in slots if _has_log(_slot_folder(folder, n))]
        for slot in [*left, *(n for n in slots if n not in left)]:
            lock = _take_lock(_slot_folder(folder, slot))
            if lock is not None:
                return PadState(folder, slot, lock)
        raise StateLocked(f"{MAX_SLOTS} processes have this pad open (state in {folder})")


def read_head(path: Path) -> tuple[tuple[int, bytes], mmr.Peaks | None] | None:
    """A ``head.json``: the remembered ``(height, id)`` and its peaks, if readable."""
    try:
        body = json.loads(path.read_text("utf-8"))
        height = int(body["height"] if "height" in body else body["seq"])  # 0.1's name
        head = (height, bytes.fromhex(body["id"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        peaks = mmr.from_hex(body["peaks"], height) if "peaks" in body else None
    except ValueError:
        peaks = None  # damaged: the point still checks rollbacks and held forks
    return head, peaks


def _unwritten(logged: list[bytes], sealed: list[bytes]) -> list[bytes] | None:
    """The patches of ``sealed`` not in the log yet, if they can be appended to it
    (``[]``: none, nothing to write; ``None``: the log must be rewritten).

    Appending keeps the log one chain from its base: ``sealed`` must start
    with patches the log ends with, and the first new one must have the last
    logged patch as its parent.  Session records (``sealed`` holds each
    before the first patch of its session) are not patches: a new patch
    whose session's record the log lacks brings it along, right before it.
    """
    patches = [data for data in sealed if not envelope2.is_session_record(data)]
    done = [data for data in logged if not envelope2.is_session_record(data)]
    if not patches:
        return []
    if not done:
        return None
    if patches[0] in done:
        kept = len(done) - done.index(patches[0])
        if done[-kept:] != patches[:kept]:
            return None
        fresh = patches[kept:]
    else:
        fresh = patches
    if fresh and not _continues(done[-1], fresh[0]):
        return None
    have = {_record_tag(data) for data in logged if envelope2.is_session_record(data)}
    records = {_record_tag(data): data for data in sealed if envelope2.is_session_record(data)}
    out: list[bytes] = []
    for data in fresh:
        tag = envelope2.tag_of(data)
        if tag is not None and tag not in have and tag in records:
            have.add(tag)
            out.append(records[tag])
        out.append(data)
    return out


def _record_tag(record: bytes) -> bytes:
    return envelope2.session_tag(envelope2.session_key_of(record))


def _continues(last: bytes, new: bytes) -> bool:
    """Whether the sealed patch ``new`` is made on the sealed patch ``last``."""
    try:
        return envelope2.ref_of(new) == hashlib.sha256(last).digest()
    except (ValueError, crypto.CryptoError):
        return False


def default_name() -> str:
    """A display name for a new identity: the login name, or ``"anonymous"``."""
    for var in ("BLINDPAD_NAME", "USER", "USERNAME"):
        value = os.environ.get(var)
        if value:
            return value[:32]
    return "anonymous"


def _create_once(path: Path, author: crypto.Author) -> None:
    """Write a new identity unless another process wrote one first (theirs wins)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.new")
    write_atomic(tmp, author.to_json().encode("utf-8"), mode=0o600)
    try:
        os.link(tmp, path)  # fails if the file exists: never replaces an identity
    except FileExistsError:
        pass
    except OSError:  # pragma: no cover - a filesystem without hard links
        if not path.exists():
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)


def _slot_folder(pad_folder: Path, slot: int) -> Path:
    return pad_folder if slot == 0 else pad_folder / f"slot-{slot}"


def _has_log(folder: Path) -> bool:
    try:
        return (folder / "pending").stat().st_size > 0
    except OSError:
        return False


def _take_lock(folder: Path) -> IO[bytes] | None:
    """Lock a slot's folder (creating it); None if another process holds it."""
    folder.mkdir(exist_ok=True)
    handle = (folder / "lock").open("ab")
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows, Pyodide
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


class PadState:
    """One slot of one pad's folder, locked while open.  Use :meth:`StateDir.open_pad`.

    Attributes:
        pad_folder: the pad's folder (``head.json``).
        slot: this slot's number.
        folder: this slot's folder (``lock``, ``pending``).
    """

    def __init__(self, pad_folder: Path, slot: int, lock: IO[bytes]) -> None:
        self.pad_folder = pad_folder
        self.slot = slot
        self.folder = _slot_folder(pad_folder, slot)
        self._lock: IO[bytes] | None = lock
        self._pending: list[bytes] | None = None
        self._base: bytes | None = None  # the parent of the base file written last
        self._stale_bases = True  # a previous run's base files may lie beside the log
        self._head: tuple[int, bytes] | None = None
        self._copy_height: int | None = None  # the height of the copy written last

    def recovered(self) -> list[bytes]:
        """The sealed patches a previous run logged and did not see acknowledged
        (and, before a rewrite, some it did: recovery finds those landed).  A
        record cut short by a crash while it was appended is dropped: it was
        never sent."""
        try:
            data = (self.folder / "pending").read_bytes()
        except FileNotFoundError:
            return []
        out: list[bytes] = []
        at = 0
        while at + _LEN.size <= len(data):
            (length,) = _LEN.unpack_from(data, at)
            at += _LEN.size
            if at + length > len(data):
                break  # torn by a crash during an append
            out.append(data[at : at + length])
            at += length
        self._pending = out
        return out

    def recovered_bases(self) -> list[Base[Any]]:
        """The base texts beside the log (at most two: see the module docstring);
        a JSON pad's base is its value (a ``"doctype": "json"`` header, then
        ``{"json": value}``)."""
        bases: list[Base[Any]] = []
        for path in sorted(self.folder.glob("base-*")):
            if path.name.endswith(".tmp"):
                continue
            try:
                data = path.read_bytes()
                if not data.startswith(_BASE_MAGIC):
                    continue
                line, _, text = data[len(_BASE_MAGIC) :].partition(b"\n")
                head = json.loads(line)
                parent = bytes.fromhex(head["parent"])
                doc: object = text.decode("utf-8")
                if head.get("doctype") == "json":
                    doc = JSON.doc_from_wire(json.loads(text))
                bases.append(Base(parent, int(head["height"]), doc))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # damaged: recovery does without it
        return bases

    def write_pending(
        self,
        sealed: list[bytes],
        base: Base[Any] | None = None,
        *,
        exact: bool = False,
        before_base: Callable[[], None] | None = None,
    ) -> None:
        """Durably record the unacknowledged patches (before sending them), and
        the text they were made on when its parent changed.

        Cheap on the typing path: an acknowledgement alone writes nothing (the
        log keeps the acknowledged patches before the others, which recovery
        finds landed), and new patches that continue the last one logged are
        appended with one fsync, so the base stays the one written.  The whole
        log and a new base are written when the new patches start elsewhere
        (someone else's patch came between), every :data:`MAX_LOG` patches,
        and with ``exact`` (a clean close: the log becomes exactly ``sealed``).
        ``before_base`` is called just before a new base is written (the
        SDK keeps its local copy there, so the log never moves past it).
        """
        if not exact and not self._stale_bases:
            fresh = _unwritten(self._pending or [], sealed)
            if fresh == []:
                return  # nothing new: what is logged already covers it
            if fresh is not None and len(self._pending or []) + len(fresh) <= MAX_LOG:
                self._append(fresh)
                return
        new_base = base is not None and base.parent != self._base
        if sealed == self._pending and not new_base and not self._stale_bases:
            return
        if base is not None and new_base:
            if before_base is not None:
                before_base()
            fields: dict[str, object] = {"parent": base.parent.hex(), "height": base.height}
            if isinstance(text := plain(base.doc), str):
                doc = text.encode("utf-8")
            else:
                fields["doctype"] = "json"
                doc = canonical(JSON.doc_to_wire(base.doc)).encode("utf-8")
            head = json.dumps(fields).encode()
            body = _BASE_MAGIC + head + b"\n" + doc
            write_atomic(self.folder / f"base-{base.parent.hex()}", body, mode=0o600)
        data = b"".join(_LEN.pack(len(s)) + s for s in sealed)
        write_atomic(self.folder / "pending", data)
        self._pending = list(sealed)
        if base is not None and (new_base or self._stale_bases):
            self._base, self._stale_bases = base.parent, False
            self._remove_bases(keep=f"base-{base.parent.hex()}")
        elif not sealed:
            self._base, self._stale_bases = None, False
            self._remove_bases(keep=None)

    def _append(self, fresh: list[bytes]) -> None:
        """Append records to the log and fsync it (no rename: the file exists)."""
        with open(self.folder / "pending", "ab") as file:
            file.write(b"".join(_LEN.pack(len(s)) + s for s in fresh))
            file.flush()
            os.fsync(file.fileno())
        self._pending = [*(self._pending or []), *fresh]

    def _remove_bases(self, keep: str | None) -> None:
        for path in self.folder.glob("base-*"):
            if path.name != keep:
                with contextlib.suppress(OSError):
                    path.unlink()

    def last_head(self) -> tuple[int, bytes] | None:
        """The highest ``(height, id)`` a run verified, if any."""
        remembered = self._read_head()
        return None if remembered is None else remembered[0]

    def last_peaks(self) -> mmr.Peaks | None:
        """The Merkle mountain range kept with :meth:`last_head`, if any."""
        remembered = self._read_head()
        return None if remembered is None else remembered[1]

    def _read_head(self) -> tuple[tuple[int, bytes], mmr.Peaks | None] | None:
        remembered = read_head(self.pad_folder / "head.json")
        if remembered is not None:
            self._head = remembered[0]
        return remembered

    def write_head(self, head: tuple[int, bytes] | None, peaks: mmr.Peaks | None = None) -> None:
        """Remember the highest head verified and its peaks (never lower what
        another slot wrote)."""
        if head is None or head == self._head:
            return
        stored = self.last_head()
        if stored is not None and stored[0] >= head[0]:
            return
        fields: dict[str, object] = {"height": head[0], "id": head[1].hex()}
        if peaks is not None:
            fields["peaks"] = mmr.to_hex(peaks)
        body = json.dumps(fields).encode()
        write_atomic(self.pad_folder / "head.json", body, durable=False)
        self._head = head

    def read_copy(self, doctype: DocType[Any, Any]) -> LocalCopy | None:
        """The pad's local copy (:mod:`client.offline`), or ``None`` if there is
        none or it is damaged (then the pad needs the relay to open)."""
        try:
            return offline.decode(doctype, (self.pad_folder / "copy").read_bytes())
        except (OSError, InvalidPatch):
            return None

    def write_copy(
        self, doctype: DocType[Any, Any], copy: LocalCopy, *, durable: bool = False
    ) -> None:
        """Keep the verified document for an open without the relay (never a
        lower height over what another slot wrote; atomic, mode 0600).  Without
        ``durable`` there is no fsync: a crash keeps the previous copy, which
        the log still fits (a copy is written durably before the log moves to
        a new base) or the relay completes."""
        path = self.pad_folder / "copy"
        if copy.height == self._copy_height:
            return
        try:
            with open(path, "rb") as file:
                stored = offline.height_of(file.readline() + file.readline())
        except OSError:
            stored = None
        if stored is not None and stored > copy.height:
            return
        write_atomic(path, offline.encode(doctype, copy), durable=durable, mode=0o600)
        self._copy_height = copy.height

    def close(self) -> None:
        """Release the lock."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


__all__ = [
    "MAX_SLOTS",
    "PadState",
    "StateDir",
    "default_name",
    "default_state_dir",
    "write_atomic",
]

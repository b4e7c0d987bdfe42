"""The events a pad reports: typed, frozen dataclasses.

Theory of operation
-------------------
:meth:`client.session.PadSession.events` (sans-I/O) and
:meth:`client.pad.Pad.events` (asyncio) yield these values, oldest first.
They are plain data: an editor binding applies :class:`TextChanged` ops to
its widget, a status bar follows :class:`StatusChanged`, a presence list
follows :class:`PeerJoined` / :class:`PeerLeft` / :class:`CursorMoved`, and
integrity problems arrive as :class:`Alarm` (the pad carried on).

Positions are code points (Python ``str`` indices).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from client.textops import Op


class Status(enum.StrEnum):
    """What is true of the local edits right now (compares equal to its string)."""

    OFFLINE = "offline"  # no live connection to the relay
    SYNCING = "syncing"  # connected, and some edit is not acknowledged yet
    SAVED = "saved"  # connected, and the relay acknowledged every edit


class AlarmKind(enum.Enum):
    """What an :class:`Alarm` is about.

    The first five come from the engine (:mod:`client.engine`), the others
    from the session (:mod:`client.session`, :mod:`client.trust`).  While a
    ``rollback``, ``fork`` or ``withheld`` alarm stands the pad is *suspect*:
    its status never reads "saved" (:mod:`client.trust`).
    """

    INVALID_PATCH = "invalid-patch"  # a stored patch is a no-op for everyone: see detail
    UNREADABLE = "unreadable"  # bytes that are not an envelope of this pad: ignored
    ORPHAN_OVERFLOW = "orphan-overflow"  # too many patches with unknown parents
    DEEP_FORK = "deep-fork"  # a better fork branches below the kept history
    SNAPSHOT_MISMATCH = "snapshot-mismatch"  # a snapshot differs from our text
    BAD_SNAPSHOT = "bad-snapshot"  # the snapshot served to join does not verify
    ROLLBACK = "rollback"  # the relay serves a history older than one this device verified
    FORK = "fork"  # the relay serves another branch than the one this device (or a peer) holds
    UNVERIFIED = "unverified"  # history since the last visit was trimmed: descent not checked
    BAD_PRESENCE = "bad-presence"  # an ephemeral sealed with the pad's key, wrongly signed
    RECOVERY = "recovery"  # write-ahead patches could not be taken back
    WITHHELD = "withheld"  # the relay does not deliver what it named or owes, re-read or not


@dataclass(frozen=True, slots=True)
class Peer:
    """Someone else on the pad (one running session of one author).

    Attributes:
        session: the peer's session id (hex); two tabs of one person differ.
        author: the peer's author key (hex).
        name: the display name the peer signed.
        color: the colour the peer chose (CSS string) or ``""``.
        cursor: ``(anchor, head)`` in code points, or ``None``.
    """

    session: str
    author: str
    name: str
    color: str
    cursor: tuple[int, int] | None

    @property
    def fingerprint(self) -> str:
        """A short form of the author key for display."""
        return self.author[:16]


@dataclass(frozen=True, slots=True)
class TextChanged:
    """Someone else's edit changed the text by ``ops`` (on the text before it)."""

    ops: tuple[Op, ...]


@dataclass(frozen=True, slots=True)
class ValueChanged:
    """Someone else's edit changed a JSON pad's value at ``path``.

    One event per operation, in order; ``path`` is as the operation named
    it, in the value before it (:mod:`client.jsondoc`), and ``kind`` is the
    operation (``"s"`` set, ``"d"`` delete, ``"i"`` insert, ``"m"`` move,
    ``"a"`` add, ``"t"`` text edit).  Read :attr:`client.Pad.value` for
    the value now.
    """

    path: tuple[str | int, ...]
    kind: str


@dataclass(frozen=True, slots=True)
class Acked:
    """The relay stored one of our patches (``id``)."""

    id: bytes


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """:attr:`client.pad.Pad.status` changed."""

    status: Status


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """A peer announced itself."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """A peer left, disconnected, or was silent for the presence timeout."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class CursorMoved:
    """A peer's presence changed (cursor, name or colour)."""

    peer: Peer


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The connection to the relay dropped; the pad is reconnecting."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionRestored:
    """The pad is connected again and caught up with the relay."""


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something is wrong with what the relay served; the pad carried on.

    The one alarm type: the engine emits it and the SDK reports it.  ``id``
    is the patch or envelope concerned, when there is one.
    """

    kind: AlarmKind
    detail: str
    id: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The relay refused for good (``code`` from docs/PROTOCOL.md §5).

    ``retry_after_ms`` is the relay's advice when it is not 0: the same request
    may succeed that much later (CREATE_RATE_LIMITED).
    """

    code: str
    message: str
    retry_after_ms: int = 0

    def retry_hint(self) -> str:
        """``" (try again in N s)"`` when the relay said when, else ``""``."""
        return retry_hint(self.retry_after_ms)


def retry_hint(retry_after_ms: int) -> str:
    """``" (try again in N s)"`` for a relay's retry advice, ``""`` for none."""
    if retry_after_ms <= 0:
        return ""
    return f" (try again in {-(-retry_after_ms // 1000)} s)"


PadEvent = (
    TextChanged
    | ValueChanged
    | Acked
    | StatusChanged
    | PeerJoined
    | PeerLeft
    | CursorMoved
    | ConnectionLost
    | ConnectionRestored
    | Alarm
    | Failed
)

__all__ = [
    "Acked",
    "Alarm",
    "AlarmKind",
    "ConnectionLost",
    "ConnectionRestored",
    "CursorMoved",
    "Failed",
    "PadEvent",
    "Peer",
    "PeerJoined",
    "PeerLeft",
    "Status",
    "StatusChanged",
    "TextChanged",
    "ValueChanged",
]

"""The two code spaces of the relay's answers: refusals and fatal errors.

Theory of operation
-------------------
The relay answers a client in two ways, and each has its own code space
(docs/PROTOCOL.md §5):

* a **refusal** (``REFUSE`` frame, :class:`RefuseCode`) turns down one request
  (a push, a snapshot, a trim, a subscribe, an ephemeral) and leaves the
  connection open.  The client may retry, rebase, or give up; nothing it had
  acknowledged is lost.
* a **fatal error** (``ERROR`` frame, :class:`ErrorCode`) ends the connection:
  the relay sends ``ERROR(code, message)`` and closes the websocket with close
  code ``4000 + code`` (:attr:`ErrorCode.close_code`), so a client that missed
  the frame still learns why.

Both are u16 on the wire.  A peer may receive a code this version does not
know: :func:`code_name` names it without raising.
"""

from __future__ import annotations

import enum
from typing import Final

#: Websocket close codes for fatal errors are ``CLOSE_CODE_BASE + ErrorCode``.
CLOSE_CODE_BASE: Final = 4000


class RefuseCode(enum.IntEnum):
    """Why one request was refused; the connection stays open (PROTOCOL.md §5.1)."""

    STALE = 1
    RATE_LIMITED = 2
    PATCH_TOO_LARGE = 3
    PAD_TOO_LARGE = 4
    SNAPSHOT_TOO_LARGE = 5
    TOO_MANY_CHANNELS = 6
    STORAGE_FULL = 7
    CHANNEL_QUOTA = 8
    BAD_SIGNATURE = 9
    MALFORMED_ENVELOPE = 10
    NOT_SUBSCRIBED = 11
    UNKNOWN_PATCH = 12
    BAD_VERIFY_KEY = 13
    NO_VERIFY_KEY = 14
    CREATE_TOKEN_REQUIRED = 15
    HISTORY_TRIMMED = 16
    EPHEMERAL_TOO_LARGE = 17
    NO_SNAPSHOT = 18
    ALREADY_SUBSCRIBED = 19
    BAD_CHUNK = 20
    WRONG_KIND = 21
    UNKNOWN_CHANNEL = 22
    CREATE_RATE_LIMITED = 24
    UNKNOWN_SESSION = 25
    SESSION_TAG_TAKEN = 26
    DISPUTE_TOO_LARGE = 29
    SNAPSHOT_DISPUTED = 30
    YIELD = 31


class ErrorCode(enum.IntEnum):
    """Why a connection was closed: fatal, close code 4000 + code (PROTOCOL.md §5.2)."""

    PROTOCOL = 1
    VERSION_MISMATCH = 2
    FRAME_TOO_LARGE = 3
    SLOW_CONSUMER = 4
    PRESUBSCRIBE_BUFFER = 5
    HELLO_REQUIRED = 6
    INTERNAL = 7
    FAULT_INJECTED = 8
    SHUTTING_DOWN = 9
    TOO_MANY_CONNECTIONS = 10
    IDLE_TIMEOUT = 11
    SLOW_UPLOAD = 12

    @property
    def close_code(self) -> int:
        """The websocket close code that accompanies this error."""
        return CLOSE_CODE_BASE + int(self)


def code_name(code: int, table: type[enum.IntEnum]) -> str:
    """Return the name of ``code`` in ``table``, or ``CODE_<n>`` for an unknown one.

    Example:
        >>> code_name(1, RefuseCode), code_name(999, RefuseCode)
        ('STALE', 'CODE_999')
    """
    try:
        return table(code).name
    except ValueError:
        return f"CODE_{code}"


__all__ = ["CLOSE_CODE_BASE", "ErrorCode", "RefuseCode", "code_name"]

"""Codes the relay speaks, and the exceptions that carry them.

Theory of operation
-------------------
The relay answers a client in two ways, and each has its own code space:

* a **refusal** (``REFUSE`` frame, :class:`RefuseCode`) turns down one request
  (a push, a snapshot, a trim, a subscribe, an ephemeral) and leaves the
  connection open.  The client may retry, rebase, or give up; nothing it had
  acknowledged is lost.
* a **fatal error** (``ERROR`` frame, :class:`ErrorCode`) ends the connection:
  the relay sends ``ERROR(code, message)`` and closes the websocket with close
  code ``4000 + code``, so a client that missed the frame still learns why.

Blame follows the entry point (as in h11): :class:`Refused` and
:class:`ProtocolViolation` are raised while handling what a client sent and
never escape the connection that sent it.  Store-level problems have their own
tree in :mod:`relay.store`.

    RelayError
    ├── Refused            (one request turned down; carries a RefuseCode)
    └── ProtocolViolation  (the connection must close; carries an ErrorCode)
"""

from __future__ import annotations

import enum

#: Websocket close codes for fatal errors are ``CLOSE_CODE_BASE + ErrorCode``.
CLOSE_CODE_BASE = 4000


class RefuseCode(enum.IntEnum):
    """Why one request was refused (u16 on the wire; PROTOCOL.md §5.1)."""

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


class ErrorCode(enum.IntEnum):
    """Why a connection was closed (u16 on the wire; PROTOCOL.md §5.2)."""

    PROTOCOL = 1
    VERSION_MISMATCH = 2
    FRAME_TOO_LARGE = 3
    SLOW_CONSUMER = 4
    PRESUBSCRIBE_BUFFER = 5
    HELLO_REQUIRED = 6
    INTERNAL = 7
    FAULT_INJECTED = 8
    SHUTTING_DOWN = 9

    @property
    def close_code(self) -> int:
        """The websocket close code that accompanies this error."""
        return CLOSE_CODE_BASE + int(self)


class RelayError(Exception):
    """Root of the relay's protocol-level exceptions."""


class Refused(RelayError):
    """One request is turned down; the connection stays open.

    Args:
        code: why.
        retry_after_ms: for :attr:`RefuseCode.RATE_LIMITED`, how long to wait.
    """

    def __init__(self, code: RefuseCode, retry_after_ms: int = 0) -> None:
        super().__init__(f"{code.name} (retry after {retry_after_ms} ms)")
        self.code = code
        self.retry_after_ms = retry_after_ms


class ProtocolViolation(RelayError):
    """The connection must end with an ERROR frame and close code.

    Args:
        code: why.
        message: a short human-readable explanation (sent to the client).
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

"""The relay's exceptions that carry a wire code to the client.

Theory of operation
-------------------
The relay answers a client in two ways, each with its own code space, defined
once for client and relay in :mod:`wire.codes`: a **refusal** (``REFUSE``,
:class:`~wire.codes.RefuseCode`) turns down one request and leaves the
connection open; a **fatal error** (``ERROR``, :class:`~wire.codes.ErrorCode`)
ends the connection with close code ``4000 + code``.

Blame follows the entry point (as in h11): :class:`Refused` and
:class:`ProtocolViolation` are raised while handling what a client sent and
never escape the connection that sent it.  Store-level problems have their own
tree in :mod:`relay.store`.

    RelayError
    ├── Refused            (one request turned down; carries a RefuseCode)
    └── ProtocolViolation  (the connection must close; carries an ErrorCode)
"""

from __future__ import annotations

from wire.codes import ErrorCode, RefuseCode


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

"""Errors raised by the blindpad SDK (:mod:`client`).

Every error the SDK raises is a :class:`PadError`.  The tree::

    PadError
    ├── BadLink             the link is damaged or mistyped (also a ValueError)
    ├── ReadOnly            a write through a view link: refused before anything is sent
    ├── NotReady            an edit before the pad's history was loaded
    ├── InvalidEdit         a bad edit argument: wrong type, out of range, lone surrogate,
    │                       malformed patch (also a ValueError; client/validate.py)
    ├── WrongDocType        a text method on a JSON pad or the reverse (also a TypeError)
    ├── PadClosed           the pad was closed (aclose, or a fatal failure)
    ├── StateLocked         every slot of this pad's state directory is in use
    ├── ConnectionFailed    the relay could not be reached in time (open, synced)
    ├── RelayRefused        the relay refused for good (quota, size, token...): .code
    │   └── PadNotFound     the relay has no such pad (only Pad.create makes one)
    ├── Distrusted          the relay's history does not continue what this device verified
    └── ProtocolError       the relay sent something this client cannot follow

Blame follows the entry point, as in h11: :class:`ReadOnly`, :class:`NotReady`
and :class:`PadClosed` describe local misuse; :class:`RelayRefused` and
:class:`ProtocolError` describe the other side.  Integrity failures of stored
data (an invalid patch, a rolled-back history) are *not* exceptions: the pad
carries on and reports them as :class:`client.events.Alarm` events, never
swallowed and never retried.  Transient network failures are not errors
either: the pad reconnects by itself and reports
:class:`client.events.ConnectionLost` / :class:`client.events.ConnectionRestored`.
"""

from __future__ import annotations


class PadError(Exception):
    """Root of every error raised by the blindpad SDK."""


class BadLink(PadError, ValueError):
    """A pad link could not be parsed; the message names what is wrong."""


class ReadOnly(PadError):
    """A write was attempted through a view link (nothing was sent)."""


class NotReady(PadError):
    """The pad's history is not loaded yet, so positions mean nothing."""


class InvalidEdit(PadError, ValueError):
    """An edit argument is wrong; the one-line message names the argument.

    Raised by every edit method of :class:`client.Pad` (insert, delete,
    replace, apply) for: a position or count that is not an ``int`` (``bool``
    is refused) or falls outside the text, a negative count, a text that is
    not a ``str`` or has a lone surrogate, and a patch that is not a
    canonical tuple of ``Op`` (then the ``InvalidPatch`` is the ``__cause__``).
    """


class WrongDocType(PadError, TypeError):
    """A method of one document type on a pad of another: ``pad.text`` or
    ``insert`` on a JSON pad, ``pad.value`` or ``set`` on a text pad."""


class PadClosed(PadError):
    """The pad is closed."""


class StateLocked(PadError):
    """Another process holds this pad's state directory."""


class ConnectionFailed(PadError):
    """The relay could not be reached before the deadline."""


class RelayRefused(PadError):
    """The relay refused a request in a way retrying cannot fix.

    Attributes:
        code: the refusal or error code name (docs/PROTOCOL.md §5).
        retry_after_ms: when not 0, the relay's advice: the same request may
            succeed that much later (CREATE_RATE_LIMITED).
    """

    def __init__(self, code: str, message: str, retry_after_ms: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retry_after_ms = retry_after_ms


class PadNotFound(RelayRefused):
    """The relay does not have this pad: a mistyped address, or a pad made elsewhere.

    Only :meth:`client.Pad.create` creates pads; :meth:`client.Pad.open` on a
    link the relay does not know raises this and creates nothing.

    Attributes:
        code: ``"NO_VERIFY_KEY"``, the relay's refusal (docs/PROTOCOL.md §5.1).
        relay_url: the relay asked.
    """

    def __init__(self, relay_url: str) -> None:
        PadError.__init__(
            self,
            f"no such pad on the relay at {relay_url} "
            "(check the link's address; new pads are made with Pad.create or `blindpad new`)",
        )
        self.code = "NO_VERIFY_KEY"
        self.relay_url = relay_url


class Distrusted(PadError):
    """The relay served a history that does not continue the one this device
    verified (a rollback, a fork, or history it withholds): the pad's status
    cannot read "saved" (:mod:`client.trust`).

    Attributes:
        kind: the alarm (``"rollback"``, ``"fork"`` or ``"withheld"``).
        detail: what was found, in words.
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(
            f"the relay cannot be trusted with this pad ({kind}: {detail}); your text and "
            "edits stay on this device: keep working, save a copy, and try another relay"
        )
        self.kind = kind
        self.detail = detail


class ProtocolError(PadError):
    """The relay sent bytes this client cannot understand."""


__all__ = [
    "BadLink",
    "ConnectionFailed",
    "Distrusted",
    "InvalidEdit",
    "NotReady",
    "PadClosed",
    "PadError",
    "PadNotFound",
    "ProtocolError",
    "ReadOnly",
    "RelayRefused",
    "StateLocked",
    "WrongDocType",
]

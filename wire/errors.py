"""What the wire codecs raise: bytes that are not valid protocol data.

Both codecs are total: every byte string either decodes or raises one of
these, never anything else (no ``IndexError``, no ``struct.error``).  Each is
a ``ValueError``, so a caller that only wants "bad input" can catch that.
Encoding a frame whose field is out of range raises :class:`FrameError` too.

    WireError (ValueError)
    ├── FrameError    (not exactly one valid websocket frame; wire.frames)
    └── HistoryError  (not a valid HTTP history body; wire.history)
"""

from __future__ import annotations


class WireError(ValueError):
    """Root: bytes that are not valid blindpad protocol data."""


class FrameError(WireError):
    """Bytes that are not exactly one valid frame, or a frame that cannot be encoded."""


class HistoryError(WireError):
    """An HTTP history body that is cut short, disordered or has unknown records."""


__all__ = ["FrameError", "HistoryError", "WireError"]

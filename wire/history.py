"""The HTTP history body (docs/PROTOCOL.md §4.2): records in, records out.

Theory of operation
-------------------
``GET /v1/channels/{hex}/history`` answers with a binary body of records,
each ``u8 type || u64 seq || u32 length || sealed`` for

* ``0x01`` the latest snapshot (``seq`` is the patch number it includes),
  at most once and first;
* ``0x02`` one stored patch, in sequence order;

and exactly one end record ``0x00 || u64 head_seq || head_id[32]`` last.
The relay writes it with :func:`encode_history` and one-shot readers
(``blindpad cat``, ``blindpad history``) read it with :func:`parse_history`;
``parse_history(encode_history(b)) == b`` for every body.  The envelopes stay
sealed: this module never looks inside them.  Stdlib only, no I/O.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Final

from wire.errors import HistoryError as HistoryError  # re-exported: history.HistoryError

RECORD_END: Final = 0x00
RECORD_SNAPSHOT: Final = 0x01
RECORD_PATCH: Final = 0x02

_RECORD = struct.Struct(">BQI")
_END = struct.Struct(">BQ32s")


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryBody:
    """A history body: the optional snapshot, the patches, and the head.

    Attributes:
        snapshot: ``(x_seq, sealed)`` of the latest snapshot, or None.
        patches: ``(seq, sealed)`` of each patch, in order.
        head_seq: the channel's head when the relay read it.
        head_id: the id of that head patch (32 bytes; all zero for none).
    """

    snapshot: tuple[int, bytes] | None
    patches: list[tuple[int, bytes]]
    head_seq: int
    head_id: bytes


def encode_history(body: HistoryBody) -> bytes:
    """Serialise ``body`` as the records of §4.2.

    Raises:
        HistoryError: a number is out of range or ``head_id`` is not 32 bytes.
    """
    if len(body.head_id) != 32:
        raise HistoryError(f"head id is 32 bytes, got {len(body.head_id)}")
    parts: list[bytes] = []
    records = [(RECORD_SNAPSHOT, *body.snapshot)] if body.snapshot is not None else []
    records += [(RECORD_PATCH, seq, sealed) for seq, sealed in body.patches]
    try:
        for kind, seq, sealed in records:
            parts += [_RECORD.pack(kind, seq, len(sealed)), sealed]
        parts.append(_END.pack(RECORD_END, body.head_seq, body.head_id))
    except struct.error as error:
        raise HistoryError(f"history record out of range: {error}") from error
    return b"".join(parts)


def parse_history(data: bytes) -> HistoryBody:
    """Parse the records of a history body (§4.2).

    Args:
        data: the whole HTTP response body.

    Returns:
        The snapshot ``(x_seq, sealed)`` if any, the patches ``(seq, sealed)``
        in order, and the head.

    Raises:
        HistoryError: a record is unknown or cut short, or the end record is
            missing or not last.
    """
    snapshot: tuple[int, bytes] | None = None
    patches: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if data[at] == RECORD_END:
            if len(data) - at != _END.size:
                raise HistoryError("history end record is not exactly last")
            _, head_seq, head_id = _END.unpack_from(data, at)
            return HistoryBody(snapshot, patches, head_seq, head_id)
        if len(data) - at < _RECORD.size:
            raise HistoryError("history record header cut short")
        kind, seq, length = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        sealed = bytes(data[at : at + length])
        if len(sealed) != length or kind not in (RECORD_SNAPSHOT, RECORD_PATCH):
            raise HistoryError(f"bad history record (type {kind}, {length} bytes)")
        at += length
        if kind == RECORD_SNAPSHOT:
            snapshot = (seq, sealed)
        else:
            patches.append((seq, sealed))
    raise HistoryError("history body has no end record")


__all__ = [
    "RECORD_END",
    "RECORD_PATCH",
    "RECORD_SNAPSHOT",
    "HistoryBody",
    "HistoryError",
    "encode_history",
    "parse_history",
]

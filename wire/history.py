"""The HTTP history body (docs/PROTOCOL.md §4.2): records in, records out.

Theory of operation
-------------------
``GET /v1/channels/{hex}/history`` answers with a binary body of records,
each ``u8 type || u64 seq || u32 length || sealed`` for

* ``0x01`` the latest snapshot (``seq`` is the patch number it includes),
  at most once and first;
* ``0x02`` one stored patch, in sequence order;
* ``0x03`` a version-2 session record (``seq`` 0), before the first
  envelope of its session (PROTOCOL.md §4.2, §8.4);

and exactly one end record ``0x00 || u64 head_seq || head_id[32]`` last.
The relay streams it a page at a time with :func:`record` and
:func:`end_record` (:func:`encode_history` is the whole body at once) and
one-shot readers (``blindpad cat``, ``blindpad history``) read it with
:func:`parse_history`; ``parse_history(encode_history(b)) == b`` for every
body.  A body that ends without its end record was cut short (the relay
stops a stream whose history is trimmed under it): :class:`HistoryCut`,
read it again.  The envelopes stay sealed: this module never looks inside
them.  Stdlib only, no I/O.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Final

from wire.errors import HistoryError as HistoryError  # re-exported: history.HistoryError

RECORD_END: Final = 0x00
RECORD_SNAPSHOT: Final = 0x01
RECORD_PATCH: Final = 0x02
RECORD_SESSION: Final = 0x03

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
        sessions: the session records the envelopes need, in the order sent.
    """

    snapshot: tuple[int, bytes] | None
    patches: list[tuple[int, bytes]]
    head_seq: int
    head_id: bytes
    sessions: list[bytes] = dataclasses.field(default_factory=list)


class HistoryCut(HistoryError):
    """The body ended before its end record: it was cut short; read it again."""


def record_header(kind: int, seq: int, length: int) -> bytes:
    """The 13-byte header of a snapshot or patch record (its envelope follows).

    Raises:
        HistoryError: a number is out of range.
    """
    try:
        return _RECORD.pack(kind, seq, length)
    except struct.error as error:
        raise HistoryError(f"history record out of range: {error}") from error


def record(kind: int, seq: int, sealed: bytes) -> bytes:
    """One snapshot or patch record, header and envelope.

    Raises:
        HistoryError: a number is out of range.
    """
    return record_header(kind, seq, len(sealed)) + sealed


def end_record(head_seq: int, head_id: bytes) -> bytes:
    """The end record, always last.

    Raises:
        HistoryError: ``head_seq`` is out of range or ``head_id`` is not 32 bytes.
    """
    if len(head_id) != 32:
        raise HistoryError(f"head id is 32 bytes, got {len(head_id)}")
    try:
        return _END.pack(RECORD_END, head_seq, head_id)
    except struct.error as error:
        raise HistoryError(f"history record out of range: {error}") from error


def encode_history(body: HistoryBody) -> bytes:
    """Serialise ``body`` as the records of §4.2, all at once.

    Raises:
        HistoryError: a number is out of range or ``head_id`` is not 32 bytes.
    """
    end = end_record(body.head_seq, body.head_id)
    parts = [record(RECORD_SESSION, 0, sealed) for sealed in body.sessions]
    parts += [] if body.snapshot is None else [record(RECORD_SNAPSHOT, *body.snapshot)]
    parts += [record(RECORD_PATCH, seq, sealed) for seq, sealed in body.patches]
    return b"".join([*parts, end])


def parse_history(data: bytes) -> HistoryBody:
    """Parse the records of a history body (§4.2).

    Args:
        data: the whole HTTP response body.

    Returns:
        The snapshot ``(x_seq, sealed)`` if any, the patches ``(seq, sealed)``
        in order, the head, and the session records.

    Raises:
        HistoryCut: the body ends before its end record (cut short).
        HistoryError: a record is unknown, or the end record is not last.
    """
    snapshot: tuple[int, bytes] | None = None
    patches: list[tuple[int, bytes]] = []
    sessions: list[bytes] = []
    at = 0
    while at < len(data):
        if data[at] == RECORD_END:
            if len(data) - at < _END.size:
                raise HistoryCut("history end record cut short")
            if len(data) - at > _END.size:
                raise HistoryError("history end record is not exactly last")
            _, head_seq, head_id = _END.unpack_from(data, at)
            return HistoryBody(snapshot, patches, head_seq, head_id, sessions)
        if data[at] not in (RECORD_SNAPSHOT, RECORD_PATCH, RECORD_SESSION):
            raise HistoryError(f"unknown history record type {data[at]}")
        if len(data) - at < _RECORD.size:
            raise HistoryCut("history record header cut short")
        kind, seq, length = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        sealed = bytes(data[at : at + length])
        if len(sealed) != length:
            raise HistoryCut(f"history record cut short ({len(sealed)} of {length} bytes)")
        at += length
        if kind == RECORD_SNAPSHOT:
            snapshot = (seq, sealed)
        elif kind == RECORD_SESSION:
            sessions.append(sealed)
        else:
            patches.append((seq, sealed))
    raise HistoryCut("history body has no end record")


__all__ = [
    "RECORD_END",
    "RECORD_PATCH",
    "RECORD_SESSION",
    "RECORD_SNAPSHOT",
    "HistoryBody",
    "HistoryCut",
    "HistoryError",
    "encode_history",
    "end_record",
    "parse_history",
    "record",
    "record_header",
]

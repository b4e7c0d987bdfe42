"""The client side of the relay protocol: frames and history bodies, stdlib only.

Theory of operation
-------------------
docs/PROTOCOL.md §3 defines one binary frame per websocket message: byte 0 is
the frame type, then fixed big-endian fields, then at most one variable field
as ``u32 length || bytes`` that must end the message exactly.  This module is
written from that document alone (the relay's own codec, ``relay.frames``, is
never imported: ``import client`` must not pull in the relay) and knows only
what a client needs: it *encodes* the frames a client sends and *decodes* the
frames a relay sends.  Each frame is a frozen dataclass whose field order is
the wire order; one table (:data:`_SPECS`) maps a type byte to its class and
:mod:`struct` format, so encoding and decoding cannot disagree.  The tests
check every frame against ``relay.frames`` both ways so the two codecs cannot
drift.

:func:`parse_history` reads the HTTP history body of §4.2 (used by
``blindpad cat`` and ``blindpad history``).  Nothing here does I/O, so the
module runs unchanged under Pyodide.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from typing import Any, Final

PROTOCOL_VERSION: Final = 1
ID_SIZE: Final = 32
ZERO_ID: Final = bytes(ID_SIZE)


class ProtocolViolation(ValueError):
    """Bytes from the relay that are not exactly one valid frame (or history body)."""


class RefuseCode(enum.IntEnum):
    """REFUSE codes (§5.1): the request failed, the connection stays open."""

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
    """ERROR codes (§5.2): fatal, the relay closes with 4000 + code."""

    PROTOCOL = 1
    VERSION_MISMATCH = 2
    FRAME_TOO_LARGE = 3
    SLOW_CONSUMER = 4
    PRESUBSCRIBE_BUFFER = 5
    HELLO_REQUIRED = 6
    INTERNAL = 7
    FAULT_INJECTED = 8
    SHUTTING_DOWN = 9


def code_name(code: int, table: type[enum.IntEnum]) -> str:
    """Return the name of ``code`` in ``table``, or ``CODE_<n>`` for an unknown one."""
    try:
        return table(code).name
    except ValueError:
        return f"CODE_{code}"


class SubscribeFrom(enum.IntEnum):
    """Where SUBSCRIBE starts: after a sequence number, or at the latest snapshot."""

    SINCE = 0
    SNAPSHOT = 1


# --- client to relay -------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """First frame: protocol version and optional channel-creation token."""

    version: int
    token: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Join a channel (``verify_key`` lets the relay create it)."""

    request_id: int
    channel_id: bytes
    start: SubscribeFrom
    since_seq: int
    verify_key: bytes = ZERO_ID


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Leave a channel."""

    request_id: int
    channel_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Push:
    """A sealed patch."""

    request_id: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """Bytes ``[offset, offset + len(data))`` of a sealed snapshot of ``total`` bytes."""

    request_id: int
    total: int
    offset: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Trim:
    """A sealed trim envelope."""

    request_id: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ephemeral:
    """A sealed ephemeral (presence): relayed to live peers, never stored."""

    request_id: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    """Keepalive."""

    nonce: int


# --- relay to client -------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to HELLO: connection id and limits."""

    version: int
    connection_id: int
    max_frame_bytes: int
    max_patch_bytes: int
    max_snapshot_bytes: int
    max_ephemeral_bytes: int
    max_channels: int
    rate_per_second: int
    rate_burst: int


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """One chunk of the latest snapshot (of patch number ``x_seq``)."""

    channel_id: bytes
    x_seq: int
    total: int
    offset: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class History:
    """A stored patch read from history."""

    channel_id: bytes
    seq: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryEnd:
    """End of the history answering SUBSCRIBE ``request_id``."""

    request_id: int
    channel_id: bytes
    head_seq: int
    head_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Broadcast:
    """A patch another connection pushed."""

    channel_id: bytes
    seq: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    """Request ``request_id`` is stored as ``seq`` with id ``id``."""

    request_id: int
    seq: int
    id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Refuse:
    """Request ``request_id`` is refused with ``code``."""

    request_id: int
    code: int
    retry_after_ms: int
    head_seq: int
    head_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class EphemeralRelayed:
    """An ephemeral from connection ``sender``."""

    channel_id: bytes
    sender: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PeerJoined:
    """Connection ``peer`` subscribed."""

    channel_id: bytes
    peer: int


@dataclasses.dataclass(frozen=True, slots=True)
class PeerLeft:
    """Connection ``peer`` left."""

    channel_id: bytes
    peer: int


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    """Answer to PING."""

    nonce: int


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribed:
    """Answer to UNSUBSCRIBE."""

    request_id: int
    channel_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Error:
    """Fatal error; the relay closes the connection right after."""

    code: int
    message: str


ClientFrame = Hello | Subscribe | Unsubscribe | Push | SnapshotChunk | Trim | Ephemeral | Ping
RelayFrame = (
    Welcome
    | Snapshot
    | History
    | HistoryEnd
    | Broadcast
    | Ack
    | Refuse
    | EphemeralRelayed
    | PeerJoined
    | PeerLeft
    | Pong
    | Unsubscribed
    | Error
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    type: int
    fixed: struct.Struct
    variable: bool


def _spec(type_: int, fixed: str, variable: bool = False) -> _Spec:
    return _Spec(type_, struct.Struct(">" + fixed), variable)


_CLIENT_SPECS: Final[dict[type[Any], _Spec]] = {
    Hello: _spec(0x01, "H", True),
    Subscribe: _spec(0x02, "I32sBQ32s"),
    Unsubscribe: _spec(0x03, "I32s"),
    Push: _spec(0x04, "I", True),
    SnapshotChunk: _spec(0x05, "III", True),
    Trim: _spec(0x06, "I", True),
    Ephemeral: _spec(0x07, "I", True),
    Ping: _spec(0x08, "Q"),
}
_RELAY_SPECS: Final[dict[int, tuple[type[Any], _Spec]]] = {
    s.type: (cls, s)
    for cls, s in {
        Welcome: _spec(0x81, "HQIIIIIII"),
        Snapshot: _spec(0x82, "32sQII", True),
        History: _spec(0x83, "32sQ", True),
        HistoryEnd: _spec(0x84, "I32sQ32s"),
        Broadcast: _spec(0x85, "32sQ", True),
        Ack: _spec(0x86, "IQ32s"),
        Refuse: _spec(0x87, "IHIQ32s"),
        EphemeralRelayed: _spec(0x88, "32sQ", True),
        PeerJoined: _spec(0x89, "32sQ"),
        PeerLeft: _spec(0x8A, "32sQ"),
        Pong: _spec(0x8B, "Q"),
        Unsubscribed: _spec(0x8C, "I32s"),
        Error: _spec(0x8F, "H", True),
    }.items()
}
_LENGTH = struct.Struct(">I")


def encode(frame: ClientFrame) -> bytes:
    """Serialise a client frame.

    Args:
        frame: one of the client frame dataclasses.

    Returns:
        The websocket message.

    Raises:
        ValueError: a field is out of range (an id not 32 bytes, an integer
            too large or negative).
    """
    spec = _CLIENT_SPECS[type(frame)]
    values = [getattr(frame, field.name) for field in dataclasses.fields(frame)]
    fixed = values[:-1] if spec.variable else values
    if any(isinstance(v, bytes) and len(v) != ID_SIZE for v in fixed):
        raise ValueError(f"{type(frame).__name__}: ids are {ID_SIZE} bytes")
    try:
        head = bytes((spec.type,)) + spec.fixed.pack(*fixed)
    except struct.error as error:
        raise ValueError(f"{type(frame).__name__}: {error}") from error
    if not spec.variable:
        return head
    tail = bytes(values[-1])
    return head + _LENGTH.pack(len(tail)) + tail


def decode(data: bytes) -> RelayFrame:
    """Parse exactly one frame a relay sends.

    Args:
        data: one websocket message.

    Returns:
        The frame.

    Raises:
        ProtocolViolation: not exactly one valid relay frame.
    """
    if not data:
        raise ProtocolViolation("empty frame")
    entry = _RELAY_SPECS.get(data[0])
    if entry is None:
        raise ProtocolViolation(f"unexpected frame type 0x{data[0]:02x} from the relay")
    cls, spec = entry
    end = 1 + spec.fixed.size
    if len(data) < end:
        raise ProtocolViolation(f"{cls.__name__}: {len(data)} bytes is too short")
    values: list[Any] = list(spec.fixed.unpack_from(data, 1))
    if spec.variable:
        values.append(_variable(cls.__name__, data, end))
    elif len(data) != end:
        raise ProtocolViolation(f"{cls.__name__}: {len(data) - end} trailing bytes")
    if cls is Error:
        try:
            values[1] = bytes(values[1]).decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolViolation("ERROR: message is not UTF-8") from None
    frame: RelayFrame = cls(*values)
    return frame


def _variable(name: str, data: bytes, start: int) -> bytes:
    if len(data) < start + _LENGTH.size:
        raise ProtocolViolation(f"{name}: missing length prefix")
    (length,) = _LENGTH.unpack_from(data, start)
    body = bytes(data[start + _LENGTH.size :])
    if len(body) != length:
        raise ProtocolViolation(f"{name}: length prefix {length} but {len(body)} bytes follow")
    return body


# --- HTTP history bodies (§4.2) -------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryBody:
    """A parsed ``/history`` body: optional snapshot, patches, and the head."""

    snapshot: tuple[int, bytes] | None
    patches: list[tuple[int, bytes]]
    head_seq: int
    head_id: bytes


_RECORD = struct.Struct(">BQI")
_END = struct.Struct(">BQ32s")


def parse_history(body: bytes) -> HistoryBody:
    """Parse the records of a history body (§4.2).

    Args:
        body: the whole HTTP response body.

    Returns:
        The snapshot ``(x_seq, sealed)`` if any, the patches ``(seq, sealed)``
        in order, and the head.

    Raises:
        ProtocolViolation: a record is unknown, cut short, or the end record
            is missing or not last.
    """
    snapshot: tuple[int, bytes] | None = None
    patches: list[tuple[int, bytes]] = []
    at = 0
    while at < len(body):
        if body[at] == 0x00:
            if len(body) - at != _END.size:
                raise ProtocolViolation("history end record is not exactly last")
            _, head_seq, head_id = _END.unpack_from(body, at)
            return HistoryBody(snapshot, patches, head_seq, head_id)
        if len(body) - at < _RECORD.size:
            raise ProtocolViolation("history record header cut short")
        kind, seq, length = _RECORD.unpack_from(body, at)
        at += _RECORD.size
        sealed = bytes(body[at : at + length])
        if len(sealed) != length or kind not in (0x01, 0x02):
            raise ProtocolViolation(f"bad history record (type {kind}, {length} bytes)")
        at += length
        if kind == 0x01:
            snapshot = (seq, sealed)
        else:
            patches.append((seq, sealed))
    raise ProtocolViolation("history body has no end record")

"""The websocket frame codec: bytes <-> typed frames, no I/O, stdlib only.

Theory of operation
-------------------
Every websocket message is one binary frame.  Byte 0 is the frame type
(:class:`FrameType`; client-to-relay types are ``0x01-0x7F``, relay-to-client
types ``0x80-0xFF``), then the frame's fixed fields, big-endian, then at most
one variable field as ``u32 length || bytes``, which must end the message
exactly.  Ids and channel ids are 32 bytes; request ids u32; sequence numbers
u64.  docs/PROTOCOL.md §3 is the byte-by-byte table of the same frames.

Each frame is a frozen dataclass whose field order *is* the wire order; the
table :data:`_SPECS` maps a type to its class and the :mod:`struct` format of
its fixed fields, so encoding and decoding cannot disagree.  :func:`encode`
and :func:`decode` are total inverses: ``decode(encode(f)) == f`` for every
valid frame, and :func:`decode` raises :class:`FrameError` for any byte string
that is not exactly one valid frame (unknown type, short, long, length prefix
disagreeing with the size, a non-UTF-8 error message, an unknown SUBSCRIBE
start mode).  :func:`encode` raises :class:`FrameError` for a field out of
range.

This one codec serves both ends.  The relay accepts only what clients send
(:func:`decode_client`); a client accepts only what relays send
(:func:`decode_relay`); :func:`decode` takes either direction, for tests and
tools.  The REFUSE and ERROR codes are in :mod:`wire.codes`.  Nothing here
does I/O, so the module runs unchanged under Pyodide.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from typing import Any, Final

from wire import mmr
from wire.errors import FrameError as FrameError  # re-exported: frames.FrameError

#: The protocol version this codec speaks (HELLO / WELCOME): version 2 as far
#: as it is implemented (docs/PROTOCOL.md §7.2 lists which of its fields run).
PROTOCOL_VERSION: Final = 2

ID_SIZE: Final = 32
ZERO_ID: Final = bytes(ID_SIZE)


class FrameType(enum.IntEnum):
    """The frame type byte.  0x01-0x7F client to relay, 0x80-0xFF relay to client."""

    HELLO = 0x01
    SUBSCRIBE = 0x02
    UNSUBSCRIBE = 0x03
    PUSH = 0x04
    SNAPSHOT_CHUNK = 0x05
    TRIM = 0x06
    EPHEMERAL = 0x07
    PING = 0x08
    SESSION = 0x0A
    DISPUTE = 0x0C
    PROOF_REQUEST = 0x0D
    WELCOME = 0x81
    SNAPSHOT = 0x82
    HISTORY = 0x83
    HISTORY_END = 0x84
    BROADCAST = 0x85
    ACK = 0x86
    REFUSE = 0x87
    EPHEMERAL_RELAYED = 0x88
    PEER_JOINED = 0x89
    PEER_LEFT = 0x8A
    PONG = 0x8B
    UNSUBSCRIBED = 0x8C
    RECORD = 0x8D
    PROOF = 0x8E
    ERROR = 0x8F


class SubscribeFrom(enum.IntEnum):
    """Where a SUBSCRIBE starts reading: after a sequence number, at the latest
    snapshot, or at the earliest point still stored ("verify from history")."""

    SINCE = 0
    SNAPSHOT = 1
    EARLIEST = 2


#: SNAPSHOT flags: sent live to a subscriber (someone just stored it), and
#: disputed by an editor (a joiner does not open from it).
SNAPSHOT_LIVE: Final = 0x01
SNAPSHOT_DISPUTED: Final = 0x02


# --- client to relay -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Hello:
    """First frame of every connection: the protocol version and an optional creation token."""

    version: int
    token: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Join a channel, proving the view secret with ``read_token``; ``verify_key``
    all zero means "not given" (given, the relay may create the channel and
    registers the read token's hash)."""

    request_id: int
    channel_id: bytes
    start: SubscribeFrom
    since_seq: int
    verify_key: bytes = ZERO_ID
    read_token: bytes = ZERO_ID


@dataclasses.dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Leave a channel."""

    request_id: int
    channel_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Push:
    """A sealed patch (envelope kind 0x01) for ``channel_id``."""

    request_id: int
    #: The channel; zero for a version-1 envelope, which names its channel itself
    #: (PROTOCOL.md §3.1).  A version-2 envelope does not: the frame must.
    channel_id: bytes = dataclasses.field(default=ZERO_ID, kw_only=True)
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """Bytes ``[offset, offset+len(data))`` of a sealed snapshot of ``total`` bytes."""

    request_id: int
    #: The channel; zero for a version-1 envelope, which names its channel itself
    #: (PROTOCOL.md §3.1).  A version-2 envelope does not: the frame must.
    channel_id: bytes = dataclasses.field(default=ZERO_ID, kw_only=True)
    total: int
    offset: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Trim:
    """A sealed trim envelope (kind 0x04) whose ref is the patch X of an existing snapshot.

    ``keep_pct``: the older snapshots (checkpoints, before X) the relay keeps,
    thinned, as a percentage of the newest snapshot's bytes (0: none; the
    owner trim); PROTOCOL.md §3.3."""

    request_id: int
    #: The channel; zero for a version-1 envelope, which names its channel itself
    #: (PROTOCOL.md §3.1).  A version-2 envelope does not: the frame must.
    channel_id: bytes = dataclasses.field(default=ZERO_ID, kw_only=True)
    keep_pct: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ephemeral:
    """A sealed ephemeral envelope (kind 0x03): relayed to live peers, never stored."""

    request_id: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Dispute:
    """A sealed dispute (kind 0x08) of a snapshot that differs from the sender's text."""

    request_id: int
    #: The channel; zero for a version-1 envelope, which names its channel itself
    #: (PROTOCOL.md §3.1).  A version-2 envelope does not: the frame must.
    channel_id: bytes = dataclasses.field(default=ZERO_ID, kw_only=True)
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """Register a version-2 session record (kind 0x05) on the channel (PROTOCOL.md §9.3)."""

    request_id: int
    channel_id: bytes
    record: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ProofRequest:
    """Ask for the ids of the patches numbered ``from_seq + 1`` .. ``to_seq`` (trimmed too)."""

    request_id: int
    channel_id: bytes
    from_seq: int
    to_seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Ping:
    """Keepalive; answered by PONG with the same nonce."""

    nonce: int


# --- relay to client -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to HELLO: the connection id and the limits in force."""

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
    """One chunk of a snapshot (of patch number ``x_seq``): joining from it, or
    ``flags`` LIVE, just stored by someone (check it); DISPUTED: do not open from it."""

    channel_id: bytes
    x_seq: int
    flags: int
    total: int
    offset: int
    data: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class History:
    """One stored patch read from history."""

    channel_id: bytes
    seq: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryEnd:
    """End of the history answering SUBSCRIBE ``request_id``: the head at reading time."""

    request_id: int
    channel_id: bytes
    head_seq: int
    head_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Broadcast:
    """A patch another connection pushed, live."""

    channel_id: bytes
    seq: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    """Request ``request_id`` is durably stored as number ``seq`` with id ``id``."""

    request_id: int
    seq: int
    id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Refuse:
    """Request ``request_id`` is refused with ``code`` (PROTOCOL.md §5.1)."""

    request_id: int
    code: int
    retry_after_ms: int
    head_seq: int
    head_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class EphemeralRelayed:
    """An ephemeral envelope from connection ``sender``."""

    channel_id: bytes
    sender: int
    envelope: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PeerJoined:
    """Connection ``peer`` subscribed to the channel."""

    channel_id: bytes
    peer: int


@dataclasses.dataclass(frozen=True, slots=True)
class PeerLeft:
    """Connection ``peer`` left the channel."""

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
class Proof:
    """Answer to PROOF_REQUEST: ``nodes`` cover the patches numbered ``from_seq + 1``
    onwards, in order, at most :data:`MAX_PROOF_NODES` of them, each
    :data:`wire.mmr.NODE_LEN` bytes: ``level u8 || hash 32``, the root of the
    aligned Merkle subtree of ``2**level`` patch ids (level 0: the id itself;
    level :data:`wire.mmr.BLOCK_LEVEL`: a block the relay trimmed, PROTOCOL.md §11).
    ``from_seq`` may be below what was asked (at a multiple of 256)
    when the relay keeps only that block's root.  Covering fewer patches than
    asked means ask again from where it stopped; none means none known."""

    request_id: int
    channel_id: bytes
    from_seq: int
    nodes: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """A record the channel's envelopes need, kept beside the chain: a session
    record (kind 0x05), sent before the first envelope of its session on a
    subscription (PROTOCOL.md §8.4)."""

    channel_id: bytes
    kind: int
    envelope: bytes


#: The most nodes one PROOF carries (132 KiB: within any frame limit).
MAX_PROOF_NODES: Final = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class Error:
    """Fatal: the relay closes the connection right after (close code 4000 + code)."""

    code: int
    message: str


ClientFrame = (
    Hello
    | Subscribe
    | Unsubscribe
    | Push
    | SnapshotChunk
    | Trim
    | Ephemeral
    | Ping
    | Dispute
    | Session
    | ProofRequest
)
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
    | Proof
    | Record
    | Error
)
Frame = ClientFrame | RelayFrame


@dataclasses.dataclass(frozen=True, slots=True)
class _Spec:
    cls: type[Frame]
    fixed: struct.Struct
    variable: bool
    names: tuple[str, ...]  # the class's fields in order (dataclasses.fields is slow)
    keywords: bool  # a field is keyword-only (the channel of a frame carrying an envelope)


def _spec(cls: type[Frame], fixed: str, variable: bool = False) -> _Spec:
    fields = dataclasses.fields(cls)
    names = tuple(field.name for field in fields)
    keywords = any(field.kw_only for field in fields)
    return _Spec(cls, struct.Struct(">" + fixed), variable, names, keywords)


_SPECS: Final[dict[FrameType, _Spec]] = {
    FrameType.HELLO: _spec(Hello, "H", True),
    FrameType.SUBSCRIBE: _spec(Subscribe, "I32sBQ32s32s"),
    FrameType.UNSUBSCRIBE: _spec(Unsubscribe, "I32s"),
    FrameType.PUSH: _spec(Push, "I32s", True),
    FrameType.SNAPSHOT_CHUNK: _spec(SnapshotChunk, "I32sII", True),
    FrameType.TRIM: _spec(Trim, "I32sH", True),
    FrameType.EPHEMERAL: _spec(Ephemeral, "I", True),
    FrameType.PING: _spec(Ping, "Q"),
    FrameType.DISPUTE: _spec(Dispute, "I32s", True),
    FrameType.SESSION: _spec(Session, "I32s", True),
    FrameType.PROOF_REQUEST: _spec(ProofRequest, "I32sQQ"),
    FrameType.WELCOME: _spec(Welcome, "HQIIIIIII"),
    FrameType.SNAPSHOT: _spec(Snapshot, "32sQBII", True),
    FrameType.HISTORY: _spec(History, "32sQ", True),
    FrameType.HISTORY_END: _spec(HistoryEnd, "I32sQ32s"),
    FrameType.BROADCAST: _spec(Broadcast, "32sQ", True),
    FrameType.ACK: _spec(Ack, "IQ32s"),
    FrameType.REFUSE: _spec(Refuse, "IHIQ32s"),
    FrameType.EPHEMERAL_RELAYED: _spec(EphemeralRelayed, "32sQ", True),
    FrameType.PEER_JOINED: _spec(PeerJoined, "32sQ"),
    FrameType.PEER_LEFT: _spec(PeerLeft, "32sQ"),
    FrameType.PONG: _spec(Pong, "Q"),
    FrameType.UNSUBSCRIBED: _spec(Unsubscribed, "I32s"),
    FrameType.PROOF: _spec(Proof, "I32sQ", True),
    FrameType.RECORD: _spec(Record, "32sB", True),
    FrameType.ERROR: _spec(Error, "H", True),
}
_TYPE_OF: Final[dict[type[Frame], FrameType]] = {s.cls: t for t, s in _SPECS.items()}
_LENGTH = struct.Struct(">I")
_CLIENT_TYPES: Final = frozenset(t for t in FrameType if t < 0x80)


def frame_type(frame: Frame) -> FrameType:
    """Return the type byte of ``frame``."""
    return _TYPE_OF[type(frame)]


def encode(frame: Frame) -> bytes:
    """Serialise one frame.

    Args:
        frame: any frame dataclass.

    Returns:
        The websocket message bytes.

    Raises:
        FrameError: a field is out of range (an id not 32 bytes, a negative
            or too large integer).
    """
    kind = frame_type(frame)
    spec = _SPECS[kind]
    values = [getattr(frame, name) for name in spec.names]
    fixed = values[:-1] if spec.variable else values
    for value in fixed:
        if isinstance(value, bytes) and len(value) != ID_SIZE:
            raise FrameError(f"{kind.name}: ids are {ID_SIZE} bytes, got {len(value)}")
    try:
        head = bytes((kind,)) + spec.fixed.pack(*fixed)
    except struct.error as exc:
        raise FrameError(f"{kind.name}: {exc}") from exc
    if not spec.variable:
        return head
    tail = values[-1]
    data = tail.encode("utf-8") if isinstance(tail, str) else bytes(tail)
    return head + _LENGTH.pack(len(data)) + data


def decode(data: bytes) -> Frame:
    """Parse exactly one frame of either direction.

    Args:
        data: one websocket message.

    Returns:
        The frame.

    Raises:
        FrameError: ``data`` is not exactly one valid frame.
    """
    if not data:
        raise FrameError("empty frame")
    try:
        kind = FrameType(data[0])
    except ValueError:
        raise FrameError(f"unknown frame type 0x{data[0]:02x}") from None
    spec = _SPECS[kind]
    end = 1 + spec.fixed.size
    if len(data) < end:
        raise FrameError(f"{kind.name}: {len(data)} bytes is too short")
    values: list[Any] = list(spec.fixed.unpack_from(data, 1))
    if spec.variable:
        values.append(_variable(kind, data, end))
    elif len(data) != end:
        raise FrameError(f"{kind.name}: {len(data) - end} trailing bytes")
    return _build(kind, spec, values)


def decode_client(data: bytes) -> ClientFrame:
    """Parse one frame a client may send (what the relay accepts).

    Raises:
        FrameError: not exactly one valid client frame.
    """
    if data and data[0] not in _CLIENT_TYPES:
        raise FrameError(f"frame type 0x{data[0]:02x} is not sent by clients")
    frame = decode(data)
    if not isinstance(frame, ClientFrame):  # unreachable: the type byte was checked; narrows
        raise FrameError(f"frame type 0x{data[0]:02x} is not sent by clients")
    return frame


def decode_relay(data: bytes) -> RelayFrame:
    """Parse one frame a relay may send (what a client accepts).

    Raises:
        FrameError: not exactly one valid relay frame.
    """
    if data and data[0] in _CLIENT_TYPES:
        raise FrameError(f"unexpected frame type 0x{data[0]:02x} from the relay")
    frame = decode(data)
    if isinstance(frame, ClientFrame):  # unreachable: the type byte was checked; narrows
        raise FrameError(f"unexpected frame type 0x{data[0]:02x} from the relay")
    return frame


def _variable(kind: FrameType, data: bytes, start: int) -> bytes:
    if len(data) < start + _LENGTH.size:
        raise FrameError(f"{kind.name}: missing length prefix")
    (length,) = _LENGTH.unpack_from(data, start)
    body = bytes(data[start + _LENGTH.size :])
    if len(body) != length:
        raise FrameError(f"{kind.name}: length prefix {length} but {len(body)} bytes follow")
    return body


def _build(kind: FrameType, spec: _Spec, values: list[Any]) -> Frame:
    if kind is FrameType.SUBSCRIBE:
        try:
            values[2] = SubscribeFrom(values[2])
        except ValueError:
            raise FrameError(f"SUBSCRIBE: unknown start mode {values[2]}") from None
    if kind is FrameType.SNAPSHOT and values[2] & ~(SNAPSHOT_LIVE | SNAPSHOT_DISPUTED):
        raise FrameError(f"SNAPSHOT: unknown flags 0x{values[2]:02x}")
    if kind is FrameType.PROOF and len(values[3]) % mmr.NODE_LEN:
        raise FrameError(f"PROOF: nodes are not a whole number of {mmr.NODE_LEN}-byte nodes")
    if kind is FrameType.ERROR:
        try:
            values[1] = bytes(values[1]).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("ERROR: message is not UTF-8") from None
    if spec.keywords:
        return spec.cls(**dict(zip(spec.names, values, strict=True)))
    return spec.cls(*values)

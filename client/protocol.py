"""The client's names for the wire (:mod:`wire`): a façade, no code of its own.

The frames, codes and history body are defined once, in :mod:`wire`, for
client and relay alike.  This module keeps the names the client has always
used (``from client import protocol as p``: ``p.decode`` reads what a *relay*
sends, ``p.ProtocolViolation`` is any invalid wire data) so its modules can
move to ``from wire import frames`` one at a time.  New code imports
:mod:`wire` directly.
"""

from __future__ import annotations

from wire.codes import ErrorCode, RefuseCode, code_name
from wire.errors import WireError as ProtocolViolation
from wire.frames import (
    ID_SIZE,
    PROTOCOL_VERSION,
    ZERO_ID,
    Ack,
    Broadcast,
    ClientFrame,
    Ephemeral,
    EphemeralRelayed,
    Error,
    Hello,
    History,
    HistoryEnd,
    PeerJoined,
    PeerLeft,
    Ping,
    Pong,
    Push,
    Refuse,
    RelayFrame,
    Snapshot,
    SnapshotChunk,
    Subscribe,
    SubscribeFrom,
    Trim,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    encode,
)
from wire.frames import decode_relay as decode
from wire.history import HistoryBody, parse_history

__all__ = [
    "ID_SIZE",
    "PROTOCOL_VERSION",
    "ZERO_ID",
    "Ack",
    "Broadcast",
    "ClientFrame",
    "Ephemeral",
    "EphemeralRelayed",
    "Error",
    "ErrorCode",
    "Hello",
    "History",
    "HistoryBody",
    "HistoryEnd",
    "PeerJoined",
    "PeerLeft",
    "Ping",
    "Pong",
    "ProtocolViolation",
    "Push",
    "Refuse",
    "RefuseCode",
    "RelayFrame",
    "Snapshot",
    "SnapshotChunk",
    "Subscribe",
    "SubscribeFrom",
    "Trim",
    "Unsubscribe",
    "Unsubscribed",
    "Welcome",
    "code_name",
    "decode",
    "encode",
    "parse_history",
]

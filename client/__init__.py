"""The blindpad client: the sans-I/O core and its front ends.

``from client import Pad`` is the SDK (:mod:`client.pad`); the events it
reports are in :mod:`client.events` and its errors, drawn as a tree, in
:mod:`client.errors`.  Names are resolved lazily (PEP 562), so ``import
client`` loads nothing heavy: never websockets, httpx, nacl or the relay, and
it runs unchanged under Pyodide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from client.errors import (
        BadLink,
        ConnectionFailed,
        Distrusted,
        InvalidEdit,
        NotReady,
        PadClosed,
        PadError,
        PadNotFound,
        ProtocolError,
        ReadOnly,
        RelayRefused,
        StateLocked,
        WrongDocType,
    )
    from client.events import (
        Acked,
        Alarm,
        AlarmKind,
        ConnectionLost,
        ConnectionRestored,
        CursorMoved,
        Failed,
        PadEvent,
        Peer,
        PeerJoined,
        PeerLeft,
        Status,
        StatusChanged,
        TextChanged,
        ValueChanged,
    )
    from client.pad import Backoff, Pad, PadLinks
    from client.session import PadSession

_HOMES = {
    "Pad": "client.pad",
    "PadLinks": "client.pad",
    "Backoff": "client.pad",
    "PadSession": "client.session",
    **dict.fromkeys(
        [
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
        ],
        "client.errors",
    ),
    **dict.fromkeys(
        [
            "Acked",
            "Alarm",
            "AlarmKind",
            "ConnectionLost",
            "ConnectionRestored",
            "CursorMoved",
            "Failed",
            "PadEvent",
            "Peer",
            "PeerJoined",
            "PeerLeft",
            "Status",
            "StatusChanged",
            "TextChanged",
            "ValueChanged",
        ],
        "client.events",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


__all__ = [
    "Acked",
    "Alarm",
    "AlarmKind",
    "Backoff",
    "BadLink",
    "ConnectionFailed",
    "ConnectionLost",
    "ConnectionRestored",
    "CursorMoved",
    "Distrusted",
    "Failed",
    "InvalidEdit",
    "NotReady",
    "Pad",
    "PadClosed",
    "PadError",
    "PadEvent",
    "PadLinks",
    "PadNotFound",
    "PadSession",
    "Peer",
    "PeerJoined",
    "PeerLeft",
    "ProtocolError",
    "ReadOnly",
    "RelayRefused",
    "StateLocked",
    "Status",
    "StatusChanged",
    "TextChanged",
    "ValueChanged",
    "WrongDocType",
]

"""client/protocol.py against relay/frames.py and relay/http.py, so the codecs cannot drift."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import protocol as p
from relay import frames as f
from relay.http import encode_history
from relay.store import Head, HistoryRead, StoredPatch, StoredSnapshot

ROOT = Path(__file__).resolve().parent.parent
IDS = st.binary(min_size=32, max_size=32)
U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
U16 = st.integers(0, 2**16 - 1)
BLOB = st.binary(max_size=64)

CLIENT_PAIRS: list[tuple[type[Any], type[Any], dict[str, Any]]] = [
    (p.Hello, f.Hello, {"version": U16, "token": BLOB}),
    (
        p.Subscribe,
        f.Subscribe,
        {
            "request_id": U32,
            "channel_id": IDS,
            "start": st.sampled_from([0, 1]),
            "since_seq": U64,
            "verify_key": IDS,
        },
    ),
    (p.Unsubscribe, f.Unsubscribe, {"request_id": U32, "channel_id": IDS}),
    (p.Push, f.Push, {"request_id": U32, "envelope": BLOB}),
    (
        p.SnapshotChunk,
        f.SnapshotChunk,
        {"request_id": U32, "total": U32, "offset": U32, "data": BLOB},
    ),
    (p.Trim, f.Trim, {"request_id": U32, "envelope": BLOB}),
    (p.Ephemeral, f.Ephemeral, {"request_id": U32, "envelope": BLOB}),
    (p.Ping, f.Ping, {"nonce": U64}),
]
RELAY_PAIRS: list[tuple[type[Any], type[Any], dict[str, Any]]] = [
    (
        p.Welcome,
        f.Welcome,
        {
            "version": U16,
            "connection_id": U64,
            **dict.fromkeys(
                (
                    "max_frame_bytes",
                    "max_patch_bytes",
                    "max_snapshot_bytes",
                    "max_ephemeral_bytes",
                    "max_channels",
                    "rate_per_second",
                    "rate_burst",
                ),
                U32,
            ),
        },
    ),
    (
        p.Snapshot,
        f.Snapshot,
        {"channel_id": IDS, "x_seq": U64, "total": U32, "offset": U32, "data": BLOB},
    ),
    (p.History, f.History, {"channel_id": IDS, "seq": U64, "envelope": BLOB}),
    (
        p.HistoryEnd,
        f.HistoryEnd,
        {"request_id": U32, "channel_id": IDS, "head_seq": U64, "head_id": IDS},
    ),
    (p.Broadcast, f.Broadcast, {"channel_id": IDS, "seq": U64, "envelope": BLOB}),
    (p.Ack, f.Ack, {"request_id": U32, "seq": U64, "id": IDS}),
    (
        p.Refuse,
        f.Refuse,
        {"request_id": U32, "code": U16, "retry_after_ms": U32, "head_seq": U64, "head_id": IDS},
    ),
    (p.EphemeralRelayed, f.EphemeralRelayed, {"channel_id": IDS, "sender": U64, "envelope": BLOB}),
    (p.PeerJoined, f.PeerJoined, {"channel_id": IDS, "peer": U64}),
    (p.PeerLeft, f.PeerLeft, {"channel_id": IDS, "peer": U64}),
    (p.Pong, f.Pong, {"nonce": U64}),
    (p.Unsubscribed, f.Unsubscribed, {"request_id": U32, "channel_id": IDS}),
    (p.Error, f.Error, {"code": U16, "message": st.text(max_size=20)}),
]


def _fields(cls: type[Any]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


@pytest.mark.parametrize(("ours", "theirs", "_"), CLIENT_PAIRS + RELAY_PAIRS)
def test_same_fields_in_the_same_order(ours: type[Any], theirs: type[Any], _: object) -> None:
    assert _fields(ours) == _fields(theirs)


@pytest.mark.parametrize(("ours", "theirs", "fields"), CLIENT_PAIRS)
@given(data=st.data())
def test_client_frames_decode_in_the_relay(
    ours: type[Any], theirs: type[Any], fields: dict[str, Any], data: st.DataObject
) -> None:
    values = {name: data.draw(strategy) for name, strategy in fields.items()}
    wire = p.encode(ours(**values))
    decoded = f.decode_client(wire)
    assert [getattr(decoded, name) for name in fields] == list(values.values())
    assert f.encode(decoded) == wire


@pytest.mark.parametrize(("ours", "theirs", "fields"), RELAY_PAIRS)
@given(data=st.data())
def test_relay_frames_decode_in_the_client(
    ours: type[Any], theirs: type[Any], fields: dict[str, Any], data: st.DataObject
) -> None:
    values = {name: data.draw(strategy) for name, strategy in fields.items()}
    decoded = p.decode(f.encode(theirs(**values)))
    assert decoded == ours(**values)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x01",
        b"\x86\x00",
        b"\x8b" + bytes(9),
        b"\x85" + bytes(40) + b"\x00\x00\x00\x05ab",
        b"\x8f\x00\x01\x00\x00\x00\x01\xff",
    ],
)
def test_invalid_relay_frames_are_rejected(wire: bytes) -> None:
    with pytest.raises(p.ProtocolViolation):
        p.decode(wire)


def test_out_of_range_fields_are_refused_locally() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        p.encode(p.Unsubscribe(1, b"short"))
    with pytest.raises(ValueError, match="Ping"):
        p.encode(p.Ping(-1))


def test_codes_match_the_relay() -> None:
    from relay.errors import ErrorCode, RefuseCode

    assert {c.name: int(c) for c in p.RefuseCode} == {c.name: int(c) for c in RefuseCode}
    assert {c.name: int(c) for c in p.ErrorCode} == {c.name: int(c) for c in ErrorCode}
    assert p.code_name(1, p.RefuseCode) == "STALE"
    assert p.code_name(999, p.RefuseCode) == "CODE_999"


def test_history_bodies_parse() -> None:
    snapshot = StoredSnapshot(x_seq=2, x_id=b"x" * 32, id=b"s" * 32, envelope=b"snap")
    patches = [StoredPatch(seq=3, id=b"i" * 32, envelope=b"three")]
    read = HistoryRead(snapshot, patches, Head(3, b"i" * 32))
    body = p.parse_history(encode_history(read))
    assert body == p.HistoryBody((2, b"snap"), [(3, b"three")], 3, b"i" * 32)
    for broken in (b"", encode_history(read)[:-1], encode_history(read) + b"\x00", b"\x07"):
        with pytest.raises(p.ProtocolViolation):
            p.parse_history(broken)


def test_import_client_stays_light() -> None:
    code = (
        "import sys, client, client.protocol, client.session, client.pad, client.cli; "
        "from client import Pad, PadError, TextChanged; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('relay', 'websockets', 'httpx', 'nacl', 'uvicorn', 'starlette')]; "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

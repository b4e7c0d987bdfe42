"""The frame codec: exact round trips, and any bytes decode or raise FrameError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay import frames as f

ID = bytes(range(32))
EXAMPLES: list[f.Frame] = [
    f.Hello(1, b"token"),
    f.Subscribe(1, ID, f.SubscribeFrom.SNAPSHOT, 7, ID),
    f.Unsubscribe(2, ID),
    f.Push(3, b"env"),
    f.SnapshotChunk(4, 10, 0, b"abc"),
    f.Trim(5, b"t"),
    f.Ephemeral(6, b"e"),
    f.Ping(2**64 - 1),
    f.Welcome(1, 9, 1, 2, 3, 4, 5, 6, 7),
    f.Snapshot(ID, 3, 10, 0, b"abc"),
    f.History(ID, 1, b"x"),
    f.HistoryEnd(1, ID, 5, ID),
    f.Broadcast(ID, 2, b"y"),
    f.Ack(1, 2, ID),
    f.Refuse(1, 1, 0, 5, ID),
    f.EphemeralRelayed(ID, 4, b"z"),
    f.PeerJoined(ID, 4),
    f.PeerLeft(ID, 4),
    f.Pong(1),
    f.Unsubscribed(1, ID),
    f.Error(2, "please reload ✓"),
]


@pytest.mark.parametrize("frame", EXAMPLES)
def test_round_trip(frame: f.Frame) -> None:
    data = f.encode(frame)
    assert data[0] == f.frame_type(frame)
    assert f.decode(data) == frame
    with pytest.raises(f.FrameError):
        f.decode(data + b"\0")
    with pytest.raises(f.FrameError):
        f.decode(data[:-1])


def test_every_type_has_an_example() -> None:
    assert {f.frame_type(x) for x in EXAMPLES} == set(f.FrameType)


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(f.FrameError):
        f.encode(f.Ack(1, 2, b"short"))
    with pytest.raises(f.FrameError):
        f.encode(f.Ping(-1))


def test_client_decoder_refuses_relay_frames() -> None:
    with pytest.raises(f.FrameError):
        f.decode_client(f.encode(f.Pong(1)))


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_frame_error(data: bytes) -> None:
    try:
        frame = f.decode(data)
    except f.FrameError:
        return
    assert f.encode(frame) == data

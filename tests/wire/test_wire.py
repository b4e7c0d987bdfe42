"""The one wire package: frame round trips, total decoders, codes, history bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import codes, history
from wire import frames as f
from wire.errors import FrameError, HistoryError, WireError

ID = bytes(range(32))
EXAMPLES: list[f.Frame] = [
    f.Hello(f.PROTOCOL_VERSION, b"token"),
    f.Subscribe(1, ID, f.SubscribeFrom.SNAPSHOT, 7, ID, bytes(reversed(ID))),
    f.Subscribe(1, ID, f.SubscribeFrom.EARLIEST, 0),
    f.Unsubscribe(2, ID),
    f.Push(3, b"env"),
    f.SnapshotChunk(4, 10, 0, b"abc"),
    f.Trim(5, 100, b"t"),
    f.Ephemeral(6, b"e"),
    f.Ping(2**64 - 1),
    f.Dispute(9, b"d"),
    f.Dispute(9, b"d", channel_id=ID),
    f.Push(3, b"p", channel_id=ID),
    f.SnapshotChunk(4, 10, 0, b"abc", channel_id=ID),
    f.Trim(5, 0, b"t", channel_id=ID),
    f.Session(11, ID, b"record"),
    f.Record(ID, 5, b"record"),
    f.ProofRequest(10, ID, 1, 2**64 - 1),
    f.Welcome(1, 9, 1, 2, 3, 4, 5, 6, 7),
    f.Snapshot(ID, 3, 0, 10, 0, b"abc"),
    f.Snapshot(ID, 3, f.SNAPSHOT_LIVE | f.SNAPSHOT_DISPUTED, 10, 3, b"def"),
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
    f.Proof(10, ID, 1, b"\x00" + ID + b"\x08" + ID),
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


@pytest.mark.parametrize("frame", EXAMPLES)
def test_each_end_accepts_only_the_other_ends_frames(frame: f.Frame) -> None:
    data = f.encode(frame)
    if isinstance(frame, f.ClientFrame):
        assert f.decode_client(data) == frame
        with pytest.raises(f.FrameError, match="from the relay"):
            f.decode_relay(data)
    else:
        assert f.decode_relay(data) == frame
        with pytest.raises(f.FrameError, match="not sent by clients"):
            f.decode_client(data)


def test_every_type_has_an_example() -> None:
    assert {f.frame_type(x) for x in EXAMPLES} == set(f.FrameType)


def test_encode_rejects_bad_fields() -> None:
    with pytest.raises(f.FrameError, match="32 bytes"):
        f.encode(f.Ack(1, 2, b"short"))
    with pytest.raises(f.FrameError, match="32 bytes"):
        f.encode(f.Unsubscribe(1, b"short"))
    with pytest.raises(f.FrameError, match="PING"):
        f.encode(f.Ping(-1))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x86\x00",
        b"\x8b" + bytes(9),
        b"\x85" + bytes(40) + b"\x00\x00\x00\x05ab",
        b"\x8f\x00\x01\x00\x00\x00\x01\xff",
        b"\x02" + bytes(4) + ID + b"\x07" + bytes(8) + ID,  # protocol 1's layout
        b"\x02" + bytes(4) + ID + b"\x01" + bytes(8) + ID,  # no read token
        b"\x0c" + bytes(4),  # no envelope
    ],
)
def test_invalid_frames_are_rejected(data: bytes) -> None:
    with pytest.raises(f.FrameError):
        f.decode(data)
    with pytest.raises(f.FrameError):
        f.decode_relay(data)


def test_the_subscribe_snapshot_and_envelope_frame_layouts() -> None:
    token = bytes(range(100, 132))
    data = f.encode(f.Subscribe(0x01020304, ID, f.SubscribeFrom.EARLIEST, 5, b"k" * 32, token))
    assert data == (
        b"\x02\x01\x02\x03\x04" + ID + b"\x02" + (5).to_bytes(8, "big") + b"k" * 32 + token
    )
    assert f.Subscribe(1, ID, f.SubscribeFrom.SINCE, 0).read_token == f.ZERO_ID
    snap = f.encode(f.Snapshot(ID, 9, f.SNAPSHOT_DISPUTED, 3, 0, b"abc"))
    assert (
        snap
        == b"\x82"
        + ID
        + (9).to_bytes(8, "big")
        + b"\x02"
        + bytes([0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3])
        + b"abc"
    )
    no_channel = bytes(32)
    assert f.encode(f.Dispute(7, b"env")) == b"\x0c\0\0\0\x07" + no_channel + b"\0\0\0\x03env"
    push = f.encode(f.Push(7, b"env", channel_id=ID))
    assert push == b"\x04\0\0\0\x07" + ID + b"\0\0\0\x03env"
    session = f.encode(f.Session(8, ID, b"rec"))
    assert session == b"\x0a\0\0\0\x08" + ID + b"\0\0\0\x03rec"
    assert f.encode(f.Record(ID, 5, b"rec")) == b"\x8d" + ID + b"\x05\0\0\0\x03rec"
    assert (f.SNAPSHOT_LIVE, f.SNAPSHOT_DISPUTED) == (1, 2)


@pytest.mark.parametrize("start", [3, 0xFF])
def test_an_unknown_start_mode_is_refused(start: int) -> None:
    data = b"\x02" + bytes(4) + ID + bytes([start]) + bytes(8) + ID + ID
    with pytest.raises(f.FrameError, match="unknown start mode"):
        f.decode(data)
    with pytest.raises(f.FrameError, match="unknown start mode"):
        f.decode_client(data)


@pytest.mark.parametrize("flags", [0x04, 0x80, 0xFF])
def test_unknown_snapshot_flags_are_refused(flags: int) -> None:
    good = f.encode(f.Snapshot(ID, 3, 0, 3, 0, b"abc"))
    data = good[:41] + bytes([flags]) + good[42:]
    with pytest.raises(f.FrameError, match="unknown flags"):
        f.decode(data)
    with pytest.raises(f.FrameError, match="unknown flags"):
        f.decode_relay(data)


def test_the_new_codes() -> None:
    assert codes.RefuseCode.UNKNOWN_CHANNEL == 22
    assert codes.RefuseCode.DISPUTE_TOO_LARGE == 29
    assert codes.RefuseCode.SNAPSHOT_DISPUTED == 30
    assert f.PROTOCOL_VERSION == 2


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_frame_error(data: bytes) -> None:
    try:
        frame = f.decode(data)
    except f.FrameError:
        return
    assert f.encode(frame) == data


def test_errors_form_one_tree() -> None:
    assert f.FrameError is FrameError
    assert history.HistoryError is HistoryError
    assert issubclass(FrameError, WireError)
    assert issubclass(HistoryError, WireError)
    assert issubclass(WireError, ValueError)


def test_codes() -> None:
    assert codes.code_name(1, codes.RefuseCode) == "STALE"
    assert codes.code_name(999, codes.RefuseCode) == "CODE_999"
    assert codes.code_name(2, codes.ErrorCode) == "VERSION_MISMATCH"
    assert codes.ErrorCode.SLOW_CONSUMER.close_code == 4004
    assert max(codes.RefuseCode) < 2**16
    assert max(codes.ErrorCode) < 2**16


def test_history_bodies_parse() -> None:
    body = history.HistoryBody((2, b"snap"), [(3, b"three")], 3, b"i" * 32)
    data = history.encode_history(body)
    assert data == (
        b"\x01" + (2).to_bytes(8, "big") + (4).to_bytes(4, "big") + b"snap"
        b"\x02" + (3).to_bytes(8, "big") + (5).to_bytes(4, "big") + b"three"
        b"\x00" + (3).to_bytes(8, "big") + b"i" * 32
    )
    assert history.parse_history(data) == body
    for cut in (b"", data[:-1], data[:5], data[:30], data[: len(data) - 41]):
        with pytest.raises(history.HistoryCut):  # every prefix: read it again
            history.parse_history(cut)
    for broken in (data + b"\x00", b"\x07"):
        with pytest.raises(history.HistoryError) as raised:
            history.parse_history(broken)
        assert not isinstance(raised.value, history.HistoryCut)
    with pytest.raises(history.HistoryError, match="32 bytes"):
        history.encode_history(history.HistoryBody(None, [], 0, b"short"))


def test_a_history_body_carries_session_records_before_what_needs_them() -> None:
    session = b"\x03" + bytes(8) + (3).to_bytes(4, "big") + b"rec"
    patch = b"\x02" + (1).to_bytes(8, "big") + (1).to_bytes(4, "big") + b"p"
    end = b"\x00" + (1).to_bytes(8, "big") + b"i" * 32
    body = history.parse_history(session + patch + end)
    assert body == history.HistoryBody(None, [(1, b"p")], 1, b"i" * 32, [b"rec"])
    assert history.encode_history(body) == session + patch + end


SEALED = st.binary(max_size=40)


@given(
    st.none() | st.tuples(st.integers(0, 2**64 - 1), SEALED),
    st.lists(st.tuples(st.integers(0, 2**64 - 1), SEALED), max_size=5),
    st.integers(0, 2**64 - 1),
    st.binary(min_size=32, max_size=32),
    st.lists(SEALED, max_size=3),
)
def test_history_round_trip(
    snapshot: tuple[int, bytes] | None,
    patches: list[tuple[int, bytes]],
    seq: int,
    head: bytes,
    sessions: list[bytes],
) -> None:
    body = history.HistoryBody(snapshot, patches, seq, head, sessions)
    assert history.parse_history(history.encode_history(body)) == body


@given(
    st.none() | st.tuples(st.integers(0, 2**64 - 1), SEALED),
    st.lists(st.tuples(st.integers(0, 2**64 - 1), SEALED), max_size=5),
    st.data(),
)
def test_every_proper_prefix_of_a_body_is_cut(
    snapshot: tuple[int, bytes] | None, patches: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    body = history.encode_history(history.HistoryBody(snapshot, patches, 7, b"h" * 32))
    end = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(history.HistoryCut):
        history.parse_history(body[:end])


@given(st.binary(max_size=120))
def test_any_bytes_parse_or_raise_history_error(data: bytes) -> None:
    try:
        body = history.parse_history(data)
    except history.HistoryError:
        return
    # What parses is kept whole (records may come in any order; encoding puts
    # session records, then the snapshot, then the patches).
    assert history.parse_history(history.encode_history(body)) == body

"""Sealing and opening envelopes: every rejection raises its own error."""

from __future__ import annotations

import hashlib
import itertools

import pytest

import crypto
from crypto import (
    ZERO_ID,
    Author,
    BadAuthorSignature,
    BadChannelSignature,
    DecryptionFailed,
    EphemeralGuard,
    IntegrityError,
    Kind,
    MalformedEnvelope,
    PadKeys,
    ReadOnlyKeys,
    ReplayedEphemeral,
    Session,
    StaleEphemeral,
    WrongChannel,
    envelope_id,
    open_ephemeral,
    parse_header,
    seal,
    seal_ephemeral,
    verify_channel_signature,
)
from crypto.backend import get_backend
from crypto.envelope import HEADER_LEN, assemble, signed_inner

T0 = 1_700_000_000_000


def counter_random() -> crypto.backend.RandomFn:
    """A deterministic ``random`` for tests: distinct bytes on every call."""
    counter = itertools.count()

    def random(n: int) -> bytes:
        seed = next(counter).to_bytes(8, "big")
        return hashlib.sha256(b"test random " + seed).digest()[:n]

    return random


@pytest.fixture
def keys() -> PadKeys:
    return PadKeys.from_edit_secret(bytes(range(32)))


@pytest.fixture
def other_keys() -> PadKeys:
    return PadKeys.from_edit_secret(bytes(range(1, 33)))


@pytest.fixture
def alice() -> Author:
    return Author.from_seed(b"a" * 32, "Alice")


@pytest.fixture
def bob() -> Author:
    return Author.from_seed(b"b" * 32, "Bob")


def inner_of(keys: PadKeys, sealed: bytes) -> bytes:
    """Decrypt an envelope's inner, as any editor (or viewer) can."""
    header = parse_header(sealed)
    body = sealed[HEADER_LEN : HEADER_LEN + header.body_len]
    return get_backend().secretbox_open(keys.sym_key, body[:24], body[24:])


def test_seal_open_round_trip_for_every_signed_kind(keys: PadKeys, alice: Author) -> None:
    parent = b"\x07" * 32
    for kind in (Kind.PATCH, Kind.SNAPSHOT, Kind.TRIM):
        sealed = seal(keys, alice, kind, parent, "héllo 👋".encode())
        opened = crypto.open_envelope(keys.view(), sealed)
        assert (opened.kind, opened.ref, opened.content) == (kind, parent, "héllo 👋".encode())
        assert (opened.author_key, opened.author_name) == (alice.public_key, "Alice")
        assert opened.id == envelope_id(sealed) == hashlib.sha256(sealed).digest()


def test_layout_matches_the_agreed_envelope(keys: PadKeys, alice: Author) -> None:
    sealed = seal(keys, alice, Kind.PATCH, ZERO_ID, b"abc")
    body_len = int.from_bytes(sealed[66:70], "big")
    assert sealed[:2] == b"\x01\x01"
    assert sealed[2:34] == keys.channel_id
    assert sealed[34:66] == ZERO_ID
    assert len(sealed) == 70 + body_len + 64
    assert body_len == 24 + 16 + 32 + 64 + 1 + len("Alice") + 3
    verify_channel_signature(sealed, keys.verify_key)


def test_random_nonce_differs_per_message(keys: PadKeys, alice: Author) -> None:
    first = seal(keys, alice, Kind.PATCH, ZERO_ID, b"same")
    second = seal(keys, alice, Kind.PATCH, ZERO_ID, b"same")
    assert first[70:94] != second[70:94]


@pytest.mark.parametrize("kind", [Kind.PATCH, Kind.SNAPSHOT, Kind.TRIM])
def test_view_link_cannot_write(keys: PadKeys, alice: Author, kind: Kind) -> None:
    with pytest.raises(ReadOnlyKeys, match="view link"):
        seal(keys.view(), alice, kind, b"\x01" * 32, b"text")


def test_view_link_can_send_and_open_ephemerals(keys: PadKeys, alice: Author) -> None:
    session = Session.new(random=counter_random())
    sealed = seal_ephemeral(keys.view(), alice, session, b"cursor 3", now_ms=T0)
    got = open_ephemeral(keys.view(), sealed)
    assert (got.payload, got.counter, got.session_id) == (b"cursor 3", 1, session.session_id)
    with pytest.raises(MalformedEnvelope, match="no channel signature"):
        verify_channel_signature(sealed, keys.verify_key)


def test_every_flipped_bit_of_a_sealed_patch_is_rejected(keys: PadKeys, alice: Author) -> None:
    sealed = seal(keys, alice, Kind.PATCH, ZERO_ID, b"hi", random=counter_random())
    expected_by_region = [
        (0, 2, MalformedEnvelope),  # version, kind
        (2, 34, WrongChannel),
        (34, 66, BadChannelSignature),  # ref: header bound to the signature
        (66, 70, MalformedEnvelope),  # body_len vs total length
        (70, len(sealed), BadChannelSignature),  # nonce, ciphertext, signature
    ]
    for start, end, error in expected_by_region:
        for bit in range(start * 8, end * 8):
            damaged = bytearray(sealed)
            damaged[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(error):
                crypto.open_envelope(keys.view(), bytes(damaged))


def test_every_flipped_bit_of_an_ephemeral_is_rejected(keys: PadKeys, alice: Author) -> None:
    session = Session(b"s" * 16)
    sealed = seal_ephemeral(keys, alice, session, b"p", now_ms=T0, random=counter_random())
    for bit in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(IntegrityError) as caught:
            open_ephemeral(keys.view(), bytes(damaged))
        if bit >= HEADER_LEN * 8:
            assert type(caught.value) is DecryptionFailed


def test_ciphertext_moved_under_another_header(keys: PadKeys, alice: Author) -> None:
    first = seal(keys, alice, Kind.PATCH, ZERO_ID, b"one")
    second = seal(keys, alice, Kind.PATCH, envelope_id(first), b"two")
    moved = second[:70] + first[70:]  # a relay pairs one header with another body
    with pytest.raises(BadChannelSignature):
        crypto.open_envelope(keys, moved)
    other_parent = first[:34] + envelope_id(second) + first[66:]
    with pytest.raises(BadChannelSignature):
        crypto.open_envelope(keys, other_parent)


def test_replay_on_another_channel(keys: PadKeys, other_keys: PadKeys, alice: Author) -> None:
    sealed = seal(keys, alice, Kind.PATCH, ZERO_ID, b"x")
    with pytest.raises(WrongChannel):
        crypto.open_envelope(other_keys, sealed)
    # An editor of both pads re-seals the signed inner for the other channel.
    rewrapped = assemble(other_keys, Kind.PATCH, ZERO_ID, inner_of(keys, sealed))
    with pytest.raises(BadAuthorSignature):
        crypto.open_envelope(other_keys, rewrapped)


def test_editor_rewraps_a_signed_inner_under_another_parent(keys: PadKeys, bob: Author) -> None:
    sealed = seal(keys, bob, Kind.PATCH, ZERO_ID, b"bob's words")
    rewrapped = assemble(keys, Kind.PATCH, b"\x09" * 32, inner_of(keys, sealed))
    verify_channel_signature(rewrapped, keys.verify_key)  # the relay cannot tell
    with pytest.raises(crypto.WrongParentBinding, match="another parent"):
        crypto.open_envelope(keys, rewrapped)


def test_editor_cannot_change_the_kind_of_a_signed_inner(keys: PadKeys, bob: Author) -> None:
    sealed = seal(keys, bob, Kind.PATCH, b"\x02" * 32, b"words")
    as_snapshot = assemble(keys, Kind.SNAPSHOT, b"\x02" * 32, inner_of(keys, sealed))
    with pytest.raises(BadAuthorSignature):
        crypto.open_envelope(keys, as_snapshot)


def test_editor_signing_as_another_author(keys: PadKeys, alice: Author, bob: Author) -> None:
    mine = signed_inner(bob, Kind.PATCH, keys.channel_id, ZERO_ID, b"I am Alice")
    name = alice.name.encode()
    forged = alice.public_key + mine[32:96] + bytes((len(name),)) + name + b"I am Alice"
    with pytest.raises(BadAuthorSignature):
        crypto.open_envelope(keys, assemble(keys, Kind.PATCH, ZERO_ID, forged))


def test_editor_altering_content_under_a_valid_author(keys: PadKeys, alice: Author) -> None:
    inner = bytearray(inner_of(keys, seal(keys, alice, Kind.PATCH, ZERO_ID, b"pay 10")))
    inner[-1:] = b"9"
    with pytest.raises(BadAuthorSignature):
        crypto.open_envelope(keys, assemble(keys, Kind.PATCH, ZERO_ID, bytes(inner)))


def test_wrong_symmetric_key_fails_decryption(keys: PadKeys, alice: Author) -> None:
    sealed = seal_ephemeral(keys, alice, Session(b"s" * 16), b"x", now_ms=T0)
    stranger = PadKeys(sym_key=b"k" * 32, verify_key=keys.verify_key, channel_id=keys.channel_id)
    with pytest.raises(DecryptionFailed):
        open_ephemeral(stranger, sealed)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "shorter than the 70-byte header"),
        (b"\x02" + bytes(300), "unknown envelope version 2"),
        (b"\x01\x09" + bytes(300), "unknown envelope kind 0x09"),
        (b"\x01\x02" + bytes(300), "must name a patch"),
        (b"\x01\x03" + bytes(32) + b"\x01" * 32 + bytes(300), "32 zero bytes"),
        (b"\x01\x01" + bytes(64) + (10).to_bytes(4, "big") + bytes(300), "below the minimum"),
        (b"\x01\x01" + bytes(64) + (200).to_bytes(4, "big") + bytes(300), "announces 334"),
    ],
)
def test_parse_header_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(MalformedEnvelope, match=message):
        parse_header(data)


def test_seal_refuses_bad_arguments(keys: PadKeys, alice: Author) -> None:
    with pytest.raises(ValueError, match="seal_ephemeral"):
        seal(keys, alice, Kind.EPHEMERAL, ZERO_ID, b"")
    with pytest.raises(ValueError, match="32-byte id"):
        seal(keys, alice, Kind.PATCH, b"short", b"")
    with pytest.raises(ValueError, match="not genesis"):
        seal(keys, alice, Kind.SNAPSHOT, ZERO_ID, b"")
    with pytest.raises(ValueError, match="returned 3 bytes"):
        seal(keys, alice, Kind.PATCH, ZERO_ID, b"", random=lambda n: b"abc")


def test_replayed_ephemeral_is_rejected(keys: PadKeys, alice: Author) -> None:
    guard = EphemeralGuard()
    sealed = seal_ephemeral(keys, alice, Session(b"s" * 16), b"here", now_ms=T0)
    first = open_ephemeral(keys, sealed)
    guard.check(first.author_key, first.session_id, first.counter, first.sender_time_ms, T0)
    again = open_ephemeral(keys, sealed)
    with pytest.raises(ReplayedEphemeral):
        guard.check(again.author_key, again.session_id, again.counter, again.sender_time_ms, T0)


def test_two_sessions_of_one_author_are_not_replays(keys: PadKeys, alice: Author) -> None:
    guard = EphemeralGuard()
    random = counter_random()
    tabs = [Session.new(random=random), Session.new(random=random)]
    for step in range(3):
        for tab in tabs:
            sealed = seal_ephemeral(keys, alice, tab, b"cursor", now_ms=T0 + step)
            got = open_ephemeral(keys, sealed)
            guard.check(got.author_key, got.session_id, got.counter, got.sender_time_ms, T0 + 5)
    assert len(guard) == 2


def test_stale_and_forgotten_ephemerals() -> None:
    guard = EphemeralGuard(timeout_ms=1000)
    guard.check(b"a", b"s", 5, T0, T0)
    with pytest.raises(StaleEphemeral, match="presence window"):
        guard.check(b"a", b"s", 6, T0, T0 + 1001)
    with pytest.raises(StaleEphemeral):
        guard.check(b"a", b"s", 6, T0 + 5000, T0)
    guard.check(b"b", b"s", 1, T0 + 3000, T0 + 3000)  # sweeps session "a"
    assert len(guard) == 1
    guard.check(b"a", b"s", 1, T0 + 3000, T0 + 3000)  # a new start, not a replay


def test_session_counter_starts_at_one_and_is_bounded() -> None:
    session = Session(b"s" * 16)
    assert [session.next_counter() for _ in range(3)] == [1, 2, 3]
    session.counter = 2**64 - 1
    with pytest.raises(OverflowError):
        session.next_counter()


def test_sealed_bytes_never_contain_the_plaintext_or_an_unkeyed_hash(
    keys: PadKeys, alice: Author
) -> None:
    random = counter_random()
    needles: set[bytes] = set()
    blobs = []
    for number in range(1000):
        content = f"MARKER-{number:04d} the quick brown fox".encode()
        blobs.append(seal(keys, alice, Kind.PATCH, ZERO_ID, content, random=random))
        for text in (content, b"MARKER", f"MARKER-{number:04d}".encode()):
            for name in ("sha256", "sha1", "md5", "blake2b"):
                needles.add(hashlib.new(name, text).digest()[:8])
    haystack = b"\n".join(blobs)
    assert b"MARKER" not in haystack
    assert b"Alice" not in haystack
    assert alice.public_key not in haystack
    hits = [needle.hex() for needle in needles if needle in haystack]
    assert hits == []

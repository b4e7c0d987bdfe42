"""Version 2's envelopes (``crypto.envelope2``): what each check stops, as an
editor, a viewer, a relay or a stranger would try it (PROTOCOL.md §9)."""

from __future__ import annotations

import hashlib

import pytest

from crypto import (
    Author,
    BadAuthorSignature,
    BadChannelSignature,
    BadSessionSignature,
    MalformedEnvelope,
    PadKeys,
    ReadOnlyKeys,
    envelope2,
    varint,
)
from crypto.backend import get_backend

KEYS = PadKeys.from_edit_secret(hashlib.sha256(b"pad").digest())
OTHER = PadKeys.from_edit_secret(hashlib.sha256(b"another pad").digest())
ALICE = Author.from_seed(hashlib.sha256(b"alice").digest(), "Alice")
MALLORY = Author.from_seed(hashlib.sha256(b"mallory").digest(), "Mallory")
SESSION = envelope2.SessionKeys.from_seed(hashlib.sha256(b"session").digest())
REF = hashlib.sha256(b"parent").digest()


def record(author: Author = ALICE, keys: PadKeys = KEYS) -> bytes:
    return envelope2.seal_session_record(keys, author, SESSION, 1_790_000_000_000)


def test_a_session_record_names_its_author_and_only_an_editor_makes_one() -> None:
    opened = envelope2.open_session_record(KEYS.view(), record())
    assert (opened.author_key, opened.name) == (ALICE.public_key, "Alice")
    assert (opened.session_key, opened.tag) == (SESSION.public_key, SESSION.tag)
    assert opened.started_ms == 1_790_000_000_000
    with pytest.raises(ReadOnlyKeys):
        envelope2.seal_session_record(KEYS.view(), ALICE, SESSION, 0)
    with pytest.raises(BadChannelSignature):  # made for another pad
        envelope2.verify_session_record(record(keys=OTHER), KEYS.verify_key, KEYS.channel_id)


def forged_record(name: bytes) -> bytes:
    """A session record an editor made by hand: Alice's key, the name given,
    an author signature by Mallory; the channel signature is genuine."""
    backend = get_backend()
    content = bytearray(ALICE.public_key)
    content += backend.sign(MALLORY.seed, b"any message")
    varint.write(content, 5)
    content += bytes((len(name),)) + name
    nonce = bytes(24)
    unsigned = b"\x02\x05" + SESSION.public_key + nonce
    unsigned += backend.secretbox_seal(KEYS.sym_key, nonce, bytes(content))
    assert KEYS.sign_seed is not None
    return unsigned + backend.sign(
        KEYS.sign_seed, b"blindpad/v2/session" + KEYS.channel_id + unsigned
    )


def test_an_editor_cannot_bind_a_session_to_someone_elses_name() -> None:
    """Mallory, an editor, re-seals a record naming Alice with her own
    signature: the channel signature holds, the author's does not."""
    forged = forged_record(b"Alice")
    assert envelope2.verify_session_record(forged, KEYS.verify_key, KEYS.channel_id)  # relay: fine
    with pytest.raises(BadAuthorSignature):
        envelope2.open_session_record(KEYS, forged)
    with pytest.raises(MalformedEnvelope, match="longer than 64"):
        envelope2.open_session_record(KEYS, forged_record(b"A" * 65))


def test_a_session_signed_patch_is_123_fixed_bytes_and_opens_only_as_sealed() -> None:
    rec = envelope2.open_session_record(KEYS, record())
    content = b"\x00\x06\x01\x05\x00\x01a"  # a keystroke's binary content
    sealed = envelope2.seal(KEYS, SESSION, 1, REF, 2**21 - 1, 2**14 - 1, content)
    assert len(sealed) - len(content) == 123  # PROTOCOL.md §9.1
    opened = envelope2.open_envelope(KEYS.view(), sealed, rec)
    assert (opened.content, opened.header.height, opened.header.counter) == (
        content,
        2**21 - 1,
        2**14 - 1,
    )
    with pytest.raises(BadSessionSignature):  # the same bytes shown on another channel
        envelope2.verify(sealed, SESSION.public_key, OTHER.channel_id)
    with pytest.raises(BadSessionSignature):  # opened as another pad's: its channel is signed
        envelope2.open_envelope(OTHER, sealed, rec)
    for at in range(len(sealed)):  # every byte is checked by something
        tampered = bytearray(sealed)
        tampered[at] ^= 0x40
        with pytest.raises((MalformedEnvelope, BadSessionSignature)):
            envelope2.open_envelope(KEYS, bytes(tampered), rec)


def test_a_session_never_reuses_a_nonce_and_the_relay_needs_no_secret() -> None:
    nonces = {envelope2.nonce_for(SESSION.public_key, counter) for counter in range(1, 1000)}
    assert len(nonces) == 999
    sealed = envelope2.seal(KEYS, SESSION, 2, REF, 64, 7, b"text")
    header = envelope2.verify(sealed, SESSION.public_key, KEYS.channel_id)  # public data only
    assert (header.kind, header.ref, header.height, header.counter) == (2, REF, 64, 7)
    other = envelope2.SessionKeys.from_seed(hashlib.sha256(b"other session").digest())
    with pytest.raises(MalformedEnvelope, match="another session"):
        envelope2.verify(sealed, other.public_key, KEYS.channel_id)


@pytest.mark.parametrize(
    ("kind", "ref", "counter", "why"),
    [
        (3, REF, 1, "not session-signed"),  # ephemerals keep their own form
        (2, bytes(32), 1, "zero only for a genesis patch"),
        (1, REF, 0, "starts at 1"),
    ],
)
def test_what_cannot_be_sealed(kind: int, ref: bytes, counter: int, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        envelope2.seal(KEYS, SESSION, kind, ref, 1, counter, b"")


def test_a_layout_the_relay_refuses_before_any_signature() -> None:
    good = envelope2.seal(KEYS, SESSION, 1, REF, 300, 2, b"x")
    head = 2 + 32 + 4
    non_minimal = good[:head] + b"\xac\x82\x00" + good[head + 2 :]  # height 300 padded
    zero_counter = good[: head + 2] + b"\x00" + good[head + 3 :]
    for bad, why in (
        (b"\x01" + good[1:], "not a session-signed"),
        (good[:1] + b"\x05" + good[2:], "not a session-signed"),
        (non_minimal, "not minimal"),
        (zero_counter, "starts at 1"),
        (good[:100], "too short"),
    ):
        with pytest.raises(MalformedEnvelope, match=why):
            envelope2.parse(bad)


def test_a_pad_record_proves_its_channel_and_registers_the_read_token() -> None:
    sealed = envelope2.seal_pad_record(KEYS, 1, 1_790_000_000_000, 80, ((3600, 30 * 86400),))
    verify_key, token_hash = envelope2.verify_pad_record(sealed, KEYS.channel_id)
    assert (verify_key, token_hash) == (KEYS.verify_key, KEYS.read_token_hash)
    opened = envelope2.open_pad_record(KEYS.view(), sealed)
    assert opened == envelope2.PadRecord(1, 1_790_000_000_000, 80, ((3600, 30 * 86400),))
    with pytest.raises(BadChannelSignature, match="another channel"):  # shown for another pad
        envelope2.verify_pad_record(sealed, OTHER.channel_id)
    with pytest.raises(ReadOnlyKeys):
        envelope2.seal_pad_record(KEYS.view(), 1, 0)
    for at in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[at] ^= 0x20
        with pytest.raises((MalformedEnvelope, BadChannelSignature)):
            envelope2.open_pad_record(KEYS, bytes(tampered))

"""Sealed envelopes, version 2: session records and session-signed envelopes
(docs/PROTOCOL.md §9.1, §9.3).

Theory of operation
-------------------
Version 1 puts two signatures and the author's key and name in every
envelope (277 fixed bytes of a one-keystroke patch).  Version 2 moves what
repeats to once per *session*, one running client:

* A **session record** (kind 0x05) registers a fresh Ed25519 key, the
  session key.  The channel key signs it, so only an editor can register a
  session (the relay checks it: it holds the verify key); inside the
  ciphertext the author's identity key signs the session key, the start time
  and the name, so an editor cannot bind a session to someone else's name.
* Every later envelope of that session (patch, snapshot, trim, settings,
  dispute) carries **one signature**, by the session key, over the channel id
  and everything before the signature.  Its nonce is not sent: it is derived
  from the session key and the session's counter, which never repeats, so a
  session never encrypts two envelopes under one nonce::

      version 0x02 · kind · ref 32 · tag 4 · height varint · counter varint
      · box (secretbox: MAC 16 ‖ ciphertext) · signature 64

  The **tag** is the first 4 bytes of SHA-256 of the session key; the relay
  refuses a second session with a tag already taken on the channel, so a tag
  names one key.  The channel id is not in the bytes: every signature covers
  it, and the frame says which channel an envelope belongs to.

The **pad record** (§9.2), made once by CREATE, carries the channel's
verify key (the relay checks it hashes to the channel id), the hash of the
read token, and sealed inside, the document type and retention.

The relay uses :func:`verify_pad_record`, :func:`verify_session_record`
(channel signatures, layout), :func:`parse` and :func:`verify` (session
signature); clients use :func:`open_pad_record`, :func:`open_session_record`
and :func:`open_envelope`.  The id of an envelope is SHA-256 of all its
bytes, as in version 1.  Reference for the golden vectors
``tests/vectors/crypto.jsonl`` (suites ``session``, ``pad`` and ``seal2``);
not yet carried by the relay or the SDK (issue 14).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from . import varint
from .backend import RandomFn, default_random, get_backend
from .envelope import (
    ID_LEN,
    MAC_LEN,
    MAX_NAME_BYTES,
    NONCE_LEN,
    SIGNATURE_LEN,
    ZERO_ID,
    Kind,
    draw_nonce,
    parse_header,
)
from .errors import (
    BadAuthorSignature,
    BadChannelSignature,
    BadSessionSignature,
    MalformedEnvelope,
)
from .identity import Author, check_name
from .keys import PadKeys, channel_id_for

__all__ = [
    "MAX_RECORD_BYTES",
    "PAD",
    "SESSION",
    "SIGNED_KINDS",
    "TAG_AT",
    "TAG_LEN",
    "VERSION",
    "Header",
    "Opened",
    "PadRecord",
    "SessionKeys",
    "SessionRecord",
    "is_session_record",
    "is_version_2",
    "nonce_for",
    "open_envelope",
    "open_pad_record",
    "open_session_record",
    "parse",
    "ref_of",
    "seal",
    "seal_pad_record",
    "seal_session_record",
    "session_key_of",
    "session_tag",
    "tag_of",
    "verify",
    "verify_pad_record",
    "verify_session_record",
]

VERSION = 2
#: The kind of a session record.
SESSION = 0x05
#: The session-signed kinds: patch, snapshot, trim, settings, dispute.
SIGNED_KINDS = frozenset({0x01, 0x02, 0x04, 0x07, 0x08})
TAG_LEN = 4
KEY_LEN = 32
_ENV = b"blindpad/v2/env"
_SESSION = b"blindpad/v2/session"
_AUTHOR = b"blindpad/v2/author"
_NONCE = b"blindpad/v2/nonce"
_PAD = b"blindpad/v2/pad"
#: The kind of a pad record.
PAD = 0x06
_PAD_MIN = 2 + KEY_LEN + 32 + NONCE_LEN + MAC_LEN + SIGNATURE_LEN
_RECORD_MIN = 2 + KEY_LEN + NONCE_LEN + MAC_LEN + SIGNATURE_LEN
#: The longest session record: content of author key, signature, a 10-byte
#: varint, the name's length and a name of MAX_NAME_BYTES.
MAX_RECORD_BYTES = _RECORD_MIN + KEY_LEN + SIGNATURE_LEN + 10 + 1 + MAX_NAME_BYTES
_U64 = 1 << 64
_V2 = bytes((VERSION,))
_SESSION_HEAD = bytes((VERSION, SESSION))


def _signed(data: bytes, key: bytes, label: bytes, channel_id: bytes) -> bool:
    """Whether ``data`` ends with ``key``'s signature over ``label || channel_id ||``
    every byte before the signature (the form of every version-2 signature)."""
    unsigned, signature = data[:-SIGNATURE_LEN], data[-SIGNATURE_LEN:]
    return get_backend().verify(key, label + channel_id + unsigned, signature)


def session_tag(session_key: bytes) -> bytes:
    """The 4-byte tag naming a session key in envelopes."""
    return hashlib.sha256(session_key).digest()[:TAG_LEN]


#: Where a session-signed envelope holds its session tag (0-based; after version,
#: kind and ref): :func:`tag_of`, and the relay's stores read it there in SQL.
TAG_AT = 2 + ID_LEN


def tag_of(data: bytes) -> bytes | None:
    """The session tag of a version-2 session-signed envelope (layout not
    checked: use on bytes already checked or stored), None for any other."""
    if not is_version_2(data) or len(data) < TAG_AT + TAG_LEN or data[1] not in SIGNED_KINDS:
        return None
    return data[TAG_AT : TAG_AT + TAG_LEN]


def is_version_2(data: bytes) -> bool:
    """Whether ``data`` is a version-2 envelope or record (its first byte only)."""
    return data[:1] == _V2


def is_session_record(data: bytes) -> bool:
    """Whether ``data`` looks like a session record (version and kind only)."""
    return data[:2] == _SESSION_HEAD


def ref_of(data: bytes) -> bytes:
    """The ``ref`` of a sealed envelope of either version (its parent, or the
    patch its snapshot or trim is of), from the clear header alone.

    Raises:
        MalformedEnvelope: neither version's header parses.
    """
    if is_version_2(data):
        return parse(data).ref
    return parse_header(data).ref


def nonce_for(session_key: bytes, counter: int) -> bytes:
    """The nonce of the envelope a session seals under ``counter`` (never sent)."""
    message = _NONCE + session_key + counter.to_bytes(8, "big")
    return hashlib.sha256(message).digest()[:NONCE_LEN]


@dataclass(frozen=True)
class SessionKeys:
    """A running session's signing key; the seed never leaves its process."""

    seed: bytes = field(repr=False)
    public_key: bytes

    @classmethod
    def generate(cls, *, random: RandomFn = default_random) -> SessionKeys:
        """A fresh session key."""
        return cls.from_seed(random(KEY_LEN))

    @classmethod
    def from_seed(cls, seed: bytes) -> SessionKeys:
        """The session key of a 32-byte seed."""
        if not isinstance(seed, bytes) or len(seed) != KEY_LEN:
            raise ValueError(f"a session seed is {KEY_LEN} bytes")
        return cls(seed, get_backend().public_key(seed))

    @property
    def tag(self) -> bytes:
        """:func:`session_tag` of the public key."""
        return session_tag(self.public_key)


@dataclass(frozen=True)
class SessionRecord:
    """An opened session record: whose session it is, since when."""

    session_key: bytes
    author_key: bytes
    name: str
    started_ms: int

    @property
    def tag(self) -> bytes:
        """:func:`session_tag` of the session key."""
        return session_tag(self.session_key)


def _author_message(channel_id: bytes, session_key: bytes, started_ms: int, name: bytes) -> bytes:
    parts = (_AUTHOR, channel_id, session_key, started_ms.to_bytes(8, "big"), bytes((len(name),)))
    return b"".join(parts) + name


def seal_session_record(
    keys: PadKeys,
    author: Author,
    session: SessionKeys,
    started_ms: int,
    *,
    random: RandomFn = default_random,
) -> bytes:
    """The record that registers ``session`` for ``author`` on the pad (§9.3).

    Raises:
        ReadOnlyKeys: ``keys`` come from a view link (only editors register).
        InvalidIdentity: the author's name is longer than 64 bytes of UTF-8.
        ValueError: ``started_ms`` outside 0 .. 2**64 - 1.
    """
    seed = keys.require_sign_seed("register a session")
    if not 0 <= started_ms < _U64:
        raise ValueError("started_ms must fit 64 bits")
    name = check_name(author.name)
    backend = get_backend()
    author_sig = backend.sign(
        author.seed, _author_message(keys.channel_id, session.public_key, started_ms, name)
    )
    content = bytearray(author.public_key + author_sig)
    varint.write(content, started_ms)
    content += bytes((len(name),)) + name
    nonce = draw_nonce(random)
    box = backend.secretbox_seal(keys.sym_key, nonce, bytes(content))
    unsigned = bytes((VERSION, SESSION)) + session.public_key + nonce + box
    return unsigned + backend.sign(seed, _SESSION + keys.channel_id + unsigned)


def verify_session_record(data: bytes, verify_key: bytes, channel_id: bytes) -> bytes:
    """The relay's check of a session record: layout and channel signature.

    Returns:
        The session key it registers.

    Raises:
        MalformedEnvelope: not a version-2 session record.
        BadChannelSignature: not signed by the channel's key.
    """
    if not _RECORD_MIN <= len(data) <= MAX_RECORD_BYTES or data[:2] != bytes((VERSION, SESSION)):
        raise MalformedEnvelope("not a version-2 session record")
    if not _signed(data, verify_key, _SESSION, channel_id):
        raise BadChannelSignature("session record not signed by the channel key")
    return data[2 : 2 + KEY_LEN]


def session_key_of(record: bytes) -> bytes:
    """The session key a record registers (layout not checked: use on a record
    :func:`verify_session_record` accepted)."""
    return record[2 : 2 + KEY_LEN]


def open_session_record(keys: PadKeys, data: bytes) -> SessionRecord:
    """A client's check of a session record: everything the relay checks, then
    the content and the author's signature.

    Raises:
        MalformedEnvelope, BadChannelSignature: as :func:`verify_session_record`,
            or a content that does not parse.
        DecryptionFailed: not sealed with this pad's key.
        BadAuthorSignature: the author did not bind this session to this name.
    """
    session_key = verify_session_record(data, keys.verify_key, keys.channel_id)
    nonce = data[2 + KEY_LEN : 2 + KEY_LEN + NONCE_LEN]
    content = get_backend().secretbox_open(
        keys.sym_key, nonce, data[2 + KEY_LEN + NONCE_LEN : -SIGNATURE_LEN]
    )
    try:
        author_key, author_sig = content[:KEY_LEN], content[KEY_LEN : KEY_LEN + SIGNATURE_LEN]
        if len(author_sig) != SIGNATURE_LEN:
            raise ValueError("session record content too short")
        started_ms, at = varint.read(content, KEY_LEN + SIGNATURE_LEN)
        if at >= len(content) or at + 1 + content[at] != len(content):
            raise ValueError("session record name does not end the content")
        if content[at] > MAX_NAME_BYTES:
            raise ValueError(f"session record name longer than {MAX_NAME_BYTES} bytes")
        name = content[at + 1 :]
    except ValueError as exc:
        raise MalformedEnvelope(str(exc)) from None
    message = _author_message(keys.channel_id, session_key, started_ms, name)
    if not get_backend().verify(author_key, message, author_sig):
        raise BadAuthorSignature("session record not signed by its author")
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope("session record name is not UTF-8") from None
    return SessionRecord(session_key, author_key, text, started_ms)


@dataclass(frozen=True)
class Header:
    """The clear fields of a session-signed envelope."""

    kind: int  # one of SIGNED_KINDS (settings, 0x07, has no version-1 Kind)
    ref: bytes
    tag: bytes
    height: int
    counter: int
    box_start: int  # where the box begins; it ends SIGNATURE_LEN before the end


def parse(data: bytes) -> Header:
    """The clear fields of a session-signed envelope, checked for layout.

    Raises:
        MalformedEnvelope: wrong version or kind, a ref not allowed for the
            kind, a bad varint, a counter of 0, or no room for box and signature.
    """
    if len(data) < 2 + ID_LEN + TAG_LEN + 2 + MAC_LEN + SIGNATURE_LEN:
        raise MalformedEnvelope("too short for a version-2 envelope")
    if data[0] != VERSION or data[1] not in SIGNED_KINDS:
        raise MalformedEnvelope(f"not a session-signed version-2 envelope ({data[0]}, {data[1]})")
    kind = data[1]
    ref = data[2 : 2 + ID_LEN]
    if kind != Kind.PATCH and ref == ZERO_ID:
        raise MalformedEnvelope(f"an envelope of kind {kind} names no envelope")
    tag = data[2 + ID_LEN : 2 + ID_LEN + TAG_LEN]
    try:
        height, at = varint.read(data, 2 + ID_LEN + TAG_LEN)
        counter, at = varint.read(data, at)
    except ValueError as exc:
        raise MalformedEnvelope(str(exc)) from None
    if counter == 0:
        raise MalformedEnvelope("a session's counter starts at 1")
    if len(data) - SIGNATURE_LEN - at < MAC_LEN:
        raise MalformedEnvelope("no room for the box")
    return Header(kind, ref, tag, height, counter, at)


def seal(
    keys: PadKeys,
    session: SessionKeys,
    kind: int,
    ref: bytes,
    height: int,
    counter: int,
    content: bytes,
) -> bytes:
    """A session-signed envelope (§9.1).  ``counter`` must never repeat within
    the session (the nonce derives from it): the caller takes it, and writes it
    ahead, before sealing.

    Raises:
        ReadOnlyKeys: ``keys`` come from a view link.
        ValueError: a kind that is not session-signed, a bad ref, a counter of 0,
            or numbers outside 64 bits.
    """
    keys.require_sign_seed(f"seal an envelope of kind {kind}")
    if kind not in SIGNED_KINDS:
        raise ValueError(f"kind {kind} is not session-signed")
    if len(ref) != ID_LEN or (kind != Kind.PATCH and ref == ZERO_ID):
        raise ValueError("ref must be a 32-byte id (zero only for a genesis patch)")
    if counter < 1:
        raise ValueError("a session's counter starts at 1")
    head = bytearray((VERSION, kind))
    head += ref + session.tag
    varint.write(head, height)
    varint.write(head, counter)
    backend = get_backend()
    box = backend.secretbox_seal(keys.sym_key, nonce_for(session.public_key, counter), content)
    unsigned = bytes(head) + box
    return unsigned + backend.sign(session.seed, _ENV + keys.channel_id + unsigned)


def verify(data: bytes, session_key: bytes, channel_id: bytes) -> Header:
    """The relay's check of a session-signed envelope: layout and signature.

    Raises:
        MalformedEnvelope: see :func:`parse`; or a tag that is not ``session_key``'s.
        BadSessionSignature: not signed by ``session_key`` for this channel.
    """
    header = parse(data)
    if header.tag != session_tag(session_key):
        raise MalformedEnvelope("the envelope's tag names another session")
    if not _signed(data, session_key, _ENV, channel_id):
        raise BadSessionSignature("not signed by the session it names")
    return header


@dataclass(frozen=True)
class Opened:
    """An opened session-signed envelope."""

    header: Header
    content: bytes
    session: SessionRecord


def open_envelope(keys: PadKeys, data: bytes, session: SessionRecord) -> Opened:
    """A client's check: :func:`verify` under ``session`` (its record opened
    with :func:`open_session_record`), then decryption.

    Raises:
        MalformedEnvelope, BadSessionSignature: as :func:`verify`.
        DecryptionFailed: not sealed with this pad's key.
    """
    header = verify(data, session.session_key, keys.channel_id)
    nonce = nonce_for(session.session_key, header.counter)
    box = data[header.box_start : -SIGNATURE_LEN]
    return Opened(header, get_backend().secretbox_open(keys.sym_key, nonce, box), session)


@dataclass(frozen=True)
class PadRecord:
    """An opened pad record (§9.2): what the pad is, since when, kept how."""

    doctype: int  # 1 text, 2 JSON
    created_ms: int
    keep_pct: int  # retention (§10.5): older checkpoints within this % of the newest
    every_keep: tuple[tuple[int, int], ...]  # (every_s, keep_s) checkpoint rules


def seal_pad_record(
    keys: PadKeys,
    doctype: int,
    created_ms: int,
    keep_pct: int = 100,
    every_keep: tuple[tuple[int, int], ...] = (),
    *,
    random: RandomFn = default_random,
) -> bytes:
    """The record CREATE registers (§9.2): the verify key, the hash of the
    read token, and sealed inside, the document type and the retention.

    Raises:
        ReadOnlyKeys: ``keys`` come from a view link.
        ValueError: a doctype outside 0..255, or numbers outside 64 bits.
    """
    seed = keys.require_sign_seed("create a pad")
    if not 0 <= doctype < 256:
        raise ValueError("a document type is one byte")
    content = bytearray((doctype,))
    for value in (created_ms, keep_pct, len(every_keep)):
        varint.write(content, value)
    for every_s, keep_s in every_keep:
        varint.write(content, every_s)
        varint.write(content, keep_s)
    nonce = draw_nonce(random)
    backend = get_backend()
    token_hash = keys.read_token_hash
    unsigned = bytes((VERSION, PAD)) + keys.verify_key + token_hash + nonce
    unsigned += backend.secretbox_seal(keys.sym_key, nonce, bytes(content))
    return unsigned + backend.sign(seed, _PAD + keys.channel_id + unsigned)


def verify_pad_record(data: bytes, channel_id: bytes) -> tuple[bytes, bytes]:
    """The relay's check of CREATE's record: layout, a verify key that hashes
    to ``channel_id``, its signature.

    Returns:
        The verify key and the read token's hash, for the relay to keep.

    Raises:
        MalformedEnvelope: not a version-2 pad record.
        BadChannelSignature: a verify key of another channel, or a bad signature.
    """
    if len(data) < _PAD_MIN or data[0] != VERSION or data[1] != PAD:
        raise MalformedEnvelope("not a version-2 pad record")
    verify_key, token_hash = data[2 : 2 + KEY_LEN], data[2 + KEY_LEN : 2 + 2 * KEY_LEN]
    if channel_id_for(verify_key) != channel_id:
        raise BadChannelSignature("the pad record's verify key is another channel's")
    if not _signed(data, verify_key, _PAD, channel_id):
        raise BadChannelSignature("pad record not signed by the channel key")
    return verify_key, token_hash


def open_pad_record(keys: PadKeys, data: bytes) -> PadRecord:
    """A client's check of the pad record: the relay's, the read token it
    registers, then the content.

    Raises:
        MalformedEnvelope, BadChannelSignature: as :func:`verify_pad_record`, or
            a read token hash that is not this link's, or a content that does
            not parse.
        DecryptionFailed: not sealed with this pad's key.
    """
    verify_key, token_hash = verify_pad_record(data, keys.channel_id)
    if verify_key != keys.verify_key or token_hash != keys.read_token_hash:
        raise MalformedEnvelope("the pad record registers another link's read token")
    start = 2 + 2 * KEY_LEN
    content = get_backend().secretbox_open(
        keys.sym_key, data[start : start + NONCE_LEN], data[start + NONCE_LEN : -SIGNATURE_LEN]
    )
    try:
        if not content:
            raise ValueError("empty pad record content")
        created_ms, at = varint.read(content, 1)
        keep_pct, at = varint.read(content, at)
        count, at = varint.read(content, at)
        rules: list[tuple[int, int]] = []
        for _ in range(count):
            every_s, at = varint.read(content, at)
            keep_s, at = varint.read(content, at)
            rules.append((every_s, keep_s))
        if at != len(content):
            raise ValueError("bytes after the pad record's retention")
    except ValueError as exc:
        raise MalformedEnvelope(str(exc)) from None
    return PadRecord(content[0], created_ms, keep_pct, tuple(rules))

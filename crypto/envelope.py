"""Sealed envelopes, v1: the bytes a relay stores and broadcasts.

Theory of operation
-------------------
An envelope is a clear 70-byte header, an encrypted body and (for every kind
but ephemeral) a channel signature. All integers are big-endian::

    offset      size      field
    0           1         version = 0x01
    1           1         kind: 0x01 patch, 0x02 snapshot, 0x03 ephemeral, 0x04 trim
    2           32        channel_id
    34          32        ref: patch -> parent id (32 zero bytes = genesis);
                               snapshot, trim -> id of the patch X (never zero);
                               ephemeral -> 32 zero bytes
    66          4         body_len (u32)
    70          body_len  body = nonce (24 random bytes) || secretbox(sym_key, nonce, inner)
    70+body_len 64        Ed25519(sign_seed) over bytes [0, 70+body_len); absent for ephemerals

The header holds only what the relay needs to route, order and authorise a
write, and the channel signature covers header and body together, so a
relay (or anyone without the edit secret) cannot move a ciphertext under
another header. The id of an envelope is SHA-256 of all its bytes; the
chain names parents by it. It is a hash of ciphertext under a random nonce,
so it reveals nothing about the plaintext (CryptPad's checkpoint ids were an
unkeyed hash of the plaintext).

The inner plaintext is ``author_key (32) || author_sig (64) || name_len (1)
|| name (UTF-8, <= 64) || content``, where ``author_sig`` is the author's
Ed25519 signature over ``b"blindpad/v1/author" || kind || channel_id || ref
|| name_len || name || content``. Because it covers channel and ref, an
editor who re-seals someone's inner under another parent or channel is
caught (:class:`~crypto.errors.BadAuthorSignature`). For ephemerals the
content is ``session_id (16) || counter (u64) || sender_time_ms (u64) ||
payload``; they carry no channel signature so view-link holders can send
presence, and are authenticated by the secretbox and the author signature.

:func:`open_envelope` checks, in this order, and raises the first failure: layout
(:class:`~crypto.errors.MalformedEnvelope`), channel
(:class:`~crypto.errors.WrongChannel`), channel signature
(:class:`~crypto.errors.BadChannelSignature`), decryption
(:class:`~crypto.errors.DecryptionFailed`), inner layout, author signature
(:class:`~crypto.errors.BadAuthorSignature`). The relay uses only
:func:`parse_header`, :func:`verify_channel_signature` and
:func:`envelope_id`.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from .backend import RandomFn, default_random, get_backend
from .errors import (
    BadAuthorSignature,
    BadChannelSignature,
    MalformedEnvelope,
    WrongChannel,
)
from .identity import Author, check_name
from .keys import PadKeys
from .sessions import SESSION_ID_LEN, Session

VERSION = 1
HEADER_LEN = 70
SIGNATURE_LEN = 64
NONCE_LEN = 24
MAC_LEN = 16
ID_LEN = 32
ZERO_ID = bytes(ID_LEN)
MAX_NAME_BYTES = 64
INNER_MIN_LEN = 32 + 64 + 1
BODY_MIN_LEN = NONCE_LEN + MAC_LEN + INNER_MIN_LEN
EPHEMERAL_PREFIX_LEN = SESSION_ID_LEN + 8 + 8
_HEADER = struct.Struct(">BB32s32sI")
_EPHEMERAL = struct.Struct(">16sQQ")
_AUTHOR_LABEL = b"blindpad/v1/author"
_U64_MAX = 2**64 - 1


class Kind(enum.IntEnum):
    """What an envelope carries (the header's kind byte)."""

    PATCH = 1
    SNAPSHOT = 2
    EPHEMERAL = 3
    TRIM = 4
    DISPUTE = 8  # an editor's signed claim that a snapshot (ref) is not the text at its patch


@dataclass(frozen=True)
class Header:
    """The clear 70-byte header of an envelope."""

    version: int
    kind: Kind
    channel_id: bytes
    ref: bytes
    body_len: int

    @property
    def signed(self) -> bool:
        """Whether envelopes of this kind carry a channel signature."""
        return self.kind is not Kind.EPHEMERAL

    @property
    def total_len(self) -> int:
        """The exact length of the whole envelope this header announces."""
        return HEADER_LEN + self.body_len + (SIGNATURE_LEN if self.signed else 0)


@dataclass(frozen=True)
class Opened:
    """A verified, decrypted envelope."""

    header: Header
    id: bytes
    author_key: bytes
    author_name: str
    content: bytes

    @property
    def kind(self) -> Kind:
        """The envelope's kind."""
        return self.header.kind

    @property
    def ref(self) -> bytes:
        """The parent id (patch) or the id of patch X (snapshot, trim)."""
        return self.header.ref


@dataclass(frozen=True)
class Ephemeral:
    """A verified, decrypted ephemeral message (not yet checked for replay)."""

    author_key: bytes
    author_name: str
    session_id: bytes
    counter: int
    sender_time_ms: int
    payload: bytes


def parse_header(data: bytes) -> Header:
    """Parse and validate an envelope's header against the envelope's length.

    Args:
        data: a whole sealed envelope.

    Returns:
        Its header.

    Raises:
        MalformedEnvelope: too short, unknown version or kind, a reference not
            allowed for the kind, a body too short to hold nonce, MAC and inner,
            or a total length other than the header announces.
    """
    if len(data) < HEADER_LEN:
        raise MalformedEnvelope(f"envelope is {len(data)} bytes, shorter than the 70-byte header")
    version, kind_byte, channel_id, ref, body_len = _HEADER.unpack_from(data)
    if version != VERSION:
        raise MalformedEnvelope(f"unknown envelope version {version} (this code reads 1)")
    try:
        kind = Kind(kind_byte)
    except ValueError:
        raise MalformedEnvelope(f"unknown envelope kind 0x{kind_byte:02x}") from None
    header = Header(VERSION, kind, channel_id, ref, body_len)
    _check_ref(kind, ref)
    if body_len < BODY_MIN_LEN:
        raise MalformedEnvelope(f"body_len {body_len} is below the minimum {BODY_MIN_LEN}")
    if len(data) != header.total_len:
        raise MalformedEnvelope(
            f"envelope is {len(data)} bytes but its header announces {header.total_len}"
        )
    return header


def _check_ref(kind: Kind, ref: bytes) -> None:
    if kind is Kind.EPHEMERAL and ref != ZERO_ID:
        raise MalformedEnvelope("an ephemeral's ref must be 32 zero bytes")
    if kind in (Kind.SNAPSHOT, Kind.TRIM, Kind.DISPUTE) and ref == ZERO_ID:
        raise MalformedEnvelope(f"a {kind.name.lower()} must name a patch, not genesis")


def envelope_id(data: bytes) -> bytes:
    """Return the id of a sealed envelope: SHA-256 of all its bytes.

    Args:
        data: the sealed envelope (not checked here).

    Returns:
        32 bytes.
    """
    return hashlib.sha256(data).digest()


def verify_channel_signature(data: bytes, verify_key: bytes, header: Header | None = None) -> None:
    """Check an envelope's channel signature, as the relay does before storing it.

    The caller must also check ``channel_id_for(verify_key) == header.channel_id``
    (:func:`open_envelope` does; the relay registers the key for the channel).

    Args:
        data: the sealed envelope.
        verify_key: the channel's 32-byte Ed25519 verify key.
        header: ``parse_header(data)``, if the caller has it already.

    Raises:
        MalformedEnvelope: the layout is invalid, or the envelope is an
            ephemeral (ephemerals carry no channel signature).
        BadChannelSignature: the signature does not verify.
    """
    if header is None:
        header = parse_header(data)
    if not header.signed:
        raise MalformedEnvelope("ephemerals carry no channel signature")
    end = HEADER_LEN + header.body_len
    if len(verify_key) != 32 or not get_backend().verify(verify_key, data[:end], data[end:]):
        raise BadChannelSignature(
            f"channel signature of this {header.kind.name.lower()} does not verify"
        )


def _author_message(kind: Kind, channel_id: bytes, ref: bytes, name: bytes, body: bytes) -> bytes:
    parts = (_AUTHOR_LABEL, bytes((kind,)), channel_id, ref, bytes((len(name),)), name, body)
    return b"".join(parts)


def signed_inner(
    author: Author, kind: Kind, channel_id: bytes, ref: bytes, content: bytes
) -> bytes:
    """Return the inner plaintext: author key, author signature, name, content.

    Args:
        author: the signing author.
        kind: the envelope kind the signature binds.
        channel_id: the channel the signature binds.
        ref: the parent (or patch X) id the signature binds.
        content: the content.

    Returns:
        ``author_key || author_sig || name_len || name || content``.

    Raises:
        InvalidIdentity: the author's name is longer than 64 bytes of UTF-8.
    """
    name = check_name(author.name)
    signed = _author_message(kind, channel_id, ref, name, content)
    author_sig = get_backend().sign(author.seed, signed)
    return b"".join((author.public_key, author_sig, bytes((len(name),)), name, content))


def draw_nonce(random: RandomFn) -> bytes:
    """A fresh 24-byte nonce from ``random``.

    Raises:
        ValueError: ``random`` returned the wrong number of bytes.
    """
    nonce = random(NONCE_LEN)
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"random({NONCE_LEN}) returned {len(nonce)} bytes")
    return nonce


def assemble(
    keys: PadKeys, kind: Kind, ref: bytes, inner: bytes, *, random: RandomFn = default_random
) -> bytes:
    """Encrypt an inner plaintext and frame it: header, body and (unless ephemeral) signature.

    The low-level half of :func:`seal`; tests use it to build hostile envelopes
    (forged or re-wrapped inners) that only an editor could make.

    Args:
        keys: the pad's keys (edit form unless ``kind`` is ephemeral).
        kind: the envelope kind.
        ref: the header's 32-byte reference.
        inner: the inner plaintext (see :func:`signed_inner`).
        random: source of the 24-byte nonce.

    Returns:
        The sealed envelope.

    Raises:
        ReadOnlyKeys: a signed kind with view-form keys.
        ValueError: ``random`` returned the wrong number of bytes.
    """
    nonce = draw_nonce(random)
    body = nonce + get_backend().secretbox_seal(keys.sym_key, nonce, inner)
    unsigned = _HEADER.pack(VERSION, kind, keys.channel_id, ref, len(body)) + body
    if kind is Kind.EPHEMERAL:
        return unsigned
    seed = keys.require_sign_seed(f"seal a {kind.name.lower()}")
    return unsigned + get_backend().sign(seed, unsigned)


def _check_ref_arg(kind: Kind, ref: bytes) -> None:
    if not isinstance(ref, bytes) or len(ref) != ID_LEN:
        raise ValueError("ref must be a 32-byte id")
    try:
        _check_ref(kind, ref)
    except MalformedEnvelope as exc:
        raise ValueError(str(exc)) from None


def seal(
    keys: PadKeys,
    author: Author,
    kind: Kind,
    ref: bytes,
    content: bytes,
    *,
    random: RandomFn = default_random,
) -> bytes:
    """Seal a patch, snapshot or trim: encrypt, sign as author, sign as channel.

    Args:
        keys: the pad's keys, in edit form.
        author: the signing author.
        kind: :attr:`Kind.PATCH`, :attr:`Kind.SNAPSHOT` or :attr:`Kind.TRIM`.
        ref: the parent id (patch; :data:`ZERO_ID` for genesis) or the id of
            patch X (snapshot, trim).
        content: the plaintext (the chain engine's serialised patch or text).
        random: source of the 24-byte nonce.

    Returns:
        The sealed envelope; its id is :func:`envelope_id` of it.

    Raises:
        ReadOnlyKeys: ``keys`` come from a view link.
        ValueError: ``kind`` is ephemeral (use :func:`seal_ephemeral`), or ``ref``
            is not 32 bytes or not allowed for ``kind``.

    Example:
        >>> sealed = seal(keys, author, Kind.PATCH, ZERO_ID, b"hello")  # doctest: +SKIP
    """
    kind = Kind(kind)
    if kind is Kind.EPHEMERAL:
        raise ValueError("use seal_ephemeral() for ephemeral messages")
    keys.require_sign_seed(f"seal a {kind.name.lower()}")
    _check_ref_arg(kind, ref)
    inner = signed_inner(author, kind, keys.channel_id, ref, bytes(content))
    return assemble(keys, kind, ref, inner, random=random)


def seal_ephemeral(
    keys: PadKeys,
    author: Author,
    session: Session,
    payload: bytes,
    *,
    now_ms: int,
    random: RandomFn = default_random,
) -> bytes:
    """Seal an ephemeral (presence, cursor, head announcement); view keys suffice.

    Advances ``session``'s counter.

    Args:
        keys: the pad's keys, edit or view form.
        author: the signing author.
        session: the sending session.
        payload: the plaintext payload.
        now_ms: the sender's clock in milliseconds.
        random: source of the 24-byte nonce.

    Returns:
        The sealed envelope (no channel signature).

    Raises:
        ValueError: ``now_ms`` is not a u64.
    """
    if not 0 <= now_ms <= _U64_MAX:
        raise ValueError("now_ms must fit in an unsigned 64-bit integer")
    prefix = _EPHEMERAL.pack(session.session_id, session.next_counter(), now_ms)
    inner = signed_inner(author, Kind.EPHEMERAL, keys.channel_id, ZERO_ID, prefix + bytes(payload))
    return assemble(keys, Kind.EPHEMERAL, ZERO_ID, inner, random=random)


def open_envelope(keys: PadKeys, data: bytes) -> Opened:
    """Verify and decrypt any envelope.

    Args:
        keys: the pad's keys (view form is enough).
        data: the sealed envelope.

    Returns:
        The opened envelope.

    Raises:
        MalformedEnvelope: the envelope or its inner does not follow the layout.
        WrongChannel: the envelope belongs to another channel.
        BadChannelSignature: the channel signature does not verify.
        DecryptionFailed: the secretbox does not open.
        BadAuthorSignature: the author signature does not cover this envelope's
            kind, channel, ref, name and content.
    """
    data = bytes(data)
    header = parse_header(data)
    if header.channel_id != keys.channel_id:
        raise WrongChannel(
            f"envelope is for channel {header.channel_id.hex()[:16]}..., "
            f"these keys open {keys.channel_id.hex()[:16]}..."
        )
    if header.signed:
        verify_channel_signature(data, keys.verify_key)
    body = data[HEADER_LEN : HEADER_LEN + header.body_len]
    inner = get_backend().secretbox_open(keys.sym_key, body[:NONCE_LEN], body[NONCE_LEN:])
    author_key, name, content = _open_inner(header, inner)
    return Opened(header, envelope_id(data), author_key, name, content)


def _open_inner(header: Header, inner: bytes) -> tuple[bytes, str, bytes]:
    if len(inner) < INNER_MIN_LEN:
        raise MalformedEnvelope(f"inner is {len(inner)} bytes, below the minimum {INNER_MIN_LEN}")
    author_key, author_sig, name_len = inner[:32], inner[32:96], inner[96]
    if name_len > MAX_NAME_BYTES or len(inner) < INNER_MIN_LEN + name_len:
        raise MalformedEnvelope(f"inner name length {name_len} is invalid")
    name = inner[97 : 97 + name_len]
    content = inner[97 + name_len :]
    signed = _author_message(header.kind, header.channel_id, header.ref, name, content)
    if not get_backend().verify(author_key, signed, author_sig):
        raise BadAuthorSignature(
            f"author signature does not cover this {header.kind.name.lower()}: forged "
            "author, or an inner re-sealed under another parent or channel"
        )
    try:
        return author_key, name.decode("utf-8"), content
    except UnicodeDecodeError:
        raise MalformedEnvelope("author name is not valid UTF-8") from None


def open_ephemeral(keys: PadKeys, data: bytes) -> Ephemeral:
    """Verify, decrypt and decode an ephemeral message.

    Feed the result to :meth:`crypto.sessions.EphemeralGuard.check` to reject
    replays.

    Args:
        keys: the pad's keys (view form is enough).
        data: the sealed envelope.

    Returns:
        The decoded ephemeral.

    Raises:
        MalformedEnvelope: not an ephemeral, or its content is shorter than the
            32-byte session prefix; and everything :func:`open_envelope` raises.
    """
    opened = open_envelope(keys, data)
    if opened.kind is not Kind.EPHEMERAL:
        raise MalformedEnvelope(f"expected an ephemeral, got a {opened.kind.name.lower()}")
    if len(opened.content) < EPHEMERAL_PREFIX_LEN:
        raise MalformedEnvelope("ephemeral content is shorter than its 32-byte session prefix")
    session_id, counter, sent = _EPHEMERAL.unpack_from(opened.content)
    payload = opened.content[EPHEMERAL_PREFIX_LEN:]
    return Ephemeral(opened.author_key, opened.author_name, session_id, counter, sent, payload)

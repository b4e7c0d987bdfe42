"""Pad keys: what an edit secret derives, and what a view link keeps.

Theory of operation
-------------------
A pad is born from a 32-byte random **edit secret** ``S``. Everything else is
derived from it with domain separation, using only stdlib :mod:`hmac` and
:mod:`hashlib` (Pyodide has no pbkdf2/scrypt, and none is needed: ``S`` is
uniformly random, not a password)::

    sign_seed  = HMAC-SHA256(key=S, msg=b"blindpad/v1/sign")       Ed25519 seed
    sym_key    = HMAC-SHA256(key=S, msg=b"blindpad/v1/secretbox")  secretbox key
    verify_key = Ed25519 public key of sign_seed                    (32 bytes)
    channel_id = SHA-256(b"blindpad/v1/channel" || verify_key)      (32 bytes)
    read_token = HMAC-SHA256(key=sym_key, msg=b"blindpad/v2/read")   proof of the view secret

The channel id is a hash of the verify key, so the relay can check that a
writer's key belongs to the channel it writes to and nobody can squat a
channel with another key. An **edit link** carries ``S``; a **view link**
carries ``sym_key || verify_key``: enough to decrypt and verify every
envelope, nothing to sign one with. A reader therefore takes the verify key
from its link, never from the relay (CryptPad's view-only clients took it
from server metadata).  The **read token** proves to the relay that a client
holds a link (edit or view): the relay keeps only its SHA-256, registered
when the pad is created, and serves nothing of the pad without it, so the
channel id alone (which appears in HTTP paths and logs) reads nothing.

:class:`PadKeys` holds either form; ``can_write`` tells them apart and
:meth:`PadKeys.view` drops the signing half.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .backend import RandomFn, default_random, get_backend
from .errors import ReadOnlyKeys

SECRET_LEN = 32
KEY_LEN = 32
CHANNEL_ID_LEN = 32

_SIGN_LABEL = b"blindpad/v1/sign"
_BOX_LABEL = b"blindpad/v1/secretbox"
_CHANNEL_LABEL = b"blindpad/v1/channel"


def _require_len(name: str, value: bytes, length: int) -> None:
    if not isinstance(value, bytes) or len(value) != length:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ValueError(f"{name} must be {length} bytes, got {got}")


def channel_id_for(verify_key: bytes) -> bytes:
    """Return the channel id of a channel verify key.

    Args:
        verify_key: the channel's 32-byte Ed25519 public key.

    Returns:
        ``SHA-256(b"blindpad/v1/channel" || verify_key)``, 32 bytes.

    Raises:
        ValueError: ``verify_key`` is not 32 bytes.

    Example:
        >>> channel_id_for(bytes(32)).hex()[:16]
        'fe041cfa1edd5ddd'
    """
    _require_len("verify_key", verify_key, KEY_LEN)
    return hashlib.sha256(_CHANNEL_LABEL + verify_key).digest()


def derive_sign_seed(edit_secret: bytes) -> bytes:
    """Return the channel's Ed25519 seed, ``HMAC-SHA256(S, b"blindpad/v1/sign")``.

    Args:
        edit_secret: the pad's 32-byte edit secret.

    Returns:
        32 bytes.

    Raises:
        ValueError: ``edit_secret`` is not 32 bytes.
    """
    _require_len("edit_secret", edit_secret, SECRET_LEN)
    return hmac.new(edit_secret, _SIGN_LABEL, hashlib.sha256).digest()


def derive_sym_key(edit_secret: bytes) -> bytes:
    """Return the secretbox key, ``HMAC-SHA256(S, b"blindpad/v1/secretbox")``.

    Args:
        edit_secret: the pad's 32-byte edit secret.

    Returns:
        32 bytes.

    Raises:
        ValueError: ``edit_secret`` is not 32 bytes.
    """
    _require_len("edit_secret", edit_secret, SECRET_LEN)
    return hmac.new(edit_secret, _BOX_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class PadKeys:
    """The keys of one pad, in edit form (with ``edit_secret``) or view form.

    Build with :meth:`generate`, :meth:`from_edit_secret` or :meth:`from_view`,
    not with the constructor.
    """

    sym_key: bytes = field(repr=False)
    verify_key: bytes
    channel_id: bytes
    edit_secret: bytes | None = field(default=None, repr=False)
    sign_seed: bytes | None = field(default=None, repr=False)

    @classmethod
    def generate(cls, *, random: RandomFn = default_random) -> PadKeys:
        """Return the keys of a brand-new pad.

        Args:
            random: source of the 32-byte edit secret.

        Returns:
            Edit-form keys.
        """
        return cls.from_edit_secret(random(SECRET_LEN))

    @classmethod
    def from_edit_secret(cls, edit_secret: bytes) -> PadKeys:
        """Derive every key of a pad from its edit secret.

        Args:
            edit_secret: 32 bytes.

        Returns:
            Edit-form keys.

        Raises:
            ValueError: ``edit_secret`` is not 32 bytes.
        """
        seed = derive_sign_seed(edit_secret)
        verify_key = get_backend().public_key(seed)
        return cls(
            sym_key=derive_sym_key(edit_secret),
            verify_key=verify_key,
            channel_id=channel_id_for(verify_key),
            edit_secret=edit_secret,
            sign_seed=seed,
        )

    @classmethod
    def from_view(cls, sym_key: bytes, verify_key: bytes) -> PadKeys:
        """Return view-form keys (read and verify, never sign).

        Args:
            sym_key: the 32-byte secretbox key.
            verify_key: the 32-byte channel verify key.

        Returns:
            View-form keys; their channel id is derived from ``verify_key``.

        Raises:
            ValueError: a key is not 32 bytes.
        """
        _require_len("sym_key", sym_key, KEY_LEN)
        return cls(sym_key=sym_key, verify_key=verify_key, channel_id=channel_id_for(verify_key))

    @property
    def read_token(self) -> bytes:
        """``HMAC-SHA256(sym_key, b"blindpad/v2/read")``: shows the relay a link is held."""
        return hmac.new(self.sym_key, b"blindpad/v2/read", hashlib.sha256).digest()

    @property
    def read_token_hash(self) -> bytes:
        """``SHA-256(read_token)``: what the relay keeps to check it."""
        return hashlib.sha256(self.read_token).digest()

    @property
    def can_write(self) -> bool:
        """Whether these keys can sign patches, snapshots and trims."""
        return self.sign_seed is not None

    def view(self) -> PadKeys:
        """Return the view form of these keys (drops the edit secret and seed)."""
        return PadKeys.from_view(self.sym_key, self.verify_key)

    def require_sign_seed(self, what: str) -> bytes:
        """Return the channel signing seed, or explain why there is none.

        Args:
            what: the attempted action, for the error message.

        Returns:
            The 32-byte Ed25519 seed.

        Raises:
            ReadOnlyKeys: these are view-link keys.
        """
        if self.sign_seed is None:
            raise ReadOnlyKeys(
                f"cannot {what}: these keys come from a view link, which can read and send "
                "presence but never write; use the pad's edit link"
            )
        return self.sign_seed

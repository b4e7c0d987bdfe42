"""The PyNaCl backend (CPython). Imported only by :func:`crypto.backend.get_backend`."""

from __future__ import annotations

import os
from functools import lru_cache

import nacl.exceptions
import nacl.secret
import nacl.signing

from .errors import DecryptionFailed


@lru_cache(maxsize=32)
def _signing_key(seed: bytes) -> nacl.signing.SigningKey:
    # Expanding a seed costs a scalar multiplication; a client signs with few keys.
    return nacl.signing.SigningKey(seed)


class NaclBackend:
    """:class:`crypto.backend.Backend` over PyNaCl (libsodium's C build)."""

    name = "pynacl"

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.secretbox_seal`."""
        return bytes(nacl.secret.SecretBox(key).encrypt(plaintext, nonce).ciphertext)

    def secretbox_open(self, key: bytes, nonce: bytes, boxed: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.secretbox_open`."""
        try:
            return bytes(nacl.secret.SecretBox(key).decrypt(boxed, nonce))
        except nacl.exceptions.CryptoError as exc:
            raise DecryptionFailed("secretbox does not open with this pad's key") from exc

    def public_key(self, seed: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.public_key`."""
        return bytes(_signing_key(seed).verify_key)

    def sign(self, seed: bytes, message: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.sign`."""
        return bytes(_signing_key(seed).sign(message).signature)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """See :meth:`crypto.backend.Backend.verify`."""
        try:
            nacl.signing.VerifyKey(public_key).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
            return False
        return True

    def random_bytes(self, n: int) -> bytes:
        """See :meth:`crypto.backend.Backend.random_bytes`."""
        return os.urandom(n)

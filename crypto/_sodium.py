"""The libsodium backend for Pyodide: npm ``libsodium-wrappers`` through the JS bridge.

The host must ``await sodium.ready`` and set ``globalThis.sodium`` before
Python calls into this module. Bytes cross the bridge as fresh ``Uint8Array``
copies (``to_js``) and come back with ``.to_bytes()``; a bad MAC makes
``crypto_secretbox_open_easy`` throw, which arrives as ``JsException`` and is
re-raised as :class:`~crypto.errors.DecryptionFailed`. ``js`` and ``pyodide``
exist only under Pyodide, so they are imported through :mod:`importlib`;
``globalThis.sodium`` is bound when the first backend is made, never at
import.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from .errors import BackendUnavailable, DecryptionFailed

_ffi: Any = importlib.import_module("pyodide.ffi")
#: ``globalThis.sodium``, bound by the first :class:`SodiumBackend`, not at import:
#: the page snapshots Python's memory after importing the client, and a
#: snapshot may hold no JavaScript object (``web/app.js``).
_sodium: Any = None


def _bind() -> None:
    global _sodium
    if _sodium is None:
        _sodium = getattr(importlib.import_module("js"), "sodium", None)
    if _sodium is None:  # pragma: no cover - only reachable under a misconfigured Pyodide
        raise BackendUnavailable("globalThis.sodium is not set: load libsodium-wrappers first")


def _u8(data: bytes) -> Any:
    return _ffi.to_js(data)


@lru_cache(maxsize=32)
def _keypair(seed: bytes) -> tuple[bytes, Any]:
    pair = _sodium.crypto_sign_seed_keypair(_u8(seed))
    return pair.publicKey.to_bytes(), pair.privateKey


class SodiumBackend:
    """:class:`crypto.backend.Backend` over libsodium-wrappers (wasm) in Pyodide."""

    name = "libsodium-wrappers"

    def __init__(self) -> None:
        _bind()

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.secretbox_seal`."""
        out = _sodium.crypto_secretbox_easy(_u8(plaintext), _u8(nonce), _u8(key))
        return bytes(out.to_bytes())

    def secretbox_open(self, key: bytes, nonce: bytes, boxed: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.secretbox_open`."""
        try:
            out = _sodium.crypto_secretbox_open_easy(_u8(boxed), _u8(nonce), _u8(key))
        except _ffi.JsException as exc:
            raise DecryptionFailed("secretbox does not open with this pad's key") from exc
        return bytes(out.to_bytes())

    def public_key(self, seed: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.public_key`."""
        return _keypair(seed)[0]

    def sign(self, seed: bytes, message: bytes) -> bytes:
        """See :meth:`crypto.backend.Backend.sign`."""
        secret = _keypair(seed)[1]
        return bytes(_sodium.crypto_sign_detached(_u8(message), secret).to_bytes())

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """See :meth:`crypto.backend.Backend.verify`."""
        try:
            ok = _sodium.crypto_sign_verify_detached(_u8(signature), _u8(message), _u8(public_key))
        except _ffi.JsException:
            return False
        return bool(ok)

    def random_bytes(self, n: int) -> bytes:
        """See :meth:`crypto.backend.Backend.random_bytes`."""
        return bytes(_sodium.randombytes_buf(n).to_bytes())

"""The one seam between blindpad and a cryptographic library.

Theory of operation
-------------------
blindpad needs five primitives, all from NaCl: XSalsa20-Poly1305 secretbox
(seal and open with an explicit 24-byte nonce), Ed25519 (public key from a
32-byte seed, detached sign, detached verify) and random bytes. :class:`Backend`
is that interface and nothing more; every other module in :mod:`crypto` is
pure Python over it plus stdlib :mod:`hashlib`/:mod:`hmac`.

Two implementations exist and must give byte-identical output (Ed25519
signatures are deterministic and the nonce is an input, so the shared golden
vectors in ``tests/vectors/crypto.jsonl`` pin both):

- :mod:`crypto._nacl`: PyNaCl, on CPython;
- :mod:`crypto._sodium`: npm ``libsodium-wrappers`` through Pyodide's JS
  bridge, chosen when ``sys.platform == "emscripten"``. The host page (or
  ``tests/pyodide/run.mjs``) must ``await sodium.ready`` and expose the
  module as ``globalThis.sodium`` before Python uses it.

Neither is imported by ``import crypto``: :func:`get_backend` picks and loads
one on first use and caches it.

``secretbox_seal`` returns MAC || ciphertext without the nonce (PyNaCl's
``SecretBox.encrypt(m, n).ciphertext``, libsodium's ``crypto_secretbox_easy``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol

from .errors import BackendUnavailable

RandomFn = Callable[[int], bytes]
"""A source of randomness: ``random(n)`` returns ``n`` bytes."""


class Backend(Protocol):
    """The primitives blindpad needs. Lengths are checked by callers."""

    name: str

    def secretbox_seal(self, key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
        """Encrypt and authenticate; return MAC (16) || ciphertext."""
        ...

    def secretbox_open(self, key: bytes, nonce: bytes, boxed: bytes) -> bytes:
        """Verify and decrypt MAC || ciphertext; raise ``DecryptionFailed``."""
        ...

    def public_key(self, seed: bytes) -> bytes:
        """Return the 32-byte Ed25519 public key of a 32-byte seed."""
        ...

    def sign(self, seed: bytes, message: bytes) -> bytes:
        """Return the 64-byte detached Ed25519 signature of ``message``."""
        ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is valid for ``message`` under ``public_key``."""
        ...

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` cryptographically secure random bytes."""
        ...


_backend: Backend | None = None


def get_backend() -> Backend:
    """Return the process-wide backend, loading it on first use.

    Returns:
        The libsodium bridge under Pyodide (``sys.platform == "emscripten"``),
        PyNaCl everywhere else.

    Raises:
        BackendUnavailable: the library for this platform cannot be imported.
    """
    global _backend
    if _backend is None:
        _backend = _load()
    return _backend


def _load() -> Backend:
    try:
        if sys.platform == "emscripten":
            from ._sodium import SodiumBackend

            return SodiumBackend()
        from ._nacl import NaclBackend

        return NaclBackend()
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise BackendUnavailable(f"no cryptographic backend for {sys.platform}: {exc}") from exc


def default_random(n: int) -> bytes:
    """Return ``n`` random bytes from the current backend (the default ``random``).

    Args:
        n: how many bytes.

    Returns:
        ``n`` bytes from the platform's secure generator.
    """
    return get_backend().random_bytes(n)

"""Author identities: a personal Ed25519 key pair and a display name.

Theory of operation
-------------------
Every user signs the inner (encrypted) part of each envelope with a personal
Ed25519 key, separate from the pad's channel key. Editors all share the
channel key, so only the author signature tells them apart: it covers the
kind, channel id, reference (parent), display name and content, so an editor
can neither forge another editor's patch nor replay someone's signed patch
under another parent. The relay never sees an author key (it is inside the
ciphertext).

An :class:`Author` is generated on first use and kept by the caller: the
SDK/CLI in a user config directory, the browser in local storage. Both store
the string from :meth:`Author.to_json` and load it with
:meth:`Author.from_json`. That string holds the private seed, so treat it
like a password file. The display name travels inside every envelope; it is
at most 64 bytes of UTF-8.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from .backend import RandomFn, default_random, get_backend
from .errors import InvalidIdentity

SEED_LEN = 32
MAX_NAME_BYTES = 64
_FORMAT = "blindpad-author-v1"


def check_name(name: str) -> bytes:
    """Return the UTF-8 form of a display name, checking its length.

    Args:
        name: the display name.

    Returns:
        Its UTF-8 bytes (at most 64).

    Raises:
        InvalidIdentity: the name is not a string, or is longer than 64 bytes in UTF-8.
    """
    if not isinstance(name, str):
        raise InvalidIdentity(f"display name must be a str, got {type(name).__name__}")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidIdentity("display name is not encodable as UTF-8 (lone surrogate?)") from exc
    if len(raw) > MAX_NAME_BYTES:
        raise InvalidIdentity(
            f"display name is {len(raw)} bytes in UTF-8; at most {MAX_NAME_BYTES} allowed"
        )
    return raw


@dataclass(frozen=True)
class Author:
    """A user's signing identity. Build with :meth:`generate` or :meth:`from_seed`."""

    seed: bytes = field(repr=False)
    name: str
    public_key: bytes

    @classmethod
    def generate(cls, name: str, *, random: RandomFn = default_random) -> Author:
        """Return a fresh identity.

        Args:
            name: display name, at most 64 bytes of UTF-8.
            random: source of the 32-byte Ed25519 seed.

        Returns:
            The new author.

        Raises:
            InvalidIdentity: the name is too long.
        """
        return cls.from_seed(random(SEED_LEN), name)

    @classmethod
    def from_seed(cls, seed: bytes, name: str) -> Author:
        """Rebuild an identity from its seed.

        Args:
            seed: the 32-byte Ed25519 seed.
            name: display name, at most 64 bytes of UTF-8.

        Returns:
            The author.

        Raises:
            InvalidIdentity: the seed is not 32 bytes or the name is too long.
        """
        if not isinstance(seed, bytes) or len(seed) != SEED_LEN:
            raise InvalidIdentity(f"author seed must be {SEED_LEN} bytes")
        check_name(name)
        return cls(seed=seed, name=name, public_key=get_backend().public_key(seed))

    def renamed(self, name: str) -> Author:
        """Return the same key pair under another display name.

        Args:
            name: the new display name.

        Returns:
            A new :class:`Author`.

        Raises:
            InvalidIdentity: the name is too long.
        """
        return Author.from_seed(self.seed, name)

    def to_json(self) -> str:
        """Serialise this identity (private seed included) for local storage.

        Returns:
            A JSON object ``{"format": "blindpad-author-v1", "seed": <base64url>,
            "name": <str>}``.
        """
        seed = base64.urlsafe_b64encode(self.seed).rstrip(b"=").decode("ascii")
        return json.dumps({"format": _FORMAT, "seed": seed, "name": self.name})

    @classmethod
    def from_json(cls, text: str) -> Author:
        """Load an identity written by :meth:`to_json`.

        Args:
            text: the stored JSON.

        Returns:
            The author.

        Raises:
            InvalidIdentity: the text is not a v1 identity (message says why).
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidIdentity(f"stored identity is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise InvalidIdentity(f"stored identity is not in format {_FORMAT!r}")
        seed_text, name = data.get("seed"), data.get("name")
        if not isinstance(seed_text, str) or not isinstance(name, str):
            raise InvalidIdentity("stored identity lacks a string 'seed' and 'name'")
        try:
            padded = seed_text + "=" * (-len(seed_text) % 4)
            seed = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidIdentity("stored identity seed is not base64url") from exc
        return cls.from_seed(seed, name)

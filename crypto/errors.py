"""Errors raised by :mod:`crypto`.

Every error is a :class:`CryptoError`. The tree::

    CryptoError
    ├── InvalidLink            a pad link is damaged, truncated or mistyped (message says where)
    ├── InvalidIdentity        a stored author identity cannot be loaded
    ├── ReadOnlyKeys           sealing a patch, snapshot or trim with view-link keys (misuse)
    ├── BackendUnavailable     no cryptographic backend could be loaded
    └── IntegrityError         inbound bytes failed a check: never retry, never swallow
        ├── MalformedEnvelope  bad length, version, kind, reference or inner layout
        ├── WrongChannel       the envelope names another channel than the keys in hand
        ├── BadChannelSignature  the channel (pad) signature does not verify
        ├── DecryptionFailed   the secretbox does not open (wrong key, altered ciphertext)
        ├── BadAuthorSignature the author signature does not cover (kind, channel, ref,
        │                      name, content): a forged author, or someone's signed inner
        │                      re-wrapped under another parent or channel by an editor
        ├── BadSessionSignature  a version-2 envelope not signed by the session it names
        └── ReplayedEphemeral  an ephemeral whose (author, session) counter did not increase
            └── StaleEphemeral an ephemeral older than the presence timeout

Blame follows the entry point, as in h11: :class:`IntegrityError` and its
subclasses always describe bytes that came from elsewhere (the relay, a
peer); :class:`ReadOnlyKeys` describes local misuse. A client treats any
:class:`IntegrityError` on a stored patch as a deterministic no-op plus an
alarm (DESIGN.md, "An invalid patch never bricks a pad").

A note on "wrong parent binding": the author signature covers the parent id,
so an editor who decrypts someone's patch and re-seals its signed inner under
another parent (or another channel they can write) produces an envelope whose
channel signature and secretbox are valid but whose author signature is not.
Cryptographically that is indistinguishable from a forged author signature,
so both raise :class:`BadAuthorSignature`; :data:`WrongParentBinding` is
the same class under the name the design uses for that case.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Root of every error raised by :mod:`crypto`."""


class InvalidLink(CryptoError, ValueError):
    """A pad link could not be parsed; the message names what is wrong."""


class InvalidIdentity(CryptoError, ValueError):
    """A serialised author identity is damaged or of an unknown version."""


class ReadOnlyKeys(CryptoError):
    """A write (patch, snapshot, trim) was attempted with view-only keys."""


class BackendUnavailable(CryptoError):
    """Neither PyNaCl nor the libsodium bridge could be loaded."""


class IntegrityError(CryptoError):
    """Inbound bytes failed an integrity check; never retried, never swallowed."""


class MalformedEnvelope(IntegrityError):
    """The envelope (or its decrypted inner) does not follow the v1 layout."""


class WrongChannel(IntegrityError):
    """The envelope's clear channel id is not the channel of the keys in hand."""


class BadChannelSignature(IntegrityError):
    """The channel signature does not verify under the channel's verify key."""


class DecryptionFailed(IntegrityError):
    """The secretbox could not be opened with the pad's symmetric key."""


class BadAuthorSignature(IntegrityError):
    """The author signature does not bind this kind, channel, ref, name and content."""


class BadSessionSignature(IntegrityError):
    """A version-2 envelope's signature does not verify under its session's key."""


WrongParentBinding = BadAuthorSignature
"""Alias: a signed inner moved under another parent fails its author signature."""


class ReplayedEphemeral(IntegrityError):
    """An ephemeral message was seen before (its session counter did not increase)."""


class StaleEphemeral(ReplayedEphemeral):
    """An ephemeral message's sender time is older than the presence timeout."""

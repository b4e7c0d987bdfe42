"""The engine's :class:`~client.engine.Codec` over :mod:`crypto`: sealing and opening patches.

Kept apart from the session so that a reader without a connection (the
``blindpad`` command's HTTP read) opens patches exactly as a live session does.
"""

from __future__ import annotations

import crypto
from client.engine import Opened, Sealed
from crypto.backend import RandomFn, default_random


class CryptoCodec:
    """The engine's :class:`~client.engine.Codec` over :mod:`crypto`.

    Header unreadable, wrong channel or bad channel signature raise
    ``ValueError`` (the relay could not have stored it honestly); a bad author
    signature, failed decryption or malformed inner give ``content=None``
    (an editor wrote junk: a deterministic no-op in the chain).

    Args:
        keys: the pad's keys.
        author: who signs what we seal.
        random: the source of nonces (``os.urandom`` unless injected).
    """

    def __init__(
        self, keys: crypto.PadKeys, author: crypto.Author, random: RandomFn = default_random
    ) -> None:
        self.keys = keys
        self.author = author
        self.random = random

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        """Seal ``content`` (see :func:`crypto.seal`)."""
        kind_ = crypto.Kind(kind)
        data = crypto.seal(self.keys, self.author, kind_, ref, content, random=self.random)
        return Sealed(crypto.envelope_id(data), data)

    def open(self, data: bytes) -> Opened:
        """Open an envelope.

        Raises:
            ValueError: the header is malformed, names another channel, or
                the channel signature does not verify.
        """
        try:
            opened = crypto.open_envelope(self.keys, data)
        except (crypto.WrongChannel, crypto.BadChannelSignature) as error:
            raise ValueError(str(error)) from error
        except (crypto.MalformedEnvelope, crypto.DecryptionFailed, crypto.BadAuthorSignature) as e:
            header = _header_or_raise(data, e)
            return Opened(crypto.envelope_id(data), header.kind, header.ref, None, str(e))
        return Opened(
            opened.id,
            opened.kind,
            opened.ref,
            opened.content,
            None,
            opened.author_key,
            opened.author_name,
        )


def _header_or_raise(data: bytes, error: Exception) -> crypto.Header:
    try:
        return crypto.parse_header(data)
    except crypto.MalformedEnvelope:
        raise ValueError(str(error)) from error


__all__ = ["CryptoCodec"]

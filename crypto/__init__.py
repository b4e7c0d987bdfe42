"""blindpad's cryptography: keys, links, sealed and signed envelopes.

``import crypto`` is light: no cryptographic library is imported until an
operation needs one (:func:`crypto.backend.get_backend` picks PyNaCl on
CPython, libsodium through the JS bridge under Pyodide). The relay needs only
:func:`crypto.envelope.parse_header`, :func:`crypto.envelope.verify_channel_signature`,
:func:`crypto.envelope.envelope_id` and :func:`crypto.keys.channel_id_for`;
clients use the rest. The error tree is drawn in :mod:`crypto.errors`.
"""

from . import envelope2, varint
from .envelope import (
    ZERO_ID,
    Ephemeral,
    Header,
    Kind,
    Opened,
    envelope_id,
    open_envelope,
    open_ephemeral,
    parse_header,
    seal,
    seal_ephemeral,
    verify_channel_signature,
)
from .errors import (
    BackendUnavailable,
    BadAuthorSignature,
    BadChannelSignature,
    BadSessionSignature,
    CryptoError,
    DecryptionFailed,
    IntegrityError,
    InvalidIdentity,
    InvalidLink,
    MalformedEnvelope,
    ReadOnlyKeys,
    ReplayedEphemeral,
    StaleEphemeral,
    WrongChannel,
    WrongParentBinding,
)
from .identity import Author
from .keys import PadKeys, channel_id_for
from .links import PadLink, parse_link
from .sessions import EphemeralGuard, Session

__all__ = [
    "ZERO_ID",
    "Author",
    "BackendUnavailable",
    "BadAuthorSignature",
    "BadChannelSignature",
    "BadSessionSignature",
    "CryptoError",
    "DecryptionFailed",
    "Ephemeral",
    "EphemeralGuard",
    "Header",
    "IntegrityError",
    "InvalidIdentity",
    "InvalidLink",
    "Kind",
    "MalformedEnvelope",
    "Opened",
    "PadKeys",
    "PadLink",
    "ReadOnlyKeys",
    "ReplayedEphemeral",
    "Session",
    "StaleEphemeral",
    "WrongChannel",
    "WrongParentBinding",
    "channel_id_for",
    "envelope2",
    "envelope_id",
    "open_envelope",
    "open_ephemeral",
    "parse_header",
    "parse_link",
    "seal",
    "seal_ephemeral",
    "varint",
    "verify_channel_signature",
]

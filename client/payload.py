"""What the engine seals: the codec seam, the patch payload and its integrity claims.

Theory of operation
-------------------
The engine (:mod:`client.engine`) reaches the cryptography only through a
:class:`Codec`: it seals content of a kind (:data:`PATCH`, :data:`SNAPSHOT`)
under a ref (a patch's parent, a snapshot's patch) and opens what the relay
serves into an :class:`Opened`.  The real codec is the session's (over
:mod:`crypto`); tests and the simulator use fakes.

Inside a patch envelope the content is binary (docs/PROTOCOL.md §6.1, §10.1)::

    flags u8 · size varint · [time varint] · [alg u8 · digest 32]
             · [session 8 · counter varint] · ops

``size`` is the size of the document the patch produces, ``time`` the
author's clock when sealing (a claim, shown by history, never checked),
``alg · digest`` that document's integrity value (at some heights, see
below), ``session`` the writer session that sealed it (8 random bytes per
running client) and ``counter`` that session's count (1, 2, ... over every
patch it seals, reseals included): the high-water table of
:mod:`client.snapshots` tells from them whether a patch landed after the
history around it was trimmed.  ``ops`` is the document type's binary form
of the patch (:meth:`DocType.patch_to_bytes`).  Flags say which optional
fields are present (1 time, 2 integrity, 4 session and counter).
:func:`encode` and :func:`decode` convert between that and a
:class:`Payload`; decoding is strict.  :func:`decode` also reads the JSON
form that writers sealed before (``{"o": ..., "n": ..., "h": ...}``, first
byte ``{``; a binary content's first byte is at most 7).

Integrity
---------
Each patch's payload carries the size of the document it produces (checked on
every patch, O(1)) and, when its height is a multiple of ``hash_every``, that
document's integrity value under the algorithm the document type picks
(:meth:`DocType.claim_integrity`): for a long text, algorithm 2
(:mod:`wire.integrity`), which :class:`client.rope.Digests` keeps up to date
from the chunks the text shares with the last version it digested (about 2
ms at 10 MB after a keystroke, against 22 ms for the SHA-256 of the whole
text); for a short one, SHA-256.  The author makes these claims
(:func:`claim`); every reader checks them (:func:`integrity_problem`).  A
patch that does not decode, does not apply, or whose size or hash disagrees
is invalid: a deterministic no-op for every client (it keeps its place in the
chain), reported as an :class:`~client.events.Alarm`.  Snapshots carry the
full hash and are compared by live clients with their own document
(:mod:`client.snapshots`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from client.doctype import DocType, InvalidPatch
from crypto import varint

D = TypeVar("D")
P = TypeVar("P")

PATCH = 1
SNAPSHOT = 2
TRIM = 4

#: The bytes of a writer session id (random per running session, PROTOCOL.md §6.1).
SESSION_LEN = 8


# --- the codec seam --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed envelope and its id."""

    id: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope opened by a :class:`Codec`.

    ``content`` is ``None`` when the envelope was readable enough to place
    (its id, kind and ref are known) but failed to open (bad signature,
    undecryptable...); ``error`` then says why.
    """

    id: bytes
    kind: int
    ref: bytes
    content: bytes | None
    error: str | None = None
    author: bytes | None = None
    author_name: str | None = None
    #: The signed height of a version-2 envelope (a patch's own, a snapshot's
    #: or trim's X's); None for version 1, whose height the chain alone fixes.
    height: int | None = None


class Codec(Protocol):
    """Seals and opens envelopes; the engine's only way to the cryptography."""

    def seal(self, kind: int, ref: bytes, content: bytes, *, height: int) -> Sealed:
        """Seal ``content`` of ``kind`` under ``ref`` (parent, or snapshot's patch)
        at ``height`` (the patch's own, or the snapshot's patch's)."""
        ...

    def open(self, data: bytes) -> Opened:
        """Open an envelope; raise ``ValueError`` if even its header is unreadable."""
        ...

    def learn(self, record: bytes) -> bytes:
        """Learn a session record the envelopes of that session need; return its
        tag.  Raise ``ValueError`` for one that is not this pad's."""
        ...


# --- payloads --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload(Generic[P]):
    """A decoded patch with the integrity values its author claimed."""

    patch: P
    size: int
    digest: bytes | None  # the integrity value, under algorithm ``alg``
    time: int | None = None  # the author's clock at sealing, ms since the epoch (a claim)
    session: bytes | None = None  # the writer session that sealed it (SESSION_LEN bytes)
    counter: int | None = None  # that session's count of patches sealed, from 1
    alg: int = 1  # the integrity algorithm of ``digest`` (PROTOCOL.md §10.4)


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON, as the JSON contents are written."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_TIME, _INTEGRITY, _STAMP = 1, 2, 4  # the flags of a binary content
_DIGEST_LEN = 32


def encode(doctype: DocType[D, P], payload: Payload[P]) -> bytes:
    """The content of a patch envelope carrying ``payload``: binary (PROTOCOL.md §10.1)."""
    flags = (
        (_TIME if payload.time is not None else 0)
        | (_INTEGRITY if payload.digest is not None else 0)
        | (_STAMP if payload.session is not None and payload.counter is not None else 0)
    )
    out = bytearray((flags,))
    varint.write(out, payload.size)
    if payload.time is not None:
        varint.write(out, payload.time)
    if payload.digest is not None:
        out.append(payload.alg)
        out += payload.digest
    if payload.session is not None and payload.counter is not None:
        out += payload.session
        varint.write(out, payload.counter)
    out += doctype.patch_to_bytes(payload.patch)
    return bytes(out)


def decode(doctype: DocType[D, P], content: bytes) -> Payload[P]:
    """The payload in the content of a patch envelope: binary, or the JSON
    that writers sent before (it begins with ``{``).

    Raises:
        InvalidPatch: the content is not a well-formed payload.
        ValueError: JSON content that is not UTF-8 JSON, or its hash not hex.
    """
    if content[:1] == b"{":
        return _decode_json(doctype, content)
    if not content or content[0] > _TIME | _INTEGRITY | _STAMP:
        raise InvalidPatch("payload flags must be 0 to 7")
    flags, at = content[0], 1
    when = session = counter = digest = None
    alg = 1
    try:
        size, at = varint.read(content, at)
        if flags & _TIME:
            when, at = varint.read(content, at)
        if flags & _INTEGRITY:
            if at + 1 + _DIGEST_LEN > len(content):
                raise InvalidPatch("payload integrity value truncated")
            alg, digest = content[at], content[at + 1 : at + 1 + _DIGEST_LEN]
            at += 1 + _DIGEST_LEN
        if flags & _STAMP:
            if at + SESSION_LEN > len(content):
                raise InvalidPatch("payload session truncated")
            session = content[at : at + SESSION_LEN]
            counter, at = varint.read(content, at + SESSION_LEN)
    except InvalidPatch:
        raise
    except ValueError as exc:
        raise InvalidPatch(f"payload: {exc}") from None
    if counter is not None and not 1 <= counter < 2**63:
        raise InvalidPatch("payload counter must be a positive integer below 2**63")
    patch = doctype.patch_from_bytes(content[at:])
    return Payload(patch, size, digest, when, session, counter, alg)


def _decode_json(doctype: DocType[D, P], content: bytes) -> Payload[P]:
    """The JSON content (PROTOCOL.md §6.1), read strictly; its hash is algorithm 1."""
    body = json.loads(content.decode("utf-8"))
    if not isinstance(body, dict) or set(body) - {"o", "n", "h", "t", "s", "c"}:
        raise InvalidPatch("payload must be an object with keys o, n, maybe h, t, s and c")
    size, digest, when = body.get("n"), body.get("h"), body.get("t")
    session, counter = body.get("s"), body.get("c")
    if (session is None) != (counter is None):
        raise InvalidPatch("payload session s and counter c come together")
    if session is not None and (
        not isinstance(session, str)
        or len(session) != 2 * SESSION_LEN
        or session != session.lower()
    ):
        raise InvalidPatch(f"payload session s must be {2 * SESSION_LEN} lower-case hex digits")
    if counter is not None and (type(counter) is not int or not 1 <= counter < 2**63):
        raise InvalidPatch("payload counter c must be a positive integer")
    if type(size) is not int or size < 0:
        raise InvalidPatch("payload size n must be a non-negative integer")
    if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
        raise InvalidPatch("payload hash h must be 64 hex digits")
    if when is not None and (type(when) is not int or when < 0):
        raise InvalidPatch("payload time t must be a non-negative integer")
    patch = doctype.patch_from_wire(body.get("o"))
    digest_bytes = bytes.fromhex(digest) if digest else None
    session_bytes = bytes.fromhex(session) if session is not None else None
    return Payload(patch, size, digest_bytes, when, session_bytes, counter)


# --- integrity -------------------------------------------------------------


def claim(
    doctype: DocType[D, P],
    patch: P,
    result: D | None,
    height: int,
    hash_every: int,
    time: int | None,
    stamp: tuple[bytes, int] | None = None,
    size: int | None = None,
) -> Payload[P]:
    """The payload an author seals: ``patch``, producing ``result`` at ``height``
    (``stamp``: the writer session and its counter for this patch).

    ``result`` may be ``None`` when ``size`` (its size) is given and no
    digest is due at ``height``."""
    if result is None:
        if size is None or height % hash_every == 0:
            raise ValueError("claim needs the result for a digest, or its size")
        alg, digest = 1, None
    else:
        due = height % hash_every == 0
        alg, digest = doctype.claim_integrity(result) if due else (1, None)
        size = doctype.size(result)
    session, counter = stamp if stamp is not None else (None, None)
    return Payload(patch, size, digest, time, session, counter, alg)


def integrity_problem(
    doctype: DocType[D, P],
    payload: Payload[P],
    doc: D | None,
    height: int,
    hash_every: int,
    ours: bool,
    size: int | None = None,
) -> str | None:
    """What is wrong with ``payload``'s claims about ``doc``, the document it produced.

    ``ours``: the payload is one we sealed, whose hash we computed from that
    very text (so it is not computed again); then ``doc`` may be ``None`` and
    ``size`` its size instead.  ``None`` if nothing is wrong.
    """
    if doc is None and (size is None or not ours):
        raise ValueError("integrity_problem needs the document, or the size of our own")
    actual = doctype.size(doc) if doc is not None else size
    if actual != payload.size:
        return f"size mismatch: patch says {payload.size}, result has {actual}"
    if height % hash_every == 0:
        if payload.digest is None:
            return f"missing document hash at height {height}"
        if not ours and doc is not None:
            actual_value = doctype.integrity(doc, payload.alg)
            if actual_value is None:
                return f"unknown integrity algorithm {payload.alg} at height {height}"
            if actual_value != payload.digest:
                return f"document hash mismatch at height {height}"
    return None


__all__ = [
    "PATCH",
    "SESSION_LEN",
    "SNAPSHOT",
    "Codec",
    "Opened",
    "Payload",
    "Sealed",
    "claim",
    "decode",
    "dumps",
    "encode",
    "integrity_problem",
]

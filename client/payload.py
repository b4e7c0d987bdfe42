"""What the engine seals: the codec seam, the patch payload and its integrity claims.

Theory of operation
-------------------
The engine (:mod:`client.engine`) reaches the cryptography only through a
:class:`Codec`: it seals content of a kind (:data:`PATCH`, :data:`SNAPSHOT`)
under a ref (a patch's parent, a snapshot's patch) and opens what the relay
serves into an :class:`Opened`.  The real codec is the session's (over
:mod:`crypto`); tests and the simulator use fakes.

Inside a patch envelope the content is compact UTF-8 JSON (docs/PROTOCOL.md
§6.1)::

    {"o": patch, "n": size, "h": "64 hex digits", "t": ms, "s": "16 hex digits", "c": n}

``o`` is the patch in the document type's wire form, ``n`` the size of the
document it produces, ``h`` that document's SHA-256 (at some heights, see
below), ``t`` the author's clock when sealing (a claim, shown by history,
never checked), ``s`` the writer session that sealed it (8 random bytes per
running client) and ``c`` that session's counter (1, 2, ... over every patch
it seals, reseals included): the high-water table of :mod:`client.snapshots`
tells from them whether a patch landed after the history around it was
trimmed.  :func:`encode` and :func:`decode` convert between that and a
:class:`Payload`; decoding is strict.

Integrity
---------
Each patch's payload carries the size of the document it produces (checked on
every patch, O(1)) and, when its height is a multiple of ``hash_every``, the
SHA-256 of that document (O(document), so amortised to O(document /
hash_every) per patch: 22 ms per 10 MB every 64 patches is 0.35 ms a patch,
less than the one splice each patch costs).  The author makes these claims
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


class Codec(Protocol):
    """Seals and opens envelopes; the engine's only way to the cryptography."""

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        """Seal ``content`` of ``kind`` under ``ref`` (parent, or snapshot's patch)."""
        ...

    def open(self, data: bytes) -> Opened:
        """Open an envelope; raise ``ValueError`` if even its header is unreadable."""
        ...


# --- payloads --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload(Generic[P]):
    """A decoded patch with the integrity values its author claimed."""

    patch: P
    size: int
    digest: bytes | None
    time: int | None = None  # the author's clock at sealing, ms since the epoch (a claim)
    session: bytes | None = None  # the writer session that sealed it (SESSION_LEN bytes)
    counter: int | None = None  # that session's count of patches sealed, from 1


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON, as every sealed content is written."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode(doctype: DocType[D, P], payload: Payload[P]) -> bytes:
    """The content of a patch envelope carrying ``payload``."""
    body: dict[str, object] = {
        "o": doctype.patch_to_wire(payload.patch),
        "n": payload.size,
    }
    if payload.digest is not None:
        body["h"] = payload.digest.hex()
    if payload.time is not None:
        body["t"] = payload.time
    if payload.session is not None and payload.counter is not None:
        body["s"], body["c"] = payload.session.hex(), payload.counter
    return dumps(body)


def decode(doctype: DocType[D, P], content: bytes) -> Payload[P]:
    """The payload in the content of a patch envelope.

    Raises:
        InvalidPatch: the content is not a well-formed payload.
        ValueError: the content is not UTF-8 JSON, or its hash not hex.
    """
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
        digest = None
    else:
        digest = doctype.digest(result) if height % hash_every == 0 else None
        size = doctype.size(result)
    session, counter = stamp if stamp is not None else (None, None)
    return Payload(patch, size, digest, time, session, counter)


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
        if not ours and doc is not None and doctype.digest(doc) != payload.digest:
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

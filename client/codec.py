"""The engine's :class:`~client.engine.Codec` over :mod:`crypto`: sealing and opening patches.

Kept apart from the session so that a reader without a connection (the
``blindpad`` command's HTTP read) opens patches exactly as a live session does.

Both envelope versions open; an editor seals version 2 (PROTOCOL.md §9).
A version-2 envelope names its *session* by a 4-byte tag.  The session's
record, which the relay sends before the first envelope of that session
(RECORD, or a history body's record 0x03), is learnt with
:meth:`CryptoCodec.learn` and kept by tag, bytes and all: a client registers
the records of what it sends (:meth:`CryptoCodec.record`) and logs them with
its sealed patches (:meth:`CryptoCodec.with_records`).

This codec's own session is made at its first seal: a fresh Ed25519 key,
never written anywhere, so no other process ever seals under it; its counter
counts every envelope it seals (the nonce derives from key and counter, so
none repeats).  :meth:`CryptoCodec.new_session` drops it (the relay said its
tag is taken): the next seal makes another.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import crypto
from client.engine import Opened, Sealed
from crypto import envelope2
from crypto.backend import RandomFn, default_random

_JUNK = (crypto.MalformedEnvelope, crypto.DecryptionFailed, crypto.BadAuthorSignature)


class CryptoCodec:
    """The engine's :class:`~client.engine.Codec` over :mod:`crypto`.

    Header unreadable, wrong channel or bad channel signature raise
    ``ValueError`` (the relay could not have stored it honestly); a bad author
    signature, failed decryption or malformed inner give ``content=None``
    (an editor wrote junk: a deterministic no-op in the chain).  For version
    2 the same split: a bad session signature or a session whose record was
    never learnt raise ``ValueError`` (the relay checks the one and must send
    the other first); a record an editor sealed badly (its author signature,
    its content) makes every envelope of that session junk.

    Args:
        keys: the pad's keys.
        author: who signs what we seal.
        random: the source of nonces and session keys (``os.urandom`` unless injected).
        clock: milliseconds since the epoch (a session record's start).
    """

    def __init__(
        self,
        keys: crypto.PadKeys,
        author: crypto.Author,
        random: RandomFn = default_random,
        clock: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.keys = keys
        self.author = author
        self.random = random
        self.clock = clock
        #: Version-2 sessions by tag: the opened record, or why it is junk.
        self.sessions: dict[bytes, envelope2.SessionRecord | str] = {}
        self._records: dict[bytes, bytes] = {}  # tag -> the record's bytes
        self._own: envelope2.SessionKeys | None = None
        self._counter = 0  # envelopes sealed under ``_own``

    @property
    def session_tag(self) -> bytes | None:
        """The tag of this codec's own session, once it sealed something."""
        return None if self._own is None else self._own.tag

    @property
    def own_record(self) -> bytes | None:
        """The record of this codec's own session, once it sealed something."""
        return None if self._own is None else self._records.get(self._own.tag)

    def new_session(self) -> None:
        """Seal under a new session from the next envelope on."""
        self._own = None

    def record(self, tag: bytes) -> bytes | None:
        """The bytes of session ``tag``'s record, if learnt (our own too)."""
        return self._records.get(tag)

    def with_records(self, sealed: Iterable[bytes]) -> list[bytes]:
        """``sealed`` with each session's record right before its first envelope
        (the write-ahead log's form: a process adopting it registers them)."""
        out: list[bytes] = []
        seen: set[bytes] = set()
        for data in sealed:
            tag = envelope2.tag_of(data)
            record = None if tag is None or tag in seen else self._records.get(tag)
            if record is not None and tag is not None:
                seen.add(tag)
                out.append(record)
            out.append(data)
        return out

    def learn(self, record: bytes) -> bytes:
        """Learn a version-2 session record; return its tag.

        Raises:
            ValueError: not a session record of this pad (its layout or the
                channel signature: the relay checks both, so it could not
                have sent it honestly), or another record under a tag already
                learnt (the relay refuses a taken tag; the first one stays).
        """
        try:
            key = envelope2.verify_session_record(
                record, self.keys.verify_key, self.keys.channel_id
            )
        except (crypto.MalformedEnvelope, crypto.BadChannelSignature) as error:
            raise ValueError(f"not a session record of this pad: {error}") from error
        tag = envelope2.session_tag(key)
        known = self._records.get(tag)
        if known is not None:
            if known != record:
                raise ValueError(f"a second session record under tag {tag.hex()}")
            return tag
        try:
            self.sessions[tag] = envelope2.open_session_record(self.keys, record)
        except _JUNK as error:
            self.sessions[tag] = f"bad session record: {error}"
        self._records[tag] = record
        return tag

    def learn_logged(self, logged: Iterable[bytes]) -> list[bytes]:
        """Learn the session records of a write-ahead log (:meth:`with_records`'s
        form); return the rest, the sealed envelopes.  A record that is not
        this pad's is dropped (its envelopes are then refused and sealed again)."""
        sealed: list[bytes] = []
        for data in logged:
            if envelope2.is_session_record(data):
                with contextlib.suppress(ValueError):
                    self.learn(data)
            else:
                sealed.append(data)
        return sealed

    def seal(self, kind: int, ref: bytes, content: bytes, *, height: int) -> Sealed:
        """Seal ``content`` as a version-2 envelope of this codec's session at
        ``height`` (a patch's own; a snapshot's or trim's patch's; a dispute's:
        the disputed snapshot's patch's).

        Raises:
            ReadOnlyKeys: a view link's keys (only editors seal).
        """
        session = self._own
        if session is None:
            self.keys.require_sign_seed("seal an envelope")
            session = envelope2.SessionKeys.generate(random=self.random)
            record = envelope2.seal_session_record(
                self.keys, self.author, session, self.clock(), random=self.random
            )
            self.learn(record)
            self._own, self._counter = session, 0
        self._counter += 1
        data = envelope2.seal(self.keys, session, kind, ref, height, self._counter, content)
        return Sealed(crypto.envelope_id(data), data)

    def open(self, data: bytes) -> Opened:
        """Open an envelope.

        Raises:
            ValueError: the header is malformed, names another channel, or
                the channel signature does not verify.
        """
        if envelope2.is_version_2(data):
            return self._open2(data)
        try:
            opened = crypto.open_envelope(self.keys, data)
        except (crypto.WrongChannel, crypto.BadChannelSignature) as error:
            raise ValueError(str(error)) from error
        except _JUNK as e:
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

    def _open2(self, data: bytes) -> Opened:
        try:
            header = envelope2.parse(data)
        except crypto.MalformedEnvelope as error:
            raise ValueError(str(error)) from error
        session = self.sessions.get(header.tag)
        if session is None:
            raise ValueError(f"no session record for session {header.tag.hex()} was sent")
        envelope_id = crypto.envelope_id(data)
        if isinstance(session, str):
            return Opened(
                envelope_id, header.kind, header.ref, None, session, height=header.height
            )
        try:
            opened = envelope2.open_envelope(self.keys, data, session)
        except (crypto.MalformedEnvelope, crypto.BadSessionSignature) as error:
            raise ValueError(str(error)) from error
        except crypto.DecryptionFailed as error:
            return Opened(
                envelope_id, header.kind, header.ref, None, str(error), height=header.height
            )
        return Opened(
            envelope_id,
            header.kind,
            header.ref,
            opened.content,
            None,
            session.author_key,
            session.name,
            header.height,
        )


def _header_or_raise(data: bytes, error: Exception) -> crypto.Header:
    try:
        return crypto.parse_header(data)
    except crypto.MalformedEnvelope:
        raise ValueError(str(error)) from error


__all__ = ["CryptoCodec"]

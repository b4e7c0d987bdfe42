"""A pad session that speaks the relay protocol: sans-I/O, like h11 and wsproto.

Theory of operation
-------------------
A :class:`PadSession` owns one :class:`~client.engine.Engine` (the chain and
the user's uncommitted work), the real :class:`CryptoCodec`, and everything
between the engine and the wire.  It never touches a socket, a file or the
clock (the clock is injected): a front end

1. calls :meth:`PadSession.connected` when a transport opens (HELLO and
   SUBSCRIBE are queued: from the latest snapshot for a fresh session, else
   *since* the last sequence number seen, so a reconnect resumes),
2. feeds every message it receives to :meth:`PadSession.receive_frame`,
3. persists :meth:`PadSession.pending` (the sealed, unacknowledged patches:
   the write-ahead log) *before* sending :meth:`PadSession.frames_to_send`,
4. shows :meth:`PadSession.events`, calls :meth:`PadSession.tick` by
   :meth:`PadSession.next_deadline_ms`, and :meth:`PadSession.disconnected`
   when the transport drops.

Connection phases (:class:`Phase`)::

    OFFLINE --connected()--> JOINING --HISTORY_END--> LIVE --disconnected()--> OFFLINE
       any --close()--> CLOSED

Patches are pushed only while LIVE.  On reaching LIVE the first time, the
patches recovered from a previous process's write-ahead log are handed to
:meth:`Engine.adopt` with their base (:mod:`client.recovery`: those found in
history count as acknowledged, the rest are resent with the same bytes, or
probed and merged; :attr:`PadSession.ready` waits for that); on later
reconnects every in-flight patch is resent (:meth:`Engine.resend`).
Offline edits stay in the engine's open patch and are sealed on the new
head once LIVE.

Refusals: STALE goes to :meth:`Engine.refused` (squash and rebase);
RATE_LIMITED re-sends the very same bytes after ``retry_after_ms``; anything
else on a write cannot be fixed by retrying and is reported as
:class:`~client.events.Failed` (and kept in :attr:`PadSession.failure`).

Rollback check: the session is given the last head ``(seq, id)`` a previous
run saw; a HISTORY_END below it, or another patch at its sequence number,
raises :attr:`~client.events.AlarmKind.ROLLBACK`.

Presence: sealed ephemerals carrying JSON ``{"name", "color", "cursor"}``
(cursor = ``[anchor, head]`` in code points, or null), inside the session id
and counter crypto adds; checked by an :class:`crypto.EphemeralGuard`.  Peers
are keyed by (author key, session id); they are dropped after the presence
timeout without news, when their connection leaves, or when they say
``{"bye": true}``.  We re-announce every third of the timeout and whenever
a connection joins.  Peer cursors move through every edit we see.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import crypto
from client import protocol as p
from client.doctype import TEXT
from client.engine import (
    Alarm as EngineAlarm,
)
from client.engine import (
    Base,
    Committed,
    Engine,
    LocalError,
    Opened,
    RemoteChange,
    Sealed,
    SendPatch,
    SendSnapshot,
)
from client.errors import InvalidEdit, NotReady, ProtocolError, ReadOnly
from client.events import (
    Acked,
    Alarm,
    AlarmKind,
    ConnectionLost,
    ConnectionRestored,
    CursorMoved,
    Failed,
    PadEvent,
    Peer,
    PeerJoined,
    PeerLeft,
    Status,
    StatusChanged,
    TextChanged,
)
from client.textops import InvalidPatch, Patch, transform_selection

DEFAULT_PRESENCE_TIMEOUT_MS = 30_000


def wall_clock_ms() -> int:
    """The default clock: milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


class CryptoCodec:
    """The engine's :class:`~client.engine.Codec` over :mod:`crypto`.

    Header unreadable, wrong channel or bad channel signature raise
    ``ValueError`` (the relay could not have stored it honestly); a bad author
    signature, failed decryption or malformed inner give ``content=None``
    (an editor wrote junk: a deterministic no-op in the chain).
    """

    def __init__(self, keys: crypto.PadKeys, author: crypto.Author) -> None:
        self.keys = keys
        self.author = author

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        """Seal ``content`` (see :func:`crypto.seal`)."""
        data = crypto.seal(self.keys, self.author, crypto.Kind(kind), ref, content)
        return Sealed(crypto.envelope_id(data), data)

    def open(self, data: bytes) -> Opened:
        """Open an envelope.

        Raises:
            ValueError: the header is malformed, names another channel, or
                the channel signature does not verify.
        """
        try:
            opened = crypto.open(self.keys, data)
        except (crypto.WrongChannel, crypto.BadChannelSignature) as error:
            raise ValueError(str(error)) from error
        except (crypto.MalformedEnvelope, crypto.DecryptionFailed, crypto.BadAuthorSignature) as e:
            header = _header_or_raise(data, e)
            return Opened(crypto.envelope_id(data), header.kind, header.ref, None, str(e))
        return Opened(opened.id, opened.kind, opened.ref, opened.content, None, opened.author_key)


def _header_or_raise(data: bytes, error: Exception) -> crypto.Header:
    try:
        return crypto.parse_header(data)
    except crypto.MalformedEnvelope:
        raise ValueError(str(error)) from error


class Phase(enum.Enum):
    """The connection phase of a session."""

    OFFLINE = "offline"
    JOINING = "joining"
    LIVE = "live"
    CLOSED = "closed"


class _Want(enum.Enum):
    SUBSCRIBE = "subscribe"
    PATCH = "patch"
    SNAPSHOT = "snapshot"


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    want: _Want
    frames: tuple[bytes, ...]
    id: bytes = b""


@dataclasses.dataclass(slots=True)
class _PeerState:
    peer: Peer
    connection: int
    heard_ms: int


@dataclasses.dataclass(slots=True)
class _Incoming:
    x_seq: int
    total: int
    data: bytearray


class PadSession:
    """One session on one pad, speaking frames.  See the module docstring.

    Args:
        keys: the pad's keys (view keys make a read-only session).
        author: who signs our patches and presence.
        clock: milliseconds since the epoch (injected for tests).
        presence_timeout_ms: peers silent this long expire.
        pipeline: patches in flight at once.
        last_head: ``(seq, id)`` of the last head a previous run saw.
        recovered: sealed patches from a previous run's write-ahead log.
        recovered_bases: the base(s) logged with them (:mod:`client.recovery`).
        token: the relay's channel-creation token, if it needs one.
        create: create the pad if the relay does not know it (SUBSCRIBE carries
            the verify key); else an unknown pad is refused NO_VERIFY_KEY.
    """

    def __init__(
        self,
        keys: crypto.PadKeys,
        author: crypto.Author,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        presence_timeout_ms: int = DEFAULT_PRESENCE_TIMEOUT_MS,
        pipeline: int = 4,
        last_head: tuple[int, bytes] | None = None,
        recovered: Iterable[bytes] = (),
        recovered_bases: Iterable[Base[str]] = (),
        token: bytes = b"",
        create: bool = True,
    ) -> None:
        self.keys = keys
        self.author = author
        self.clock = clock
        self.presence_timeout_ms = presence_timeout_ms
        self.engine: Engine[str, Patch] = Engine(
            TEXT,
            CryptoCodec(keys, author),
            writer=keys.can_write,
            pipeline=pipeline,
            clock=clock,
        )
        self.phase = Phase.OFFLINE
        self.last_head = last_head
        self.token = token
        self.create = create
        self.welcome: p.Welcome | None = None
        self.failure: Failed | None = None
        self.reconnects = 0
        self._recovered: list[bytes] | None = list(recovered)
        self._recovered_bases = list(recovered_bases)
        self._crypto_session = crypto.Session.new()
        self._guard = crypto.EphemeralGuard(presence_timeout_ms)
        self._ids = itertools.count(1)
        self._out: list[bytes] = []
        self._events: list[PadEvent] = []
        self._requests: dict[int, _Request] = {}
        self._retries: list[tuple[int, int, _Request]] = []
        self._subscribe_req = 0
        self._incoming: _Incoming | None = None
        self._peers: dict[tuple[bytes, bytes], _PeerState] = {}
        self._presence: dict[str, Any] | None = None
        self._presence_sent_ms = 0
        self._synced_once = False
        self._lost = False
        self._status = Status.OFFLINE

    # --- reading state -----------------------------------------------------

    @property
    def text(self) -> str:
        """The user's view of the text."""
        return self.engine.view

    @property
    def status(self) -> Status:
        """Offline, syncing, or saved (every edit acknowledged while connected)."""
        if self.phase is not Phase.LIVE:
            return Status.OFFLINE
        return Status.SAVED if self.engine.saved else Status.SYNCING

    @property
    def ready(self) -> bool:
        """True once the pad's history has been loaded at least once, and the
        write-ahead log recovered (:attr:`Engine.recovering`)."""
        return self._synced_once and not self.engine.recovering

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Everyone else present, in order of arrival."""
        return tuple(state.peer for state in self._peers.values())

    def pending(self) -> list[bytes]:
        """The sealed patches not yet acknowledged, oldest first (the write-ahead log)."""
        return [sealed.data for sealed in self.engine.unacknowledged()]

    def pending_base(self) -> Base[str] | None:
        """The text :meth:`pending` was made on (persist it when its parent changes)."""
        return self.engine.log_base()

    def events(self) -> list[PadEvent]:
        """Take the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def frames_to_send(self) -> list[bytes]:
        """Take the frames to send, in order (persist :meth:`pending` first)."""
        frames, self._out = self._out, []
        return frames

    # --- the connection ----------------------------------------------------

    def connected(self) -> None:
        """A transport opened: queue HELLO and SUBSCRIBE."""
        if self.phase is Phase.CLOSED:
            return
        self._reset_connection()
        self.phase = Phase.JOINING
        fresh = not self._synced_once and self.engine.height == 0 and self.engine.last_seq == 0
        self._out.append(p.encode(p.Hello(p.PROTOCOL_VERSION, self.token)))
        self._subscribe(p.SubscribeFrom.SNAPSHOT if fresh else p.SubscribeFrom.SINCE)

    def _subscribe(self, start: p.SubscribeFrom) -> None:
        self._subscribe_req = next(self._ids)
        since = 0 if start is p.SubscribeFrom.SNAPSHOT else self.engine.last_seq
        key = self.keys.verify_key if self.create else p.ZERO_ID
        frame = p.Subscribe(self._subscribe_req, self.keys.channel_id, start, since, key)
        self._out.append(p.encode(frame))
        self._requests[self._subscribe_req] = _Request(_Want.SUBSCRIBE, ())

    def disconnected(self, reason: str = "connection closed") -> None:
        """The transport dropped: everything unacknowledged will be resent."""
        if self.phase in (Phase.OFFLINE, Phase.CLOSED):
            return
        was_live = self.phase is Phase.LIVE
        self.phase = Phase.OFFLINE
        self._reset_connection()
        for key in list(self._peers):
            self._drop_peer(key)
        if was_live:
            self._lost = True
            self._events.append(ConnectionLost(reason))
        self._update_status()

    def close(self) -> None:
        """Say goodbye to peers (if live) and stop."""
        if self.phase is Phase.LIVE and self._presence is not None:
            self._send_ephemeral({"bye": True})
        self.phase = Phase.CLOSED

    def _reset_connection(self) -> None:
        self._out.clear()
        self._requests.clear()
        self._retries.clear()
        self._incoming = None

    # --- local actions -----------------------------------------------------

    def edit(self, patch: Patch) -> None:
        """Apply a local edit on :attr:`text` and send it when possible.

        Raises:
            ReadOnly: the session has view keys.
            NotReady: the history has not been loaded yet.
            InvalidEdit: ``patch`` does not apply to the current text.
        """
        if not self.keys.can_write:
            raise ReadOnly("this pad was opened with a view link, which cannot write")
        if not self._synced_once:
            raise NotReady("the pad's history is not loaded yet")
        try:
            self.engine.edit(patch)
        except LocalError as error:
            raise InvalidEdit(str(error)) from error
        self._move_cursors(patch)
        self._flush()
        self._drain()

    def set_presence(
        self,
        *,
        name: str | None = None,
        color: str | None = None,
        cursor: tuple[int, int] | None = None,
    ) -> None:
        """Announce who we are and where our cursor is (sent when live).

        Args:
            name: display name (defaults to the author's name).
            color: a CSS colour for our cursor.
            cursor: ``(anchor, head)`` in code points.
        """
        presence = self._presence or {"name": self.author.name, "color": "", "cursor": None}
        if name is not None:
            presence["name"] = name
        if color is not None:
            presence["color"] = color
        if cursor is not None:
            presence["cursor"] = [int(cursor[0]), int(cursor[1])]
        self._presence = presence
        if self.phase is Phase.LIVE:
            self._send_ephemeral(presence)

    def tick(self) -> None:
        """Do what is due: rate-limit retries, peer expiry, presence heartbeat."""
        now = self.clock()
        due = [r for r in self._retries if r[0] <= now]
        self._retries = [r for r in self._retries if r[0] > now]
        for _, req, request in due:
            self._requests[req] = request
            self._out.extend(request.frames)
        for key, state in list(self._peers.items()):
            if now - state.heard_ms > self.presence_timeout_ms:
                self._drop_peer(key)
        if (
            self.phase is Phase.LIVE
            and self._presence is not None
            and now - self._presence_sent_ms >= self.presence_timeout_ms // 3
        ):
            self._send_ephemeral(self._presence)

    def next_deadline_ms(self) -> int:
        """When :meth:`tick` has something to do next (epoch milliseconds)."""
        deadlines = [due for due, _, _ in self._retries]
        deadlines += [s.heard_ms + self.presence_timeout_ms + 1 for s in self._peers.values()]
        if self._presence is not None:
            deadlines.append(self._presence_sent_ms + self.presence_timeout_ms // 3)
        return min(deadlines, default=self.clock() + self.presence_timeout_ms)

    # --- what the relay says ----------------------------------------------

    def receive_frame(self, data: bytes) -> None:
        """Handle one message from the relay.

        Raises:
            ProtocolError: the message is not a valid relay frame (close the
                connection; reconnecting resumes).
        """
        try:
            frame = p.decode(data)
        except p.ProtocolViolation as error:
            raise ProtocolError(f"the relay sent an invalid frame: {error}") from error
        if self.phase in (Phase.OFFLINE, Phase.CLOSED):
            return
        handler = _HANDLERS.get(type(frame))
        if handler is not None:
            handler(self, frame)
        self._flush()  # a new head may free work refused as stale
        self._drain()

    def _on_welcome(self, frame: p.Welcome) -> None:
        self.welcome = frame

    def _on_snapshot(self, frame: p.Snapshot) -> None:
        if frame.offset == 0:
            self._incoming = _Incoming(frame.x_seq, frame.total, bytearray())
        incoming = self._incoming
        if incoming is None or frame.offset != len(incoming.data):
            return
        incoming.data += frame.data
        if len(incoming.data) >= incoming.total:
            self._incoming = None
            self._load_snapshot(incoming.x_seq, bytes(incoming.data))

    def _load_snapshot(self, x_seq: int, data: bytes) -> None:
        try:
            self.engine.load_snapshot(data, x_seq)
        except (InvalidPatch, LocalError, ValueError) as error:
            self._alarm(AlarmKind.BAD_SNAPSHOT, f"snapshot not loaded: {error}")
            # Read the whole history instead: the patches already on their way
            # wait as orphans until their parents arrive.
            self._out.append(p.encode(p.Unsubscribe(next(self._ids), self.keys.channel_id)))
            self._subscribe(p.SubscribeFrom.SINCE)

    def _on_history(self, frame: p.History | p.Broadcast) -> None:
        self._note_head(frame.seq, hashlib.sha256(frame.envelope).digest())
        self.engine.receive(frame.envelope, frame.seq)

    def _on_history_end(self, frame: p.HistoryEnd) -> None:
        if self._requests.pop(frame.request_id, None) is None:
            return
        if frame.request_id != self._subscribe_req:
            return
        if self.last_head is not None and frame.head_seq < self.last_head[0]:
            self._alarm(
                AlarmKind.ROLLBACK,
                f"the relay serves history up to seq {frame.head_seq}, "
                f"but seq {self.last_head[0]} was seen before",
            )
        self._note_head(frame.head_seq, frame.head_id)
        self.phase = Phase.LIVE
        self._go_live()

    def _go_live(self) -> None:
        if not self._synced_once:
            self._synced_once = True
            self._adopt()
        else:
            self.reconnects += 1
            self.engine.resend()
        if self._lost:
            self._lost = False
            self._events.append(ConnectionRestored())
        self._flush()
        if self._presence is not None:
            self._send_ephemeral(self._presence)

    def _adopt(self) -> None:
        recovered, self._recovered = self._recovered or [], None
        if not recovered or not self.keys.can_write:
            return
        try:
            self.engine.adopt(recovered, self._recovered_bases)
        except (LocalError, ValueError) as error:
            self._alarm(AlarmKind.RECOVERY, f"write-ahead patches not recovered: {error}")

    def _on_ack(self, frame: p.Ack) -> None:
        request = self._requests.pop(frame.request_id, None)
        if request is None or request.want is not _Want.PATCH:
            return
        self._note_head(frame.seq, frame.id)
        self.engine.acked(frame.id, frame.seq)
        self._flush()

    def _on_refuse(self, frame: p.Refuse) -> None:
        request = self._requests.pop(frame.request_id, None)
        if request is None:
            return
        code = p.code_name(frame.code, p.RefuseCode)
        if frame.code == p.RefuseCode.RATE_LIMITED:
            due = self.clock() + max(1, frame.retry_after_ms)
            self._retries.append((due, frame.request_id, request))
        elif request.want is _Want.PATCH and (
            frame.code == p.RefuseCode.STALE or self.engine.recovering  # a probe: not stored
        ):
            self.engine.refused(request.id, frame.head_id)
            self._flush()
        elif request.want is not _Want.SNAPSHOT:
            self._fail(code, f"the relay refused a {request.want.value}")

    def _fail(self, code: str, message: str) -> None:
        self.failure = Failed(code, message)
        self._events.append(self.failure)

    def _on_error(self, frame: p.Error) -> None:
        if frame.code == p.ErrorCode.VERSION_MISMATCH:
            self._fail("VERSION_MISMATCH", f"{frame.message} (upgrade blindpad)")

    def _on_peer_joined(self, frame: p.PeerJoined) -> None:
        if self._presence is not None and self.phase is Phase.LIVE:
            self._send_ephemeral(self._presence)

    def _on_peer_left(self, frame: p.PeerLeft) -> None:
        for key, state in list(self._peers.items()):
            if state.connection == frame.peer:
                self._drop_peer(key)

    def _on_ephemeral(self, frame: p.EphemeralRelayed) -> None:
        now = self.clock()
        try:
            eph = crypto.open_ephemeral(self.keys, frame.envelope)
            self._guard.check(eph.author_key, eph.session_id, eph.counter, eph.sender_time_ms, now)
            body = json.loads(eph.payload.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("presence payload is not a JSON object")
        except crypto.StaleEphemeral:
            return  # old or skewed: presence is best effort
        except (crypto.IntegrityError, ValueError) as error:
            self._alarm(AlarmKind.BAD_PRESENCE, f"presence message rejected: {error}")
            return
        key = (eph.author_key, eph.session_id)
        if body.get("bye"):
            self._drop_peer(key)
            return
        peer = _peer_from(eph, body)
        old = self._peers.get(key)
        self._peers[key] = _PeerState(peer, frame.sender, now)
        if old is None:
            self._events.append(PeerJoined(peer))
        elif old.peer != peer:
            self._events.append(CursorMoved(peer))

    # --- helpers -----------------------------------------------------------

    def _send_ephemeral(self, body: dict[str, Any]) -> None:
        now = self.clock()
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = crypto.seal_ephemeral(
            self.keys, self.author, self._crypto_session, payload, now_ms=now
        )
        self._out.append(p.encode(p.Ephemeral(next(self._ids), sealed)))
        self._presence_sent_ms = now

    def _drop_peer(self, key: tuple[bytes, bytes]) -> None:
        state = self._peers.pop(key, None)
        if state is not None:
            self._events.append(PeerLeft(state.peer))

    def _move_cursors(self, patch: Patch) -> None:
        for state in self._peers.values():
            cursor = state.peer.cursor
            if cursor is not None:
                moved = transform_selection(cursor, patch)
                state.peer = dataclasses.replace(state.peer, cursor=moved)

    def _note_head(self, seq: int, patch_id: bytes) -> None:
        last = self.last_head
        if last is not None and seq == last[0] and patch_id != last[1] and seq > 0:
            self._alarm(
                AlarmKind.ROLLBACK, f"the relay serves another patch at seq {seq} than before"
            )
        if last is None or seq > last[0]:
            self.last_head = (seq, patch_id)

    def _alarm(self, kind: AlarmKind, detail: str, patch_id: bytes | None = None) -> None:
        self._events.append(Alarm(kind, detail, patch_id))

    def _flush(self) -> None:
        if self.phase is Phase.LIVE and self.keys.can_write:
            self.engine.flush()

    def _drain(self) -> None:
        for event in self.engine.events():
            if isinstance(event, SendPatch):
                self._push(event.sealed)
            elif isinstance(event, SendSnapshot):
                self._upload(event.sealed)
            elif isinstance(event, RemoteChange):
                self._move_cursors(event.patch)
                self._events.append(TextChanged(tuple(event.patch)))
            elif isinstance(event, Committed):
                self._events.append(Acked(event.id))
            elif isinstance(event, EngineAlarm):
                kind = AlarmKind(event.kind.value)
                self._events.append(Alarm(kind, event.detail, event.id))
        self._update_status()

    def _push(self, sealed: Sealed) -> None:
        if self.phase is not Phase.LIVE:
            return  # resent by engine.resend() once live again
        req = next(self._ids)
        frame = p.encode(p.Push(req, sealed.data))
        self._requests[req] = _Request(_Want.PATCH, (frame,), sealed.id)
        self._out.append(frame)

    def _upload(self, sealed: Sealed) -> None:
        if self.phase is Phase.OFFLINE or self.phase is Phase.CLOSED:
            return
        limit = self.welcome.max_frame_bytes if self.welcome else 256 * 1024
        step = max(1024, limit - 1024)
        req = next(self._ids)
        data, total = sealed.data, len(sealed.data)
        frames = tuple(
            p.encode(p.SnapshotChunk(req, total, at, data[at : at + step]))
            for at in range(0, total, step)
        )
        self._requests[req] = _Request(_Want.SNAPSHOT, frames, sealed.id)
        self._out.extend(frames)

    def _update_status(self) -> None:
        status = self.status
        if status is not self._status:
            self._status = status
            self._events.append(StatusChanged(status))


def _peer_from(eph: crypto.Ephemeral, body: dict[str, Any]) -> Peer:
    cursor = body.get("cursor")
    selection: tuple[int, int] | None = None
    if (
        isinstance(cursor, list)
        and len(cursor) == 2
        and all(type(c) is int and c >= 0 for c in cursor)
    ):
        selection = (cursor[0], cursor[1])
    name = body.get("name")
    color = body.get("color")
    return Peer(
        session=eph.session_id.hex(),
        author=eph.author_key.hex(),
        name=name if isinstance(name, str) else eph.author_name,
        color=color if isinstance(color, str) else "",
        cursor=selection,
    )


_HANDLERS: dict[type[Any], Callable[[PadSession, Any], None]] = {
    p.Welcome: PadSession._on_welcome,
    p.Snapshot: PadSession._on_snapshot,
    p.History: PadSession._on_history,
    p.Broadcast: PadSession._on_history,
    p.HistoryEnd: PadSession._on_history_end,
    p.Ack: PadSession._on_ack,
    p.Refuse: PadSession._on_refuse,
    p.Error: PadSession._on_error,
    p.PeerJoined: PadSession._on_peer_joined,
    p.PeerLeft: PadSession._on_peer_left,
    p.EphemeralRelayed: PadSession._on_ephemeral,
}

__all__ = ["CryptoCodec", "PadSession", "Phase", "wall_clock_ms"]

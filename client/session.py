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
Offline edits stay in the engine's open patch, or are sealed at once for
the write-ahead log when the front end calls :meth:`PadSession.flush`; they
are sent, or rebased onto the new head, once LIVE.

Refusals: STALE goes to :meth:`Engine.refused` (squash and rebase);
RATE_LIMITED re-sends the very same bytes after ``retry_after_ms``; anything
else on a write cannot be fixed by retrying and is reported as
:class:`~client.events.Failed` (and kept in :attr:`PadSession.failure`).

Rollback check: the session is given the last head ``(seq, id)`` a previous
run saw; a HISTORY_END below it, or another patch at its sequence number,
raises :attr:`~client.events.AlarmKind.ROLLBACK`.

Keepalive (:class:`client.connection.Keepalive`): a quiet relay is PINGed;
if that goes unanswered, :attr:`PadSession.stalled` turns true and the front
end drops the transport (a half-open connection — a laptop lid, a dead Wi-Fi —
never shows "Syncing…" forever).  Requests in flight and snapshot chunks are
kept by :mod:`client.connection` too.

Presence (who else is here, their cursors) is :mod:`client.presence`; the
session feeds it ephemerals and edits and sends what it announces.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from typing import Any

import crypto
from client.codec import CryptoCodec
from client.connection import DEFAULT_MAX_FRAME_BYTES, Keepalive, Outbox, Want
from client.doctype import TEXT
from client.engine import (
    Base,
    Committed,
    Engine,
    LocalError,
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
    Failed,
    PadEvent,
    Peer,
    Status,
    StatusChanged,
    TextChanged,
)
from client.joining import Joining
from client.presence import DEFAULT_PRESENCE_TIMEOUT_MS, Presence
from client.textops import Patch
from crypto.backend import RandomFn, default_random
from wire import codes
from wire import frames as p
from wire.errors import WireError

DEFAULT_KEEPALIVE_MS = 10_000


def wall_clock_ms() -> int:
    """The default clock: milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


class Phase(enum.Enum):
    """The connection phase of a session."""

    OFFLINE = "offline"
    JOINING = "joining"
    LIVE = "live"
    CLOSED = "closed"


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
        random: the source of randomness (session id, nonces); ``os.urandom``
            through :func:`crypto.backend.default_random` unless injected.
        keepalive_ms: silence after which we PING the relay (see :attr:`stalled`).
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
        random: RandomFn = default_random,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
    ) -> None:
        self.keys = keys
        self.author = author
        self.clock = clock
        self.presence_timeout_ms = presence_timeout_ms
        self.engine: Engine[str, Patch] = Engine(
            TEXT,
            CryptoCodec(keys, author, random),
            writer=keys.can_write,
            pipeline=pipeline,
            clock=clock,
        )
        self.phase = Phase.OFFLINE
        self.token = token
        self.welcome: p.Welcome | None = None
        self.failure: Failed | None = None
        self.reconnects = 0
        self.presence = Presence(keys, author, timeout_ms=presence_timeout_ms, random=random)
        self.keepalive = Keepalive(keepalive_ms)
        self._outbox = Outbox()
        self._events: list[PadEvent] = []
        self._join = Joining(
            keys,
            self.engine,
            self._outbox,
            self._alarm,
            create=create,
            last_head=last_head,
            recovered=recovered,
            recovered_bases=recovered_bases,
        )
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
        return self._join.synced_once and not self.engine.recovering

    @property
    def last_head(self) -> tuple[int, bytes] | None:
        """``(seq, id)`` of the highest head seen, this run or before (keep it for the next)."""
        return self._join.last_head

    @property
    def unsaved(self) -> bool:
        """Whether some local edit is not acknowledged by the relay yet."""
        return not self.engine.saved

    @property
    def fatal(self) -> Failed | None:
        """A refusal no reconnect can fix (the pad never loaded, or a version mismatch).

        Front ends stop reconnecting and show it; other refusals are reported
        as :class:`~client.events.Failed` events and the session goes on.
        """
        failure = self.failure
        if failure is not None and (not self.ready or failure.code == "VERSION_MISMATCH"):
            return failure
        return None

    @property
    def stalled(self) -> bool:
        """True when a PING went unanswered for ``keepalive_ms``: drop the transport."""
        connected = self.phase in (Phase.JOINING, Phase.LIVE)
        return connected and self.keepalive.stalled(self.clock())

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Everyone else present, in order of arrival."""
        return self.presence.peers

    def last_heard_ms(self, peer: Peer) -> int | None:
        """When ``peer`` was last heard from (epoch ms), None once it left."""
        return self.presence.heard_ms(peer)

    def debug_state(self) -> dict[str, Any]:
        """The session's inner state as JSON-ready values, for bug reports and tests."""
        engine = self.engine
        return {
            "phase": self.phase.value,
            "inflight": [own.sealed.id.hex()[:8] for own in engine.inflight],
            "open": [[op.pos, op.delete, op.insert] for op in engine.open],
            "last_seq": engine.last_seq,
            "height": engine.height,
            "snapshot": engine.snapshots.height,  # of the latest snapshot made, loaded or seen
            "recovering": engine.recovering,
        }

    def pending(self) -> list[bytes]:
        """The sealed patches not yet acknowledged, oldest first (the write-ahead log).

        Before the history is loaded, the previous run's log (``recovered``)
        as it was: it is adopted only then, and must survive a crash until.
        """
        if self._join.unadopted:
            return list(self._join.unadopted)
        return [sealed.data for sealed in self.engine.unacknowledged()]

    def pending_base(self) -> Base[str] | None:
        """The text :meth:`pending` was made on (persist it when its parent changes)."""
        if self._join.unadopted:
            return None  # the recovered log's bases stay as they are on disk
        return self.engine.log_base()

    def events(self) -> list[PadEvent]:
        """Take the events produced since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def frames_to_send(self) -> list[bytes]:
        """Take the frames to send, in order (persist :meth:`pending` first)."""
        return self._outbox.take()

    # --- the connection ----------------------------------------------------

    def connected(self) -> None:
        """A transport opened: queue HELLO and SUBSCRIBE."""
        if self.phase is Phase.CLOSED:
            return
        self._reset_connection()
        self.phase = Phase.JOINING
        self.keepalive.opened(self.clock())
        self._outbox.send(p.Hello(p.PROTOCOL_VERSION, self.token))
        self._join.subscribe()

    def disconnected(self, reason: str = "connection closed") -> None:
        """The transport dropped: everything unacknowledged will be resent."""
        if self.phase in (Phase.OFFLINE, Phase.CLOSED):
            return
        was_live = self.phase is Phase.LIVE
        self.phase = Phase.OFFLINE
        self._reset_connection()
        self.presence.disconnected()
        if was_live:
            self._lost = True
            self._events.append(ConnectionLost(reason))
        self._update_status()

    def close(self) -> None:
        """Say goodbye to peers (if live) and stop."""
        if self.phase is Phase.LIVE and self.presence.mine is not None:
            self._send_ephemeral({"bye": True})
        self.phase = Phase.CLOSED

    def _reset_connection(self) -> None:
        self._outbox.reset()
        self._join.reset()

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
        if not self._join.synced_once:
            raise NotReady("the pad's history is not loaded yet")
        try:
            self.engine.edit(patch)
        except LocalError as error:
            raise InvalidEdit(str(error)) from error
        self.presence.move_cursors(patch)
        self._flush()
        self._drain()

    def flush(self) -> None:
        """Seal the typed work now, even offline, so :meth:`pending` holds it.

        Online, work is sealed as the pipeline allows; a front end that keeps
        a write-ahead log calls this after edits made offline, so a reload
        loses nothing (the patch is resent, or rebased, once live).
        """
        if self.keys.can_write and self._join.synced_once and self.phase is not Phase.CLOSED:
            self.engine.flush(send=self.phase is Phase.LIVE)
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
        mine = self.presence.update(name, color, cursor)
        if self.phase is Phase.LIVE:
            self._send_ephemeral(mine)

    def tick(self) -> None:
        """Do what is due: rate-limit retries, peer expiry, heartbeat, keepalive."""
        now = self.clock()
        self._outbox.due(now)
        self._events += self.presence.expire(now)
        mine = self.presence.mine
        if self.phase is Phase.LIVE and mine is not None and self.presence.heartbeat_due(now):
            self._send_ephemeral(mine)
        if self.phase in (Phase.JOINING, Phase.LIVE) and self.keepalive.ping_due(now):
            self._outbox.send(p.Ping(self._outbox.next_id()))
            self.keepalive.pinged(now)

    def next_deadline_ms(self) -> int:
        """When :meth:`tick` has something to do next (epoch milliseconds)."""
        deadlines = [self._outbox.next_retry_ms(), self.presence.next_deadline_ms()]
        if self.phase in (Phase.JOINING, Phase.LIVE):
            deadlines.append(self.keepalive.next_deadline_ms())
        known = [deadline for deadline in deadlines if deadline is not None]
        return min(known, default=self.clock() + self.presence_timeout_ms)

    # --- what the relay says ----------------------------------------------

    def receive_frame(self, data: bytes) -> None:
        """Handle one message from the relay.

        Raises:
            ProtocolError: the message is not a valid relay frame (close the
                connection; reconnecting resumes).
        """
        try:
            frame = p.decode_relay(data)
        except WireError as error:
            raise ProtocolError(f"the relay sent an invalid frame: {error}") from error
        if self.phase in (Phase.OFFLINE, Phase.CLOSED):
            return
        self.keepalive.heard(self.clock())
        handler = _HANDLERS.get(type(frame))
        if handler is not None:
            handler(self, frame)
        self._flush()  # a new head may free work refused as stale
        self._drain()

    def _on_welcome(self, frame: p.Welcome) -> None:
        self.welcome = frame

    def _on_history_end(self, frame: p.HistoryEnd) -> None:
        if not self._join.ended(frame):
            return
        self.phase = Phase.LIVE
        if not self._join.live():
            self.reconnects += 1
            self.engine.resend()
        if self._lost:
            self._lost = False
            self._events.append(ConnectionRestored())
        self._flush()
        if self.presence.mine is not None:
            self._send_ephemeral(self.presence.mine)

    def _on_ack(self, frame: p.Ack) -> None:
        request = self._outbox.answered(frame.request_id)
        if request is None or request.want is not Want.PATCH:
            return
        self._join.acked(frame.seq, frame.id)
        self.engine.acked(frame.id, frame.seq)
        self._flush()

    def _on_refuse(self, frame: p.Refuse) -> None:
        request = self._outbox.answered(frame.request_id)
        if request is None:
            return
        code = codes.code_name(frame.code, codes.RefuseCode)
        if frame.code == codes.RefuseCode.RATE_LIMITED:
            due = self.clock() + max(1, frame.retry_after_ms)
            self._outbox.retry_at(due, frame.request_id, request)
        elif request.want is Want.PATCH and (
            frame.code == codes.RefuseCode.STALE or self.engine.recovering  # a probe: not stored
        ):
            self.engine.refused(request.id, frame.head_id)
            self._flush()
        elif request.want is not Want.SNAPSHOT:
            self._fail(code, f"the relay refused a {request.want.value}")

    def _fail(self, code: str, message: str) -> None:
        self.failure = Failed(code, message)
        self._events.append(self.failure)

    def _on_error(self, frame: p.Error) -> None:
        if frame.code == codes.ErrorCode.VERSION_MISMATCH:
            self._fail("VERSION_MISMATCH", f"{frame.message} (upgrade blindpad)")

    def _on_peer_joined(self, frame: p.PeerJoined) -> None:
        if self.presence.mine is not None and self.phase is Phase.LIVE:
            self._send_ephemeral(self.presence.mine)

    def _on_peer_left(self, frame: p.PeerLeft) -> None:
        self._events += self.presence.connection_left(frame.peer)

    def _on_ephemeral(self, frame: p.EphemeralRelayed) -> None:
        self._events += self.presence.receive(frame.envelope, frame.sender, self.clock())

    # --- helpers -----------------------------------------------------------

    def _send_ephemeral(self, body: dict[str, Any]) -> None:
        sealed = self.presence.announce(body, self.clock())
        self._outbox.send(p.Ephemeral(self._outbox.next_id(), sealed))

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
                self.presence.move_cursors(event.patch)
                self._events.append(TextChanged(tuple(event.patch)))
            elif isinstance(event, Committed):
                self._events.append(Acked(event.id))
            elif isinstance(event, Alarm):  # the engine's alarms are the SDK's
                self._events.append(event)
        self._update_status()

    def _push(self, sealed: Sealed) -> None:
        if self.phase is Phase.LIVE:  # else resent by engine.resend() once live again
            self._outbox.push(sealed)

    def _upload(self, sealed: Sealed) -> None:
        if self.phase in (Phase.JOINING, Phase.LIVE):
            limit = self.welcome.max_frame_bytes if self.welcome else DEFAULT_MAX_FRAME_BYTES
            self._outbox.upload(sealed, limit)

    def _update_status(self) -> None:
        status = self.status
        if status is not self._status:
            self._status = status
            self._events.append(StatusChanged(status))


_HANDLERS: dict[type[Any], Callable[[PadSession, Any], None]] = {
    p.Welcome: PadSession._on_welcome,
    p.Snapshot: lambda session, frame: session._join.snapshot(frame),
    p.History: lambda session, frame: session._join.patch(frame),
    p.Broadcast: lambda session, frame: session._join.patch(frame),
    p.HistoryEnd: PadSession._on_history_end,
    p.Ack: PadSession._on_ack,
    p.Refuse: PadSession._on_refuse,
    p.Error: PadSession._on_error,
    p.PeerJoined: PadSession._on_peer_joined,
    p.PeerLeft: PadSession._on_peer_left,
    p.EphemeralRelayed: PadSession._on_ephemeral,
}
# Every other frame (PONG, UNSUBSCRIBED) only proves the connection alive.

__all__ = [
    "DEFAULT_KEEPALIVE_MS",
    "DEFAULT_PRESENCE_TIMEOUT_MS",
    "CryptoCodec",
    "PadSession",
    "Phase",
    "wall_clock_ms",
]

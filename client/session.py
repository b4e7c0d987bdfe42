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
Edits stay in the engine's open patch until a patch can be sent or the
write-ahead log is read (:meth:`PadSession.pending` seals them first, and
:meth:`PadSession.flush` seals them offline); they are sent, or rebased onto
the new head, once LIVE.

Refusals: STALE goes to :meth:`Engine.refused` (squash and rebase);
RATE_LIMITED and YIELD (another writer's turn, PROTOCOL.md §13.3) re-send the
very same bytes after ``retry_after_ms``; anything
else on a write cannot be fixed by retrying and is reported as
:class:`~client.events.Failed` (and kept in :attr:`PadSession.failure`).

Trust (:mod:`client.trust`): the session is given the highest ``(height,
id)`` a previous run verified (and its Merkle mountain range); every
catch-up must extend it, else :attr:`~client.events.AlarmKind.ROLLBACK` or
:attr:`~client.events.AlarmKind.FORK`, and the pad is suspect: never
"saved".  Head beacons ride on presence and catch forks between live peers.

Liveness (:class:`client.connection.Watchdog`): a live session that waits on
the relay (our patches unanswered, a head a refusal named, a sequence gap, a
patch whose parent never came) and sees no progress for ``resume_after_ms``
re-subscribes on the same connection *since* its last contiguous sequence
number, and resends what is in flight; after a second resume without
progress it raises :attr:`~client.events.AlarmKind.WITHHELD` and keeps
trying.  While something the relay named is missing, the status is never
"saved".

Keepalive (:class:`client.connection.Keepalive`): a quiet relay is PINGed;
if that goes unanswered, :attr:`PadSession.stalled` turns true and the front
end drops the transport (a half-open connection — a laptop lid, a dead Wi-Fi —
never shows "Syncing…" forever).  Requests in flight and snapshot chunks are
kept by :mod:`client.connection` too.

Presence (who else is here, their cursors) is :mod:`client.presence`; the
session feeds it ephemerals and edits and sends what it announces.

The class is in two parts: :class:`~client.relayside.RelaySide` (its state
and the relay frames it answers) and :class:`PadSession` here, which adds the
front end's side (reading state, connecting, editing, ticking).
"""

from __future__ import annotations

from typing import Any

from client.codec import CryptoCodec
from client.connection import Request, Want
from client.doctype import TEXT
from client.engine import Base, LocalError
from client.errors import InvalidEdit, NotReady, ReadOnly
from client.events import ConnectionLost, Failed, PadEvent, Peer
from client.offline import LocalCopy
from client.payload import Sealed
from client.presence import DEFAULT_PRESENCE_TIMEOUT_MS
from client.relayside import (
    DEFAULT_KEEPALIVE_MS,
    Compaction,
    Phase,
    RelaySide,
    Upload,
    wall_clock_ms,
)
from client.rope import plain
from client.snapshots import HW_WINDOW
from client.textops import InvalidPatch
from wire import frames as p


class PadSession(RelaySide):
    """One session on one pad, speaking frames.  See the module docstring.

    Args:
        keys: the pad's keys (view keys make a read-only session).
        author: who signs our patches and presence.
        clock: milliseconds since the epoch (injected for tests).
        presence_timeout_ms: peers silent this long expire.
        pipeline: patches in flight at once.
        pace_ms: an edit made while one of ours is at the relay leaves this
            long after our last patch left, at the soonest
            (:meth:`client.outbox.Outbox.paced`; 0: at once; the SDK's
            :data:`client.pad.PACE_MS`).
        last_head: ``(height, id)`` of the highest head a previous run verified.
        last_peaks: the Merkle mountain range there (:mod:`wire.mmr`).
        recovered: sealed patches from a previous run's write-ahead log.
        recovered_bases: the base(s) logged with them (:mod:`client.recovery`).
        token: the relay's channel-creation token, if it needs one.
        create: create the pad if the relay does not know it (SUBSCRIBE carries
            the verify key); else an unknown pad is refused NO_VERIFY_KEY.
        random: the source of randomness (session id, nonces); ``os.urandom``
            through :func:`crypto.backend.default_random` unless injected.
        keepalive_ms: silence after which we PING the relay (see :attr:`stalled`).
        resume_after_ms: how long a live session waits on the relay without
            progress before it re-reads from its last position
            (:class:`client.connection.Watchdog`).
        from_history: open from the earliest point the relay still holds and
            replay every patch after it, not from the latest snapshot.
        compact: after each snapshot of ours is stored, trim the history at
            the previous snapshot we verified, never past a peer heard from within
            ``catch_up_window_ms`` (editors only; on by default).
        catch_up_window_ms: how long a peer's announced head holds trims back.
        retention_pct: the older snapshots such a trim keeps, thinned, as a
            percentage of the newest snapshot's bytes (0 keeps none; ``None``,
            the default: those that fit, with the newest, in the document's
            uncompressed size).
        doctype: the document type (:data:`client.doctype.TEXT`, or
            :data:`client.jsondoc.JSON` for a JSON pad).
    """

    # --- reading state -----------------------------------------------------

    @property
    def text(self) -> Any:
        """The user's view of the document: the text, or a JSON pad's value
        (while a trim is caught up with, what was shown before it: see
        :meth:`RelaySide._rejoin`)."""
        return plain(self.engine.view if self._rejoining is None else self._rejoining)

    @property
    def text_length(self) -> int:
        """``len(text)`` of a text pad without building the text."""
        return len(self.engine.view if self._rejoining is None else self._rejoining)

    @property
    def ready(self) -> bool:
        """True once the pad's history has been loaded at least once, and the
        write-ahead log recovered (:attr:`Engine.recovering`)."""
        return self._join.synced_once and not self.engine.recovering

    @property
    def last_peaks(self) -> tuple[bytes, ...] | None:
        """The Merkle mountain range at :attr:`last_head` (keep it with it)."""
        return self._join.trust.anchor

    @property
    def vouched(self) -> tuple[bytes, str] | None:
        """``(author key, name)`` of whoever made the snapshot this session opened
        from (the text before it rests on their word), or ``None``."""
        return self.engine.snapshots.vouched

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
            "due": int(self._snapshot_due is not None),  # a snapshot made, waiting for a tick
            "uploading": self._outbox.unanswered(Want.SNAPSHOT),  # snapshots not yet stored
            "compacted": dict(self.compacted),  # trims after our snapshots: sent/stored/refused
            "recovering": engine.recovering,
            "dropped_ephemerals": self.presence.dropped,  # not ours to read, or replayed
            "verified": [self.last_head[0], self.last_head[1].hex()] if self.last_head else None,
        }

    def pending(self) -> list[bytes]:
        """The sealed patches not yet acknowledged, oldest first (what the
        write-ahead log keeps, :meth:`write_ahead`).

        What was typed and not yet sealed is sealed first (nothing is sent),
        so the log holds every edit.  Before the history is loaded, the
        previous run's log (``recovered``) as it was: it is adopted only then,
        and must survive a crash until.
        """
        if self._join.unadopted:
            return list(self._join.unadopted)
        return [sealed.data for sealed in self.engine.unacknowledged()]

    def write_ahead(self) -> list[bytes]:
        """The write-ahead log to keep: :meth:`pending`, each version-2 session's
        record right before its first patch (a process adopting the log
        registers them before it resends, PROTOCOL.md §9.3)."""
        return self._codec.with_records(self.pending())

    def local_copy(self) -> LocalCopy | None:
        """Where this session stands, verified, to keep for an open without the
        relay (:mod:`client.offline`); ``None`` while that is not known
        cleanly (history not loaded, a gap or orphans below the head, a
        rejoin under way, a head that is not the last sequence number seen)."""
        engine = self.engine
        clean = self.ready and self._rejoining is None and not engine.gap
        if not clean or engine.last_seq != engine.height:
            return None
        head = engine.head
        hw = {s: v for s, v in engine.replica.hw.items() if v[1] > head.height - HW_WINDOW}
        retention = engine.snapshots.retention
        return LocalCopy(
            head.height, head.id, engine.last_seq, engine.auth, head.peaks, hw, retention
        )

    def restore(self, copy: LocalCopy) -> bool:
        """Open from a local copy (:mod:`client.offline`), before :meth:`connected`:
        :attr:`ready` at once, edits accepted (sealed with :meth:`flush` while
        offline), and the first connection resumes *since* the copy.

        Returns:
            False when the copy cannot be used (the session already loaded
            the pad, or its write-ahead log was made on a later head: then
            the relay must be reached first).
        """
        if self.phase is not Phase.OFFLINE or not self._join.restore(copy):
            return False
        self._drain()
        self._update_status()
        return True

    def pending_base(self) -> Base[Any] | None:
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
        """Send a snapshot found due, say goodbye to peers (if live) and stop."""
        self._send_snapshot(now=True)
        if self.phase is Phase.LIVE and self.presence.mine is not None:
            self._send_ephemeral({"bye": True})
        self.phase = Phase.CLOSED

    # --- local actions -----------------------------------------------------

    def edit(self, patch: Any) -> None:
        """Apply a local edit on :attr:`text` and send it when possible.

        Raises:
            ReadOnly: the session has view keys.
            NotReady: the history has not been loaded yet.
            InvalidEdit: ``patch`` does not apply to the current text.
        """
        if not self.keys.can_write:
            raise ReadOnly("this pad was opened with a view link, which cannot write")
        if self._rejoining is not None:  # caught up with a trim: kept, applied once caught up
            try:
                self._rejoining = self.doctype.apply(self._rejoining, patch)
            except InvalidPatch as error:
                raise InvalidEdit(str(error)) from error
            self._rejoin_edits.append(patch)
            if self.doctype is TEXT:
                self.presence.move_cursors(patch)
            return
        if not self._join.synced_once:
            raise NotReady("the pad's history is not loaded yet")
        try:
            self.engine.edit(patch)
        except LocalError as error:
            raise InvalidEdit(str(error)) from error
        if self.doctype is TEXT:
            self.presence.move_cursors(patch)
        self._flush()
        self._drain(typed=True)

    def trim(self) -> Compaction:
        """Owner trim: snapshot the pad at the relay's head, then trim its history there.

        Queues the snapshot; its ACK sends the trim; watch the returned
        :class:`~client.relayside.Compaction` (``floor`` once trimmed,
        ``refused`` if it stopped).  An empty pad is done at once (floor 0).

        Raises:
            ReadOnly: a view link.
            NotReady: not live, or the history is not loaded yet.
        """
        self._ready_to_write("trim the pad")
        made = self.engine.compaction()
        if made is None:
            self.compaction = Compaction(b"", Sealed(b"", b""), floor=0)
            return self.compaction
        snapshot, trim = made
        self.compaction = Compaction(snapshot.id, trim)
        self._upload(snapshot)
        return self.compaction

    def set_retention(self, keep_pct: int) -> Upload:
        """Set the pad's retention record: compactions (every editor's) keep older
        snapshots within ``keep_pct`` % of the newest one's bytes.

        The record rides a snapshot of the head, queued now; watch the
        returned :class:`~client.relayside.Upload` (``stored``, or
        ``refused``).  An empty pad is done at once (the record rides its
        first snapshot).

        Raises:
            ReadOnly: a view link.
            NotReady: not live, or the history is not loaded yet.
        """
        self._ready_to_write("change the pad's retention")
        snapshot = self.engine.set_retention(keep_pct)
        if snapshot is None:
            self.upload = Upload(b"", stored=True)
            return self.upload
        head = self.engine.head
        self._sealed_ours(snapshot, head.height)
        self.upload = Upload(snapshot.id)
        self._upload(snapshot)
        return self.upload

    def _ready_to_write(self, what: str) -> None:
        """Raise unless this session may ``what`` now: an edit link, live, history loaded."""
        if not self.keys.can_write:
            raise ReadOnly(f"a view link cannot {what}")
        if self.phase is not Phase.LIVE or not self.ready:
            raise NotReady(f"to {what}, the pad must be live and its history loaded")

    @property
    def retention(self) -> tuple[int, int] | None:
        """The pad's retention record as this session knows it: ``(keep_pct,
        set_ms)``, or ``None`` (each editor's own default applies)."""
        return self.engine.snapshots.retention

    @property
    def others_writing(self) -> bool:
        """Whether other writers' patches are landing among ours just now."""
        return self.engine.others_writing

    def _moot(self, request: Request) -> bool:
        """A retry of a patch sealed again since (its bytes are stale): not sent."""
        return request.want is Want.PATCH and self.engine.outbox.superseded(request.id)

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
        self.presence.update(name, color, cursor)
        if self.phase is Phase.LIVE:
            self._announce()

    def tick(self) -> None:
        """Do what is due: a snapshot, rate-limit retries, peer expiry, heartbeat, keepalive."""
        now = self.clock()
        paced = self.engine.outbox.pace_deadline_ms()
        if paced is not None and paced <= now:
            self._flush()
            self._drain()
        self._send_snapshot()
        self._outbox.due(now, self._moot)
        self._events += self.presence.expire(now)
        mine = self.presence.mine
        heartbeat = mine is not None and self.presence.heartbeat_due(now)
        if self.phase is Phase.LIVE and (heartbeat or self._beacon_due(now)):
            self._announce()
        if self.phase in (Phase.JOINING, Phase.LIVE) and self.keepalive.ping_due(now):
            self._outbox.send(p.Ping(self._outbox.next_id()))
            self.keepalive.pinged(now)
        self._watch()

    def next_deadline_ms(self) -> int:
        """When :meth:`tick` has something to do next (epoch milliseconds)."""
        deadlines = [
            self.engine.outbox.pace_deadline_ms(),
            self._outbox.next_retry_ms(),
            self.presence.next_deadline_ms(),
            self.watchdog.next_deadline_ms(),
            self._next_beacon_ms(),
            self._snapshot_deadline_ms(),
        ]
        if self.phase in (Phase.JOINING, Phase.LIVE):
            deadlines.append(self.keepalive.next_deadline_ms())
        known = [deadline for deadline in deadlines if deadline is not None]
        return min(known, default=self.clock() + self.presence_timeout_ms)


__all__ = [
    "DEFAULT_KEEPALIVE_MS",
    "DEFAULT_PRESENCE_TIMEOUT_MS",
    "CryptoCodec",
    "PadSession",
    "Phase",
    "wall_clock_ms",
]

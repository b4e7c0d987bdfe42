"""The relay's side of a :class:`~client.session.PadSession`: its state and the frames it answers.

:class:`RelaySide` holds what a session keeps (engine, presence, joining,
outbox, keepalive, phase) and answers every frame the relay sends;
:class:`~client.session.PadSession` adds the front end's side (reading
state, connecting, editing, ticking).  The theory of operation is in
:mod:`client.session`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import crypto
from client.codec import CryptoCodec
from client.connection import (
    DEFAULT_MAX_FRAME_BYTES,
    Keepalive,
    Outbox,
    Request,
    SnapshotChunks,
    Want,
    Watchdog,
)
from client.doctype import TEXT, DocType
from client.engine import (
    Base,
    Committed,
    Engine,
    RemoteChange,
    Sealed,
    SendPatch,
    SendSnapshot,
)
from client.errors import ProtocolError
from client.events import (
    Acked,
    Alarm,
    AlarmKind,
    ConnectionRestored,
    Failed,
    PadEvent,
    Status,
    StatusChanged,
    TextChanged,
    ValueChanged,
)
from client.joining import Joining
from client.payload import SESSION_LEN
from client.presence import DEFAULT_PRESENCE_TIMEOUT_MS, Beacon, Presence
from client.snapshots import REST_TAIL, fitting_keep_pct
from client.trust import SUSPECT
from crypto import envelope2
from crypto.backend import RandomFn, default_random
from wire import codes
from wire import frames as p
from wire.errors import WireError


@dataclasses.dataclass(slots=True)
class Compaction:
    """An owner trim under way: the snapshot is uploaded, then the trim sent.

    Attributes:
        snapshot_id: the snapshot's envelope id (its ACK sends the trim).
        trim: the sealed trim at the same patch.
        floor: once trimmed, the relay's new floor (the patch's number).
        refused: why it stopped, if it did (a refusal code, or the connection).
    """

    snapshot_id: bytes
    trim: Sealed
    floor: int | None = None
    refused: str | None = None

    @property
    def done(self) -> bool:
        """Trimmed, or stopped."""
        return self.floor is not None or self.refused is not None

    def answers(self, request: Request | None) -> bool:
        """Whether ``request`` is this unfinished job's snapshot upload or trim."""
        if request is None or self.done:
            return False
        if request.want is Want.SNAPSHOT:
            return request.id == self.snapshot_id
        return request.want is Want.TRIM and request.id == self.trim.id


@dataclasses.dataclass(slots=True)
class Upload:
    """A snapshot the front end waits for (one carrying a new retention record).

    Attributes:
        snapshot_id: its envelope id (empty: nothing to upload, done).
        stored: the relay acknowledged it.
        refused: why it stopped, if it did (a refusal code, or the connection).
    """

    snapshot_id: bytes
    stored: bool = False
    refused: str | None = None

    @property
    def done(self) -> bool:
        """Stored, or stopped."""
        return self.stored or self.refused is not None


DEFAULT_KEEPALIVE_MS = 10_000
#: Older snapshots a compaction keeps, as a percentage of the newest one's
#: bytes: ``None``, the default, keeps as many as fit, with the newest, in the
#: size of the document (RelaySide.keep_pct).
DEFAULT_RETENTION_PCT: int | None = None
#: A compaction trims no history that a peer heard from within this long still
#: needs: not past the lowest head such a peer announced (see RelaySide._compact).
DEFAULT_CATCH_UP_WINDOW_MS = 600_000
#: A session whose head moved announces it (a head beacon) at most this often.
BEACON_EVERY_MS = 2_000
#: A snapshot found due waits for our patches in flight to land before it is
#: sealed and sent (RelaySide._send_snapshot), but no longer than 1 ms per
#: this much of the document (characters of a text, values of a JSON
#: document): sealing costs about half that (a second at 10 MB of text) ...
SNAPSHOT_WAIT_SIZE_PER_MS = 5_000
#: ... and never longer than this.
SNAPSHOT_WAIT_MS = 2_000
#: A pad is at rest once its head has not moved for this long: then the author
#: of the head snapshots it if its tail is long (client.snapshots.REST_TAIL), and
#: any other writer does at twice this, in case that author is gone.
QUIET_MS = 60_000
#: How long a live session waits on the relay without progress before it re-reads.
DEFAULT_RESUME_AFTER_MS = 15_000


def wall_clock_ms() -> int:
    """The default clock: milliseconds since the Unix epoch."""
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True, slots=True)
class _Ours:
    """One of our snapshots, sent: what its compaction needs once it is stored."""

    height: int  # of its patch X
    sealed: int  # its sealed bytes
    plain: int  # its content's bytes before compression


class Phase(enum.Enum):
    """The connection phase of a session."""

    OFFLINE = "offline"
    JOINING = "joining"
    LIVE = "live"
    CLOSED = "closed"


class RelaySide:
    """The state of a pad session and how it answers the relay (see :class:`PadSession`)."""

    def __init__(
        self,
        keys: crypto.PadKeys,
        author: crypto.Author,
        *,
        clock: Callable[[], int] = wall_clock_ms,
        presence_timeout_ms: int = DEFAULT_PRESENCE_TIMEOUT_MS,
        pipeline: int = 4,
        pace_ms: int = 0,
        last_head: tuple[int, bytes] | None = None,
        last_peaks: tuple[bytes, ...] | None = None,
        recovered: Iterable[bytes] = (),
        recovered_bases: Iterable[Base[Any]] = (),
        token: bytes = b"",
        create: bool = True,
        random: RandomFn = default_random,
        keepalive_ms: int = DEFAULT_KEEPALIVE_MS,
        resume_after_ms: int = DEFAULT_RESUME_AFTER_MS,
        from_history: bool = False,
        compact: bool = True,
        retention_pct: int | None = DEFAULT_RETENTION_PCT,
        catch_up_window_ms: int = DEFAULT_CATCH_UP_WINDOW_MS,
        doctype: DocType[Any, Any] = TEXT,
    ) -> None:
        self.doctype = doctype
        self.keys = keys
        self.author = author
        self.clock = clock
        self.presence_timeout_ms = presence_timeout_ms
        self._random = random
        self._pipeline = pipeline
        self._pace_ms = pace_ms
        self._codec = CryptoCodec(keys, author, random, clock)
        recovered = self._codec.learn_logged(recovered)
        self.engine = self._new_engine()
        self._rejoining: Any = None  # the document shown while a trim is caught up with
        self._rejoin_base: Any = doctype.empty()  # the document shown when the rejoin began
        self._rejoin_edits: list[Any] = []  # edits made meanwhile, on the document shown
        self.phase = Phase.OFFLINE
        self.token = token
        self.welcome: p.Welcome | None = None
        self.failure: Failed | None = None
        self.reconnects = 0
        self.presence = Presence(keys, author, timeout_ms=presence_timeout_ms, random=random)
        self.keepalive = Keepalive(keepalive_ms)
        self.watchdog = Watchdog(resume_after_ms)
        self.resumes = 0  # re-reads on a live connection (see Watchdog)
        self.compaction: Compaction | None = None
        self.upload: Upload | None = None  # the snapshot of a retention change, awaited
        self.compact = compact and keys.can_write
        self.retention_pct = retention_pct
        self.catch_up_window_ms = catch_up_window_ms
        self._peer_heads: dict[str, tuple[int, int]] = {}  # who -> (height, heard at ms)
        self._snapshot_of: dict[bytes, _Ours] = {}  # our snapshot id -> what it is
        # The snapshot the engine found due, sealed and sent by a tick once every
        # edit is acknowledged (:meth:`_send_snapshot`), and since when one is.
        self._snapshot_due: SendSnapshot | None = None
        self._snapshot_due_ms = 0
        self._quiet = (b"", 0)  # our head's id, and since when it is the head (ms)
        self._rested = b""  # the head last found at rest (snapshotted or not: once a head)
        self.compacted = {"sent": 0, "stored": 0, "refused": 0}  # trims after our snapshots
        self._compacting: set[bytes] = set()  # trim envelope ids sent, unanswered
        self._outbox = Outbox(keys.channel_id, self._codec.record)
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
            from_history=from_history,
            last_peaks=last_peaks,
        )
        self._live_snapshot = SnapshotChunks()  # a snapshot someone just stored, arriving
        self.disputes = 0  # disputes this session published
        self._lost = False
        self._status = Status.OFFLINE
        self._beaconed: tuple[int, bytes] | None = None  # the head our last beacon carried
        self._ahead: dict[str, Beacon] = {}  # peers whose beacon is above our head
        self._forked: set[str] = set()  # peers already named in a fork alarm
        self._distrust: Alarm | None = None  # the last alarm that made the pad suspect

    def _new_engine(self) -> Engine[Any, Any]:
        engine: Engine[Any, Any] = Engine(
            self.doctype,
            self._codec,  # one per session: a rejoin's engine seals on under it
            writer=self.keys.can_write,
            pipeline=self._pipeline,
            pace_ms=self._pace_ms,
            clock=self.clock,
            session=self._random(SESSION_LEN),
        )
        engine.chain.fast_forward = True  # one relay, one line (client.trust)
        return engine

    def _rejoin(self) -> None:
        """The relay trimmed past the last patch we saw (we were away while
        someone compacted): start again from its snapshot, like a restart.

        Everything typed is sealed and becomes the recovered log of a fresh
        engine (its writer session is new); the catch-up adopts it, deciding
        from the snapshot's high-water table what landed
        (:mod:`client.recovery`), and the trust state carries over, so the
        snapshot must descend from what we verified (a proof across the trim).
        Meanwhile :attr:`text` stays what was shown and edits apply to it
        (kept in memory only: a crash in that window loses them); once caught
        up they are carried onto the new text and one :class:`TextChanged`
        takes the front end to the result.
        """
        old = self.engine
        if old.writer and not old.recovering:
            old.flush(send=False)
        logged = self._join.unadopted or [sealed.data for sealed in old.unacknowledged()]
        base = old.log_base()
        bases = [base] if base is not None else list(self._join.recovered_bases)
        trust = self._join.trust
        if self._rejoining is None:
            self._rejoining = self._rejoin_base = old.view
        self.engine = self._new_engine()
        self._join = Joining(
            self.keys,
            self.engine,
            self._outbox,
            self._alarm,
            create=False,
            last_head=trust.remembered,
            recovered=logged,
            recovered_bases=bases,
            last_peaks=trust.anchor,
        )
        self._join.subscribe()

    def _rejoined(self) -> None:
        """The rejoin is caught up: carry the edits made meanwhile onto the new
        text (across the change from the text shown when it began) and take
        the front end from what it shows to the result in one change."""
        doc = self.doctype
        self._drain()  # the catch-up's changes (the recovered work too), untold: see below
        shown = doc.empty() if self._rejoining is None else self._rejoining
        base, edits = self._rejoin_base, self._rejoin_edits
        self._rejoining, self._rejoin_base, self._rejoin_edits = None, doc.empty(), []
        if edits and self.engine.writer:
            work = doc.identity()
            for patch in edits:
                work = doc.compose(work, patch)
            arrived = doc.merge_diff(base, self.engine.view)
            self.engine.edit(doc.transform(work, arrived))
        moved = doc.merge_diff(shown, self.engine.view)
        if not doc.is_identity(moved):
            self._changed_by(moved, cursors=False)

    def _changed_by(self, patch: Any, *, cursors: bool = True) -> None:
        """Report someone else's change: text ops for text, one event per
        operation (with its path) for JSON."""
        if self.doctype is TEXT:
            if cursors:
                self.presence.move_cursors(patch)
            self._events.append(TextChanged(tuple(patch)))
        else:
            self._events.extend(ValueChanged(op.path, op.kind) for op in patch)

    @property
    def status(self) -> Status:
        """Offline, syncing, or saved (every edit acknowledged while connected,
        nothing the relay named is missing, and the history it served verified
        against the point this device verified before: :mod:`client.trust`)."""
        if self.phase is not Phase.LIVE:
            return Status.OFFLINE
        saved = self.engine.saved and self.missing is None and self.trusted
        return Status.SAVED if saved else Status.SYNCING

    @property
    def trusted(self) -> bool:
        """The history served extends what this device verified, and no alarm
        made the pad suspect (rollback, fork, withheld): :mod:`client.trust`."""
        trust = self._join.trust
        return trust.verified and trust.suspect is None and not self._join.proving

    @property
    def distrust(self) -> Alarm | None:
        """The alarm that makes the pad suspect now, if any (:mod:`client.trust`)."""
        return self._distrust if self._join.trust.suspect is not None else None

    @property
    def missing(self) -> str | None:
        """What the relay named or owes that we do not hold, in words, or ``None``."""
        return self.engine.missing or self._join.missing

    @property
    def edits_wait(self) -> bool:
        """A text edit made now would not be sent at once (live, a text pad, no
        trim being caught up with; :meth:`client.outbox.Outbox.would_wait`):
        the SDK types ahead then (:class:`client.pad.Pad`)."""
        return (
            self.phase is Phase.LIVE
            and self.keys.can_write
            and self._rejoining is None
            and self.doctype is TEXT
            and self.engine.outbox.would_wait()
        )

    def pace_deadline_ms(self) -> int | None:
        """When typed work waiting for the pace leaves (``None``: none waits
        for it; :meth:`client.outbox.Outbox.paced`)."""
        return self.engine.outbox.pace_deadline_ms()

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
        self._join.trust.advance(self.engine.head)
        self._caught_up_with_peers()
        self._flush()  # a new head may free work refused as stale
        self._drain()

    def _on_welcome(self, frame: p.Welcome) -> None:
        self.welcome = frame

    def _on_proof(self, frame: p.Proof) -> None:
        if self._outbox.answered(frame.request_id) is not None:
            self._join.proof(frame, frame.request_id)

    def _on_record(self, frame: p.Record) -> None:
        """A record the next envelopes need (PROTOCOL.md §8.4): a session's."""
        if frame.kind != envelope2.SESSION:
            return  # a kind this client does not use yet
        try:
            self.engine.codec.learn(frame.envelope)
        except ValueError as error:
            self._alarm(AlarmKind.UNREADABLE, f"the relay sent {error}")

    def _on_snapshot(self, frame: p.Snapshot) -> None:
        if not frame.flags & p.SNAPSHOT_LIVE:
            self._join.snapshot(frame)  # the catch-up's: open from it
            return
        done = self._live_snapshot.add(frame.x_seq, frame.total, frame.offset, frame.data)
        if done is None:
            return
        found = self.engine.check_snapshot(done[1])
        if found is None or not self.keys.can_write:
            return  # it matches (or we cannot tell); a viewer alarms but cannot sign
        snapshot_id, height, problem = found
        content = json.dumps({"reason": problem, "height": height}).encode()
        sealed = self.engine.codec.seal(crypto.Kind.DISPUTE, snapshot_id, content, height=height)
        self._outbox.dispute(sealed)
        self.disputes += 1

    def _on_history_end(self, frame: p.HistoryEnd) -> None:
        resumed = self._join.resuming
        if not self._join.ended(frame):
            return
        self.phase = Phase.LIVE
        if not self._join.live():
            if not resumed:
                self.reconnects += 1
            self.engine.resend()
        elif self._rejoining is not None:
            self.reconnects += 1  # a reconnect that found the history trimmed past it
        if self._rejoining is not None and self._join.synced_once:
            self._rejoined()
        if self._lost:
            self._lost = False
            self._events.append(ConnectionRestored())
        self._flush()
        self._announce()

    def _on_ack(self, frame: p.Ack) -> None:
        request = self._outbox.answered(frame.request_id)
        job = self.compaction
        if job is not None and job.answers(request):
            assert request is not None
            if request.want is Want.SNAPSHOT:
                self._outbox.trim(job.trim)  # stored: now the history before it can go
            else:
                job.floor = frame.seq
        elif request is not None and request.want is Want.SNAPSHOT:
            if self.upload is not None and self.upload.snapshot_id == request.id:
                self.upload.stored = True
            self._compact(request.id)
        elif request is not None and request.id in self._compacting:
            self._compacting.discard(request.id)
            self.compacted["stored"] += 1
        if request is None or request.want is not Want.PATCH:
            return
        self.engine.acked(frame.id, frame.seq)
        self._join.strays()
        self._flush()

    def _on_refuse(self, frame: p.Refuse) -> None:
        request = self._outbox.answered(frame.request_id)
        if request is None:
            return
        code = codes.code_name(frame.code, codes.RefuseCode)
        unknown_session = frame.code == codes.RefuseCode.UNKNOWN_SESSION
        ours = self._codec.session_tag
        if unknown_session and request.want in _SESSION_SIGNED and ours is not None:
            # Not stored: the relay holds no record of our session (a trim dropped
            # it once none of our envelopes was left, docs/PROTOCOL.md §9.3, or it
            # never had it): the next envelope we send registers it again.
            self._outbox.forget(ours)
        job = self.compaction
        if (
            job is not None
            and job.answers(request)
            and frame.code != codes.RefuseCode.RATE_LIMITED
        ):
            job.refused = code
            return
        upload = self.upload
        if upload is not None and not upload.done and upload.snapshot_id == request.id:
            upload.refused = code
            return
        if request.id in self._compacting:  # another editor trimmed past it, or it is disputed
            self._compacting.discard(request.id)
            self.compacted["refused"] += 1
            return
        if request.want is Want.PROOF:
            self._join.proof(None, frame.request_id)  # the relay names nothing: withheld
            return
        if request.want is Want.SESSION:
            self._session_refused(request.id, frame.code, code)
            return
        if request.want is Want.SUBSCRIBE and frame.code == codes.RefuseCode.HISTORY_TRIMMED:
            self._rejoin()
            return
        if frame.code in (codes.RefuseCode.RATE_LIMITED, codes.RefuseCode.YIELD):
            due = self.clock() + max(1, frame.retry_after_ms)
            self._outbox.retry_at(due, frame.request_id, request)
        elif request.want is Want.PATCH and (
            frame.code == codes.RefuseCode.STALE or self.engine.recovering  # a probe: not stored
        ):
            self.engine.refused(request.id, frame.head_id)
            self._flush()
        elif request.want is Want.PATCH and unknown_session:
            # Not stored: its session is not registered (taken, forgotten by the
            # relay, or not ours to register); the work is sealed again under
            # our own session, registered again (above) before it goes.
            self.engine.refused(request.id)
            self._flush()
        elif request.want not in (Want.SNAPSHOT, Want.DISPUTE) and not unknown_session:
            # A snapshot or dispute is best effort, not the pad's; a trim refused
            # UNKNOWN_SESSION here is an owner trim a newer one replaced (ours
            # registers again above): neither ends the session.
            self._fail(code, f"the relay refused a {request.want.value}", frame.retry_after_ms)

    def _session_refused(self, tag: bytes, refusal: int, code: str) -> None:
        """SESSION refused: a tag taken makes our session new (what it sealed is
        refused UNKNOWN_SESSION and sealed again); a record the relay finds
        unsigned or malformed is a fault; anything else registers again with
        the next envelope."""
        self._outbox.forget(tag)
        if refusal == codes.RefuseCode.SESSION_TAG_TAKEN:
            if tag == self._codec.session_tag:
                self._codec.new_session()
        elif refusal in (codes.RefuseCode.BAD_SIGNATURE, codes.RefuseCode.MALFORMED_ENVELOPE):
            self._fail(code, "the relay refused this session's record")

    def _fail(self, code: str, message: str, retry_after_ms: int = 0) -> None:
        self.failure = Failed(code, message, retry_after_ms)
        self._events.append(self.failure)

    def _on_error(self, frame: p.Error) -> None:
        if frame.code == codes.ErrorCode.VERSION_MISMATCH:
            self._fail("VERSION_MISMATCH", f"{frame.message} (upgrade blindpad)")

    def _on_peer_joined(self, frame: p.PeerJoined) -> None:
        if self.phase is Phase.LIVE:
            self._announce()

    def _on_peer_left(self, frame: p.PeerLeft) -> None:
        self._events += self.presence.connection_left(frame.peer)

    def _on_ephemeral(self, frame: p.EphemeralRelayed) -> None:
        self._events += self.presence.receive(frame.envelope, frame.sender, self.clock())
        beacons, self.presence.beacons = self.presence.beacons, []
        for beacon in beacons:
            self._peer_heads[beacon.who] = (beacon.height, self.clock())
            self._ahead.pop(beacon.who, None)
            self._compare(beacon)

    # --- head beacons (docs/PROTOCOL.md §12.3) -----------------------------

    def _announce(self) -> None:
        """Send our presence, or a bare head beacon, carrying our verified head."""
        head = self.engine.head
        self._beaconed = (head.height, head.id)
        beacon = {"head": [head.height, head.id.hex()]}
        mine = self.presence.mine
        body = {**mine, **beacon} if mine is not None else {"beacon": True, **beacon}
        self._send_ephemeral(body)

    def _beacon_due(self, now_ms: int) -> bool:
        due = self._next_beacon_ms()
        return due is not None and now_ms >= due

    def _next_beacon_ms(self) -> int | None:
        """When our moved head is next announced (None: it has not moved, or not live)."""
        head = self.engine.head
        if self.phase is not Phase.LIVE or self._beaconed == (head.height, head.id):
            return None
        return self.presence.sent_ms + BEACON_EVERY_MS

    def _compare(self, beacon: Beacon) -> None:
        """A peer's head against our chain: the same patch at its height, or a fork."""
        head = self.engine.head
        if beacon.height > head.height:
            self._ahead[beacon.who] = beacon  # the relay owes us up to there
            return
        there = self.engine.chain.at_height(head, beacon.height)
        if there is None or there.id == beacon.id or beacon.who in self._forked:
            return
        self._forked.add(beacon.who)
        self._alarm(
            AlarmKind.FORK,
            f"{beacon.who} holds patch {beacon.id.hex()[:16]} at height {beacon.height}, "
            f"where this device holds {there.id.hex()[:16]}: the relay shows you two "
            "different pads",
        )
        self._join.trust.raise_suspect(AlarmKind.FORK)

    def _caught_up_with_peers(self) -> None:
        """Check the beacons our head has now reached."""
        height = self.engine.head.height
        for who, beacon in list(self._ahead.items()):
            if beacon.height <= height:
                del self._ahead[who]
                self._compare(beacon)

    # --- helpers -----------------------------------------------------------

    def _send_ephemeral(self, body: dict[str, Any]) -> None:
        sealed = self.presence.announce(body, self.clock())
        self._outbox.send(p.Ephemeral(self._outbox.next_id(), sealed))

    def _alarm(self, kind: AlarmKind, detail: str, patch_id: bytes | None = None) -> None:
        alarm = Alarm(kind, detail, patch_id)
        if kind in SUSPECT:
            self._distrust = alarm
        self._events.append(alarm)

    def _flush(self) -> None:
        if self.phase is Phase.LIVE and self.keys.can_write:
            self.engine.flush()

    def _drain(self, *, typed: bool = False) -> None:
        """Act on the engine's events, then watch the relay and update the status.

        ``typed``: after a local edit.  One that made no event (nothing sealed
        or sent) changes nothing the watchdog looks at, so it is not asked.
        """
        events = self.engine.events()
        for event in events:
            if isinstance(event, SendPatch):
                self._push(event.sealed)
            elif isinstance(event, SendSnapshot):
                # A newer one supersedes one still waiting (never sealed, it
                # costs nothing); the wait counts from the first.
                if self._snapshot_due is None:
                    self._snapshot_due_ms = self.clock()
                self._snapshot_due = event
            elif isinstance(event, RemoteChange):
                # While a trim is caught up with, the front end shows (and
                # :attr:`text` is) what was shown before it; the catch-up's
                # own changes are told at its end, as one (:meth:`_rejoined`).
                if self._rejoining is None:
                    self._changed_by(event.patch)
            elif isinstance(event, Committed):
                self._events.append(Acked(event.id))
            elif isinstance(event, Alarm):  # the engine's alarms are the SDK's
                self._events.append(event)
        if events or not typed:
            self._watch()
        head = self.engine.head.id
        if head != self._quiet[0]:
            self._quiet = (head, self.clock())
        self._update_status()

    def _push(self, sealed: Sealed) -> None:
        if self.phase is Phase.LIVE and not self._join.resuming:
            self._outbox.push(sealed)  # else resent by engine.resend() at HISTORY_END

    def _waiting(self) -> bool:
        """Live, and owed something by the relay: an answer to a push, or what
        it named (not a retry it asked for, nor work it refused for good)."""
        if self.phase is not Phase.LIVE or self._outbox.next_retry_ms() is not None:
            return False
        owed = self.missing is not None or bool(self._owed_pushes()) or self._join.proving
        return owed or bool(self._ahead)

    def _owed_pushes(self) -> set[bytes]:
        """Our patches pushed on this connection, unanswered and not yet on the chain
        (one stored under a later ACK of ours needs no answer any more)."""
        inflight = {own.sealed.id for own in self.engine.inflight}
        return self._outbox.unanswered_ids(Want.PATCH) & inflight

    def _watch(self) -> None:
        """Resume (and in the end alarm) when the relay stops making progress.

        A gap (a sequence number skipped, a patch whose parent never came) is
        resumed at once, the first time: the relay owes it, no need to wait.
        """
        now, dog = self.clock(), self.watchdog
        dog.watch(now, self._waiting(), self.engine.last_seq)
        gap = self.engine.gap and dog.resumes == 0 and not self._join.resuming
        if not (dog.due(now) or (gap and self.phase is Phase.LIVE)):
            return
        if dog.should_alarm():
            dog.alarmed = True
            pushes = len(self._owed_pushes())
            what = self.missing or self._ahead_words() or f"an answer to {pushes} of our patches"
            self._alarm(
                AlarmKind.WITHHELD,
                f"the relay has not delivered {what} after {dog.resumes} re-reads "
                f"from patch number {self.engine.last_seq}",
            )
        self._join.resume()
        dog.resumed(now)
        self.resumes += 1

    def _ahead_words(self) -> str | None:
        if not self._ahead:
            return None
        beacon = max(self._ahead.values(), key=lambda b: b.height)
        return f"patch {beacon.height}, which {beacon.who} holds"

    def _compact(self, snapshot_id: bytes) -> None:
        """Our snapshot ``snapshot_id`` is stored: trim at the previous snapshot we
        verified (made, or checked equal to our text), keeping older ones as
        the retention allows (docs/PROTOCOL.md §3.3 item 6).  Never at the
        newest: a snapshot is trimmed at only once a newer one stands beside it.

        Nor past a peer that may come back for the patches: not above the
        lowest head any peer announced within :attr:`catch_up_window_ms`.  A
        session away (a dropped connection, a relay restarted) then catches up
        patch by patch, exactly; one trimmed past has only the snapshot, and
        its unsent work is merged by a diff (:meth:`_rejoin`), which can
        interleave inserts that two people made at one place.
        """
        made = self._snapshot_of.pop(snapshot_id, None)
        if not self.compact or made is None:
            return
        limit = min(made.height - 1, self._lowest_peer_head())
        older = [v for v in self.engine.snapshots.verified if v[0] <= limit]
        if not older:
            return
        height, x_id = older[-1]
        trim = self.engine.snapshots.seal_trim_at(x_id, height)
        self._compacting.add(trim.id)
        self.compacted["sent"] += 1
        self._outbox.trim(trim, self.keep_pct(made.sealed, made.plain))

    def keep_pct(self, sealed: int, plain: int) -> int:
        """The retention of a compaction after our snapshot of ``sealed`` bytes
        (``plain`` before compression): the pad's record if it has one, else
        our ``retention_pct``, else the default: the checkpoints that fit,
        with the newest snapshot, in the document's size (PROTOCOL.md §6.4)."""
        record = self.engine.snapshots.retention
        if record is not None:
            return record[0]
        if self.retention_pct is not None:
            return self.retention_pct
        return fitting_keep_pct(sealed, plain)

    def _lowest_peer_head(self) -> int:
        """The lowest head a peer announced within the catch-up window (else no limit)."""
        since = self.clock() - self.catch_up_window_ms
        self._peer_heads = {w: h for w, h in self._peer_heads.items() if h[1] >= since}
        return min((height for height, _ in self._peer_heads.values()), default=1 << 62)

    def _rest_deadline_ms(self) -> int | None:
        """When the pad will be at rest with a tail worth a snapshot (:data:`QUIET_MS`),
        if it may be: live, a writer with nothing in flight, the tail long enough."""
        engine = self.engine
        head = engine.head
        if (
            self.phase is not Phase.LIVE
            or not engine.writer
            or not engine.saved
            or head.id == self._rested
            or head.height - engine.snapshots.height < REST_TAIL
        ):
            return None
        since = self._quiet[1] if self._quiet[0] == head.id else self.clock()
        return since + QUIET_MS * (1 if head.mine else 2)

    def rest(self) -> Upload | None:
        """We are leaving the pad: if our patch is its head and a long tail follows
        the latest snapshot, snapshot it now (compacted once stored, as any of
        ours) so the next to open it replays a short tail.  Returns the upload
        to wait for, or ``None`` (nothing to do)."""
        if self._snapshot_due is not None or (self.upload is not None and not self.upload.done):
            return None
        if self._rest_deadline_ms() is None or not self._at_rest(head_author=True):
            return None
        self._drain()  # the snapshot is due now
        sent = self._send_snapshot(now=True)
        assert sent is not None
        self.upload = Upload(sent)
        return self.upload

    def _at_rest(self, *, head_author: bool) -> bool:
        """Ask the engine for a snapshot of the head at rest (once a head, made or not)."""
        made = self.engine.at_rest(head_author=head_author)
        if made or not head_author:
            self._rested = self.engine.head.id
        return made

    def _snapshot_deadline_ms(self) -> int | None:
        """When :meth:`_send_snapshot` has a snapshot to send, if any."""
        due = self._snapshot_due
        if due is None:
            return self._rest_deadline_ms()
        if self.engine.saved:
            return self.clock()
        wait = min(SNAPSHOT_WAIT_MS, due.size // SNAPSHOT_WAIT_SIZE_PER_MS)
        return self._snapshot_due_ms + wait

    def _send_snapshot(self, *, now: bool = False) -> bytes | None:
        """Seal and send the snapshot found due, once every edit is acknowledged
        (``now``: at once, as the session closes), or one of the head once the
        pad is at rest (:meth:`_rest_deadline_ms`); return its envelope id.

        Sealing one takes long for a large document (about a second at 10 MB:
        its wire form, digest and compression).  It waits until our patches
        in flight have landed, so that their acknowledgements, and "saved",
        are not held up behind it; while edits keep coming it waits at most
        twice what sealing costs (:data:`SNAPSHOT_WAIT_SIZE_PER_MS`, at most
        :data:`SNAPSHOT_WAIT_MS`), so a fast typist's snapshots keep the
        cadence (and compaction keeps the history short) in a small document.
        """
        deadline = self._snapshot_deadline_ms()
        if deadline is None or (deadline > self.clock() and not now):
            return None
        if self._snapshot_due is None:  # the pad is at rest
            if now or not self._at_rest(head_author=False):
                return None
            self._drain()
        event, self._snapshot_due = self._snapshot_due, None
        assert event is not None
        node, sealed = self.engine.chain.nodes.get(event.of), event.sealed
        if node is not None:
            self._sealed_ours(sealed, node.height)
        self._upload(sealed)
        return sealed.id

    def _sealed_ours(self, sealed: Sealed, height: int) -> None:
        """Remember our snapshot ``sealed`` (just sealed) of the patch at ``height``."""
        plain = self.engine.snapshots.last_plain
        self._snapshot_of[sealed.id] = _Ours(height, len(sealed.data), plain)

    def _upload(self, sealed: Sealed) -> None:
        if self.phase in (Phase.JOINING, Phase.LIVE):
            limit = self.welcome.max_frame_bytes if self.welcome else DEFAULT_MAX_FRAME_BYTES
            self._outbox.upload(sealed, limit)

    def _update_status(self) -> None:
        status = self.status
        if status is not self._status:
            self._status = status
            self._events.append(StatusChanged(status))

    def _reset_connection(self) -> None:
        self._outbox.reset()
        self._join.reset()
        self._live_snapshot.reset()
        if self.compaction is not None and not self.compaction.done:
            self.compaction.refused = "the connection dropped"
        if self.upload is not None and not self.upload.done:
            self.upload.refused = "the connection dropped"


#: The requests whose envelope a session signs: refused UNKNOWN_SESSION, our
#: session registers again with the next envelope (RelaySide._on_refuse).
_SESSION_SIGNED = frozenset({Want.PATCH, Want.SNAPSHOT, Want.TRIM, Want.DISPUTE})

_HANDLERS: dict[type[Any], Callable[[RelaySide, Any], None]] = {
    p.Welcome: RelaySide._on_welcome,
    p.Snapshot: RelaySide._on_snapshot,
    p.Record: RelaySide._on_record,
    p.History: lambda session, frame: session._join.patch(frame),
    p.Broadcast: lambda session, frame: session._join.patch(frame),
    p.HistoryEnd: RelaySide._on_history_end,
    p.Proof: RelaySide._on_proof,
    p.Ack: RelaySide._on_ack,
    p.Refuse: RelaySide._on_refuse,
    p.Error: RelaySide._on_error,
    p.PeerJoined: RelaySide._on_peer_joined,
    p.PeerLeft: RelaySide._on_peer_left,
    p.EphemeralRelayed: RelaySide._on_ephemeral,
}
# Every other frame (PONG, UNSUBSCRIBED) only proves the connection alive.

__all__ = [
    "DEFAULT_CATCH_UP_WINDOW_MS",
    "DEFAULT_KEEPALIVE_MS",
    "DEFAULT_RESUME_AFTER_MS",
    "Compaction",
    "Phase",
    "RelaySide",
    "Upload",
    "wall_clock_ms",
]

"""One client connection: the protocol state and the push pipeline.

Theory of operation
-------------------
A :class:`Connection` is fed whole websocket messages by the endpoint
(:mod:`relay.app`) through :meth:`Connection.handle`, one at a time, and
writes its answers into its :class:`relay.hub.Outbox`.  Its lifecycle is
:class:`ConnState`: ``AWAITING_HELLO`` accepts only HELLO (a wrong version is
fatal VERSION_MISMATCH, which a page shows as "please reload"), ``OPEN``
accepts every other client frame.

Blame is by entry point: anything wrong with the *frame* (undecodable, too
big, a relay-only type, HELLO twice, text instead of binary) raises
:class:`relay.errors.ProtocolViolation` and ends this connection only;
anything wrong with a *request* (a bad envelope, a limit, a stale parent)
becomes a REFUSE frame and the connection goes on.  Store errors other than
the expected ones propagate as INTERNAL (the endpoint logs them).

A push goes through the checks in exactly the order DESIGN.md gives:

1. decode the frame and the envelope header (crypto.parse_header);
2. dedupe by id: the id of a live (untrimmed) patch is ACKed with its seq (a
   resend of a trimmed one is STALE: its parent is below the head);
3. limits: rate (retry-after), patch size, subscription, pad size, channel
   quota, total storage;
4. the channel signature (crypto.verify_channel_signature), in the
   signature helper process when there is one (:mod:`relay.verifier`: its
   verdicts come back in the order asked, so a connection's pushes stay in
   order); then the turn (PROTOCOL.md §13.3, :class:`wire.turns.Turns`): while a
   writer this connection outran still waits for a patch of its to land,
   REFUSE YIELD (send the same bytes again after retry_after_ms), so nobody
   laps a writer it outran;
5. parent is head, atomically with 6. in :meth:`relay.store.Store.append`
   (else REFUSE STALE with the head; nothing stored);
6. durable store;
7. ACK, delivered in seq order through the pusher's subscription;
8. broadcast to the channel's other subscribers.

Reading needs the pad's read token (PROTOCOL.md §3.3): a SUBSCRIBE whose
token does not hash to the channel's registered ``read_hash`` is answered as
if the channel did not exist (NO_VERIFY_KEY without a verify key,
UNKNOWN_CHANNEL with one), so the channel id alone reads nothing and tells
nothing.  Every other request needs a subscription, so it needs the token too.

A stored snapshot is sent live to the channel's other live subscribers
(:mod:`relay.live`, through :meth:`relay.cluster.Cluster.snapshot_stored`);
a DISPUTE of a stored snapshot is stored beside it and marks it DISPUTED
(never forwarded); a TRIM at a disputed snapshot is refused, and a TRIM's
``keep_pct`` sets how many older snapshots it keeps (:meth:`Store.trim`).
PROOF_REQUEST is answered with the Merkle nodes of a range of patches: the
ids the relay holds, the roots of the blocks of 256 it trimmed
(:meth:`Store.proof_nodes`), so a client can check that a snapshot descends
from what it verified.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import enum
import functools
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import crypto
from crypto import envelope2
from crypto.envelope import Header, Kind, envelope_id, parse_header
from crypto.keys import channel_id_for
from relay.bus import NoBus
from relay.cluster import Cluster
from relay.edge.faults import Faults
from relay.errors import ProtocolViolation, Refused
from relay.hub import (
    ChannelState,
    Hub,
    Outbox,
    Subscription,
    load_records,
    recheck_records,
    record_before,
)
from relay.limits import HISTORY_PAGE_BYTES, MAX_PUSHES_IN_FLIGHT, Limits, TokenBucket
from relay.metrics import Metrics
from relay.store import (
    AppendOutcome,
    AppendResult,
    Head,
    HistoryRead,
    HistoryTrimmed,
    Membership,
    NoSnapshot,
    SessionAdded,
    SnapshotDisputed,
    Store,
    StoredPatch,
    StoredSnapshot,
    append_soon,
    snapshot_parts,
)
from relay.store import UnknownPatch as StoreUnknownPatch
from relay.verifier import Verdict, Verifier
from relay.verifier import verdict as signature_verdict
from wire import frames, mmr
from wire.codes import ErrorCode, RefuseCode

log = logging.getLogger("blindpad.relay")


#: Client frames that carry a sealed envelope or a chunk of one, besides PUSH.
_Upload = frames.SnapshotChunk | frames.Trim | frames.Ephemeral | frames.Dispute | frames.Session

#: The requests this relay serves (a client frame type it does not serve is fatal
#: PROTOCOL, as an unknown type is).
_Served = frames.Subscribe | frames.Unsubscribe | frames.Push | _Upload | frames.ProofRequest

#: Turns (PROTOCOL.md §13.3): a push refused YIELD is sent again this much later;
#: while a connection owed its turn has pushed nothing for TURN_QUIET_SECONDS
#: (long enough for a rebase on a busy machine), the connections that outran it
#: land one patch per TURN_QUIET_SECONDS between them, and after
#: TURN_LONGEST_SECONDS it holds nobody back (it is still owed when it pushes
#: again).
YIELD_RETRY_MS = 20
TURN_QUIET_SECONDS = 2.0
TURN_LONGEST_SECONDS = 10.0

#: How a failed channel-signature check is refused (a push's, checked by
#: :mod:`relay.verifier`, and a snapshot's, trim's or dispute's, checked here).
_SIGNATURE_REFUSALS = {
    Verdict.BAD_SIGNATURE: RefuseCode.BAD_SIGNATURE,
    Verdict.MALFORMED: RefuseCode.MALFORMED_ENVELOPE,
}

#: Snapshot uploads a connection may have in progress at once.
MAX_ASSEMBLIES = 4

#: retry_after_ms of an upload refused because unfinished uploads hold
#: ``max_upload_bytes`` relay-wide.
UPLOAD_RETRY_MS = 1000


@dataclasses.dataclass
class RelayState:
    """Everything shared by the connections of one app (the lifespan state)."""

    store: Store
    limits: Limits
    hub: Hub = dataclasses.field(default_factory=Hub)
    #: This node among the relays sharing the store (a single process: NoBus, node 0).
    cluster: Cluster = dataclasses.field(init=False)
    node: int = 0
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    faults: Faults = dataclasses.field(default_factory=Faults)
    verifier: Verifier = dataclasses.field(default_factory=Verifier)
    create_token: bytes | None = None
    storage_bytes: int = 0
    next_connection_id: int = 1
    clock: Callable[[], float] = time.monotonic
    connections: dict[int, Connection] = dataclasses.field(default_factory=dict)
    per_address: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    next_sweep: float = 0.0
    upload_bytes: int = 0
    history_reads: int = 0
    create_buckets: dict[str, TokenBucket] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cluster = Cluster(
            self.store,
            self.hub,
            NoBus(),
            Membership("", self.node),
            chunk_bytes=self.limits.chunk_bytes,
        )

    def take_create(self, address: str) -> int:
        """Take a pad-creation token of ``address``: 0, or the ms to wait for one."""
        now, lim = self.clock(), self.limits
        bucket = self.create_buckets.get(address)
        if bucket is None:
            bucket = TokenBucket(lim.create_per_minute / 60, lim.create_burst, now)
            self.create_buckets[address] = bucket
        return bucket.take(now)

    def admit(self, address: str) -> str | None:
        """Why a new connection from ``address`` is over a cap, or None to admit it."""
        if len(self.connections) >= self.limits.max_connections:
            return f"this relay's {self.limits.max_connections} connections are in use"
        if self.per_address[address] >= self.limits.max_connections_per_address:
            return f"{self.limits.max_connections_per_address} connections from {address}"
        return None

    def sweep_idle(self) -> None:
        """Close connections silent for the idle timeout or with a stalled upload."""
        now = self.clock()
        self.next_sweep = now + 1.0
        self.verifier.sweep()
        timeout = self.limits.idle_timeout_seconds
        upload = self.limits.upload_timeout_seconds
        for address, bucket in list(self.create_buckets.items()):
            if bucket.full(now):
                del self.create_buckets[address]
        for conn in self.connections.values():
            if now - conn.last_seen > timeout:
                idle = ProtocolViolation(
                    ErrorCode.IDLE_TIMEOUT, f"nothing received for {timeout} s"
                )
                conn.outbox.fail(idle, flush=True)
            elif any(now - job.started > upload for job in conn.assemblies()):
                slow = ProtocolViolation(
                    ErrorCode.SLOW_UPLOAD, f"a snapshot upload took longer than {upload} s"
                )
                conn.outbox.fail(slow, flush=True)

    def new_connection_id(self) -> int:
        """Return a fresh connection id: u64, the node in its high 16 bits, never reused."""
        cid = self.next_connection_id
        self.next_connection_id += 1
        return self.node << 48 | cid


class ConnState(enum.Enum):
    """A connection's lifecycle."""

    AWAITING_HELLO = "awaiting-hello"
    OPEN = "open"


@dataclasses.dataclass
class _Assembly:
    total: int
    data: bytearray
    started: float


@dataclasses.dataclass(frozen=True, slots=True)
class _Seen:
    """What the relay reads of an envelope's clear header, either version."""

    channel_id: bytes  # version 1: from the header; version 2: from the frame
    ref: bytes
    tag: bytes | None  # version 2: the session that signed it
    header: Header | None  # version 1: the parsed header, for its signature check


@dataclasses.dataclass(slots=True)
class _Push:
    """A push past the cheap checks, waiting for its signature check and its
    append: ``outcome`` is the store's result, or the answer already made (a
    refusal, or the ACK of a resend)."""

    frame: frames.Push
    header: _Seen
    state: ChannelState
    patch_id: bytes
    #: Future[AppendResult | bytes]: the store's own future where it can be.
    outcome: asyncio.Future[Any] = dataclasses.field(init=False)


def settle(source: asyncio.Future[Any], target: asyncio.Future[Any]) -> None:
    """Give ``target`` the result (or exception) of ``source`` when it has one."""

    def copy(done: asyncio.Future[Any]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


class Connection:
    """Protocol state of one websocket connection.

    Args:
        relay: the shared relay state.
        outbox: this connection's outgoing FIFO.
        address: the client address per-address limits key on.
    """

    def __init__(self, relay: RelayState, outbox: Outbox, address: str = "") -> None:
        self.relay = relay
        self.address = address
        self.outbox = outbox
        self.id = relay.new_connection_id()
        self.state = ConnState.AWAITING_HELLO
        self.subs: dict[bytes, Subscription] = {}
        self.token = b""
        self.subscribed_once = False
        self.bytes_before_subscribe = 0
        self.last_seen = relay.clock()
        self._bucket = TokenBucket(
            relay.limits.rate_per_second, relay.limits.rate_burst, relay.clock()
        )
        self._assemblies: dict[int, _Assembly] = {}
        self._pushes: collections.deque[_Push] = collections.deque()  # unanswered, in order
        self.push_bytes = 0  # envelope bytes of pushes handed to the store, unanswered

    # --- entry point -----------------------------------------------------------

    async def handle(self, data: bytes) -> None:
        """Process one binary message from the client.

        Raises:
            ProtocolViolation: the connection must close (frame-level fault).
        """
        limits = self.relay.limits
        self.last_seen = now = self.relay.clock()
        if now >= self.relay.next_sweep:
            self.relay.sweep_idle()
        if len(data) > limits.max_frame_bytes:
            raise ProtocolViolation(
                ErrorCode.FRAME_TOO_LARGE, f"frame of {len(data)} bytes > {limits.max_frame_bytes}"
            )
        if not self.subscribed_once:
            self.bytes_before_subscribe += len(data)
            if self.bytes_before_subscribe > limits.presubscribe_bytes:
                raise ProtocolViolation(
                    ErrorCode.PRESUBSCRIBE_BUFFER,
                    f"more than {limits.presubscribe_bytes} bytes sent before subscribing",
                )
        try:
            frame = frames.decode_client(data)
        except frames.FrameError as exc:
            raise ProtocolViolation(ErrorCode.PROTOCOL, str(exc)) from None
        self.relay.metrics.frames_in[frames.frame_type(frame).name] += 1
        if isinstance(frame, frames.Hello):
            self._hello(frame)
            return
        if self.state is ConnState.AWAITING_HELLO:
            raise ProtocolViolation(ErrorCode.HELLO_REQUIRED, "the first frame must be HELLO")
        if isinstance(frame, frames.Ping):
            await self.outbox.put(frames.encode(frames.Pong(frame.nonce)))
            return
        if not isinstance(frame, _Served):
            name = frames.frame_type(frame).name
            raise ProtocolViolation(ErrorCode.PROTOCOL, f"{name} is not served by this relay")
        await self._request(frame)

    def _hello(self, frame: frames.Hello) -> None:
        if self.state is not ConnState.AWAITING_HELLO:
            raise ProtocolViolation(ErrorCode.PROTOCOL, "HELLO sent twice")
        if frame.version != frames.PROTOCOL_VERSION:
            raise ProtocolViolation(
                ErrorCode.VERSION_MISMATCH,
                f"this relay speaks blindpad protocol {frames.PROTOCOL_VERSION},"
                f" not {frame.version}: please reload",
            )
        self.state = ConnState.OPEN
        self.token = frame.token
        lim = self.relay.limits
        welcome = frames.Welcome(
            frames.PROTOCOL_VERSION,
            self.id,
            lim.max_frame_bytes,
            lim.max_patch_bytes,
            lim.max_snapshot_bytes,
            lim.max_ephemeral_bytes,
            lim.max_channels,
            lim.rate_per_second,
            lim.rate_burst,
        )
        self.outbox.offer(frames.encode(welcome))

    async def _request(self, frame: _Served) -> None:
        if not isinstance(frame, frames.Push):
            # Only pushes overlap; anything else keeps its place behind them,
            # so a cursor sent after an edit never overtakes it.
            await self.drain()
        try:
            if isinstance(frame, frames.Push):
                await self._push(frame)
            elif isinstance(frame, frames.Subscribe):
                await self._subscribe(frame)
            elif isinstance(frame, frames.Unsubscribe):
                self._rate()
                self._unsubscribe(frame.channel_id)
                await self.outbox.put(
                    frames.encode(frames.Unsubscribed(frame.request_id, frame.channel_id))
                )
            elif isinstance(frame, frames.SnapshotChunk):
                await self._snapshot_chunk(frame)
            elif isinstance(frame, frames.Trim):
                await self._trim(frame)
            elif isinstance(frame, frames.Dispute):
                await self._dispute(frame)
            elif isinstance(frame, frames.Session):
                await self._session(frame)
            elif isinstance(frame, frames.ProofRequest):
                await self._proof(frame)
            else:
                self._ephemeral(frame)
        except _Refusal as refusal:
            await self._refuse(
                frame.request_id, refusal.code, refusal.retry_after_ms, refusal.head
            )

    async def _refuse(self, request_id: int, code: RefuseCode, retry_ms: int, head: Head) -> None:
        await self.outbox.put(self._refusal(request_id, code, retry_ms, head))

    def _refusal(self, request_id: int, code: RefuseCode, retry_ms: int, head: Head) -> bytes:
        """A REFUSE frame, counted."""
        self.relay.metrics.refusals[code.name] += 1
        return frames.encode(frames.Refuse(request_id, code, retry_ms, head.seq, head.id))

    # --- checks shared by requests ---------------------------------------------

    def _rate(self) -> None:
        wait_ms = self._bucket.take(self.relay.clock())
        if wait_ms:
            raise _Refusal(RefuseCode.RATE_LIMITED, retry_after_ms=wait_ms)

    @staticmethod
    def _envelope(envelope: bytes, kind: Kind, channel_id: bytes = frames.ZERO_ID) -> _Seen:
        """The clear header of an envelope of ``kind`` sent in a frame naming
        ``channel_id``: a version-2 envelope is for the frame's channel (it names
        none, PROTOCOL.md §9.1), a version-1 envelope for its header's (the
        frame's, if named, must be the same)."""
        try:
            if envelope2.is_version_2(envelope):
                parsed = envelope2.parse(envelope)
                if parsed.kind != kind:
                    raise _Refusal(RefuseCode.WRONG_KIND)
                if channel_id == frames.ZERO_ID:
                    raise crypto.MalformedEnvelope("a version-2 envelope's frame names no channel")
                return _Seen(channel_id, parsed.ref, parsed.tag, None)
            header = parse_header(envelope)
        except crypto.MalformedEnvelope:
            raise _Refusal(RefuseCode.MALFORMED_ENVELOPE) from None
        if header.kind is not kind:
            raise _Refusal(RefuseCode.WRONG_KIND)
        if channel_id not in (frames.ZERO_ID, header.channel_id):
            raise _Refusal(RefuseCode.MALFORMED_ENVELOPE)
        return _Seen(header.channel_id, header.ref, None, header)

    def _channel(self, channel_id: bytes) -> ChannelState:
        if channel_id not in self.subs:
            raise _Refusal(RefuseCode.NOT_SUBSCRIBED)
        return self.relay.hub.channels[channel_id]

    def _quotas(self, state: ChannelState, size: int, *, pad: bool) -> None:
        limits = self.relay.limits
        if pad and state.pad_bytes + size > limits.max_pad_bytes:
            raise _Refusal(RefuseCode.PAD_TOO_LARGE)
        if state.stored_bytes + limits.channel_overhead_bytes + size > limits.channel_quota_bytes:
            raise _Refusal(RefuseCode.CHANNEL_QUOTA)
        if self.relay.storage_bytes + size > limits.max_storage_bytes:
            raise _Refusal(RefuseCode.STORAGE_FULL)

    async def _signing_key(self, state: ChannelState, seen: _Seen) -> bytes:
        """The key that must have signed the envelope: the channel's verify key
        (version 1) or the key its session registered (version 2; refused
        UNKNOWN_SESSION if none did)."""
        if seen.tag is None:
            return state.verify_key
        await load_records(self.relay.store, seen.channel_id, state.sessions, (seen.tag,))
        record = state.sessions.get(seen.tag)
        if record is None:
            raise _Refusal(RefuseCode.UNKNOWN_SESSION)
        state.used[seen.tag] = record  # kept, should a trim drop it meanwhile (recheck_records)
        return envelope2.session_key_of(record)

    async def _signature(self, envelope: bytes, state: ChannelState, seen: _Seen) -> None:
        key = await self._signing_key(state, seen)
        verdict = signature_verdict(envelope, key, seen.header, seen.channel_id)
        refused = _SIGNATURE_REFUSALS.get(verdict)
        if refused is not None:
            raise _Refusal(refused)

    # --- push ------------------------------------------------------------------

    async def _push(self, frame: frames.Push) -> None:
        """Check a push, hand it on and return without waiting for it.

        The checks run in DESIGN.md's order: the cheap ones now, the channel
        signature by :attr:`RelayState.verifier` (now on the loop, or later in
        its helper process, whose verdicts come back in the order asked:
        :mod:`relay.verifier`), then :meth:`_onward` takes the turn and hands
        the append to the store's queue, so a client's pipelined pushes share
        one group commit instead of waiting for one fsync each;
        :meth:`_appended` answers them in order once they are durable.  A push
        costs no task: futures call back (a task per push was a tenth of the
        event loop at 500 x 2).
        """
        header = self._envelope(frame.envelope, Kind.PATCH, frame.channel_id)
        patch_id = envelope_id(frame.envelope)
        try:
            state = self._check_push(frame, header)
            key = await self._signing_key(state, header)
        except _Refusal as refusal:
            await self.outbox.put(await self._refused_push(frame, header, patch_id, refusal))
            return
        size = len(frame.envelope)
        bound = self.relay.limits.push_bytes_in_flight
        while len(self._pushes) >= MAX_PUSHES_IN_FLIGHT or (
            self._pushes and self.push_bytes + size > bound
        ):
            await asyncio.wait({self._pushes[0].outcome})
        push = _Push(frame, header, state, patch_id)
        verifier = self.relay.verifier
        verdict = verifier.verdict_now(frame.envelope, key, header.header, header.channel_id)
        if verdict is not None:
            push.outcome = self._onward(push, verdict)
        else:
            push.outcome = asyncio.get_running_loop().create_future()
            checked = verifier.check(frame.envelope, key, header.channel_id)
            checked.add_done_callback(functools.partial(self._verified, push))
        self._pushes.append(push)
        self.push_bytes += size
        push.outcome.add_done_callback(self._appended)

    def _check_push(self, frame: frames.Push, header: _Seen) -> ChannelState:
        self._rate()
        if len(frame.envelope) > self.relay.limits.max_patch_bytes:
            raise _Refusal(RefuseCode.PATCH_TOO_LARGE)
        state = self._channel(header.channel_id)
        self._quotas(state, len(frame.envelope), pad=True)
        return state

    async def _refused_push(
        self, frame: frames.Push, header: _Seen, patch_id: bytes, refusal: _Refusal
    ) -> bytes:
        """The answer to a push that failed a check: an ACK with its original seq
        if it is a resend of a stored patch (dedupe comes before every other
        check: a resend after a lost ack is acked even if it fails a check now),
        else the refusal."""
        known = await self.relay.store.lookup(header.channel_id, patch_id)
        if known is None:
            return self._refusal(
                frame.request_id, refusal.code, refusal.retry_after_ms, refusal.head
            )
        landed = self.relay.hub.channels.get(header.channel_id)
        if landed is not None:
            landed.turns.landed(self.id, fresh=False)
        return frames.encode(frames.Ack(frame.request_id, known, patch_id))

    def _verified(self, push: _Push, checked: asyncio.Future[Verdict]) -> None:
        """Continue a push whose signature the helper checked."""
        settle(self._onward(push, checked.result()), push.outcome)

    def _onward(self, push: _Push, verdict: Verdict) -> asyncio.Future[Any]:
        """After the signature check: the turn, then the store.  Returns the
        append's outcome, or the refusal's (or a resend's ACK) to come."""
        refusal = None
        refused = _SIGNATURE_REFUSALS.get(verdict)
        if refused is not None:
            refusal = _Refusal(refused)
        elif not push.state.turns.push(
            self.id, self.relay.clock(), TURN_QUIET_SECONDS, TURN_LONGEST_SECONDS
        ):
            refusal = _Refusal(RefuseCode.YIELD, retry_after_ms=YIELD_RETRY_MS)
        if refusal is not None:
            answer = self._refused_push(push.frame, push.header, push.patch_id, refusal)
            return asyncio.ensure_future(answer)
        header = push.header
        return append_soon(
            self.relay.store, header.channel_id, push.patch_id, header.ref, push.frame.envelope
        )

    def _appended(self, _: asyncio.Future[Any]) -> None:
        """Answer the pushes whose appends are done, oldest first, up to the
        first one still waiting: answers go out in the order the pushes came,
        whichever append the store finished first (another channel's may)."""
        pushes = self._pushes
        while pushes and pushes[0].outcome.done():
            push = pushes.popleft()
            self.push_bytes -= len(push.frame.envelope)
            try:
                self._answer_push(push, push.outcome.result())
            except Exception:
                log.exception("internal error completing a push on connection %d", self.id)
                failure = ProtocolViolation(ErrorCode.INTERNAL, "internal relay error")
                self.outbox.fail(failure, flush=True)

    def _answer_push(self, push: _Push, result: AppendResult | bytes) -> None:
        """Answer one push (a callback: its answers are offered, not awaited;
        a client that does not read them is a slow consumer like any other)."""
        if isinstance(result, bytes):
            self.outbox.offer(result)
            return
        state, frame, patch_id = push.state, push.frame, push.patch_id
        if result.outcome is AppendOutcome.STALE:
            state.turns.stale(self.id)
            self.outbox.offer(self._refusal(frame.request_id, RefuseCode.STALE, 0, result.head))
            return
        duplicate = result.outcome is AppendOutcome.DUPLICATE
        state.turns.landed(self.id, fresh=not duplicate)
        ack = frames.encode(frames.Ack(frame.request_id, result.seq, patch_id))
        if duplicate:
            self.outbox.offer(ack)
            return
        size = len(frame.envelope)
        state.pad_bytes += size
        state.stored_bytes += size
        self.relay.storage_bytes += size
        drop = self.relay.faults.drop_ack
        sent_ack = None if drop is not None and drop(patch_id) else ack
        channel_id = push.header.channel_id
        took = self.relay.hub.publish(channel_id, result.seq, frame.envelope, self.id, sent_ack)
        self.relay.cluster.committed(channel_id, result.seq)
        if not took and sent_ack is not None:
            self.outbox.offer(sent_ack)

    async def drain(self) -> None:
        """Wait until every push handed to the store has been answered."""
        while self._pushes:
            await asyncio.wait({self._pushes[-1].outcome})

    # --- subscribe -------------------------------------------------------------

    async def _subscribe(self, frame: frames.Subscribe) -> None:
        self._rate()
        cid = frame.channel_id
        if cid in self.subs:
            raise _Refusal(RefuseCode.ALREADY_SUBSCRIBED)
        if len(self.subs) >= self.relay.limits.max_channels:
            raise _Refusal(RefuseCode.TOO_MANY_CHANNELS)
        state = await self._channel_state(frame)
        sub = Subscription(cid, self.id, self.outbox, self.relay.limits.outgoing_queue_frames)
        self.relay.hub.register(state, cid, sub)
        self.relay.cluster.peer(cid, self.id, joined=True)
        self.subs[cid] = sub
        try:
            read = await self._read(frame)
        except HistoryTrimmed as exc:
            self._unsubscribe(cid)
            floor = Head(exc.floor_seq, frames.ZERO_ID)
            raise _Refusal(RefuseCode.HISTORY_TRIMMED, head=floor) from None
        self.subscribed_once = True
        await self._deliver(frame, sub, read)

    async def _channel_state(self, frame: frames.Subscribe) -> ChannelState:
        cid, key = frame.channel_id, frame.verify_key
        if key != frames.ZERO_ID and channel_id_for(key) != cid:
            raise _Refusal(RefuseCode.BAD_VERIFY_KEY)
        read_hash = hashlib.sha256(frame.read_token).digest()
        cached = self.relay.hub.channels.get(cid)
        if cached is not None:
            self._may_read(frame, cached.read_hash, read_hash)
            return cached
        info = await self.relay.store.channel(cid)
        if info is None:
            if key == frames.ZERO_ID:
                raise _Refusal(RefuseCode.NO_VERIFY_KEY)
            token = self.relay.create_token
            if token is not None and not hmac.compare_digest(self.token, token):
                raise _Refusal(RefuseCode.CREATE_TOKEN_REQUIRED)
            self._room_for_a_pad()
            wait_ms = self.relay.take_create(self.address)
            if wait_ms:
                raise _Refusal(RefuseCode.CREATE_RATE_LIMITED, retry_after_ms=wait_ms)
            info = await self.relay.store.create_channel(cid, key, read_hash)
            if info.head.seq == 0 and info.stored_bytes == 0:
                self.relay.storage_bytes += self.relay.limits.channel_overhead_bytes
        # Also after a create: another relay process may have created it first.
        self._may_read(frame, info.read_hash, read_hash)
        return self.relay.hub.channels.get(cid) or ChannelState(
            info.verify_key,
            info.read_hash,
            info.pad_bytes,
            info.stored_bytes,
            offered=info.head.seq,
            floor_seq=info.floor_seq,
        )

    @staticmethod
    def _may_read(frame: frames.Subscribe, registered: bytes, given: bytes) -> None:
        """Refuse a read token that does not hash to the channel's registered hash
        with what a channel that does not exist gets (PROTOCOL.md §3.3)."""
        if not hmac.compare_digest(registered, given):
            no_key = frame.verify_key == frames.ZERO_ID
            raise _Refusal(RefuseCode.NO_VERIFY_KEY if no_key else RefuseCode.UNKNOWN_CHANNEL)

    def _room_for_a_pad(self) -> None:
        """New pads stop at new_pad_storage_percent, so existing pads keep the rest."""
        lim = self.relay.limits
        reserve = lim.max_storage_bytes * lim.new_pad_storage_percent // 100
        if self.relay.storage_bytes + lim.channel_overhead_bytes > reserve:
            raise _Refusal(RefuseCode.STORAGE_FULL)

    async def _read(self, frame: frames.Subscribe) -> HistoryRead:
        store = self.relay.store
        if frame.start is frames.SubscribeFrom.SNAPSHOT:
            read = await store.read_from_snapshot(frame.channel_id, HISTORY_PAGE_BYTES)
        elif frame.start is frames.SubscribeFrom.EARLIEST:
            read = await store.read_from_floor(frame.channel_id, HISTORY_PAGE_BYTES)
        else:
            read = await store.read_since(frame.channel_id, frame.since_seq, HISTORY_PAGE_BYTES)
        return rolled_back(read, self.relay.faults, frame.channel_id)

    async def _deliver(
        self, frame: frames.Subscribe, sub: Subscription, read: HistoryRead
    ) -> None:
        """Send the history a part at a time: a slow reader holds one chunk of
        the snapshot or one page of patches, never the whole pad (PROTOCOL.md
        §5.3, term S)."""
        cid, store = frame.channel_id, self.relay.store
        if read.snapshot is not None:
            await self._send_snapshot(sub, read.snapshot)
        pages = PatchPages(self.relay, cid, read)
        try:
            async for page in pages:
                tags = [envelope2.tag_of(patch.envelope) for patch in page]
                await load_records(store, cid, sub.records, tags)
                for patch, tag in zip(page, tags, strict=True):
                    record = sub.record_frame(tag)  # loaded with the page
                    if record is not None:
                        await self.outbox.put(record)
                    history = frames.History(cid, patch.seq, patch.envelope)
                    await self.outbox.put(frames.encode(history))
        except HistoryTrimmed:  # trimmed while we sent it: the client resumes
            raise ProtocolViolation(
                ErrorCode.SLOW_CONSUMER,
                f"history trimmed while it was sent; resume since seq {pages.after}",
            ) from None
        head = pages.head
        await self.outbox.put(
            frames.encode(frames.HistoryEnd(frame.request_id, cid, head.seq, head.id))
        )
        for peer in self.relay.hub.peers(cid, self.id):
            await self.outbox.put(frames.encode(frames.PeerJoined(cid, peer)))
        sub.go_live(head.seq + 1)

    async def _send_snapshot(self, sub: Subscription, snapshot: StoredSnapshot) -> None:
        step, offset, cid = self.relay.limits.chunk_bytes, 0, sub.channel_id
        flags = frames.SNAPSHOT_DISPUTED if snapshot.disputed else 0
        try:
            async for chunk in snapshot_parts(self.relay.store, cid, snapshot, step):
                record = await record_before(self.relay.store, sub, chunk) if not offset else None
                if record is not None:
                    await self.outbox.put(record)
                snap = frames.Snapshot(cid, snapshot.x_seq, flags, snapshot.size, offset, chunk)
                await self.outbox.put(frames.encode(snap))
                offset += len(chunk)
        except NoSnapshot:  # trimmed away while we sent it: the client subscribes again
            raise ProtocolViolation(
                ErrorCode.SLOW_CONSUMER,
                "snapshot trimmed while it was sent; subscribe again",
            ) from None

    def _unsubscribe(self, channel_id: bytes) -> None:
        if self.subs.pop(channel_id, None) is not None:
            self.relay.hub.unregister(channel_id, self.id)
            self.relay.cluster.peer(channel_id, self.id, joined=False)

    def close(self) -> None:
        """Leave every channel and drop unfinished uploads (the connection is gone)."""
        for channel_id in list(self.subs):
            self._unsubscribe(channel_id)
        for request_id in list(self._assemblies):
            self._drop_assembly(request_id)

    def assemblies(self) -> list[_Assembly]:
        """The snapshot uploads in progress."""
        return list(self._assemblies.values())

    def _drop_assembly(self, request_id: int) -> None:
        job = self._assemblies.pop(request_id, None)
        if job is not None:
            self.relay.upload_bytes -= job.total

    # --- snapshots, trims, ephemerals -------------------------------------------

    async def _snapshot_chunk(self, frame: frames.SnapshotChunk) -> None:
        self._rate()
        envelope = self._assemble(frame)
        if envelope is None:
            return
        header = self._envelope(envelope, Kind.SNAPSHOT, frame.channel_id)
        state = self._channel(header.channel_id)
        self._quotas(state, len(envelope), pad=False)
        await self._signature(envelope, state, header)
        snapshot_id = envelope_id(envelope)
        try:
            x_seq = await self.relay.store.put_snapshot(
                header.channel_id, header.ref, snapshot_id, envelope
            )
        except StoreUnknownPatch:
            raise _Refusal(RefuseCode.UNKNOWN_PATCH) from None
        await self._refresh(header.channel_id, state)
        await self.outbox.put(frames.encode(frames.Ack(frame.request_id, x_seq, snapshot_id)))
        self.relay.cluster.snapshot_stored(header.channel_id, x_seq, self.id)

    def _assemble(self, frame: frames.SnapshotChunk) -> bytes | None:
        limits = self.relay.limits
        if frame.total > limits.max_snapshot_bytes:
            self._drop_assembly(frame.request_id)
            raise _Refusal(RefuseCode.SNAPSHOT_TOO_LARGE)
        if frame.offset == 0:
            self._drop_assembly(frame.request_id)
            if len(self._assemblies) >= MAX_ASSEMBLIES:
                raise _Refusal(RefuseCode.BAD_CHUNK)
            if self.relay.upload_bytes + frame.total > limits.max_upload_bytes:
                # Relay-wide cap on bytes held by unfinished uploads: try again soon.
                raise _Refusal(RefuseCode.RATE_LIMITED, retry_after_ms=UPLOAD_RETRY_MS)
            self.relay.upload_bytes += frame.total
            started = _Assembly(frame.total, bytearray(), self.relay.clock())
            self._assemblies[frame.request_id] = started
        job = self._assemblies.get(frame.request_id)
        end = frame.offset + len(frame.data)
        if (
            job is None
            or job.total != frame.total
            or frame.offset != len(job.data)
            or end > job.total
        ):
            self._drop_assembly(frame.request_id)
            raise _Refusal(RefuseCode.BAD_CHUNK)
        job.data += frame.data
        if len(job.data) < job.total:
            return None
        self._drop_assembly(frame.request_id)
        return bytes(job.data)

    async def _trim(self, frame: frames.Trim) -> None:
        self._rate()
        if len(frame.envelope) > self.relay.limits.max_patch_bytes:
            raise _Refusal(RefuseCode.PATCH_TOO_LARGE)
        header = self._envelope(frame.envelope, Kind.TRIM, frame.channel_id)
        state = self._channel(header.channel_id)
        await self._signature(frame.envelope, state, header)
        try:
            floor = await self.relay.store.trim(header.channel_id, header.ref, frame.keep_pct)
        except StoreUnknownPatch:
            raise _Refusal(RefuseCode.UNKNOWN_PATCH) from None
        except NoSnapshot:
            raise _Refusal(RefuseCode.NO_SNAPSHOT) from None
        except SnapshotDisputed:
            raise _Refusal(RefuseCode.SNAPSHOT_DISPUTED) from None
        # The trim dropped the records no stored envelope names (Store.trim): the
        # cache follows, so such a session's next envelope is refused
        # UNKNOWN_SESSION (it registers again), not stored without its record.
        state.floor_seq = max(state.floor_seq, floor)
        await recheck_records(self.relay.store, header.channel_id, state)
        await self._refresh(header.channel_id, state)
        await self.outbox.put(
            frames.encode(frames.Ack(frame.request_id, floor, envelope_id(frame.envelope)))
        )

    async def _dispute(self, frame: frames.Dispute) -> None:
        """Store an editor's signed dispute of a stored snapshot (``ref`` = its id).

        Checks in order: envelope header, kind, size, rate, subscription,
        channel signature, the snapshot is stored; ACK seq = the snapshot's X.
        """
        header = self._envelope(frame.envelope, Kind.DISPUTE, frame.channel_id)
        if len(frame.envelope) > self.relay.limits.max_ephemeral_bytes:
            raise _Refusal(RefuseCode.DISPUTE_TOO_LARGE)
        self._rate()
        state = self._channel(header.channel_id)
        await self._signature(frame.envelope, state, header)
        dispute_id = envelope_id(frame.envelope)
        try:
            x_seq = await self.relay.store.add_dispute(
                header.channel_id, header.ref, dispute_id, frame.envelope
            )
        except StoreUnknownPatch:
            raise _Refusal(RefuseCode.UNKNOWN_PATCH) from None
        await self._refresh(header.channel_id, state)
        await self.outbox.put(frames.encode(frames.Ack(frame.request_id, x_seq, dispute_id)))

    async def _session(self, frame: frames.Session) -> None:
        """Register a version-2 session record (PROTOCOL.md §9.3).

        Checks in order: rate, subscription, layout (at most
        MAX_RECORD_BYTES) and channel signature (only an editor registers a
        session), quotas, the tag is free on the channel (a resend of the same
        record is ACKed again; it is stored again if a trim dropped it).  ACK:
        seq 0 (a record has no place in the chain), id = the record's id."""
        record = frame.record
        self._rate()
        state = self._channel(frame.channel_id)
        try:
            key = envelope2.verify_session_record(record, state.verify_key, frame.channel_id)
        except crypto.MalformedEnvelope:
            raise _Refusal(RefuseCode.MALFORMED_ENVELOPE) from None
        except crypto.BadChannelSignature:
            raise _Refusal(RefuseCode.BAD_SIGNATURE) from None
        tag = envelope2.session_tag(key)
        if state.sessions.get(tag) != record:
            self._quotas(state, len(record), pad=False)
        # Even a record cached here goes to the store: a trim elsewhere may have
        # dropped it (Store.trim), and this registration stores it again.
        added = await self.relay.store.add_session(frame.channel_id, tag, record)
        if added is SessionAdded.TAKEN:
            raise _Refusal(RefuseCode.SESSION_TAG_TAKEN)
        state.sessions[tag] = record
        if added is SessionAdded.STORED:
            await self._refresh(frame.channel_id, state)
        ack = frames.Ack(frame.request_id, 0, envelope_id(record))
        await self.outbox.put(frames.encode(ack))

    async def _proof(self, frame: frames.ProofRequest) -> None:
        """Name the nodes covering the patches after ``from_seq`` up to ``to_seq``, at
        most MAX_PROOF_NODES: ids, and the roots of trimmed blocks of 256 (a client
        checks a snapshot descends from what it verified, PROTOCOL.md §11).  PROOF's
        ``from_seq`` is the block's start when ``from_seq`` lies inside a block kept
        only as a root; fewer than asked: ask on from where the nodes end."""
        self._rate()
        self._channel(frame.channel_id)
        start, nodes = await self.relay.store.proof_nodes(
            frame.channel_id, frame.from_seq, frame.to_seq, frames.MAX_PROOF_NODES
        )
        packed = mmr.pack_nodes(nodes)
        proof = frames.Proof(frame.request_id, frame.channel_id, start, packed)
        await self.outbox.put(frames.encode(proof))

    async def _refresh(self, channel_id: bytes, state: ChannelState) -> None:
        info = await self.relay.store.channel(channel_id)
        if info is not None:
            self.relay.storage_bytes += info.stored_bytes - state.stored_bytes
            state.pad_bytes, state.stored_bytes = info.pad_bytes, info.stored_bytes

    def _ephemeral(self, frame: frames.Ephemeral) -> None:
        self._rate()
        if len(frame.envelope) > self.relay.limits.max_ephemeral_bytes:
            raise _Refusal(RefuseCode.EPHEMERAL_TOO_LARGE)
        header = self._envelope(frame.envelope, Kind.EPHEMERAL)
        self._channel(header.channel_id)
        relayed = frames.encode(
            frames.EphemeralRelayed(header.channel_id, self.id, frame.envelope)
        )
        self.relay.hub.relay_ephemeral(header.channel_id, self.id, relayed)
        self.relay.cluster.ephemeral(header.channel_id, self.id, relayed)


class _Refusal(Refused):
    """A refusal with the head to report (zero head unless STALE / HISTORY_TRIMMED)."""

    def __init__(
        self, code: RefuseCode, retry_after_ms: int = 0, head: Head | None = None
    ) -> None:
        super().__init__(code, retry_after_ms)
        self.head = head or Head()


class PatchPages:
    """The patches of a history read and the pages after it, a page at a time.

    One loop for every reader that streams history (a SUBSCRIBE's answer, the
    HTTP history body): it holds one page at a time and reads the next from
    where the last ended.  With ``to_first_head`` it stops at the head of the
    first read (HTTP: the end record names it); without, the pages go on to the
    head each read reports (:attr:`head` is the last one, what HISTORY_END
    names).  A trim that removes the next page meanwhile raises
    :class:`HistoryTrimmed` from the iteration (:attr:`after` is where the
    reader got to).

    Args:
        relay: the relay (its store and fault hooks).
        channel_id: the channel.
        read: the first read (its snapshot is the caller's to send).
        to_first_head: stop at the first read's head.
    """

    def __init__(
        self,
        relay: RelayState,
        channel_id: bytes,
        read: HistoryRead,
        *,
        to_first_head: bool = False,
    ) -> None:
        self._relay = relay
        self._cid = channel_id
        self._read = rolled_back(read, relay.faults, channel_id)
        self._fixed = to_first_head
        self.head = self._read.head
        self.after = 0

    async def __aiter__(self) -> AsyncIterator[list[StoredPatch]]:
        read = self._read
        while True:
            if not self._fixed:
                self.head = read.head
            last = self.head.seq
            page = [p for p in read.patches if p.seq <= last]
            if page:
                self.after = page[-1].seq
                yield page
            if not page or page[-1].seq >= last:
                return
            fresh = await self._relay.store.read_since(self._cid, self.after, HISTORY_PAGE_BYTES)
            read = rolled_back(fresh, self._relay.faults, self._cid)


def rolled_back(read: HistoryRead, faults: Faults, channel_id: bytes) -> HistoryRead:
    """Apply the ``rollback`` fault hook to a history read (identity when unset)."""
    if faults.rollback is None:
        return read
    target = faults.rollback(channel_id)
    if target is None or target >= read.head.seq:
        return read
    kept = [p for p in read.patches if p.seq <= target]
    head = Head(kept[-1].seq, kept[-1].id) if kept else Head()
    if not kept and read.snapshot is not None and read.snapshot.x_seq <= target:
        head = Head(read.snapshot.x_seq, read.snapshot.x_id)
    return HistoryRead(read.snapshot, kept, head)

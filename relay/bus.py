"""The hint bus between relay processes that share one store.

Theory of operation
-------------------
Relays that share a PostgreSQL store are *nodes* of one site (numbered 0 to
65535).  Each serves its own websocket clients, so when node A commits patch
``seq`` of channel C, the subscribers of C on node B must hear of it.  The bus
carries four kinds of message between the nodes of a site:

* :class:`Committed` ``(C, seq)``: C's head reached at least ``seq``.  It is a
  *hint*, never the patch: the store is the truth, and a node that hears it
  reads what it lacks from the store itself.  A lost or late hint therefore
  only delays: each node also reads the heads of its channels from the store
  periodically, often while the bus is down, and a later hint for the same
  channel covers every earlier one.
* :class:`Relayed`: an ephemeral (presence), already encoded as the
  EPHEMERAL_RELAYED frame the subscribers receive.  Ephemerals are not stored;
  one lost on the bus is simply lost, as the protocol allows.
* :class:`PeerNotice`: a connection subscribed to or left a channel.
* :class:`SnapshotStored` ``(C, x_seq)``: a snapshot of C's patch ``x_seq``
  was stored; a node with live subscribers on C reads it from the store and
  sends it to them (SNAPSHOT with flag LIVE).  One lost is not sent again.

Delivery is at most once and unordered across kinds: nothing is
acknowledged; a ``Committed`` hint whose send failed (the publishing
connection died) is sent once more on a new connection, anything else in that
batch is lost; a message published while the bus is down is dropped and
counted (:attr:`Bus.dropped`), and a node never hears its own messages (each
carries its sender's node number; receivers filter on it).  Publishing never
blocks and never raises: :meth:`Bus.publish` appends to an in-memory queue
and one publisher task drains everything queued into one round trip (one
statement on PostgreSQL, one pipeline on Redis).  While a round trip is in
flight the queue fills, so batches grow with the load.  Within a batch the
``Committed`` hints of one channel are *coalesced* into the highest seq
(``seq`` 1..50 published at once travel as one ``Committed(C, 50)``), which
loses nothing since a hint means "at least".

Sizes: a message is 35 bytes of header (type, node u16, channel 32 bytes)
plus 8 (``Committed``, ``SnapshotStored``), 8 + the frame (``Relayed``) or 9
(``PeerNotice``).
PostgreSQL NOTIFY payloads are text shorter than 8,000 bytes: the encoding
travels in base64, so a ``Relayed`` frame may be at most 5,954 bytes there
(the default 4-KiB ephemeral limit fits); a larger one is dropped and counted.
Redis messages are binary, at most :data:`MAX_REDIS_MESSAGE` bytes.  At most
:data:`MAX_QUEUE` messages wait to be sent; more are dropped and counted.

Health: :attr:`Bus.healthy` is True while the listening connection is
subscribed (hints flow).  The bus calls ``on_health(False)`` when it loses that
connection (closed by the server, an error, or no answer to a liveness probe
within ``probe_seconds``) and ``on_health(True)`` once it has listened again;
it reconnects with a backoff from 0.1 s doubling to 5 s.  :meth:`Bus.start`
never fails because the service is down: it reports unhealthy (one
``on_health(False)``) and keeps trying.  What a node does on these changes is
the hub's business (:mod:`relay.cluster`); the contract is: while unhealthy,
hints are lost in both directions, so read the heads from the store often;
on recovery, read them once at once, since whatever was hinted during the
outage is gone.

Implementations: :class:`NoBus` (a single process), :class:`PostgresBus`
(LISTEN/NOTIFY on the store's own database) and :class:`RedisBus` (Redis
pub/sub), chosen by :func:`open_bus`.  asyncpg and redis are imported only
when their bus is built (``pip install 'blindpad[scale]'``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import logging
import re
import secrets
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger("blindpad.relay")

#: The codec's version, the high nibble of the first byte.
VERSION = 1
_COMMITTED, _RELAYED, _PEER = (VERSION << 4) | 1, (VERSION << 4) | 2, (VERSION << 4) | 3
_SNAPSHOT = (VERSION << 4) | 4
_HEADER = struct.Struct(">BH32s")  # type, node, channel
_U64 = struct.Struct(">Q")
_PEER_FIELDS = struct.Struct(">QB")
HEADER_BYTES = _HEADER.size  # 35
U64_MAX = 2**64 - 1
NODE_MAX = 2**16 - 1

#: PostgreSQL refuses a NOTIFY payload of this many bytes or more.
NOTIFY_LIMIT = 8000
#: The largest message (encoded) a :class:`RedisBus` sends.
MAX_REDIS_MESSAGE = 1024 * 1024
#: Messages waiting for the publisher; beyond this they are dropped.
MAX_QUEUE = 10_000
#: At most this many messages (and about this many payload bytes) per round trip.
MAX_BATCH = 1000
MAX_BATCH_BYTES = 1024 * 1024

#: Defaults of the network buses (every one can be changed per bus, for tests).
PROBE_SECONDS = 2.0
RETRY_INITIAL_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 5.0
SEND_TIMEOUT_SECONDS = 10.0


class BusError(ValueError):
    """A bus message that cannot be encoded, or bytes that are not one."""


@dataclasses.dataclass(frozen=True, slots=True)
class Committed:
    """The channel's head reached at least ``seq``."""

    channel_id: bytes
    seq: int


@dataclasses.dataclass(frozen=True, slots=True)
class Relayed:
    """An encoded EPHEMERAL_RELAYED frame for every local subscriber but ``origin``."""

    channel_id: bytes
    origin: int
    frame: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class PeerNotice:
    """Connection ``peer`` subscribed to the channel (``joined``) or left it."""

    channel_id: bytes
    peer: int
    joined: bool


@dataclasses.dataclass(frozen=True, slots=True)
class SnapshotStored:
    """A snapshot of the channel's patch ``x_seq`` was stored: send it to live subscribers."""

    channel_id: bytes
    x_seq: int


BusMessage = Committed | Relayed | PeerNotice | SnapshotStored


# --- codec ------------------------------------------------------------------------


def _u64(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise BusError(f"{what} must be an integer from 0 to 2**64-1, not {value!r}")
    return value


def encode(node: int, message: BusMessage) -> bytes:
    """The binary form of ``message`` sent by ``node``.

    Layout (big-endian): type byte (version << 4 | kind), node u16, channel
    32 bytes, then ``seq`` u64 (Committed), ``origin`` u64 + the frame
    (Relayed), ``peer`` u64 + joined u8 (PeerNotice), or ``x_seq`` u64
    (SnapshotStored).

    Raises:
        BusError: a field out of range (node, a u64, a channel id not 32 bytes).
    """
    if type(node) is not int or not 0 <= node <= NODE_MAX:
        raise BusError(f"node must be an integer from 0 to 65535, not {node!r}")
    if not isinstance(message, Committed | Relayed | PeerNotice | SnapshotStored):
        raise BusError(f"not a bus message: {message!r}")
    channel = message.channel_id
    if not isinstance(channel, bytes) or len(channel) != 32:
        raise BusError(f"a channel id is 32 bytes, not {channel!r}")
    if isinstance(message, Committed):
        return _HEADER.pack(_COMMITTED, node, channel) + _U64.pack(_u64(message.seq, "seq"))
    if isinstance(message, SnapshotStored):
        return _HEADER.pack(_SNAPSHOT, node, channel) + _U64.pack(_u64(message.x_seq, "x_seq"))
    if isinstance(message, Relayed):
        if not isinstance(message.frame, bytes):
            raise BusError(f"a relayed frame is bytes, not {type(message.frame).__name__}")
        origin = _U64.pack(_u64(message.origin, "origin"))
        return _HEADER.pack(_RELAYED, node, channel) + origin + message.frame
    if not isinstance(message.joined, bool):
        raise BusError(f"joined is a bool, not {message.joined!r}")
    fields = _PEER_FIELDS.pack(_u64(message.peer, "peer"), message.joined)
    return _HEADER.pack(_PEER, node, channel) + fields


def decode(data: bytes) -> tuple[int, BusMessage]:
    """The sender's node and the message that :func:`encode` made ``data`` from.

    Raises:
        BusError: ``data`` is not such a message (and never anything else).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BusError(f"a bus message is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < HEADER_BYTES:
        raise BusError(f"a bus message has at least {HEADER_BYTES} bytes, not {len(data)}")
    kind, node, channel = _HEADER.unpack_from(data)
    rest = data[HEADER_BYTES:]
    if kind == _COMMITTED:
        if len(rest) != _U64.size:
            raise BusError(f"Committed: {len(rest)} bytes after the header, not 8")
        return node, Committed(channel, _U64.unpack(rest)[0])
    if kind == _RELAYED:
        if len(rest) < _U64.size:
            raise BusError(f"Relayed: {len(rest)} bytes after the header, fewer than 8")
        return node, Relayed(channel, _U64.unpack_from(rest)[0], rest[_U64.size :])
    if kind == _PEER:
        if len(rest) != _PEER_FIELDS.size:
            raise BusError(f"PeerNotice: {len(rest)} bytes after the header, not 9")
        peer, joined = _PEER_FIELDS.unpack(rest)
        if joined > 1:
            raise BusError(f"PeerNotice: joined is {joined}, not 0 or 1")
        return node, PeerNotice(channel, peer, joined == 1)
    if kind == _SNAPSHOT:
        if len(rest) != _U64.size:
            raise BusError(f"SnapshotStored: {len(rest)} bytes after the header, not 8")
        return node, SnapshotStored(channel, _U64.unpack(rest)[0])
    raise BusError(f"unknown bus message type {kind:#04x} (version {kind >> 4})")


# --- the interface ------------------------------------------------------------------


class Bus(Protocol):
    """How the nodes of a site tell each other of commits, ephemerals, peers and snapshots.

    Attributes:
        healthy: True while hints flow (the listening connection is subscribed).
        dropped: messages not sent (bus down, too large, queue full): counted,
            never raised.
    """

    healthy: bool
    dropped: int

    async def start(
        self,
        node: int,
        deliver: Callable[[BusMessage], None],
        on_health: Callable[[bool], None],
    ) -> None:
        """Start listening as ``node``; never fails because the service is down.

        Args:
            node: this node's number (0 to 65535): its messages carry it, and
                messages carrying it are not delivered back.
            deliver: called on the event loop with every message of the other nodes.
            on_health: called with False when hints stop flowing, True when
                they flow (again); also once at start.
        """
        ...

    def publish(self, message: BusMessage) -> None:
        """Queue ``message`` for the other nodes; never blocks, never raises."""
        ...

    async def close(self) -> None:
        """Stop listening and publishing and close every connection."""
        ...


class NoBus:
    """The bus of a single process: always healthy, and nobody to tell."""

    def __init__(self) -> None:
        self.healthy = True
        self.dropped = 0

    async def start(
        self,
        node: int,
        deliver: Callable[[BusMessage], None],
        on_health: Callable[[bool], None],
    ) -> None:
        """Nothing to listen to."""
        del node, deliver, on_health

    def publish(self, message: BusMessage) -> None:
        """Nothing to send."""
        del message

    async def close(self) -> None:
        """Nothing to close."""


# --- what the network buses share ---------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Queued:
    """A message waiting for the publisher, in its wire form."""

    payload: bytes
    committed: bytes | None = None  # the channel, for a Committed (coalesced)
    seq: int = 0
    retried: bool = False  # a Committed whose first send failed is sent once more


class _NetworkBus:
    """Health, backoff, the queue and the publisher task; subclasses do the I/O.

    A subclass implements :meth:`_listen_once` (connect, subscribe, call
    :meth:`_up`, hand each payload to :meth:`_received`, and return or raise
    when the connection is lost), :meth:`_send` (one batch, one round trip),
    :meth:`_close_publisher` and :meth:`_wire` (the payload, or None if too large).
    """

    def __init__(
        self,
        topic: str,
        *,
        probe_seconds: float,
        retry_initial: float,
        retry_max: float,
        connect_timeout: float,
        send_timeout: float,
    ) -> None:
        self.topic = topic
        self.healthy = False
        self.dropped = 0
        self.sent = 0  # messages handed to the service
        self.coalesced = 0  # Committed hints merged into a higher one of the same batch
        self.received = 0  # messages of other nodes delivered
        self.malformed = 0  # payloads on the topic that were not bus messages
        self.node = -1
        self.probe_seconds = probe_seconds
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.connect_timeout = connect_timeout
        self.send_timeout = send_timeout
        self._token = secrets.token_hex(4)
        self._state: bool | None = None
        self._delay = retry_initial
        self._deliver: Callable[[BusMessage], None] = lambda message: None
        self._on_health: Callable[[bool], None] = lambda healthy: None
        self._queue: list[_Queued] = []
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    # The subclass's part.

    async def _listen_once(self) -> None:
        raise NotImplementedError

    async def _send(self, payloads: list[bytes]) -> None:
        raise NotImplementedError

    async def _close_publisher(self) -> None:
        raise NotImplementedError

    def _wire(self, raw: bytes) -> bytes | None:
        raise NotImplementedError

    def _batches(self, payloads: list[bytes]) -> list[list[bytes]]:
        """Split a drained queue into round trips of bounded size."""
        out: list[list[bytes]] = []
        size = 0
        for payload in payloads:
            if not out or len(out[-1]) >= MAX_BATCH or size + len(payload) > MAX_BATCH_BYTES:
                out.append([])
                size = 0
            out[-1].append(payload)
            size += len(payload)
        return out

    # The interface.

    async def start(
        self,
        node: int,
        deliver: Callable[[BusMessage], None],
        on_health: Callable[[bool], None],
    ) -> None:
        """Listen as ``node``: returns after the first attempt, connected or not."""
        if self._tasks or self._closed:
            raise RuntimeError("a bus starts once")
        if type(node) is not int or not 0 <= node <= NODE_MAX:
            raise ValueError(f"node must be from 0 to 65535, not {node!r}")
        self.node, self._deliver, self._on_health = node, deliver, on_health
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name=f"bus-listen-{node}"),
            asyncio.create_task(self._publish_forever(), name=f"bus-publish-{node}"),
        ]
        await self._settled.wait()

    def publish(self, message: BusMessage) -> None:
        """Queue ``message``; dropped (and counted) while unhealthy, too large or too many."""
        if not self.healthy or self._closed or len(self._queue) >= MAX_QUEUE:
            self.dropped += 1
            return
        try:
            payload = self._wire(encode(self.node, message))
        except BusError as error:
            log.error("not published on the bus: %s", error)
            self.dropped += 1
            return
        if payload is None:
            self.dropped += 1
            return
        if isinstance(message, Committed):
            self._queue.append(_Queued(payload, message.channel_id, message.seq))
        else:
            self._queue.append(_Queued(payload))
        self._wake.set()

    async def close(self) -> None:
        """Cancel the tasks and close the connections (no ``on_health`` call)."""
        self._closed = True
        self.healthy = False
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.dropped += len(self._queue)
        self._queue.clear()
        await self._close_publisher()

    # Health and listening.

    def _set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        if self._state is healthy:
            return
        self._state = healthy
        try:
            self._on_health(healthy)
        except Exception:
            log.exception("the bus's health callback failed")

    def _up(self) -> None:
        """The subscription is in place: hints flow."""
        self._delay = self.retry_initial
        self._set_health(True)
        self._settled.set()

    async def _listen_forever(self) -> None:
        try:
            while True:
                try:
                    await self._listen_once()
                    reason = "the connection was closed"
                except Exception as error:  # any failure is an outage
                    detail = str(error) or ("timed out" if isinstance(error, TimeoutError) else "")
                    reason = f"{type(error).__name__}: {detail}".rstrip(": ")
                if self._state is None:
                    log.warning("hint bus %r unreachable (%s); retrying", self.topic, reason)
                elif self._state:
                    log.warning("hint bus %r lost (%s); reconnecting", self.topic, reason)
                else:
                    log.debug("hint bus %r still down (%s)", self.topic, reason)
                self._set_health(False)
                self._settled.set()
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self.retry_max)
        finally:
            self._settled.set()

    def _received(self, payload: bytes) -> None:
        """One payload from the topic: decode, drop our own, deliver."""
        try:
            node, message = decode(payload)
        except BusError as error:
            self.malformed += 1
            log.debug("ignored a malformed message on the bus %r: %s", self.topic, error)
            return
        if node == self.node or self._closed:
            return
        self.received += 1
        try:
            self._deliver(message)
        except Exception:
            log.exception("delivering a bus message failed")

    # Publishing.

    def _drain(self) -> tuple[list[bytes], dict[bytes, _Queued]]:
        """Everything queued, each channel's Committed hints merged into the highest;
        and the Committed hints among them, by payload (to send again on a failure)."""
        queued, self._queue = self._queue, []
        out: list[bytes] = []
        slot: dict[bytes, tuple[int, _Queued]] = {}  # channel -> (index in out, hint)
        for item in queued:
            if item.committed is None:
                out.append(item.payload)
                continue
            found = slot.get(item.committed)
            if found is None:
                slot[item.committed] = (len(out), item)
                out.append(item.payload)
                continue
            self.coalesced += 1
            index, kept = found
            if item.seq > kept.seq:
                slot[item.committed] = (index, item)
                out[index] = item.payload
        return out, {item.payload: item for _, item in slot.values()}

    async def _publish_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            payloads, hints = self._drain()
            for batch in self._batches(payloads):
                if not self.healthy:
                    self.dropped += len(batch)
                    continue
                try:
                    await self._send(batch)
                except asyncio.CancelledError:
                    self.dropped += len(batch)
                    raise
                except Exception as error:
                    # Hints are "at least seq": sent late they still save the others a
                    # poll, so each goes once more on a new connection; the rest is lost.
                    again = [hints[p] for p in batch if p in hints and not hints[p].retried]
                    for hint in again:
                        hint.retried = True
                    self.dropped += len(batch) - len(again)
                    log.warning(
                        "hint bus %r: %d messages not sent, %d hints to try again (%s: %s)",
                        self.topic,
                        len(batch) - len(again),
                        len(again),
                        type(error).__name__,
                        error,
                    )
                    await self._close_publisher()
                    if again:
                        self._queue[:0] = again
                        self._wake.set()
                else:
                    self.sent += len(batch)


# --- PostgreSQL LISTEN/NOTIFY -------------------------------------------------------


def default_name(topic: str, node: int, token: str) -> str:
    """The connection name of a bus: ``blindpad-bus-<topic tail>-n<node>-<token>``.

    The topic's tail (a site's name) lets an operator, or a test, find the
    connections of one site's relays among others on a shared server; at most
    55 characters, so ``-pub`` fits PostgreSQL's 63.
    """
    return f"blindpad-bus-{topic[-16:]}-n{node}-{token}"


def postgres_topic(site: str) -> str:
    """The NOTIFY channel of a site: ``blindpad_<site>`` in ``[a-z0-9_]``, at most 63 bytes.

    A site name that does not fit is folded to its allowed characters plus a
    hash of the whole name, so two sites never share a channel.
    """
    topic = f"blindpad_{site}"
    if re.fullmatch(r"[a-z0-9_]{1,63}", topic):
        return topic
    folded = re.sub(r"[^a-z0-9_]", "_", site.lower())[:32]
    digest = hashlib.sha256(site.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"blindpad_{folded}_{digest}"


def _import_asyncpg() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError as error:
        raise ImportError(
            "the PostgreSQL bus needs asyncpg: install blindpad[scale]"
            " (pip install 'blindpad[relay,scale]')"
        ) from error
    return asyncpg


class PostgresBus(_NetworkBus):
    """LISTEN/NOTIFY on a PostgreSQL database (asyncpg).

    One dedicated connection listens (its loss is seen by asyncpg's termination
    callback or by a ``SELECT 1`` every ``probe_seconds`` that must answer
    within as long); another publishes, one ``pg_notify`` statement per batch.
    Payloads are the binary encoding in base64 (NOTIFY takes text).  Within one
    transaction PostgreSQL delivers identical payloads once, so a batch that
    holds the same payload twice is split there.

    Args:
        dsn: an asyncpg DSN (:func:`open_bus` takes it from the store's URL,
            without the store's ``schema`` parameter).
        topic: the NOTIFY channel (at most 63 bytes; quoted, so any name works).
        probe_seconds: period and answer deadline of the liveness probe.
        retry_initial: first reconnection delay (doubling up to ``retry_max``).
        connect_timeout: a connection attempt's deadline.
        send_timeout: a batch's deadline.
        application_name: the listening connection's ``application_name``
            (the publisher's ends in ``-pub``); by default
            ``blindpad-bus-<topic's last 16 characters>-n<node>-<random>``
            (:func:`default_name`).

    Raises:
        ImportError: asyncpg is missing.
        ValueError: the topic is empty, too long or holds a NUL.
    """

    def __init__(
        self,
        dsn: str,
        topic: str,
        *,
        probe_seconds: float = PROBE_SECONDS,
        retry_initial: float = RETRY_INITIAL_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        application_name: str | None = None,
    ) -> None:
        if not topic or len(topic.encode("utf-8", "surrogatepass")) > 63 or "\0" in topic:
            raise ValueError(f"a PostgreSQL channel name has 1 to 63 bytes and no NUL: {topic!r}")
        super().__init__(
            topic,
            probe_seconds=probe_seconds,
            retry_initial=retry_initial,
            retry_max=retry_max,
            connect_timeout=connect_timeout,
            send_timeout=send_timeout,
        )
        self._asyncpg = _import_asyncpg()
        self.dsn = dsn
        self._application_name = application_name
        self._publisher: Any = None

    @property
    def application_name(self) -> str:
        """The listening connection's ``application_name`` (known once started)."""
        if self._application_name is not None:
            return self._application_name
        return default_name(self.topic, self.node, self._token)

    async def _connect(self, name: str) -> Any:
        return await self._asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={"application_name": name},
        )

    @staticmethod
    async def _dispose(conn: Any) -> None:
        if conn.is_closed():
            return
        try:
            await conn.close(timeout=1.0)
        except Exception:
            conn.terminate()

    def _wire(self, raw: bytes) -> bytes | None:
        payload = base64.b64encode(raw)
        return payload if len(payload) < NOTIFY_LIMIT else None

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        del conn, pid, channel
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self.malformed += 1
            return
        self._received(raw)

    async def _listen_once(self) -> None:
        conn = await self._connect(self.application_name)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            async with asyncio.timeout(self.connect_timeout):
                await conn.add_listener(self.topic, self._notified)
            self._up()
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.probe_seconds)
                if lost.is_set() or conn.is_closed():
                    return
                try:
                    await conn.fetchval("SELECT 1", timeout=self.probe_seconds)
                except TimeoutError:
                    raise TimeoutError(f"no answer within {self.probe_seconds} s") from None
        finally:
            await self._dispose(conn)

    def _batches(self, payloads: list[bytes]) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        for batch in super()._batches(payloads):
            seen: set[bytes] = set()
            out.append([])
            for payload in batch:
                if payload in seen:  # one transaction would deliver it once
                    seen.clear()
                    out.append([])
                seen.add(payload)
                out[-1].append(payload)
        return out

    async def _send(self, payloads: list[bytes]) -> None:
        if self._publisher is None or self._publisher.is_closed():
            await self._close_publisher()
            self._publisher = await self._connect(f"{self.application_name}-pub")
        await self._publisher.execute(
            "SELECT pg_notify($1, x) FROM unnest($2::text[]) AS x",
            self.topic,
            [payload.decode("ascii") for payload in payloads],
            timeout=self.send_timeout,
        )

    async def _close_publisher(self) -> None:
        conn, self._publisher = self._publisher, None
        if conn is not None:
            await self._dispose(conn)


# --- Redis pub/sub ------------------------------------------------------------------


def _import_redis() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "the Redis bus needs redis-py: install blindpad[scale]"
            " (pip install 'blindpad[relay,scale]')"
        ) from error


class RedisBus(_NetworkBus):
    """Redis pub/sub on one channel (redis.asyncio).

    One dedicated connection subscribes; when it has received nothing for
    ``probe_seconds`` it sends a PING, and no answer within as long again
    counts as a lost connection.  redis-py's own reconnect-and-resubscribe
    is turned off there (no retries), so a loss is seen, reported and
    repaired here.  Another client publishes each batch as one pipeline of
    PUBLISH commands.  Payloads are the binary encoding.

    Args:
        url: a ``redis://`` or ``rediss://`` URL.
        topic: the channel.
        probe_seconds: idle time before a PING, and its answer deadline.
        retry_initial: first reconnection delay (doubling up to ``retry_max``).
        connect_timeout: a connection attempt's deadline.
        send_timeout: a batch's deadline.
        client_name: the subscribing connection's CLIENT SETNAME (the
            publisher's ends in ``-pub``); by default
            ``blindpad-bus-<topic's last 16 characters>-n<node>-<random>``
            (:func:`default_name`).

    Raises:
        ImportError: redis-py is missing.
    """

    def __init__(
        self,
        url: str,
        topic: str,
        *,
        probe_seconds: float = PROBE_SECONDS,
        retry_initial: float = RETRY_INITIAL_SECONDS,
        retry_max: float = RETRY_MAX_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        client_name: str | None = None,
    ) -> None:
        if not topic:
            raise ValueError("a Redis channel name is not empty")
        super().__init__(
            topic,
            probe_seconds=probe_seconds,
            retry_initial=retry_initial,
            retry_max=retry_max,
            connect_timeout=connect_timeout,
            send_timeout=send_timeout,
        )
        _import_redis()
        self._url = url
        self._client_name = client_name
        self._publisher: aioredis.Redis | None = None

    @property
    def client_name(self) -> str:
        """The subscribing connection's client name (known once started)."""
        if self._client_name is not None:
            return self._client_name
        return default_name(self.topic, self.node, self._token)

    def _client(self, name: str) -> aioredis.Redis:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return aioredis.Redis.from_url(
            self._url,
            client_name=name,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.send_timeout,
            health_check_interval=0,
        )

    def _wire(self, raw: bytes) -> bytes | None:
        return raw if len(raw) <= MAX_REDIS_MESSAGE else None

    async def _listen_once(self) -> None:
        client = self._client(self.client_name)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.topic)
            subscribed = False
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=self.probe_seconds)
                if message is None:
                    if pinged or not subscribed:
                        raise ConnectionError(
                            f"no answer from Redis within {self.probe_seconds} s"
                        )
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False  # anything received proves the connection alive
                kind = message["type"]
                if kind == "message":
                    self._received(message["data"])
                elif kind == "subscribe" and not subscribed:
                    subscribed = True
                    self._up()
                elif kind in ("unsubscribe", "punsubscribe", "sunsubscribe"):
                    return
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _send(self, payloads: list[bytes]) -> None:
        if self._publisher is None:
            self._publisher = self._client(f"{self.client_name}-pub")
        async with asyncio.timeout(self.send_timeout):
            async with self._publisher.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(self.topic, payload)
                await pipe.execute()

    async def _close_publisher(self) -> None:
        client, self._publisher = self._publisher, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


# --- choosing one ---------------------------------------------------------------------


def open_bus(spec: str | None, store_url: str, site: str) -> Bus:
    """Build (not yet start) the bus ``spec`` names for the site's nodes.

    Args:
        spec: ``None`` or ``"none"`` (a single process), ``"postgres"``
            (LISTEN/NOTIFY on the store's database), or a ``redis://`` /
            ``rediss://`` URL.
        store_url: the store's URL (the PostgreSQL bus connects there).
        site: the site's name; the topic derives from it (``blindpad_<site>``
            on PostgreSQL, ``blindpad:<site>`` on Redis).

    Raises:
        ValueError: an unknown ``spec``.
        ImportError: asyncpg or redis is missing (install blindpad[scale]).
    """
    check_spec(spec)
    if spec is None or spec == "none":
        return NoBus()
    if spec == "postgres":
        from relay.store.postgresql import parse_url  # the store's reading of its URL

        return PostgresBus(parse_url(store_url).dsn, postgres_topic(site))
    return RedisBus(spec, f"blindpad:{site}")


def check_spec(spec: str | None) -> None:
    """Refuse a bus ``spec`` :func:`open_bus` would not know, before anything starts.

    Raises:
        ValueError: with one line saying what to write instead.
    """
    if spec in (None, "none", "postgres") or spec.startswith(("redis://", "rediss://")):
        return
    raise ValueError(
        f"unknown bus {spec!r}: use --bus postgres (LISTEN/NOTIFY on the PostgreSQL store),"
        " --bus redis://HOST:6379/0 (Redis pub/sub) or --bus none (poll the store only)"
    )

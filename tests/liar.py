"""A scriptable lying relay: a test double that speaks the relay protocol.

:class:`LyingRelay` serves real websockets on a loopback port in the running
event loop, so tests drive the real SDK (``from client import Pad``) against
a relay that lies.  Left alone it is a minimal **honest** relay for one
channel (docs/PROTOCOL.md §3); the hooks make it lie:

* :attr:`LyingRelay.branches` are named histories of the one channel, and
  :attr:`LyingRelay.route` puts each connection on one of them at accept, so
  different clients can be shown different forks (:meth:`LyingRelay.fork`);
* :attr:`LyingRelay.claim` changes the head HISTORY_END names,
  :attr:`LyingRelay.serve` the HISTORY a SUBSCRIBE gets,
  :attr:`LyingRelay.drop_broadcast` withholds live patches;
* :attr:`LyingRelay.prove` replaces the ids a PROOF names;
* a stored snapshot is sent live (flag LIVE) to the other subscribers of its
  branch, as a relay does; :meth:`LyingRelay.send_snapshot` sends any bytes
  as a snapshot; DISPUTE is stored (:attr:`LyingRelay.disputes`) and flags the
  snapshot DISPUTED afterwards;
* ephemerals (presence) flow between *all* subscribed connections, whatever
  their branch, so partitioned users still think they are together;
* session records (SESSION) are kept unchecked and sent as RECORDs to every
  subscriber, at subscription and when registered.

The channel is the first one subscribed (with its verify key, as
``Pad.create`` does; a SUBSCRIBE without one before that is refused
NO_VERIFY_KEY).  A SUBSCRIBE to any other channel is refused UNKNOWN_PATCH.
Any websocket path is served.  No signatures are checked, nothing is rate
limited, and every frame a connection sends or is sent is recorded
(:attr:`Conn.received`, :attr:`Conn.sent`) for assertions.

Every decision is synchronous (no await between reading the branch and
queueing the answer), and each connection has one outgoing queue drained by
one writer task, so the §3.3 order guarantee holds without locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from crypto.envelope import envelope_id
from crypto.envelope2 import SESSION, ref_of
from crypto.errors import MalformedEnvelope
from wire import frames as f
from wire import mmr
from wire.codes import ErrorCode, RefuseCode

SNAPSHOT_CHUNK_BYTES = 200 * 1024  # SNAPSHOT frames carry at most this much
Served = list[tuple[int, bytes]]  # (seq, envelope) pairs, as HISTORY sends them


@dataclasses.dataclass
class Branch:
    """One named history of the channel: ``patches[i]`` has seq ``floor + i + 1``."""

    name: str
    patches: list[bytes] = dataclasses.field(default_factory=list)
    floor: int = 0  # seqs <= floor were trimmed
    snapshot: tuple[int, bytes] | None = None  # (x_seq, sealed snapshot), the latest
    trimmed: dict[bytes, int] = dataclasses.field(default_factory=dict)  # id -> seq tombstones
    floor_id: bytes = f.ZERO_ID  # the id of the patch at the floor (the head once all is trimmed)

    @property
    def head_seq(self) -> int:
        """The seq of the last patch (the floor when none is stored)."""
        return self.floor + len(self.patches)

    @property
    def head_id(self) -> bytes:
        """The id of the last patch (the floor's when none is stored; ZERO_ID if empty)."""
        return envelope_id(self.patches[-1]) if self.patches else self.floor_id

    def seq_of(self, patch_id: bytes) -> int | None:
        """The seq of the stored (untrimmed) patch ``patch_id``, if any."""
        for i, envelope in enumerate(self.patches):
            if envelope_id(envelope) == patch_id:
                return self.floor + i + 1
        return None

    def envelopes_since(self, since: int) -> Served:
        """``(seq, envelope)`` of every stored patch with seq > ``since``."""
        first = max(since - self.floor, 0)
        return [(self.floor + i + 1, e) for i, e in enumerate(self.patches) if i >= first]


@dataclasses.dataclass(eq=False)
class Conn:
    """One accepted websocket; ``number`` counts from 0 in accept order."""

    number: int
    branch: str
    ws: ServerConnection
    closed: bool = False
    subscribed: bool = False
    received: list[f.ClientFrame] = dataclasses.field(default_factory=list)
    sent: list[f.RelayFrame] = dataclasses.field(default_factory=list)
    outbox: asyncio.Queue[bytes | int] = dataclasses.field(default_factory=asyncio.Queue)
    uploads: dict[int, bytearray] = dataclasses.field(default_factory=dict)

    @property
    def connection_id(self) -> int:
        """The id WELCOME gives it (and PEER_JOINED / EPHEMERAL_RELAYED name)."""
        return self.number + 1

    def send(self, frame: f.RelayFrame) -> None:
        """Queue ``frame`` (the writer task sends in order)."""
        if not self.closed:
            self.sent.append(frame)
            self.outbox.put_nowait(f.encode(frame))

    def fail(self, code: ErrorCode, message: str) -> None:
        """Queue ERROR and the close 4000 + code."""
        self.send(f.Error(code, message))
        self.outbox.put_nowait(code.close_code)


class LyingRelay:
    """``async with LyingRelay() as liar: ...`` serves ws://127.0.0.1:<port>/ws (any path)."""

    def __init__(self) -> None:
        self.url = ""  # "http://127.0.0.1:<port>", set on entry
        self.branches: dict[str, Branch] = {"main": Branch("main")}
        self.route: Callable[[int], str] = lambda number: "main"
        self.claim: Callable[[Conn, Branch], tuple[int, bytes]] | None = None
        self.serve: Callable[[Conn, Served], Served] | None = None
        self.drop_broadcast: Callable[[Conn, int, bytes], bool] | None = None
        self.serve_snapshots = True
        self.forward_ephemerals = True
        self.disputes: list[bytes] = []  # sealed disputes received
        # PROOF answers: the ids named for (conn, from_seq, to_seq); None = the truth
        self.prove: Callable[[Conn, int, int], bytes] | None = None
        self.disputed: set[bytes] = set()  # ids of disputed snapshots
        self.sessions: list[bytes] = []  # session records registered (SESSION), unchecked
        self.connections: list[Conn] = []
        self.channel_id: bytes | None = None  # the first channel subscribed
        self._server: Server | None = None

    async def __aenter__(self) -> LyingRelay:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def send_snapshot(self, conn: Conn, x_seq: int, data: bytes, flags: int) -> None:
        """Send ``data`` to ``conn`` as a snapshot of patch ``x_seq`` (in chunks)."""
        if envelope_id(data) in self.disputed:
            flags |= f.SNAPSHOT_DISPUTED
        for at in range(0, max(len(data), 1), SNAPSHOT_CHUNK_BYTES):
            chunk = data[at : at + SNAPSHOT_CHUNK_BYTES]
            conn.send(f.Snapshot(self.channel_id or f.ZERO_ID, x_seq, flags, len(data), at, chunk))

    def fork(self, name: str, source: str = "main", at_seq: int | None = None) -> Branch:
        """A new branch: ``source``'s patches up to ``at_seq`` (default all), and
        its snapshot if that is within them."""
        src = self.branches[source]
        at = src.head_seq if at_seq is None else at_seq
        if not src.floor <= at <= src.head_seq:
            raise ValueError(f"{source} holds seqs {src.floor}..{src.head_seq}, not {at}")
        snapshot = src.snapshot if src.snapshot and src.snapshot[0] <= at else None
        patches = src.patches[: at - src.floor]
        branch = Branch(name, patches, src.floor, snapshot, dict(src.trimmed), src.floor_id)
        self.branches[name] = branch
        return branch

    async def close_all(self) -> None:
        """Close every live websocket (code 1001) so SDK pads reconnect."""
        live = [conn for conn in self.connections if not conn.closed]
        await asyncio.gather(*(conn.ws.close(1001) for conn in live), return_exceptions=True)

    def live(self, but: Conn) -> list[Conn]:
        """The other live subscribed connections, on any branch."""
        return [c for c in self.connections if c is not but and c.subscribed and not c.closed]

    # --- one connection ------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        number = len(self.connections)
        conn = Conn(number, self.route(number), ws)
        self.connections.append(conn)
        writer = asyncio.create_task(self._write(conn))
        fatal = False
        try:
            async for message in ws:
                if not self._receive(conn, message):
                    fatal = True
                    break
        except ConnectionClosed:
            pass
        finally:
            self._leave(conn)
            conn.closed = True
            if not fatal:
                writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    @staticmethod
    async def _write(conn: Conn) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                item = await conn.outbox.get()
                if isinstance(item, int):
                    await conn.ws.close(item)
                    return
                await conn.ws.send(item)

    def _leave(self, conn: Conn) -> None:
        if conn.subscribed and self.channel_id is not None:
            conn.subscribed = False
            for other in self.live(conn):
                other.send(f.PeerLeft(self.channel_id, conn.connection_id))

    def _receive(self, conn: Conn, message: bytes | str) -> bool:
        """Answer one message; False when the connection must end (fatal)."""
        try:
            if isinstance(message, str):
                raise f.FrameError("a text message")
            frame = f.decode_client(message)
        except f.FrameError as error:
            conn.fail(ErrorCode.PROTOCOL, str(error))
            return False
        conn.received.append(frame)
        if len(conn.received) == 1 or isinstance(frame, f.Hello):
            return self._hello(conn, frame)
        match frame:
            case f.Subscribe():
                self._subscribe(conn, frame)
            case f.Unsubscribe():
                self._leave(conn)
                conn.send(f.Unsubscribed(frame.request_id, frame.channel_id))
            case f.Push():
                self._push(conn, frame)
            case f.SnapshotChunk():
                self._chunk(conn, frame)
            case f.Trim():
                self._trim(conn, frame)
            case f.Ephemeral():
                self._ephemeral(conn, frame)
            case f.Ping():
                conn.send(f.Pong(frame.nonce))
            case f.Dispute():
                self._dispute(conn, frame)
            case f.ProofRequest():
                self._proof(conn, frame)
            case f.Session():
                self._session(conn, frame)
        return True

    def _hello(self, conn: Conn, frame: f.ClientFrame) -> bool:
        if not isinstance(frame, f.Hello):
            conn.fail(ErrorCode.HELLO_REQUIRED, "HELLO first")
            return False
        if len(conn.received) != 1:
            conn.fail(ErrorCode.PROTOCOL, "HELLO twice")
            return False
        if frame.version != f.PROTOCOL_VERSION:
            conn.fail(ErrorCode.VERSION_MISMATCH, "please reload")
            return False
        limits = (262144, 65536, 16 * 1024 * 1024, 4096, 64, 1000, 2000)
        conn.send(f.Welcome(f.PROTOCOL_VERSION, conn.connection_id, *limits))
        return True

    @staticmethod
    def _refuse(
        conn: Conn, req: int, code: RefuseCode, head: tuple[int, bytes] = (0, f.ZERO_ID)
    ) -> None:
        conn.send(f.Refuse(req, code, 0, *head))

    def _subscribe(self, conn: Conn, frame: f.Subscribe) -> None:
        req, channel = frame.request_id, frame.channel_id
        if self.channel_id is None:
            if frame.verify_key == f.ZERO_ID:
                return self._refuse(conn, req, RefuseCode.NO_VERIFY_KEY)
            self.channel_id = channel
        if channel != self.channel_id:
            return self._refuse(conn, req, RefuseCode.UNKNOWN_PATCH)
        if conn.subscribed:
            return self._refuse(conn, req, RefuseCode.ALREADY_SUBSCRIBED)
        branch = self.branches[conn.branch]
        snapshot = branch.snapshot if self.serve_snapshots else None
        if frame.start is f.SubscribeFrom.SNAPSHOT:
            since = snapshot[0] if snapshot else 0
        elif frame.start is f.SubscribeFrom.EARLIEST:
            since = branch.floor
            snapshot = snapshot if branch.floor and snapshot and snapshot[0] == since else None
        elif frame.since_seq < branch.floor:
            return self._refuse(conn, req, RefuseCode.HISTORY_TRIMMED, (branch.floor, f.ZERO_ID))
        else:
            since, snapshot = frame.since_seq, None
        conn.subscribed = True
        for record in self.sessions:  # every record first: simpler than "before its first"
            conn.send(f.Record(channel, SESSION, record))
        if snapshot is not None:
            self.send_snapshot(conn, *snapshot, 0)
        history = branch.envelopes_since(since)
        if self.serve is not None:
            history = self.serve(conn, history)
        for seq, envelope in history:
            conn.send(f.History(channel, seq, envelope))
        head = self.claim(conn, branch) if self.claim else (branch.head_seq, branch.head_id)
        conn.send(f.HistoryEnd(req, channel, *head))
        for other in self.live(conn):
            conn.send(f.PeerJoined(channel, other.connection_id))
            other.send(f.PeerJoined(channel, conn.connection_id))
        return None

    def _push(self, conn: Conn, frame: f.Push) -> None:
        req, envelope = frame.request_id, frame.envelope
        branch = self.branches[conn.branch]
        patch_id = envelope_id(envelope)
        known = branch.seq_of(patch_id) or branch.trimmed.get(patch_id)
        if known is not None:
            return conn.send(f.Ack(req, known, patch_id))
        if not conn.subscribed or self.channel_id is None:
            return self._refuse(conn, req, RefuseCode.NOT_SUBSCRIBED)
        try:
            parent = ref_of(envelope)
        except MalformedEnvelope:
            return self._refuse(conn, req, RefuseCode.MALFORMED_ENVELOPE)
        if parent != branch.head_id:
            return self._refuse(conn, req, RefuseCode.STALE, (branch.head_seq, branch.head_id))
        branch.patches.append(envelope)
        seq = branch.head_seq
        conn.send(f.Ack(req, seq, patch_id))
        for other in self.live(conn):
            if other.branch != conn.branch:
                continue
            if self.drop_broadcast is None or not self.drop_broadcast(other, seq, envelope):
                other.send(f.Broadcast(self.channel_id, seq, envelope))
        return None

    def _chunk(self, conn: Conn, frame: f.SnapshotChunk) -> None:
        req = frame.request_id
        upload = conn.uploads.setdefault(req, bytearray()) if frame.offset else bytearray()
        if frame.offset != len(upload):
            conn.uploads.pop(req, None)
            return self._refuse(conn, req, RefuseCode.BAD_CHUNK)
        upload += frame.data
        conn.uploads[req] = upload
        if len(upload) < frame.total:
            return None
        data = bytes(conn.uploads.pop(req))
        branch = self.branches[conn.branch]
        try:
            x_seq = branch.seq_of(ref_of(data))
        except MalformedEnvelope:
            return self._refuse(conn, req, RefuseCode.MALFORMED_ENVELOPE)
        if x_seq is None:
            return self._refuse(conn, req, RefuseCode.UNKNOWN_PATCH)
        if branch.snapshot is None or branch.snapshot[0] <= x_seq:
            branch.snapshot = (x_seq, data)
        conn.send(f.Ack(req, x_seq, envelope_id(data)))
        for other in self.live(conn):
            if other.branch == conn.branch:
                self.send_snapshot(other, x_seq, data, f.SNAPSHOT_LIVE)
        return None

    def _proof(self, conn: Conn, frame: f.ProofRequest) -> None:
        """The ids of the patches after ``from_seq`` (trimmed ones from the tombstones)."""
        branch = self.branches[conn.branch]
        if self.prove is not None:
            ids = self.prove(conn, frame.from_seq, frame.to_seq)
        else:
            by_seq = {seq: patch_id for patch_id, seq in branch.trimmed.items()}
            by_seq.update((seq, envelope_id(e)) for seq, e in branch.envelopes_since(0))
            last = min(frame.to_seq, frame.from_seq + f.MAX_PROOF_NODES)
            seqs = range(frame.from_seq + 1, last + 1)
            ids = b"".join(by_seq[s] for s in seqs if s in by_seq)
        nodes = mmr.pack_nodes((0, ids[i : i + 32]) for i in range(0, len(ids), 32))
        conn.send(f.Proof(frame.request_id, frame.channel_id, frame.from_seq, nodes))

    def _dispute(self, conn: Conn, frame: f.Dispute) -> None:
        branch = self.branches[conn.branch]
        try:
            snapshot_id = ref_of(frame.envelope)
        except MalformedEnvelope:
            return self._refuse(conn, frame.request_id, RefuseCode.MALFORMED_ENVELOPE)
        if branch.snapshot is None or envelope_id(branch.snapshot[1]) != snapshot_id:
            return self._refuse(conn, frame.request_id, RefuseCode.UNKNOWN_PATCH)
        self.disputes.append(frame.envelope)
        self.disputed.add(snapshot_id)
        return conn.send(f.Ack(frame.request_id, branch.snapshot[0], envelope_id(frame.envelope)))

    def _trim(self, conn: Conn, frame: f.Trim) -> None:
        req = frame.request_id
        branch = self.branches[conn.branch]
        try:
            x_id = ref_of(frame.envelope)
        except MalformedEnvelope:
            return self._refuse(conn, req, RefuseCode.MALFORMED_ENVELOPE)
        trimmed = branch.trimmed.get(x_id)
        if trimmed is not None:  # at or below the floor: a no-op
            return conn.send(f.Ack(req, trimmed, envelope_id(frame.envelope)))
        x_seq = branch.seq_of(x_id)
        if x_seq is None:
            return self._refuse(conn, req, RefuseCode.UNKNOWN_PATCH)
        if branch.snapshot is None or branch.snapshot[0] != x_seq:
            return self._refuse(conn, req, RefuseCode.NO_SNAPSHOT)
        cut = x_seq - branch.floor
        for seq, envelope in branch.envelopes_since(branch.floor)[:cut]:
            branch.trimmed[envelope_id(envelope)] = seq
        del branch.patches[:cut]
        branch.floor, branch.floor_id = x_seq, x_id
        return conn.send(f.Ack(req, x_seq, envelope_id(frame.envelope)))

    def _session(self, conn: Conn, frame: f.Session) -> None:
        """Keep a session record (unchecked) and send it to every subscriber ahead
        of the envelopes that need it."""
        if not conn.subscribed or self.channel_id is None:
            return self._refuse(conn, frame.request_id, RefuseCode.NOT_SUBSCRIBED)
        if frame.record not in self.sessions:
            self.sessions.append(frame.record)
            for other in self.live(conn):
                other.send(f.Record(self.channel_id, SESSION, frame.record))
        return conn.send(f.Ack(frame.request_id, 0, envelope_id(frame.record)))

    def _ephemeral(self, conn: Conn, frame: f.Ephemeral) -> None:
        if not conn.subscribed or self.channel_id is None:
            return self._refuse(conn, frame.request_id, RefuseCode.NOT_SUBSCRIBED)
        if self.forward_ephemerals:
            for other in self.live(conn):
                other.send(f.EphemeralRelayed(self.channel_id, conn.connection_id, frame.envelope))
        return None


__all__ = ["Branch", "Conn", "LyingRelay"]

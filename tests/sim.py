"""A deterministic many-session simulator for the chain engine.

Two worlds drive real :class:`client.engine.Engine` instances with seeded
randomness and no clock:

* :class:`RelayWorld` (mode a): a simulated relay that orders fast-forward
  only, deduplicates by id, refuses stale parents, stores snapshots beside the
  chain, and misbehaves the way networks do: it loses acks (the patch was
  stored, the ack never arrives), sessions disconnect (in-transit messages are
  lost) and reconnect (history since their last sequence number, then a
  resend of the same sealed bytes), new sessions join from the latest
  snapshot mid-run, and a rogue writer stores an invalid patch now and then.
* :class:`MeshWorld` (mode b): the federation case.  Every sealed patch is
  forwarded to every session, itself included, in any order, late,
  duplicated or dropped (a final anti-entropy pass delivers what was
  dropped); forks happen and are resolved by the best-chain rule.  Sessions
  may leave for good mid-run.

The oracle is exact.  Every inserted character is a fresh, unique tag (emoji,
CJK, astral-plane ideographs); every delete records the tags its author saw.
At the end every session holds the same text and head, and the text holds
each tag once at most: every tag inserted and not deleted is there, every
deleted tag is gone — no duplicate, no resurrection, no loss.  In mode (b)
that promise is for the authors still alive at the end.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vectors.check_chain import SimRelay, VectorCodec, header

from client import textops
from client.doctype import TEXT, DocType
from client.engine import (
    PATCH,
    Alarm,
    AlarmKind,
    Engine,
    Reverted,
    SendPatch,
    SendSnapshot,
)
from client.payload import decode
from wire.turns import Turns

_ALPHABET = [
    chr(c)
    for block in (range(0x1F300, 0x1F5FF), range(0x20000, 0x2A6DF), range(0x4E00, 0x9FFF))
    for c in block
]


# Envelopes without cryptography: ``kind | ref | author | counter | content``,
# ids SHA-256 of the bytes as with the real envelope; the author and counter
# make every sealed patch unique, as the real random nonce does.  One codec
# serves the simulator and the chain vectors (which must run under Pyodide).
FakeCodec = VectorCodec


def inserted_by(envelopes: Iterable[bytes]) -> set[str]:
    """The characters the fake patch envelopes insert."""
    chars: set[str] = set()
    for data in envelopes:
        if data[0] == PATCH:
            for op in decode(TEXT, data[45:]).patch:
                chars.update(op.insert)
    return chars


@dataclass
class Oracle:
    """What the sessions did, independently of the engine."""

    inserted: dict[str, int] = field(default_factory=dict)  # tag -> author
    deleted_by: dict[str, set[int]] = field(default_factory=dict)  # tag -> deleters
    next_tag: int = 0
    alphabet: list[str] = field(default_factory=list)

    def tags(self, count: int, author: int) -> str:
        out = []
        for _ in range(count):
            tag = self.alphabet[self.next_tag]
            self.next_tag += 1
            self.inserted[tag] = author
            out.append(tag)
        return "".join(out)

    def verify(
        self,
        text: str,
        alive: set[int] | None = None,
        voided: dict[int, set[str]] | None = None,
    ) -> None:
        """Assert ``text`` is exactly the inserted tags minus the deleted ones.

        With ``alive`` (mode b), the exact promise holds for the tags and
        deletes of those authors; the others' tags appear at most once.
        ``voided[s]`` are tags whose insertion a fork switch took off session
        ``s``'s chain: a delete of such text by ``s`` may be void, because the
        text it meant was gone when ``s`` rebased (documented in
        client/engine.py: the one loss revert-and-resend cannot avoid).
        """
        seen = set()
        for char in text:
            assert char in self.inserted, f"{char!r} was never inserted"
            assert char not in seen, f"{char!r} appears twice"
            seen.add(char)
        for tag, author in self.inserted.items():
            deleters = self.deleted_by.get(tag, set())
            live_deleters = deleters if alive is None else deleters & alive
            if voided:
                live_deleters = {d for d in live_deleters if tag not in voided.get(d, set())}
            if live_deleters:
                assert tag not in seen, f"{tag!r} was deleted by {sorted(deleters)} but is back"
            elif not deleters and (alive is None or author in alive):
                assert tag in seen, f"{tag!r} by session {author} was lost"


class Session:
    """One simulated client: an engine plus what it has not yet processed."""

    def __init__(self, number: int, engine: Engine[Any, Any]) -> None:
        self.number = number
        self.engine = engine
        self.inbox: deque[tuple[str, object, object]] = deque()
        self.outbox: deque[tuple[str, bytes]] = deque()
        self.connected = True
        self.alive = True
        self.alarms: list[Alarm] = []
        self.received: set[bytes] = set()  # mode (b): ids delivered to this session
        self.reverted: set[bytes] = set()  # ids a fork switch took off our chain

    def edit(self, rng: random.Random, oracle: Oracle) -> None:
        view = self.engine.view
        roll = rng.random()
        if not view or roll < 0.5:
            pos = rng.randint(0, len(view))
            patch = textops.normalize([(pos, 0, oracle.tags(rng.randint(1, 4), self.number))])
        else:
            pos = rng.randrange(len(view))
            count = min(len(view) - pos, rng.randint(1, 6))
            for tag in view[pos : pos + count]:
                oracle.deleted_by.setdefault(tag, set()).add(self.number)
            insert = oracle.tags(rng.randint(1, 3), self.number) if roll > 0.8 else ""
            patch = textops.normalize([(pos, count, insert)])
        self.engine.edit(patch)
        self.engine.flush()

    def drain(self) -> None:
        """Move the engine's events to the outbox (if connected) and alarm list."""
        for event in self.engine.events():
            if isinstance(event, SendPatch) and self.connected:
                self.outbox.append(("push", event.sealed.data))
            elif isinstance(event, SendSnapshot) and self.connected:
                self.outbox.append(("snapshot", event.sealed.data))
            elif isinstance(event, Alarm):
                self.alarms.append(event)
            elif isinstance(event, Reverted):
                self.reverted.add(event.id)


#: Writer session ids, unique across every engine the simulator makes.
_SESSIONS = itertools.count(1)


def make_engine(
    author: int,
    rng: random.Random,
    hash_every: int,
    max_orphans: int = 1024,
    doctype: DocType[Any, Any] = TEXT,
) -> Engine[Any, Any]:
    """An engine with random per-session settings; ``hash_every`` is per channel."""
    return Engine(
        doctype,
        FakeCodec(author),
        pipeline=rng.choice([1, 2, 4, 8]),
        hash_every=hash_every,
        min_snapshot_bytes=rng.choice([0, 256, 4096]),
        max_patch_bytes=rng.choice([200, 48 * 1024]),
        session=next(_SESSIONS).to_bytes(8, "big"),  # unique, and draws nothing from rng
        max_orphans=max_orphans,
    )


# --- mode (a): a relay that orders --------------------------------------------


class RelayWorld:
    """Mode (a): sessions around one ordering relay."""

    doctype: DocType[Any, Any] = TEXT

    def __init__(self, seed: int, sessions: int, edits: int) -> None:
        self.rng = random.Random(seed)
        self.oracle = Oracle(alphabet=self.rng.sample(_ALPHABET, len(_ALPHABET)))
        self.hash_every = self.rng.choice([1, 4, 64])
        self.relay = SimRelay()
        self.sessions = [self.session(n) for n in range(sessions)]
        self.edits_left = edits
        self.max_sessions = sessions + self.rng.randint(0, 2)
        self.ack_loss = self.rng.choice([0.0, 0.05, 0.3])
        self.typing = self.rng.choice([0.05, 0.2, 0.4])  # share of steps that are edits
        self.invalid_patches = 0
        self.reconnects = 0

    def session(self, number: int) -> Session:
        return Session(
            number, make_engine(number, self.rng, self.hash_every, doctype=self.doctype)
        )

    def run(self) -> None:
        while self.edits_left > 0:
            self.step()
        self.settle()
        self.check()

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < self.typing:
            self.edits_left -= 1
            session = rng.choice(self.sessions)
            session.edit(rng, self.oracle)
            session.drain()
        elif roll < 0.96:
            session = rng.choice(self.sessions)
            if rng.random() < 0.5:
                self.to_relay(session)
            else:
                self.to_session(session)
        elif roll < 0.98:
            self.toggle_connection(rng.choice(self.sessions))
        elif roll < 0.995:
            if len(self.sessions) < self.max_sessions:
                self.join()
        else:
            self.rogue_patch()

    def to_relay(self, session: Session) -> None:
        if not session.connected or not session.outbox:
            return
        kind, data = session.outbox.popleft()
        if kind == "snapshot":
            self.relay.put_snapshot(data)
            return
        before = len(self.relay.log)
        verdict, patch_id, detail = self.relay.push(data)
        if verdict == "refuse":
            session.inbox.append(("refuse", patch_id, detail))
            return
        if self.rng.random() >= self.ack_loss:
            session.inbox.append(("ack", patch_id, detail))
        if len(self.relay.log) > before:
            self.broadcast(data, len(self.relay.log), exclude=session)

    def broadcast(self, data: bytes, seq: int, exclude: Session | None) -> None:
        for other in self.sessions:
            if other is not exclude and other.connected:
                other.inbox.append(("patch", data, seq))

    def to_session(self, session: Session) -> None:
        if not session.connected or not session.inbox:
            return
        kind, a, b = session.inbox.popleft()
        engine = session.engine
        if kind == "patch":
            assert isinstance(a, bytes)
            assert isinstance(b, int)
            if b > engine.last_seq + 1:  # a gap: refetch what we missed
                session.inbox.extendleft(reversed(self.relay.since(engine.last_seq)))
                return
            engine.receive(a, b)
        elif kind == "ack":
            assert isinstance(a, bytes)
            assert isinstance(b, int)
            engine.acked(a, b)
        else:
            assert isinstance(a, bytes)
            assert isinstance(b, bytes)
            engine.refused(a, b)
        engine.flush()
        session.drain()

    def toggle_connection(self, session: Session) -> None:
        if session.connected:
            session.connected = False
            session.inbox.clear()
            session.outbox.clear()
        else:
            self.reconnect(session)

    def reconnect(self, session: Session) -> None:
        self.reconnects += 1
        session.connected = True
        session.inbox.extend(self.relay.since(session.engine.last_seq))
        session.engine.resend()
        session.engine.flush()
        session.drain()

    def join(self) -> None:
        session = self.session(len(self.sessions))
        start = 0
        if self.relay.snapshots and self.rng.random() < 0.8:
            start, data = self.relay.snapshots[-1]
            session.engine.load_snapshot(data, start)
        session.inbox.extend(self.relay.since(start))
        self.sessions.append(session)

    def rogue_patch(self) -> None:
        """A writer with the keys stores a patch that cannot apply."""
        rogue = FakeCodec(10_000 + self.invalid_patches)
        content = b'{"o":[[999999999,1,""]],"n":0}'
        data = rogue.seal(PATCH, self.relay.head, content).data
        verdict, _, seq = self.relay.push(data)
        assert verdict == "ack"
        assert isinstance(seq, int)
        self.invalid_patches += 1
        self.broadcast(data, seq, exclude=None)

    def settle(self) -> None:
        """Reconnect everyone and deliver until nothing moves."""
        for session in self.sessions:
            if not session.connected:
                self.reconnect(session)
        for _ in range(10_000):
            busy = [s for s in self.sessions if s.inbox or s.outbox]
            if not busy:
                if all(s.engine.saved for s in self.sessions):
                    return
                for session in self.sessions:  # lost acks: learn from history
                    if not session.engine.saved:
                        self.reconnect(session)
                continue
            session = self.rng.choice(busy)
            if session.outbox and (not session.inbox or self.rng.random() < 0.5):
                self.to_relay(session)
            else:
                self.to_session(session)
        raise AssertionError("the relay world did not settle")

    def check(self) -> None:
        first = self.sessions[0].engine
        for session in self.sessions:
            engine = session.engine
            engine.check_invariants()
            assert engine.head.id == self.relay.head, f"session {session.number} head differs"
            assert engine.view == first.view, f"session {session.number} text differs"
            invalid = [a for a in session.alarms if a.kind is AlarmKind.INVALID_PATCH]
            assert len(invalid) <= self.invalid_patches, session.alarms
            assert len(invalid) == len(session.alarms), session.alarms
        self.oracle.verify(first.view)


# --- mode (b): a mesh that forks ----------------------------------------------


class MeshWorld:
    """Mode (b): every patch to every session, in any order, duplicated or dropped."""

    def __init__(self, seed: int, sessions: int, edits: int) -> None:
        self.rng = random.Random(seed)
        self.oracle = Oracle(alphabet=self.rng.sample(_ALPHABET, len(_ALPHABET)))
        self.hash_every = self.rng.choice([1, 4, 64])
        # Heavy drops and delays keep many patches waiting for their parents.
        self.sessions = [
            Session(n, make_engine(n, self.rng, self.hash_every, max_orphans=1 << 20))
            for n in range(sessions)
        ]
        self.sent: list[bytes] = []
        self.in_transit: list[tuple[Session, bytes]] = []
        self.edits_left = edits
        self.drop = self.rng.choice([0.0, 0.05, 0.2])
        self.duplicate = self.rng.choice([0.0, 0.1])
        self.deaths = self.rng.randint(0, max(0, sessions - 2))

    def run(self) -> None:
        while self.edits_left > 0:
            self.step()
        self.settle()
        self.check()

    @property
    def alive(self) -> list[Session]:
        return [s for s in self.sessions if s.alive]

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            self.edits_left -= 1
            session = rng.choice(self.alive)
            session.edit(rng, self.oracle)
            self.publish(session)
        elif roll < 0.995 or not self.deaths:
            self.deliver_one()
        else:
            self.deaths -= 1
            rng.choice(self.alive).alive = False

    def publish(self, session: Session) -> None:
        """Send what the session sealed.  Its home relay (the session itself in
        this model) stores each patch at once: that is what makes a federation
        fork, and it is acknowledged before anyone else hears of it."""
        while True:
            session.drain()
            if not session.outbox:
                return
            while session.outbox:
                kind, data = session.outbox.popleft()
                self.sent.append(data)
                if kind == "push":
                    session.engine.acked(header(data)[0])
                    session.received.add(header(data)[0])
                for target in self.sessions:
                    if target is not session and self.rng.random() >= self.drop:
                        self.in_transit.append((target, data))
                    if target is not session and self.rng.random() < self.duplicate:
                        self.in_transit.append((target, data))
            session.engine.flush()

    def deliver_one(self) -> None:
        if not self.in_transit:
            return
        index = self.rng.randrange(len(self.in_transit))
        self.in_transit[index], self.in_transit[-1] = self.in_transit[-1], self.in_transit[index]
        target, data = self.in_transit.pop()
        if target.alive:
            target.received.add(header(data)[0])
            target.engine.receive(data)
            target.engine.flush()
            self.publish(target)

    def settle(self) -> None:
        """No more drops: deliver everything, then anti-entropy, until quiet."""
        self.drop = 0.0
        for _ in range(200):
            while self.in_transit:
                self.deliver_one()
            for session in self.alive:  # anti-entropy: whatever was dropped
                for data in self.sent:
                    if header(data)[0] not in session.received:
                        self.in_transit.append((session, data))
            if not self.in_transit and all(s.engine.saved for s in self.alive):
                return
        raise AssertionError("the mesh did not settle")

    def check(self) -> None:
        alive = self.alive
        first = alive[0].engine
        for session in alive:
            engine = session.engine
            engine.check_invariants()
            assert engine.head.id == first.head.id, f"session {session.number} head differs"
            assert engine.view == first.view, f"session {session.number} text differs"
            assert not session.alarms, session.alarms
        contents = {header(data)[0]: data for data in self.sent}
        voided = {s.number: inserted_by(contents[i] for i in s.reverted) for s in alive}
        self.oracle.verify(first.view, alive={s.number for s in alive}, voided=voided)


# --- mode (c): typists racing for one relay -------------------------------------


class RaceWorld:
    """Mode (c): ``n`` sessions typing as fast as they can into one relay, on links
    with latency, in simulated time: PROTOCOL.md §13.3's turns.

    Each session types one character every ``type_ms`` and flushes (the engine
    seals and sends as its pipeline allows).  Every link delivers in order
    after a delay: a base latency per session (drawn once from
    ``latency_ms``) plus jitter per message.  The relay orders pushes as they
    arrive and refuses stale parents.  With ``turns`` it also keeps turns with
    the relay's own code (:class:`wire.turns.Turns`): a push of a session that
    outran another still waiting is refused YIELD (one patch goes through per
    ``quiet_ms`` while that one pushes nothing, none is held back for it after
    ``longest_ms``), and its session sends the very same bytes again
    ``retry_ms`` later (as after RATE_LIMITED).  :attr:`landed` records
    when each stored patch was stored and whose it was.

    Sessions may be slow and may stall: ``cost_ms[n]`` is the time session
    ``n`` takes to take in each patch of another's (a slow machine, or a busy
    one), and what reaches it meanwhile waits in order; ``stall`` is
    ``(sessions, start_ms, length_ms)``: those sessions take in nothing and
    type nothing for that long (a pause, a reconnect).  A stalled session
    catches up later the more patches landed meanwhile, the case where
    winners landing freely once it was quiet made it starve (PROTOCOL.md
    §13.3).
    """

    def __init__(
        self,
        seed: int,
        sessions: int,
        *,
        turns: bool = True,
        type_ms: float = 1.0,
        latency_ms: tuple[float, float] = (0.2, 5.0),
        jitter_ms: float = 0.5,
        quiet_ms: float = 1000.0,
        retry_ms: float = 20.0,
        cost_ms: Sequence[float] = (),
        stall: tuple[Sequence[int], float, float] | None = None,
        longest_ms: float = 5000.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.turns = turns
        self.type_ms = type_ms
        self.jitter_ms = jitter_ms
        self.quiet_ms = quiet_ms
        self.retry_ms = retry_ms
        self.longest_ms = longest_ms
        self.cost_ms = [*cost_ms, *[0.0] * (sessions - len(cost_ms))]
        self.stall = stall
        self.relay = SimRelay()
        self.engines = [
            Engine(
                TEXT,
                FakeCodec(n),
                pipeline=4,
                hash_every=64,
                session=next(_SESSIONS).to_bytes(8, "big"),
            )
            for n in range(sessions)
        ]
        self.latency = [self.rng.uniform(*latency_ms) for _ in range(sessions)]
        # Per link, when its last message arrives: links deliver in order.
        self._up = [0.0] * sessions
        self._down = [0.0] * sessions
        self._ready = [0.0] * sessions  # when each session is done with what reached it
        self._events: list[tuple[float, int, tuple[object, ...]]] = []
        self._order = itertools.count()
        self.author_of: dict[bytes, int] = {}
        self.landed: list[tuple[float, int]] = []  # (when, author) per stored patch
        self.yields = 0  # pushes refused YIELD
        self._turns = Turns()  # the relay's very rule

    def run(self, duration_ms: float) -> None:
        """Type for ``duration_ms`` of simulated time."""
        for n in range(len(self.engines)):
            self._at(self.rng.uniform(0, self.type_ms), ("type", n))
        while self._events and self._events[0][0] <= duration_ms:
            self.now, _, event = heapq.heappop(self._events)
            self._handle(event)

    def shares(self, window_ms: float, duration_ms: float) -> list[list[int]]:
        """Patches stored per author in each whole window of ``window_ms``."""
        counts = [[0] * len(self.engines) for _ in range(int(duration_ms // window_ms))]
        for when, author in self.landed:
            index = int(when // window_ms)
            if index < len(counts):
                counts[index][author] += 1
        return counts

    def _at(self, when: float, event: tuple[object, ...]) -> None:
        heapq.heappush(self._events, (when, next(self._order), event))

    def _send(self, links: list[float], n: int, event: tuple[object, ...]) -> None:
        arrive = max(links[n], self.now + self.latency[n] + self.rng.uniform(0, self.jitter_ms))
        links[n] = arrive
        if links is self._down:  # taken in order, each patch of another's costing cost_ms
            arrive = self._after_stall(n, max(arrive, self._ready[n]))
            arrive += self.cost_ms[n] if event[0] == "patch" else 0
            self._ready[n] = arrive
        self._at(arrive, event)

    def _after_stall(self, n: int, when: float) -> float:
        """``when``, or the end of session ``n``'s stall if it falls within it."""
        if self.stall is None:
            return when
        who, start, length = self.stall
        return start + length if n in who and start <= when < start + length else when

    def _handle(self, event: tuple[object, ...]) -> None:
        kind, n, *rest = event
        assert isinstance(n, int)
        engine = self.engines[n]
        if kind == "type":
            resume = self._after_stall(n, self.now)
            if resume > self.now:  # stalled: types nothing meanwhile
                self._at(resume, event)
                return
            engine.edit(textops.normalize([(0, 0, "x")]))
            self._at(self.now + self.type_ms, ("type", n))
        elif kind == "push":
            assert isinstance(rest[0], bytes)
            self._push(n, rest[0])
            return
        elif kind == "yield":  # the very same bytes again, later
            self._at(self.now + self.retry_ms, ("resend", n, rest[0]))
            return
        elif kind == "resend":
            self._send(self._up, n, ("push", n, rest[0]))
            return
        elif kind == "ack":
            engine.acked(rest[0], rest[1])  # type: ignore[arg-type]
        elif kind == "refuse":
            engine.refused(rest[0], rest[1])  # type: ignore[arg-type]
        else:
            engine.receive(rest[0], rest[1])  # type: ignore[arg-type]
        engine.flush()
        for sent in engine.events():
            if isinstance(sent, SendPatch):
                self.author_of[sent.sealed.id] = n
                self._send(self._up, n, ("push", n, sent.sealed.data))

    def _yields(self, n: int, patch_id: bytes) -> bool:
        """Whether a push of ``n`` must yield to a session it outran (wire.turns)."""
        if not self.turns or patch_id in self.relay.seq_of:
            return False
        return not self._turns.push(n, self.now, self.quiet_ms, self.longest_ms)

    def _push(self, n: int, data: bytes) -> None:
        patch_id = header(data)[0]
        if self._yields(n, patch_id):
            self.yields += 1
            self._send(self._down, n, ("yield", n, data))
            return
        head = len(self.relay.log)
        verdict, patch_id, detail = self.relay.push(data)
        if verdict == "refuse":
            self._turns.stale(n)
            self._send(self._down, n, ("refuse", n, patch_id, detail))
            return
        assert isinstance(detail, int)
        self._turns.landed(n, fresh=detail > head)
        self._send(self._down, n, ("ack", n, patch_id, detail))
        if detail <= head:  # a resend of a stored patch: acked again
            return
        self.landed.append((self.now, self.author_of[patch_id]))
        for other in range(len(self.engines)):
            if other != n:
                self._send(self._down, other, ("patch", other, data, detail))

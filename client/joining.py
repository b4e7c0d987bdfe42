"""Joining a pad: subscribing, catching up with its history, watching the heads.

Theory of operation
-------------------
Every connection subscribes once (:meth:`Joining.subscribe`): a session that
has never loaded the pad asks for the latest snapshot and the patches after
it, so opening costs the document plus the patches since the snapshot; a
session that has loaded it asks for the patches *since* the last sequence
number it saw, so a reconnect resumes where it left off.  Until the
subscription's HISTORY_END arrives the session is catching up:

* SNAPSHOT chunks are reassembled (:class:`~client.connection.SnapshotChunks`)
  and loaded into the engine; a snapshot that does not load is reported
  (``BAD_SNAPSHOT``) and the whole history is read instead: the patches
  already on their way wait in the engine as orphans until their parents
  arrive;
* HISTORY (and, once live, BROADCAST) frames go to the engine.

What the relay says about positions is a hint; what the session believes is
checked by :mod:`client.trust`: at the end of every catch-up the chain held
must extend the point this device verified last (in this run, or by the
previous one: the front end keeps :attr:`Joining.last_head`), else a
``rollback`` or ``fork`` alarm; when the session joined from a snapshot above
that point, the patches between are read again on the same connection and
must chain up to the snapshot's (:class:`~client.trust.DescentProof`).  A
patch served beside the line (the chain is fast-forward only) is a ``fork``.
A head that HISTORY_END names and the history did not deliver is *missing*:
the session resumes, and if it stays missing, the watchdog says
``withheld``.

The first time a catch-up ends, the patches a previous process left in the
write-ahead log are handed to :meth:`client.engine.Engine.adopt` with the
text they were made on (those in history count as acknowledged; the rest are
resent, rebased, or probed and merged three ways: :mod:`client.recovery`).

This is the part of the session that protocol version 2's trust rules grow
(docs/PROTOCOL.md §12).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import crypto
from client.connection import Outbox, Request, SnapshotChunks, Want
from client.engine import Base, Engine, LocalError
from client.events import AlarmKind
from client.textops import InvalidPatch, Patch
from client.trust import OK, DescentProof, Trust, Verdict
from wire import frames as p

#: How a joining session reports an alarm: ``(kind, detail)``.
AlarmFn = Callable[[AlarmKind, str], None]


class Joining:
    """The subscription of one session and its catch-up.  See the module docstring.

    Args:
        keys: the pad's keys.
        engine: the session's engine.
        outbox: where frames and requests go.
        alarm: how to report an alarm.
        create: SUBSCRIBE carries the verify key, so the relay may create the
            pad; else an unknown pad is refused NO_VERIFY_KEY.
        last_head: ``(height, id)`` of the highest head a previous run verified.
        recovered: sealed patches from a previous run's write-ahead log.
        recovered_bases: the base(s) logged with them (:mod:`client.recovery`).
    """

    def __init__(
        self,
        keys: crypto.PadKeys,
        engine: Engine[str, Patch],
        outbox: Outbox,
        alarm: AlarmFn,
        *,
        create: bool,
        last_head: tuple[int, bytes] | None,
        recovered: Iterable[bytes],
        recovered_bases: Iterable[Base[str]] = (),
    ) -> None:
        self.keys = keys
        self.engine = engine
        self.create = create
        self.synced_once = False
        self._outbox = outbox
        self._alarm = alarm
        self.trust = Trust(last_head)
        self.claimed: tuple[int, bytes] | None = None  # a head HISTORY_END named, not held
        self._proof: DescentProof | None = None
        self._proof_until = 0  # the seq of the snapshot's patch, while a proof runs
        self._root_seq = 0
        self._recovered: list[bytes] | None = list(recovered)
        self._recovered_bases = list(recovered_bases)
        self._chunks = SnapshotChunks()
        self._request = 0
        self.resuming = False  # re-subscribed on this connection, history not ended yet

    @property
    def last_head(self) -> tuple[int, bytes] | None:
        """``(height, id)`` of the highest head verified, this run or before."""
        return self.trust.remembered

    @property
    def proving(self) -> bool:
        """A descent proof is being read (see :class:`~client.trust.DescentProof`)."""
        return self._proof is not None

    @property
    def missing(self) -> str | None:
        """A head the relay named at the end of a history and did not deliver."""
        claimed = self.claimed
        if claimed is not None and claimed[1] in self.engine.chain:
            self.claimed = claimed = None
        if claimed is None:
            return None
        return f"the head {claimed[1].hex()[:16]} (number {claimed[0]}) its history named"

    def subscribe(self) -> None:
        """Queue the SUBSCRIBE of a new connection: from the snapshot if fresh, else a resume."""
        engine = self.engine
        fresh = not self.synced_once and engine.height == 0 and engine.last_seq == 0
        self._subscribe(p.SubscribeFrom.SNAPSHOT if fresh else p.SubscribeFrom.SINCE)

    def _subscribe(self, start: p.SubscribeFrom, since: int | None = None) -> None:
        req = self._request = self._outbox.next_id()
        if since is None:
            since = 0 if start is p.SubscribeFrom.SNAPSHOT else self.engine.last_seq
        key = self.keys.verify_key if self.create else p.ZERO_ID
        frame = p.Subscribe(req, self.keys.channel_id, start, since, key)
        self._outbox.request(req, Request(Want.SUBSCRIBE, (p.encode(frame),)))

    def resume(self, since: int | None = None) -> None:
        """Re-read on this connection from the last contiguous sequence number
        (a gap, a head named and never sent, an answer that never came), or
        from ``since``."""
        self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
        self._subscribe(p.SubscribeFrom.SINCE, since)
        self.resuming = True

    def reset(self) -> None:
        """The connection dropped: forget a half-received snapshot, and a proof
        under way (the next catch-up starts it again)."""
        self._chunks.reset()
        self.resuming = False
        self._proof = None

    def snapshot(self, frame: p.Snapshot) -> None:
        """One SNAPSHOT chunk; the whole snapshot is loaded once it is in."""
        done = self._chunks.add(frame.x_seq, frame.total, frame.offset, frame.data)
        if done is None:
            return
        x_seq, data = done
        try:
            self.engine.load_snapshot(data, x_seq)
            self._root_seq = x_seq
        except (InvalidPatch, LocalError, ValueError) as error:
            self._alarm(AlarmKind.BAD_SNAPSHOT, f"snapshot not loaded: {error}")
            self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
            self._subscribe(p.SubscribeFrom.SINCE)

    def patch(self, frame: p.History | p.Broadcast) -> None:
        """A stored patch (history, or someone else's broadcast)."""
        if self._proof is not None and frame.seq <= self._proof_until:
            self._proof.take(frame.envelope)
            return
        self.engine.receive(frame.envelope, frame.seq)
        self.strays()

    def strays(self) -> None:
        """Raise the alarm for every patch the relay served beside the line."""
        chain = self.engine.chain
        for node in chain.strays:
            self._alarm(
                AlarmKind.FORK,
                f"the relay served patch {node.id.hex()[:16]} at height {node.height}, "
                f"beside the line this device holds (head at {chain.best.height})",
            )
            self.trust.raise_suspect(AlarmKind.FORK)
        chain.strays.clear()

    def ended(self, frame: p.HistoryEnd) -> bool:
        """HISTORY_END: True when it ends this connection's catch-up (go live)."""
        if self._outbox.answered(frame.request_id) is None or frame.request_id != self._request:
            return False
        self.resuming = False
        proof, self._proof = self._proof, None
        if proof is not None:
            verdict = proof.verdict()
            self.trust.settle(verdict, self.engine.head)
        else:
            verdict = self.trust.caught_up(self.engine.chain, frame.head_seq)
        self._verdict(verdict)
        held = frame.head_id == p.ZERO_ID or frame.head_id in self.engine.chain
        self.claimed = None if held else (frame.head_seq, frame.head_id)
        return True

    def trimmed(self) -> bool:
        """A SUBSCRIBE was refused HISTORY_TRIMMED: True if it was a proof's
        (the history since the remembered point is gone: it cannot be checked)."""
        if self._proof is None:
            return False
        self._proof = None
        self.resume()
        height = self.trust.remembered[0] if self.trust.remembered else 0
        self._alarm(
            AlarmKind.UNVERIFIED,
            f"the relay trimmed the history after patch {height}, the last this device "
            "verified, so it cannot check that the pad it serves continues that one",
        )
        # Accepted, and said: docs/SECURITY.md names this window.
        self.trust.settle(OK, self.engine.head)
        return True

    def _verdict(self, verdict: Verdict) -> None:
        if verdict.prove:
            remembered = self.trust.remembered
            assert remembered is not None  # only a remembered point needs a proof
            root = self.engine.chain.nodes[self.engine.chain.root]
            self._proof = DescentProof(self.keys, remembered, (root.height, root.id))
            self._proof_until = self._root_seq
            self.resume(since=remembered[0])
        elif verdict.kind is not None:
            self._alarm(verdict.kind, verdict.detail)

    @property
    def unadopted(self) -> list[bytes]:
        """The previous run's logged patches while they wait for the catch-up to
        end (empty once adopted): until then they *are* the write-ahead log, and
        a front end that persisted anything else would erase them."""
        return self._recovered or []

    def live(self) -> bool:
        """The catch-up is over; True the first time (the write-ahead log was adopted)."""
        if self.synced_once:
            return False
        self.synced_once = True
        recovered, self._recovered = self._recovered or [], None
        if recovered and self.keys.can_write:
            try:
                self.engine.adopt(recovered, self._recovered_bases)
            except (LocalError, ValueError) as error:
                self._alarm(AlarmKind.RECOVERY, f"write-ahead patches not recovered: {error}")
        return True


__all__ = ["AlarmFn", "Joining"]

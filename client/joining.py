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

Every head the relay names — a patch at a sequence number, an ACK of ours,
the end of history — goes through :class:`~client.connection.HeadWatch`,
which raises the ``ROLLBACK`` alarm when the relay serves less, or another
patch, than was seen before (in this run, or by the previous one: the front
end keeps :attr:`Joining.last_head`).

The first time a catch-up ends, the patches a previous process left in the
write-ahead log are handed to :meth:`client.engine.Engine.adopt` with the
text they were made on (those in history count as acknowledged; the rest are
resent, rebased, or probed and merged three ways: :mod:`client.recovery`).

This is the part of the session that protocol version 2's trust rules grow
(docs/PROTOCOL.md §12: verified heads, gaps healed by resuming from the last
verified position).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import crypto
from client.connection import HeadWatch, Outbox, Request, SnapshotChunks, Want
from client.engine import Base, Engine, LocalError
from client.events import AlarmKind
from client.textops import InvalidPatch, Patch
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
        last_head: ``(seq, id)`` of the highest head a previous run saw.
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
        self._heads = HeadWatch(last_head)
        self._recovered: list[bytes] | None = list(recovered)
        self._recovered_bases = list(recovered_bases)
        self._chunks = SnapshotChunks()
        self._request = 0
        self.resuming = False  # re-subscribed on this connection, history not ended yet

    @property
    def last_head(self) -> tuple[int, bytes] | None:
        """``(seq, id)`` of the highest head seen, this run or before."""
        return self._heads.last

    def subscribe(self) -> None:
        """Queue the SUBSCRIBE of a new connection: from the snapshot if fresh, else a resume."""
        engine = self.engine
        fresh = not self.synced_once and engine.height == 0 and engine.last_seq == 0
        self._subscribe(p.SubscribeFrom.SNAPSHOT if fresh else p.SubscribeFrom.SINCE)

    def _subscribe(self, start: p.SubscribeFrom) -> None:
        req = self._request = self._outbox.next_id()
        since = 0 if start is p.SubscribeFrom.SNAPSHOT else self.engine.last_seq
        key = self.keys.verify_key if self.create else p.ZERO_ID
        frame = p.Subscribe(req, self.keys.channel_id, start, since, key)
        self._outbox.request(req, Request(Want.SUBSCRIBE, (p.encode(frame),)))

    def resume(self) -> None:
        """Re-read on this connection from the last contiguous sequence number
        (a gap, a head named and never sent, an answer that never came)."""
        self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
        self._subscribe(p.SubscribeFrom.SINCE)
        self.resuming = True

    def reset(self) -> None:
        """The connection dropped: forget a half-received snapshot."""
        self._chunks.reset()
        self.resuming = False

    def snapshot(self, frame: p.Snapshot) -> None:
        """One SNAPSHOT chunk; the whole snapshot is loaded once it is in."""
        done = self._chunks.add(frame.x_seq, frame.total, frame.offset, frame.data)
        if done is None:
            return
        x_seq, data = done
        try:
            self.engine.load_snapshot(data, x_seq)
        except (InvalidPatch, LocalError, ValueError) as error:
            self._alarm(AlarmKind.BAD_SNAPSHOT, f"snapshot not loaded: {error}")
            self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
            self._subscribe(p.SubscribeFrom.SINCE)

    def patch(self, frame: p.History | p.Broadcast) -> None:
        """A stored patch (history, or someone else's broadcast)."""
        self._rollback(self._heads.note(frame.seq, hashlib.sha256(frame.envelope).digest()))
        self.engine.receive(frame.envelope, frame.seq)

    def acked(self, seq: int, patch_id: bytes) -> None:
        """Our patch ``patch_id`` is at ``seq``."""
        self._rollback(self._heads.note(seq, patch_id))

    def ended(self, frame: p.HistoryEnd) -> bool:
        """HISTORY_END: True when it ends this connection's catch-up (go live)."""
        if self._outbox.answered(frame.request_id) is None or frame.request_id != self._request:
            return False
        self._rollback(self._heads.history_end(frame.head_seq, frame.head_id))
        self.resuming = False
        return True

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

    def _rollback(self, detail: str | None) -> None:
        if detail is not None:
            self._alarm(AlarmKind.ROLLBACK, detail)


__all__ = ["AlarmFn", "Joining"]

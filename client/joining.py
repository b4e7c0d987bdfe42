"""Joining a pad: subscribing, catching up with its history, watching the heads.

Theory of operation
-------------------
Every connection subscribes once (:meth:`Joining.subscribe`), proving it
holds a link with the pad's read token (the relay serves nothing without
it): a session that has never loaded the pad asks for the latest snapshot
and the patches after it, so opening costs the document plus the patches
since the snapshot (or, verifying from history, for the earliest point the
relay still holds and every patch after it); a session that has loaded it
asks for the patches *since* the last sequence number it saw, so a reconnect
resumes where it left off.  Until the
subscription's HISTORY_END arrives the session is catching up:

* SNAPSHOT chunks are reassembled (:class:`~client.connection.SnapshotChunks`)
  and loaded into the engine; a snapshot that does not load, or that an
  editor disputed (its DISPUTED flag), is reported (``BAD_SNAPSHOT``) and the
  pad is read again from the earliest point the relay holds (from genesis
  when it was never trimmed): the patches already on their way wait in the
  engine as orphans until their parents arrive;
* HISTORY (and, once live, BROADCAST) frames go to the engine.

What the relay says about positions is a hint; what the session believes is
checked by :mod:`client.trust`: at the end of every catch-up the chain held
must extend the point this device verified last (in this run, or by the
previous one: the front end keeps :attr:`Joining.last_head`), else a
``rollback`` or ``fork`` alarm; when the session joined from a snapshot above
that point, the relay names the ids between (PROOF_REQUEST, answered in
pages) and they must lead from the point's Merkle mountain range to the
snapshot's (:class:`~client.trust.DescentProof`).  A
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
from client import offline
from client.connection import Outbox, Request, SnapshotChunks, Want
from client.engine import Base, Engine, LocalError
from client.events import AlarmKind
from client.offline import LocalCopy
from client.textops import InvalidPatch, Patch
from client.trust import OK, DescentProof, Trust, Verdict
from wire import frames as p
from wire import mmr

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
        from_history: open from the earliest point the relay holds and
            replay every patch after it, instead of the latest snapshot.
        last_head: ``(height, id)`` of the highest head a previous run verified.
        last_peaks: the Merkle mountain range remembered with it.
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
        from_history: bool = False,
        last_peaks: mmr.Peaks | None = None,
    ) -> None:
        self.keys = keys
        self.from_history = from_history
        self.engine = engine
        self.create = create
        self.synced_once = False
        self._outbox = outbox
        self._alarm = alarm
        self.trust = Trust(last_head, last_peaks)
        self.claimed: tuple[int, bytes] | None = None  # a head HISTORY_END named, not held
        self._proof: DescentProof | None = None
        self._proof_request = 0
        self._start = p.SubscribeFrom.SINCE  # the start of the latest SUBSCRIBE
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
        if not fresh:
            self._subscribe(p.SubscribeFrom.SINCE)
        elif self.from_history:
            self._subscribe(p.SubscribeFrom.EARLIEST)
        else:
            self._subscribe(p.SubscribeFrom.SNAPSHOT)

    def _subscribe(self, start: p.SubscribeFrom) -> None:
        req = self._request = self._outbox.next_id()
        since = self.engine.last_seq if start is p.SubscribeFrom.SINCE else 0
        key = self.keys.verify_key if self.create else p.ZERO_ID
        frame = p.Subscribe(req, self.keys.channel_id, start, since, key, self.keys.read_token)
        self._start = start
        self._outbox.request(req, Request(Want.SUBSCRIBE, (p.encode(frame),)))

    def resume(self) -> None:
        """Re-read on this connection from the last contiguous sequence number
        (a gap, a head named and never sent, an answer that never came)."""
        self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
        self._subscribe(p.SubscribeFrom.SINCE)
        self.resuming = True

    def reset(self) -> None:
        """The connection dropped: forget a half-received snapshot, and a proof
        under way (the next catch-up starts it again)."""
        self._chunks.reset()
        self.resuming = False
        self._proof = None

    def snapshot(self, frame: p.Snapshot) -> None:
        """One SNAPSHOT chunk of the catch-up; the whole snapshot is loaded once it is in."""
        done = self._chunks.add(frame.x_seq, frame.total, frame.offset, frame.data)
        if done is None:
            return
        x_seq, data = done
        last_resort = self._start is p.SubscribeFrom.EARLIEST
        if frame.flags & p.SNAPSHOT_DISPUTED and not last_resort:
            self._reread("an editor disputed it: it differs from their text at its patch")
            return
        try:
            self.engine.load_snapshot(data, x_seq)
        except (InvalidPatch, LocalError, ValueError) as error:
            self._reread(str(error))
            return
        if frame.flags & p.SNAPSHOT_DISPUTED:
            self._alarm(
                AlarmKind.BAD_SNAPSHOT,
                "the relay holds nothing older than a snapshot an editor disputed; the text "
                "before it rests on that snapshot's author alone",
            )

    def _reread(self, why: str) -> None:
        """Do not open from the snapshot: read from the earliest point the relay holds."""
        self._alarm(AlarmKind.BAD_SNAPSHOT, f"snapshot not loaded: {why}")
        self._outbox.send(p.Unsubscribe(self._outbox.next_id(), self.keys.channel_id))
        self._subscribe(p.SubscribeFrom.EARLIEST)

    def patch(self, frame: p.History | p.Broadcast) -> None:
        """A stored patch (history, or someone else's broadcast)."""
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
        chain = self.engine.chain
        self._verdict(self.trust.caught_up(chain, frame.head_seq, frame.head_id))
        held = frame.head_id == p.ZERO_ID or frame.head_id in self.engine.chain
        self.claimed = None if held else (frame.head_seq, frame.head_id)
        return True

    def _verdict(self, verdict: Verdict) -> None:
        if verdict.prove:
            self._prove()
        elif verdict.kind is not None:
            self._alarm(verdict.kind, verdict.detail)

    def _prove(self) -> None:
        """Ask the relay for the ids between the remembered point and our root."""
        remembered, anchor = self.trust.remembered, self.trust.anchor
        assert remembered is not None  # only a remembered point needs a proof
        root = self.engine.chain.nodes[self.engine.chain.root]
        if anchor is None or root.peaks is None:
            self._alarm(
                AlarmKind.UNVERIFIED,
                f"this device verified patch {remembered[0]} of this pad without keeping its "
                "Merkle mountain range (or the snapshot signs none), so it cannot check that "
                "the pad the relay serves continues that one",
            )
            self.trust.settle(OK, self.engine.head)  # said, then accepted
            return
        self._proof = DescentProof(remembered, anchor, (root.height, root.peaks))
        self._ask_proof()

    def _ask_proof(self) -> None:
        proof = self._proof
        assert proof is not None
        req = self._proof_request = self._outbox.next_id()
        frame = p.ProofRequest(req, self.keys.channel_id, proof.next_from, proof.target[0])
        self._outbox.request(req, Request(Want.PROOF, (p.encode(frame),)))

    def proof(self, frame: p.Proof | None, request_id: int) -> None:
        """A PROOF page (``None``: the relay refused the request)."""
        proof = self._proof
        if proof is None or request_id != self._proof_request:
            return
        if frame is None:
            proof.stalled = True
        else:
            proof.take(frame.from_seq, frame.nodes)
        if not proof.complete:
            self._ask_proof()
            return
        self._proof = None
        verdict = proof.verdict()
        self.trust.settle(verdict, self.engine.head)
        self._verdict(verdict)

    @property
    def recovered_bases(self) -> list[Base[str]]:
        """The bases logged with :attr:`unadopted` (see :mod:`client.recovery`)."""
        return self._recovered_bases

    @property
    def unadopted(self) -> list[bytes]:
        """The previous run's logged patches while they wait for the catch-up to
        end (empty once adopted): until then they *are* the write-ahead log, and
        a front end that persisted anything else would erase them."""
        return self._recovered or []

    def restore(self, copy: LocalCopy) -> bool:
        """Start from this device's local copy instead of the relay's history
        (:mod:`client.offline`): the catch-up counts as done, and the next
        SUBSCRIBE resumes *since* the copy's sequence number.  The previous
        run's log is adopted at once when it fits the copy
        (:func:`client.offline.fits`).

        Returns:
            False (and nothing changed) when the engine is not fresh, or the
            log was made on a later head than the copy's.
        """
        engine = self.engine
        fresh = not self.synced_once and len(engine.chain.nodes) == 1 and engine.saved
        recovered = self._recovered or []
        if not fresh or not offline.fits(recovered, copy.id):
            return False
        engine.replica.load(copy.id, copy.height, copy.doc, copy.peaks, copy.hw)
        engine.last_seq = copy.seq
        engine.snapshots.retention = copy.retention
        remembered = self.trust.remembered
        if copy.height > 0 and (remembered is None or remembered[0] < copy.height):
            self.trust = Trust((copy.height, copy.id), copy.peaks)
        self.live()
        return True

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

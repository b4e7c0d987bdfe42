"""Our own acknowledged patches applied lazily (client.replica: deferred acknowledgements).

A large edit lands as many patches; the replica does not splice each one
into the authoritative document, and owes the inverses it could not compute
cheaply.  Whatever comes next (someone else's patch, a fork switch, a
snapshot to check, a reconnect) must see exactly the document and inverses
an eager replica would have.
"""

from __future__ import annotations

from sim import FakeCodec, header

from client import textops
from client.chain import GENESIS
from client.doctype import TEXT
from client.engine import Alarm, Engine, Event, SendPatch, SendSnapshot
from client.textops import Patch

TEXT_A = "".join(f"word{i} é中😀 " for i in range(300))

E = Engine[str, Patch]


def writer(author: int) -> E:
    """Small patches, a deep pipeline, a digest every third height, snapshots early."""
    return Engine(
        TEXT,
        FakeCodec(author),
        max_patch_bytes=300,
        pipeline=64,
        hash_every=3,
        min_snapshot_bytes=2000,
    )


def insert(pos: int, text: str) -> Patch:
    return textops.normalize([(pos, 0, text)])


class Relay:
    """One relay: stores a push whose parent is its head, refuses the others."""

    def __init__(self, *sessions: E) -> None:
        self.sessions = list(sessions)
        self.log: list[bytes] = []
        self.head = GENESIS
        self.queues: dict[int, list[bytes]] = {id(s): [] for s in sessions}
        self.seen: dict[int, list[Event[Patch]]] = {id(s): [] for s in sessions}

    def pull(self, session: E) -> list[bytes]:
        session.flush()
        events = session.events()
        self.seen[id(session)] += events
        queue = self.queues[id(session)]
        queue += [ev.sealed.data for ev in events if isinstance(ev, SendPatch)]
        return queue

    def push_one(self, session: E, *, ack: bool = True) -> bool:
        """Take ``session``'s next push (``ack``: False, the answer is lost)."""
        queue = self.pull(session)
        if not queue:
            return False
        data = queue.pop(0)
        patch_id, _, parent = header(data)
        if parent != self.head:
            session.refused(patch_id, self.head)
            return True
        self.log.append(data)
        self.head = patch_id
        if ack:
            session.acked(patch_id, len(self.log))
        for other in self.sessions:
            if other is not session:
                other.receive(data, len(self.log))
                self.pull(other)
        return True

    def drain(self) -> None:
        while any(self.push_one(s) for s in self.sessions):
            pass

    def snapshots(self, session: E) -> list[SendSnapshot]:
        self.pull(session)
        return [ev for ev in self.seen[id(session)] if isinstance(ev, SendSnapshot)]

    def alarms(self) -> list[Alarm]:
        for s in self.sessions:
            self.pull(s)
        return [ev for events in self.seen.values() for ev in events if isinstance(ev, Alarm)]


def converged(*sessions: E) -> str:
    for s in sessions:
        s.check_invariants()
        assert s.saved
    assert len({s.view for s in sessions} | {s.auth for s in sessions}) == 1
    return sessions[0].view


def test_a_large_insert_interleaved_with_a_remote_edit_converges_exactly() -> None:
    a, b = writer(1), writer(2)
    relay = Relay(a, b)
    a.edit(insert(0, TEXT_A))
    for _ in range(30):
        relay.push_one(a)  # landed: not applied yet, most inverses owed
        a.check_invariants()
    assert a.auth == b.auth  # asked for: built from what landed
    b.edit(insert(7, "<b>"))  # someone else's patch lands in the middle of ours
    relay.push_one(b)
    a.check_invariants()
    relay.drain()  # ours refused, sealed again on b's patch, landing
    assert converged(a, b) == TEXT_A[:7] + "<b>" + TEXT_A[7:]
    assert not relay.alarms()


def test_acknowledgements_after_a_reconnect_come_as_history_and_acks_mixed() -> None:
    a, b = writer(1), writer(2)
    relay = Relay(a, b)
    a.edit(insert(0, TEXT_A))
    for _ in range(20):
        relay.push_one(a)
    for _ in range(20):
        relay.push_one(a, ack=False)  # stored, but the connection dropped
    relay.queues[id(a)] = []  # and what was in transit is lost
    for seq, data in enumerate(relay.log[20:], 21):
        a.receive(data, seq)  # reconnected: our own patches, in the history since
    a.resend()  # the rest again: same bytes, same ids
    relay.drain()
    assert converged(a, b) == TEXT_A
    assert a.head.id == b.head.id == relay.head
    assert not relay.alarms()


def test_snapshots_of_a_landing_edit_are_its_text_and_check_through_owed_inverses() -> None:
    a, b = writer(1), writer(2)
    relay = Relay(a, b)
    a.edit(insert(0, TEXT_A))
    relay.drain()
    made = relay.snapshots(a)
    assert made
    assert made[0].of != relay.head  # checking it walks back over owed inverses
    for snap in made:  # each is the text after its patch, as b has it
        assert b.check_snapshot(snap.sealed.data) is None
    assert a.check_snapshot(made[0].sealed.data) is None  # a walks back over its own
    a.edit(insert(0, "more "))  # and walking back did not disturb a
    relay.drain()
    assert converged(a, b) == "more " + TEXT_A
    assert not relay.alarms()
    # A snapshot that differs is still found out through the owed inverses.
    c = writer(3)
    c.load_snapshot(made[0].sealed.data)
    tampered = c.snapshots.seal(c.head, "tampered")
    assert a.check_snapshot(tampered.data) is not None


def test_a_fork_switch_reverts_patches_whose_inverse_was_owed() -> None:
    a, b = writer(1), writer(2)
    mine = Relay(a)
    a.edit(insert(0, TEXT_A[:2000]))
    mine.drain()  # landed on one relay: inverses owed past the first
    # Meanwhile b wrote a longer branch on another (federated) relay.
    theirs = Relay(b)
    for i in range(len(mine.log) + 3):
        b.edit(insert(i, "b"))
        theirs.drain()
    for seq, data in enumerate(theirs.log, 1):
        a.receive(data, seq)  # the best chain switches: a's patches are reverted
    a.check_invariants()
    assert a.auth == b.auth == "b" * len(theirs.log)
    assert a.view.count("b") == len(theirs.log)
    assert TEXT_A[:2000] in a.view
    theirs.sessions.append(a)
    theirs.queues[id(a)], theirs.seen[id(a)] = [], []
    theirs.drain()  # a's work, sealed again on b's branch
    bs = "b" * (len(mine.log) + 3)  # concurrent inserts at 0: either order, the same for both
    assert converged(a, b) in {TEXT_A[:2000] + bs, bs + TEXT_A[:2000]}
    assert not theirs.alarms()

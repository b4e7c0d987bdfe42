"""Write-ahead recovery: taking back our own sealed work after a restart.

Theory of operation
-------------------
**The log.**  A front end keeps a write-ahead log per pad (the SDK in
:mod:`client.state`, the page in local storage) and writes it *before* it
sends anything: the sealed patches :meth:`client.engine.Engine.unacknowledged`
returns, oldest first, each parented on the one before, and their
:class:`Base`: the document at the first patch's parent, with that parent's
id and height (:meth:`client.engine.Engine.log_base`).  The base is what lets
the patches be rebased onto *any* later state, even when the chain no longer
holds their parent.

**Only an acknowledgement removes an edit from the log.**  The log changes in
three ways only: an acknowledged patch leaves it (the base moves past it); a
squash (a refusal, someone else's patch landing first) replaces patches by
patches sealed afresh that carry their work, and until *all* of it is sealed
again the log keeps the superseded patches and their base
(:attr:`client.outbox.Outbox.carried`); and recovery (below) does the same
with the patches it adopts.  The open patch is not in the log, so the
outbox seals all of it as soon as it is made, past the pipeline (folded into
the last patch never sent) and offline too (:meth:`client.engine.Engine.flush`
with ``send=False``), and after a refusal naming a head we lack (sealed on
the head we hold, sent only once the relay's head arrives).  Two short
windows remain where typing is not logged yet: while recovery probes (one
round trip after opening) and, in the page, within the frame after a
keystroke.  Squashed work is sealed again whole, in as many patches as it
takes: the log then swaps the old patches for the new ones at once, never
holding both.

**Cost.**  The base is a whole document, so front ends write it only when
the log's first parent changes (an acknowledgement, a squash), never on the
log writes in between, which rewrite only the few sealed patches.

Recovery
--------
:meth:`~client.engine.Engine.adopt` runs in a fresh engine once the pad is
loaded, before any local edit, with the log a previous process left:

1. a logged patch whose id is on the chain landed;
2. if the parent of the first other one is the head, they are sent again
   byte for byte (the relay acknowledges a copy it already stored);
3. if that parent is on the best chain, the work is transformed across the
   patches after it, exactly as live work is, unless the chain holds a
   later patch of a logged patch's writer session (the logged one was
   superseded and its work landed sealed again: case 4 tells what is left);
4. otherwise a snapshot was loaded past the parent, or history before it
   was trimmed, and the chain cannot say which of them landed.  The
   snapshot's high-water table can (:mod:`client.snapshots`): every logged
   patch carries its writer session and counter, and a patch whose counter is
   at most its session's highest on the chain landed (or was squashed into a
   later patch of its session that did).  A patch is stored only on its
   stored parent, so the landed ones are a prefix of the log: the table
   splits it into that prefix and the rest, *ours*, at once
   (:meth:`Recovery.decide`).  A log from before the counters (no session in
   its patches) is **probed** instead (:class:`Recovery`): every patch is sent
   again byte for byte, an ACK means "stored" and any refusal but
   RATE_LIMITED "never stored" — which, now that relays keep no id of a
   trimmed patch, is only right for patches the relay still holds.

Then the rest is a **three-way merge**: ``base`` = the logged base with the
landed prefix applied, ``ours`` = the rest composed (a patch on ``base``),
``theirs`` = the authoritative document now.  With no intervening operations
at hand, ``T = merge_diff(base, theirs)`` stands for them (for text,
:func:`client.textdiff.diff_words`: aligned on words first, so no run they
inserted is split around a character it happens to share with the base), and the work is
``transform(ours, T)``, the engine's convention for carrying work across
someone else's patch.  It goes into the open patch and is sealed afresh on
the head; the log keeps the logged patches until it is.

Semantics, from :mod:`client.textops`' transform rules: every inserted run
of ours survives exactly once (a concurrent delete never removes a
concurrent insert), anchored where it was in the base text around it;
theirs' inserts survive too; our deletes apply to the base text that still
exists (text they deleted is deleted once).  Limits: ``T`` is a small
diff, not what they did, so where they removed text and added it back
elsewhere our edits inside it stay with the copy the diff kept; and past
the diff's work budget ``T`` replaces the whole changed middle, so our
deletes there are void (our inserts still survive, once).  A log from
before bases were kept (no base) recovers by probes alone: if any patch did
not land, an :class:`~client.events.Alarm` (``RECOVERY``) says so and that
work is not taken back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind
from client.outbox import Own, SendPatch
from client.payload import Sealed
from client.replica import RemoteChange
from client.snapshots import HW_WINDOW, HighWater

if TYPE_CHECKING:
    from client.engine import Engine

D = TypeVar("D")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Base(Generic[D]):
    """The document ``doc`` after patch ``parent``, at ``height``: what a log's
    first patch was made on."""

    parent: bytes
    height: int
    doc: D


#: What the log holds: the base (``None``: unknown) and the sealed patches.
Log = tuple[Base[D] | None, list[Sealed]]


class RecoveryFailed(Exception):
    """Logged work cannot be merged (no base, or a base it does not fit)."""


def pick_base(bases: list[Base[D]], pending: list[Own[P]]) -> tuple[Base[D] | None, int]:
    """The base for ``pending`` and how many of its patches it is already past.

    A base written for the first patch's parent fits as is.  A front end
    writes the new base before the shortened log, so after a crash between
    the two the base may name a logged patch: that patch was acknowledged,
    and it and those before it landed.
    """
    ids = [own.sealed.id for own in pending]
    for base in bases:
        if pending and base.parent == pending[0].parent:
            return base, 0
    for base in bases:
        if base.parent in ids:
            return base, ids.index(base.parent) + 1
    return None, 0


class Recovery(Generic[D, P]):
    """Probes for which logged patches landed, then merges the rest (case 4 above).

    Args:
        doctype: the document type.
        base: the document the first of ``pending`` was made on, if known.
        pending: the logged patches, oldest first, none found on the chain.
    """

    def __init__(self, doctype: DocType[D, P], base: Base[D] | None, pending: list[Own[P]]):
        self.doctype = doctype
        self.base = base
        self.pending = pending
        self.stored = 0  # the landed prefix found so far
        self.done = False

    def probes(self) -> list[Sealed]:
        """The patches whose answer is still awaited (send them, same bytes)."""
        return [own.sealed for own in self.pending[self.stored :]]

    def expects(self, patch_id: bytes) -> bool:
        """True if ``patch_id`` is one of the probes still unanswered."""
        return not self.done and any(s.id == patch_id for s in self.probes())

    def answer(self, patch_id: bytes, stored: bool) -> None:
        """The relay answered the probe ``patch_id``: ACK (``stored``) or refusal."""
        if not self.expects(patch_id):
            return
        if not stored:
            self.done = True
            return
        # Answers come in the order sent, so this is the next of the prefix.
        self.stored = [s.id for s in self.probes()].index(patch_id) + self.stored + 1
        self.done = self.stored == len(self.pending)

    def decide(self, hw: HighWater, root_height: int) -> str | None:
        """Decide which patches landed from the chain's high-water table, without probes.

        Every patch sealed since the session counters came carries its writer
        session and counter, and the table holds, per session, the highest
        counter on the chain: a patch whose counter is at most its session's
        landed (or was squashed into a later patch of the session that did).
        A log without them (an older version's) is left to the probes.  A
        session missing from a table that may have dropped it (its patches
        lie more than ``HW_WINDOW`` below the snapshot the chain starts from)
        counts as never landed, so the work is sent again: a duplicate
        rather than a loss, and the returned sentence says so.
        """
        stamps = [(own.payload.session, own.payload.counter) for own in self.pending]
        known = [(s, c) for s, c in stamps if s is not None and c is not None]
        if len(known) < len(stamps):
            return None
        stored = 0
        for session, counter in known:
            if not _landed_by_table(hw, session, counter):
                break
            stored += 1
        self.stored, self.done = stored, True
        first = known[stored][0] if stored < len(known) else None
        old = self.base is not None and self.base.height + 1 <= root_height - HW_WINDOW
        if first is not None and first not in hw and old:
            return (
                f"{len(stamps) - stored} logged patch(es) were made before what the relay "
                "still keeps and cannot be told apart from work that landed: they are "
                "sent again (check for a duplicate)"
            )
        return None

    def log(self) -> Log[D]:
        """What the log keeps meanwhile: the adopted patches and their base."""
        return self.base, [own.sealed for own in self.pending]

    def merge(self, theirs: D) -> tuple[P, Log[D]]:
        """Merge the patches that did not land into ``theirs`` (once :attr:`done`).

        Returns:
            The work on ``theirs``, and what the log keeps until it is sealed.

        Raises:
            RecoveryFailed: some work did not land and there is no base it fits.
        """
        doc = self.doctype
        rest = self.pending[self.stored :]
        if not rest:
            return doc.identity(), (None, [])
        if self.base is None:
            raise RecoveryFailed(
                f"{len(rest)} logged patch(es) did not land and the log has no base text "
                "(written by an older version)"
            )
        base, height, parent = self.base.doc, self.base.height, self.base.parent
        ours = doc.identity()
        try:
            for own in self.pending[: self.stored]:
                base = doc.apply(base, own.payload.patch)
            for own in rest:
                ours = doc.compose(ours, own.payload.patch)
            doc.apply(base, ours)
        except InvalidPatch as error:
            raise RecoveryFailed(f"the logged patches do not fit their base: {error}") from error
        if self.stored:
            parent, height = self.pending[self.stored - 1].sealed.id, height + self.stored
        work = three_way(doc, base, ours, theirs)
        return work, (Base(parent, height, base), [own.sealed for own in rest])


def adopt(engine: Engine[D, P], pending: list[Own[P]], bases: list[Base[D]]) -> list[bytes]:
    """Cases 2 to 4 of the module docstring for ``pending`` (none on the chain).

    Returns:
        The ids of patches the base shows were acknowledged (see :func:`pick_base`).
    """
    base, past = pick_base(bases, pending)
    landed = [own.sealed.id for own in pending[:past]]
    pending = pending[past:]
    if not pending:
        return landed
    doc = engine.doctype
    if pending[0].parent == engine.head.id:
        engine.outbox.adopt(pending)
        engine.view = doc.apply(engine.auth, engine.uncommitted())
        return landed
    node = engine.chain.nodes.get(pending[0].parent)
    if node is not None and node.on_chain and not _resealed(engine.replica.hw, pending):
        work = doc.identity()
        for own in pending:
            work = doc.compose(work, own.payload.patch)
        engine.replica.settle()  # ``inverse`` below tells an applied patch
        for step in engine.chain.path_after(engine.head, node):
            if step.patch is not None and step.inverse is not None:
                work = doc.transform(work, step.patch.patch)
        take_back(engine, pending, work, (base, [own.sealed for own in pending]))
        return landed
    engine.recovery = recovery = Recovery(doc, base, pending)
    engine.outbox.held, engine.outbox.carried = True, recovery.log()
    doubt = recovery.decide(engine.replica.hw, engine.chain.root_height)
    if doubt is not None:
        engine.emit(Alarm(AlarmKind.RECOVERY, doubt))
    if recovery.done:
        _merge(engine, recovery)
        return landed
    for probe in recovery.probes():
        engine.emit(SendPatch(probe))
    return landed


def _resealed(hw: HighWater, pending: list[Own[P]]) -> bool:
    """Whether a later patch of a logged patch's session is on the chain: the
    logged one was superseded and its work landed sealed again, so only the
    high-water table (case 4) can tell what is left to take back."""
    return any(
        own.payload.session is not None
        and own.payload.counter is not None
        and _landed_by_table(hw, own.payload.session, own.payload.counter)
        for own in pending
    )


def _landed_by_table(hw: HighWater, session: bytes, counter: int) -> bool:
    """Whether the patch ``(session, counter)`` landed, or was squashed into a
    later patch of its session that did, by the high-water table ``hw``."""
    entry = hw.get(session)
    return entry is not None and entry[0] >= counter


def probed(engine: Engine[D, P], patch_id: bytes, *, stored: bool) -> None:
    """The relay answered a probe of ``engine.recovery``; merge once the answers suffice."""
    recovery = engine.recovery
    if recovery is None:
        return
    recovery.answer(patch_id, stored)
    if recovery.done:
        _merge(engine, recovery)


def _merge(engine: Engine[D, P], recovery: Recovery[D, P]) -> None:
    """Take back what did not land once ``recovery`` knows which did."""
    engine.recovery = None
    engine.outbox.held, engine.outbox.carried = False, None
    try:
        work, log = recovery.merge(engine.auth)
    except RecoveryFailed as error:
        engine.emit(Alarm(AlarmKind.RECOVERY, f"write-ahead patches not recovered: {error}"))
        return
    take_back(engine, recovery.pending, work, log)


def take_back(engine: Engine[D, P], adopted: list[Own[P]], work: P, log: Log[D]) -> None:
    """Put recovered ``work`` (on ``auth``) before any work typed meanwhile; the
    log keeps ``log`` until the work is sealed again."""
    doc = engine.doctype
    for own in adopted:
        engine.outbox.supersede(own)  # recognised by id, should one land after all
    if doc.is_identity(work):
        return
    typed = engine.open
    engine.open = doc.compose(work, doc.transform(typed, work))
    engine.outbox.carried = log
    delta = doc.transform(work, typed)
    engine.view = doc.apply(engine.view, delta)
    engine.emit(RemoteChange(delta))


def three_way(doctype: DocType[D, P], base: D, ours: P, theirs: D) -> P:
    """Rebase ``ours`` (a patch on ``base``) onto ``theirs``.

    ``transform(ours, merge_diff(base, theirs))``; the module docstring says what survives.
    """
    return doctype.transform(ours, doctype.merge_diff(base, theirs))


__all__ = [
    "Base",
    "Log",
    "Recovery",
    "RecoveryFailed",
    "adopt",
    "pick_base",
    "probed",
    "take_back",
    "three_way",
]

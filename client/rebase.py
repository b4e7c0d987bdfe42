"""Carrying the uncommitted work across changes of the authoritative document.

Theory of operation
-------------------
The engine (:mod:`client.engine`) keeps its uncommitted work ``U`` mapping the
authoritative document to the view.  When the best chain changes by someone
else's patch, plain OT would transform ``U`` over it; when it changes by our
own patch, ``U`` already holds that patch's effect.  :class:`Rebaser` does
both, in a way that survives forks.

Forks
-----
A single relay never forks; federated relays or direct peer sync do, and a
fork switch walks back to the common ancestor and forward again.  Crossing
someone else's patch by plain transform is lossy (a delete it already made
is absorbed; an insert inside text it removes loses its anchor), and a fork
switch may cross the same patch back and forth.  So the rebaser records, per
patch of someone else, the pair of works that corresponded across it last
time, and when it crosses again it restores the counterpart and rebases only
the edits made since (:meth:`Rebaser.cross`).  Our own patch landing on the
best chain cancels its additions against the work and applies its removals
like a remote change (:meth:`Rebaser.land_own`).  The simulator's forking
world (tests/sim.py) holds every session to an exact oracle with one
documented exception, inherent in revert-and-resend: a delete of text whose
insert was on a losing fork, made by a session that saw that insert
reverted, may be void when the inserting author sends the text again.  And,
as DESIGN.md says, work on a losing fork whose author is gone is lost until
deterministic merges replace revert-and-resend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from client.doctype import DocType

D = TypeVar("D")
P = TypeVar("P")


class Rebaser(Generic[D, P]):
    """Rebases the work across patches, remembering what corresponded across each."""

    def __init__(self, doctype: DocType[D, P]) -> None:
        self.doctype = doctype
        # Per node of someone else: the works that corresponded across it the
        # last time we crossed it, (without it, with it); see cross.
        self._crossings: dict[bytes, tuple[P, P]] = {}

    def cross(self, node_id: bytes, work: P, origin: D, step: P, *, forward: bool) -> tuple[P, P]:
        """Rebase ``work`` (on ``origin``) across someone else's patch; return (work, view change).

        ``step`` moves ``auth`` from ``origin`` across node ``node_id``: its
        patch when applying it, its inverse when reverting it.  Plain OT would
        transform the work over ``step``; but transforming is lossy (a delete
        the patch already made is absorbed, an insert inside text the step
        removes loses its anchor), and a fork switch may cross the same node
        back and forth.  So for each node we remember the two works that
        corresponded across it the last time, ``(without, with)``.  Crossing
        again, we restore the counterpart and rebase only the edits made
        since, over the *bridge* between the two recorded views.  With no
        record (both empty) this is exactly the plain transform.
        """
        doc = self.doctype
        if doc.is_identity(work) and node_id not in self._crossings:
            return work, step  # nothing to rebase, nothing recorded: the plain transform's result
        empty = doc.identity()
        without, with_ = self._crossings.get(node_id, (empty, empty))
        here, there = (without, with_) if forward else (with_, without)
        if doc.is_identity(here):
            since, bridge = work, doc.compose(step, there)
        else:
            # Minimal diffs between the actual views: a composed patch would
            # delete and re-add the recorded text, and an edit made since
            # would then miss the "new" copy.
            # (Past the diff's budget only simplified: a coarse replace on
            # each side would keep both copies, see land_own.)
            recorded = doc.apply(origin, here)
            back = doc.invert(here, origin)  # from the recorded view to origin
            since = doc.rediff(recorded, doc.compose(back, work))
            bridge = doc.rediff(recorded, doc.compose(back, doc.compose(step, there)))
        rebased = doc.compose(there, doc.transform(since, bridge))
        seen = doc.transform(bridge, since)
        record = (work, rebased) if forward else (rebased, work)
        if doc.is_identity(record[0]) and doc.is_identity(record[1]):
            self._crossings.pop(node_id, None)
        else:
            self._crossings[node_id] = record
        return rebased, seen

    def land_own(self, auth: D, patch: P, inverse: P, work: P) -> tuple[P, P]:
        """Our own patch landed while we had other work; return (work, view change).

        ``auth`` is the document after ``patch``, ``inverse`` undoes it.  Its
        additions cancel against the work (where we put them back when they
        fell off), so they are not added twice: the work is reduced to a
        minimal diff from ``auth`` to the view.  Its removals are applied
        like someone else's: text the work still removes is removed once,
        and text the work no longer removes (because a fork switch voided our
        delete) goes from the view too, rather than being added back by us.
        """
        doc = self.doctype
        removals, additions = doc.separate(patch)
        seen = doc.transform(removals, work)
        work = doc.transform(work, removals)
        middle = doc.apply(doc.apply(auth, inverse), removals)
        work = doc.compose(doc.invert(additions, middle), work)
        # The copy we put back may have drifted from where the patch adds it
        # (a fork switch moves it); a minimal diff finds them to be the same.
        # Past the diff's budget (much work scattered over a long text) the
        # work is only simplified: a coarse diff would replace the whole range
        # between the first and last change, and two such replaces rebased over
        # each other keep both copies (full-speed typists doubled their text).
        return doc.rediff(auth, work), seen

    def prune(self, kept: Mapping[bytes, object]) -> None:
        """Forget the records of nodes the chain no longer keeps."""
        if len(self._crossings) > len(kept):
            self._crossings = {k: v for k, v in self._crossings.items() if k in kept}


__all__ = ["Rebaser"]

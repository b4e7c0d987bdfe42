"""Turns on one channel (PROTOCOL.md §13.3): nobody laps a writer it outran.

The relay orders a channel's patches into one line: when two writers push
on the same head, one lands and the other is refused STALE and must rebase.
A writer that pushes often (a fast typist, a pipelining client) could land
again and again while the loser rebases, and the loser never land.  The
rule: **a writer that outran another may not land again until that one has
landed**, left the channel, or pushed nothing for ``longest`` seconds (gone
away, or waiting for a head it lacks, or its work vanished in its rebase:
nobody is held back for it longer than that, but it is still owed when it
pushes again).  Its pushes are refused YIELD meanwhile, and it sends the
very same bytes again a little later.  While a loser it is owed by has
pushed nothing for ``quiet`` seconds (a slow rebase, a reconnect), the
writers that outran it may land **one** patch between them, and then wait
another ``quiet`` seconds: the loser falls behind by one patch per
``quiet``, not by as many as the winners can pipeline.  (Letting them land
freely after ``quiet``, as this rule did until 2026-12-06, made a cycle: a
loser whose catch-up took longer than ``quiet`` got each of their patches
to rebase over, so its next catch-up took longer still, and it starved;
``bench --only fair``: about one run in six, after the relay had closed
the connections of seven of the eight typists at once.)

Who outran whom, from what the relay sees:

* when a push of ``L`` is refused STALE, every writer that landed a patch
  since ``L``'s last one outran it;
* when ``W`` lands, every writer that was held back for ``W`` and still
  waits is outran by ``W`` (its work is behind ``W``'s patch now).  The
  second matters under load: a writer whose rebase takes long pushes
  nothing meanwhile, so no STALE refusal would tell, and a writer it let go
  first would pipeline patch after patch, each one making it rebase again.

Why it cannot deadlock and is fair: "``W`` is held back for ``L``" implies
that ``W`` landed a patch after ``L``'s last one, so the relation has no
cycle, and of the writers that wait, the one whose last patch is the oldest
is never held back.  Between two patches of ``W``, every writer ``W`` outran
lands one (or goes quiet).  Why it is cheap at human pace: a writer is held
back only for the writers it outran, only until they land (a round trip and
a rebase), and only if it pushes again meanwhile, which a person typing ten
keys a second seldom does.  A rule of first come, first served (every
waiting writer ahead of every later one) is as fair, but there one lost race
holds *every* writer back for the loser's round trip, and at human pace that
became a storm of refusals (PROTOCOL.md §13.3 has the figures).

Pure and clock-free (callers pass ``now`` in seconds), so the relay
(:class:`relay.hub.ChannelState`, one per channel and relay process) and
the simulator (``tests/sim.py``, which also runs under Pyodide) run this
very code.
"""

from __future__ import annotations

__all__ = ["Turns"]


class Turns:
    """The turn state of one channel: who waits, who landed last, who outran whom.

    Writers are the connections' numbers.  Everything is per writer, so the
    state is bounded by the channel's subscribers (:meth:`left` forgets one).
    """

    __slots__ = ("_count", "_last", "_outran", "_passed", "_waiting")

    def __init__(self) -> None:
        #: writer -> when it last pushed, while it waits (it pushed since its
        #: last patch landed).
        self._waiting: dict[int, float] = {}
        self._count = 0  # patches landed on the channel
        #: writer -> the number of its last patch landed (``_count`` then).
        self._last: dict[int, int] = {}
        #: writer -> the writers it outran that have not landed since.
        self._outran: dict[int, set[int]] = {}
        #: writer -> when a push of a writer it is owed by last went through
        #: because it had been quiet.
        self._passed: dict[int, float] = {}

    def push(self, writer: int, now: float, quiet: float, longest: float) -> bool:
        """A push of a new patch by ``writer``: whether it may go to the store now.

        False (refuse YIELD) while a writer it outran waits, pushed within the
        last ``longest`` seconds, and either pushed or let a patch through
        within the last ``quiet`` seconds.
        """
        self._waiting[writer] = now
        passing = []
        for loser in self._outran.get(writer, ()):
            pushed = self._waiting.get(loser)
            if pushed is None or now - pushed > longest:
                continue
            if now - max(pushed, self._passed.get(loser, pushed)) <= quiet:
                return False
            passing.append(loser)
        for loser in passing:  # one patch past their silence, then wait again
            self._passed[loser] = now
        return True

    def stale(self, writer: int) -> None:
        """A push of ``writer`` was refused STALE: whoever landed a patch since
        its last one outran it."""
        since = self._last.get(writer, 0)
        for other, last in self._last.items():
            if last > since and other != writer:
                self._outran.setdefault(other, set()).add(writer)

    def landed(self, writer: int, *, fresh: bool = True) -> None:
        """A patch of ``writer`` is stored (``fresh``), or a resend of one was
        found stored: its wait is over and nobody is held back for it.  A fresh
        patch outran those that were held back for ``writer`` and still wait."""
        self._waiting.pop(writer, None)
        self._passed.pop(writer, None)
        held = set()
        for other, losers in self._outran.items():
            if writer in losers:
                losers.discard(writer)
                if other in self._waiting:
                    held.add(other)
        if fresh:
            self._count += 1
            self._last[writer] = self._count
            if held:
                self._outran.setdefault(writer, set()).update(held)

    def left(self, writer: int) -> None:
        """``writer`` unsubscribed or closed: forget it."""
        self._waiting.pop(writer, None)
        self._last.pop(writer, None)
        self._outran.pop(writer, None)
        self._passed.pop(writer, None)
        for losers in self._outran.values():
            losers.discard(writer)

    def outran(self, writer: int) -> frozenset[int]:
        """The writers ``writer`` outran that have not landed since."""
        return frozenset(self._outran.get(writer, ()))

    def waiting(self) -> frozenset[int]:
        """The writers that pushed since their last patch landed."""
        return frozenset(self._waiting)

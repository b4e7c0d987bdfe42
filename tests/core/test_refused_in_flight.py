"""A refusal says nothing final about the patches sent before the refused one
(session 25: the crash suite's doubled token, docs/RELIABILITY.md).

Session-level (``PadSession``, the relay played frame by frame), so it stays
out of the Pyodide run's file list, unlike test_recovery.py.
"""

from __future__ import annotations

from test_session import Clock, join, make, sent

import crypto
from client.events import Status
from client.textops import Op
from wire import frames as f
from wire.codes import RefuseCode


def test_a_patch_refused_behind_one_sent_again_after_yield_keeps_that_one_logged() -> None:
    """Found by the crash suite (seed 58 of 200, on a busy machine: doubled once).

    Two patches pipelined; the relay turns the first away for now (YIELD:
    another writer's turn), so the second, passed by the turn a moment later,
    finds the head still at the first one's parent: STALE.  That refusal says
    nothing final about the first, whose same bytes went out again after
    ``retry_after_ms`` and may be stored (the STALE came after a slow group
    commit).  It used to squash both and log their work sealed again on the
    old head in place of the first: a process killed before the first one's
    ACK left a log whose patch, taken back across the first (now on the
    chain), carried the first one's token twice."""
    clock = Clock()
    keys = crypto.PadKeys.generate()
    typist = make(clock, keys=keys)
    join(typist)
    typist.edit((Op(0, 0, "x "),))
    typist.edit((Op(2, 0, "y "),))
    first, second = sent(typist)  # a calm pad: pipelined
    zero = f.ZERO_ID
    typist.receive_frame(f.encode(f.Refuse(first.request_id, RefuseCode.YIELD, 20, 0, zero)))
    clock.now += 20
    typist.tick()
    (again,) = sent(typist)
    assert again == first  # the very same bytes, still unanswered
    typist.receive_frame(f.encode(f.Refuse(second.request_id, RefuseCode.STALE, 0, 0, zero)))
    assert sent(typist) == []  # nothing can land before the first one does
    log, base = typist.write_ahead(), typist.pending_base()
    assert first.envelope in log  # it may still land: logged as sent
    # The relay stores the first one's second copy; the process dies before its ACK.
    restarted = make(keys=keys, recovered=log, recovered_bases=[base] if base else [])
    restarted.connected()
    subscribe = sent(restarted)[1]
    restarted.receive_frame(f.encode(f.History(keys.channel_id, 1, first.envelope)))
    first_id = crypto.envelope_id(first.envelope)
    end = f.HistoryEnd(subscribe.request_id, keys.channel_id, 1, first_id)
    restarted.receive_frame(f.encode(end))
    assert restarted.text == "x y "
    (resent,) = sent(restarted)
    assert crypto.envelope2.ref_of(resent.envelope) == first_id
    # And the live session, once the first one's ACK comes, sends the rest on it.
    typist.receive_frame(f.encode(f.Ack(first.request_id, 1, first_id)))
    (rest,) = sent(typist)
    assert crypto.envelope2.ref_of(rest.envelope) == first_id
    typist.receive_frame(f.encode(f.Ack(rest.request_id, 2, crypto.envelope_id(rest.envelope))))
    assert typist.text == "x y "
    assert typist.status is Status.SAVED

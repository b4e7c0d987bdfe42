"""Fault hooks: test seams injected into the app factory, never monkeypatched.

Theory of operation
-------------------
A :class:`Faults` value is handed to :func:`relay.app.create_app`.  Each hook
is ``None`` in production (the default) and a plain callable in tests:

* ``drop_ack(patch_id)`` -> True: the patch is committed and broadcast, but
  its ACK is not sent (a "lost ack"; the client resends and gets the
  original seq back).
* ``close_after(connection_id, frames_sent)`` -> True: the relay closes that
  connection right after sending frame number ``frames_sent`` (a connection
  cut mid-stream), with close code 4008 and no ERROR frame.
* ``rollback(channel_id)`` -> seq or None: history reads of that channel
  (SUBSCRIBE and the HTTP endpoints) pretend the head is at that earlier seq
  (a relay serving a rolled-back history; clients must raise their alarm).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, slots=True)
class Faults:
    """Fault hooks; all ``None`` means a healthy relay."""

    drop_ack: Callable[[bytes], bool] | None = None
    close_after: Callable[[int, int], bool] | None = None
    rollback: Callable[[bytes], int | None] | None = None

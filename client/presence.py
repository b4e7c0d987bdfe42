"""Presence: who else is on the pad, where their cursors are, when we last heard them.

Theory of operation
-------------------
Presence travels in sealed ephemerals (:func:`crypto.seal_ephemeral`) whose
payload is JSON ``{"name", "color", "cursor"}`` (cursor = ``[anchor, head]``
in code points, or null), or ``{"bye": true}`` when a session leaves.  Crypto
adds the sender's session id and a counter; an :class:`crypto.EphemeralGuard`
drops replays and messages older than the presence timeout.

:class:`Presence` is sans-I/O, like the session that owns it: it seals what
we announce (:meth:`Presence.announce`) and turns what others announce into
:mod:`client.events` (:meth:`Presence.receive`).  Peers are keyed by
(author key, session id), so two tabs of one person are two peers.  A peer
is dropped when it says goodbye, when the relay says its connection left,
or when nothing was heard from it for the presence timeout
(:meth:`Presence.expire`).  Losing *our* connection drops nobody: the peers
stay, not heard from, until they expire or speak again (a front end greys
them out with :meth:`Presence.heard_ms`).  We re-announce every third of the
timeout (:meth:`Presence.heartbeat_due`) and whenever a connection joins.
An ephemeral that does not open with the pad's key, or is a replay, is
dropped and counted (:attr:`Presence.dropped`); only one sealed with the key
whose author signature fails is an alarm.
Peer cursors move through every edit the session sees
(:meth:`Presence.move_cursors`).

Head beacons (docs/PROTOCOL.md §12.3).  Every presence message a session
sends carries ``"head": [height, "id hex"]``, the head it verified; a session
that announces no presence sends ``{"beacon": true, "head": ...}``, which
makes no peer.  :meth:`Presence.receive` queues the beacons it opens in
:attr:`Presence.beacons` for the session to compare with its own chain
(:mod:`client.relayside`): that is how two people the relay keeps on
different branches find out.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import crypto
from client.events import Alarm, AlarmKind, CursorMoved, PadEvent, Peer, PeerJoined, PeerLeft
from client.textops import Patch, transform_selection
from crypto.backend import RandomFn, default_random

DEFAULT_PRESENCE_TIMEOUT_MS = 30_000
NO_CONNECTION = -1  # the relay connection of a peer heard on an earlier connection of ours


@dataclasses.dataclass(frozen=True, slots=True)
class Beacon:
    """A peer's verified head: ``height`` and ``id``; ``who`` names the peer in words."""

    who: str
    height: int
    id: bytes


@dataclasses.dataclass(slots=True)
class _PeerState:
    peer: Peer
    connection: int
    heard_ms: int


class Presence:
    """Our own presence and everyone else's (see the module docstring).

    Args:
        keys: the pad's keys (view keys may send presence too).
        author: who signs our presence.
        timeout_ms: peers silent this long expire.
        random: the source of our session id (16 bytes) and of nonces.
    """

    def __init__(
        self,
        keys: crypto.PadKeys,
        author: crypto.Author,
        *,
        timeout_ms: int = DEFAULT_PRESENCE_TIMEOUT_MS,
        random: RandomFn = default_random,
    ) -> None:
        self.keys = keys
        self.author = author
        self.timeout_ms = timeout_ms
        self._random = random
        self._session = crypto.Session.new(random=random)
        self._guard = crypto.EphemeralGuard(timeout_ms)
        self._peers: dict[tuple[bytes, bytes], _PeerState] = {}
        self.mine: dict[str, Any] | None = None  # what we announce, once set
        self.sent_ms = 0
        self.beacons: list[Beacon] = []  # heads peers announced, for the session to check
        self.dropped = 0  # ephemerals that did not open, or were replays (not alarms)

    @property
    def session_id(self) -> bytes:
        """Our random session id (inside every ephemeral we seal)."""
        return self._session.session_id

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Everyone else present, in order of arrival."""
        return tuple(state.peer for state in self._peers.values())

    def heard_ms(self, peer: Peer) -> int | None:
        """When we last heard from ``peer`` (epoch ms), or None if it is gone."""
        state = self._peers.get((bytes.fromhex(peer.author), bytes.fromhex(peer.session)))
        return None if state is None else state.heard_ms

    # --- ours --------------------------------------------------------------

    def update(
        self, name: str | None, color: str | None, cursor: tuple[int, int] | None
    ) -> dict[str, Any]:
        """Change what we announce; returns the new body."""
        mine = self.mine or {"name": self.author.name, "color": "", "cursor": None}
        if name is not None:
            mine["name"] = name
        if color is not None:
            mine["color"] = color
        if cursor is not None:
            mine["cursor"] = [int(cursor[0]), int(cursor[1])]
        self.mine = mine
        return mine

    def announce(self, body: dict[str, Any], now_ms: int) -> bytes:
        """Seal ``body`` as an ephemeral envelope sent at ``now_ms``."""
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = crypto.seal_ephemeral(
            self.keys, self.author, self._session, payload, now_ms=now_ms, random=self._random
        )
        self.sent_ms = now_ms
        return sealed

    def heartbeat_due(self, now_ms: int) -> bool:
        """Whether our presence should be re-announced (a third of the timeout passed)."""
        return self.mine is not None and now_ms - self.sent_ms >= self.timeout_ms // 3

    def next_deadline_ms(self) -> int | None:
        """The next heartbeat or expiry, if any."""
        deadlines = [s.heard_ms + self.timeout_ms + 1 for s in self._peers.values()]
        if self.mine is not None:
            deadlines.append(self.sent_ms + self.timeout_ms // 3)
        return min(deadlines, default=None)

    # --- theirs ------------------------------------------------------------

    def receive(self, envelope: bytes, connection: int, now_ms: int) -> list[PadEvent]:
        """Open someone's presence; the events it causes (joined, moved, left, alarm)."""
        try:
            eph = crypto.open_ephemeral(self.keys, envelope)
            self._guard.check(
                eph.author_key, eph.session_id, eph.counter, eph.sender_time_ms, now_ms
            )
            body = json.loads(eph.payload.decode("utf-8"))
            if not isinstance(body, dict):
                raise ValueError("presence payload is not a JSON object")
        except crypto.BadAuthorSignature as error:
            # Sealed with the pad's key, so by someone holding a link: worth an alarm.
            return [Alarm(AlarmKind.BAD_PRESENCE, f"presence message rejected: {error}")]
        except (crypto.IntegrityError, ValueError):
            # Not sealed with this pad's key (a stranger who knows only the
            # channel id), replayed, stale or skewed: dropped and counted, never
            # an alarm, so noise can never bury a real one.
            self.dropped += 1
            return []
        key = (eph.author_key, eph.session_id)
        beacon = _beacon(eph, body)
        if beacon is not None:
            self.beacons.append(beacon)
        if body.get("beacon") is True:
            return []  # a session that announces no presence: not a peer
        if body.get("bye"):
            return self._drop(key)
        peer = _peer_from(eph, body)
        old = self._peers.get(key)
        self._peers[key] = _PeerState(peer, connection, now_ms)
        if old is None:
            return [PeerJoined(peer)]
        return [CursorMoved(peer)] if old.peer != peer else []

    def connection_left(self, connection: int) -> list[PadEvent]:
        """The relay says a connection left: its peers leave."""
        events: list[PadEvent] = []
        for key, state in list(self._peers.items()):
            if state.connection == connection:
                events += self._drop(key)
        return events

    def disconnected(self) -> None:
        """Our connection dropped: peers stay until they expire, but no longer by connection."""
        for state in self._peers.values():
            state.connection = NO_CONNECTION

    def expire(self, now_ms: int) -> list[PadEvent]:
        """Drop the peers not heard from for the timeout."""
        events: list[PadEvent] = []
        for key, state in list(self._peers.items()):
            if now_ms - state.heard_ms > self.timeout_ms:
                events += self._drop(key)
        return events

    def move_cursors(self, patch: Patch) -> None:
        """Move every peer's cursor through an edit of the text."""
        for state in self._peers.values():
            cursor = state.peer.cursor
            if cursor is not None:
                moved = transform_selection(cursor, patch)
                state.peer = dataclasses.replace(state.peer, cursor=moved)

    def _drop(self, key: tuple[bytes, bytes]) -> list[PadEvent]:
        state = self._peers.pop(key, None)
        return [] if state is None else [PeerLeft(state.peer)]


def _beacon(eph: crypto.Ephemeral, body: dict[str, Any]) -> Beacon | None:
    head = body.get("head")
    if not (isinstance(head, list) and len(head) == 2):
        return None
    height, id_hex = head
    if type(height) is not int or height < 0 or not isinstance(id_hex, str):
        return None
    try:
        patch_id = bytes.fromhex(id_hex)
    except ValueError:
        return None
    if len(patch_id) != 32:
        return None
    key, session = eph.author_key.hex()[:16], eph.session_id.hex()[:8]
    name = body.get("name")
    who = f"{name if isinstance(name, str) else eph.author_name} (key {key}, session {session})"
    return Beacon(who, height, patch_id)


def _peer_from(eph: crypto.Ephemeral, body: dict[str, Any]) -> Peer:
    cursor = body.get("cursor")
    selection: tuple[int, int] | None = None
    if (
        isinstance(cursor, list)
        and len(cursor) == 2
        and all(type(c) is int and c >= 0 for c in cursor)
    ):
        selection = (cursor[0], cursor[1])
    name = body.get("name")
    color = body.get("color")
    return Peer(
        session=eph.session_id.hex(),
        author=eph.author_key.hex(),
        name=name if isinstance(name, str) else eph.author_name,
        color=color if isinstance(color, str) else "",
        cursor=selection,
    )


__all__ = ["DEFAULT_PRESENCE_TIMEOUT_MS", "Beacon", "Presence"]

"""Sessions and the ephemeral replay guard.

Theory of operation
-------------------
Each running client (a tab, an SDK process) is a :class:`Session`: a random
16-byte session id and a counter that increases with every ephemeral message
(presence, cursors, "my head is X") it sends. Both travel inside the sealed
ephemeral with the sender's clock in milliseconds, under the author's
signature, so the relay can neither read nor alter them.

A receiver keeps an :class:`EphemeralGuard`. It is keyed by
``(author key, session id)``, not by author: two tabs of one person are two
sessions, each with its own counter, and neither is a replay of the other.
A message is accepted only if

- its counter is greater than the last one accepted for that session
  (otherwise :class:`~crypto.errors.ReplayedEphemeral`), and
- its sender time is within ``timeout_ms`` of the receiver's clock, either
  way (otherwise :class:`~crypto.errors.StaleEphemeral`).

A session is forgotten once both the receiver time of its last message and
that message's sender time are more than ``timeout_ms`` in the past. From then
on any replay of its old messages is stale by the second rule, so forgetting
never readmits a replay and memory stays bounded by the sessions active
within one timeout. Clocks are injected (``now_ms`` arguments), never read
here. Clock skew larger than the timeout between two peers makes their
ephemerals stale; presence is best-effort and that is the documented cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backend import RandomFn, default_random
from .errors import ReplayedEphemeral, StaleEphemeral

SESSION_ID_LEN = 16
DEFAULT_TIMEOUT_MS = 30_000
_U64_MAX = 2**64 - 1


@dataclass
class Session:
    """One running client: a random id and a counter of ephemerals sent."""

    session_id: bytes
    counter: int = 0

    @classmethod
    def new(cls, *, random: RandomFn = default_random) -> Session:
        """Return a session with a fresh random id and counter 0.

        Args:
            random: source of the 16-byte session id.

        Returns:
            The new session.
        """
        return cls(session_id=random(SESSION_ID_LEN))

    def next_counter(self) -> int:
        """Advance and return the counter for the next ephemeral (the first is 1).

        Returns:
            The new counter value.

        Raises:
            OverflowError: the counter would exceed 2**64 - 1.
        """
        if self.counter >= _U64_MAX:
            raise OverflowError("session counter exhausted; start a new session")
        self.counter += 1
        return self.counter


@dataclass
class _Seen:
    counter: int
    expires_ms: int


@dataclass
class EphemeralGuard:
    """Rejects replayed and stale ephemerals; see the module docstring.

    Args:
        timeout_ms: the presence timeout; ``30_000`` by default.
    """

    timeout_ms: int = DEFAULT_TIMEOUT_MS
    _seen: dict[tuple[bytes, bytes], _Seen] = field(default_factory=dict, repr=False)
    _next_sweep_ms: int = field(default=0, repr=False)

    def check(
        self, author_key: bytes, session_id: bytes, counter: int, sender_time_ms: int, now_ms: int
    ) -> None:
        """Accept one ephemeral or raise; on success remember its counter.

        Args:
            author_key: the sender's verified author key.
            session_id: the sender's session id.
            counter: the message's counter.
            sender_time_ms: the sender's clock when sealing.
            now_ms: the receiver's clock now.

        Raises:
            StaleEphemeral: the sender time is more than ``timeout_ms`` away from ``now_ms``.
            ReplayedEphemeral: the counter is not above the last accepted for the session.
        """
        self._forget_expired(now_ms)
        if abs(now_ms - sender_time_ms) > self.timeout_ms:
            raise StaleEphemeral(
                f"ephemeral sent at {sender_time_ms} ms is outside the {self.timeout_ms} ms "
                f"presence window around now ({now_ms} ms)"
            )
        key = (author_key, session_id)
        seen = self._seen.get(key)
        if seen is not None and counter <= seen.counter:
            raise ReplayedEphemeral(
                f"ephemeral counter {counter} of session {session_id.hex()} is not above "
                f"{seen.counter}, the last accepted"
            )
        expires = max(now_ms, sender_time_ms) + self.timeout_ms
        self._seen[key] = _Seen(counter=counter, expires_ms=expires)

    def __len__(self) -> int:
        """Return how many sessions are remembered."""
        return len(self._seen)

    def _forget_expired(self, now_ms: int) -> None:
        # Sweep at most once per timeout, so a check costs O(1) amortised.
        if now_ms < self._next_sweep_ms:
            return
        self._next_sweep_ms = now_ms + self.timeout_ms
        gone = [key for key, seen in self._seen.items() if seen.expires_ms < now_ms]
        for key in gone:
            del self._seen[key]

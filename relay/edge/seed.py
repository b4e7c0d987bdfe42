"""The seeder: write a pad with N patches of real, signed history, fast.

Theory of operation
-------------------
Benchmarks and SDK tests need pads with long histories without pushing every
patch through a websocket.  :func:`seed_pad` seals ``n`` patches with crypto's
real :func:`crypto.seal` (so clients can verify and open them) and appends
them straight to a :class:`relay.store.Store`, each parented on the previous.
Appends are issued concurrently in windows, so the SQLite store commits them
in large groups.  What a patch *contains* is the caller's business
(``content(i)``): the relay never reads it, and the client's engine decides
its format.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import crypto
from crypto.envelope import Kind, envelope_id, seal
from crypto.keys import PadKeys
from relay.store import AppendOutcome, Head, Store, StoreError

#: Appends submitted before waiting for them (one SQLite group commit each).
WINDOW = 256


@dataclasses.dataclass(frozen=True, slots=True)
class SeededPad:
    """What :func:`seed_pad` made: the pad's keys and its head."""

    keys: PadKeys
    head: Head


def default_content(index: int) -> bytes:
    """The placeholder content of seeded patch number ``index`` (0-based)."""
    return f"seed patch {index}\n".encode()


async def seed_pad(
    store: Store,
    n: int,
    *,
    keys: PadKeys | None = None,
    author: crypto.Author | None = None,
    content: Callable[[int], bytes] = default_content,
) -> SeededPad:
    """Create (or extend) a pad with ``n`` more sealed patches.

    Args:
        store: an open store.
        n: how many patches to add.
        keys: the pad's edit keys (a new pad when None).
        author: who signs the patches (a fresh "seeder" identity when None).
        content: the plaintext of patch ``i``.

    Returns:
        The keys and the head after seeding.

    Raises:
        StoreError: an append was refused (another writer moved the head).
    """
    keys = keys or PadKeys.generate()
    author = author or crypto.Author.generate("seeder")
    info = await store.create_channel(keys.channel_id, keys.verify_key, keys.read_token_hash)
    parent, start = info.head.id, info.head.seq
    for first in range(0, n, WINDOW):
        sealed = []
        for i in range(first, min(n, first + WINDOW)):
            envelope = seal(keys, author, Kind.PATCH, parent, content(start + i))
            sealed.append((envelope_id(envelope), parent, envelope))
            parent = sealed[-1][0]
        appends = [store.append(keys.channel_id, pid, ref, env) for pid, ref, env in sealed]
        for result in await asyncio.gather(*appends):
            if result.outcome is not AppendOutcome.APPENDED:
                raise StoreError(f"seeding stopped: append was {result.outcome.value}")
    info = await store.create_channel(keys.channel_id, keys.verify_key, keys.read_token_hash)
    return SeededPad(keys, info.head)

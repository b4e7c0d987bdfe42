"""The engine's codec over the real cryptography (crypto.seal / crypto.open_envelope).

The SDK will have its own; this one is the bench's, with timers so the
per-edit breakdown can say how much of an edit is sealing and opening.
"""

from __future__ import annotations

import time

import crypto
from client.engine import Opened, Sealed
from crypto.envelope import Kind, envelope_id, parse_header


class CryptoCodec:
    """Seals and opens envelopes with a pad's keys and an author; times both."""

    def __init__(self, keys: crypto.PadKeys, author: crypto.Author) -> None:
        self.keys = keys
        self.author = author
        self.seal_ns = 0
        self.open_ns = 0
        self.seals = 0
        self.opens = 0

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        """Seal ``content`` under ``ref``."""
        t = time.perf_counter_ns()
        data = crypto.seal(self.keys, self.author, Kind(kind), ref, content)
        sealed = Sealed(envelope_id(data), data)
        self.seal_ns += time.perf_counter_ns() - t
        self.seals += 1
        return sealed

    def open(self, data: bytes) -> Opened:
        """Open an envelope (``ValueError`` if even its header is unreadable)."""
        t = time.perf_counter_ns()
        try:
            try:
                header = parse_header(data)
            except crypto.CryptoError as error:
                raise ValueError(str(error)) from error
            try:
                got = crypto.open_envelope(self.keys, data)
            except crypto.CryptoError as error:
                return Opened(envelope_id(data), int(header.kind), header.ref, None, str(error))
            return Opened(got.id, int(got.kind), got.ref, got.content, None, got.author_key)
        finally:
            self.open_ns += time.perf_counter_ns() - t
            self.opens += 1

"""The SDK's codec (:class:`client.codec.CryptoCodec`) with timers, so the
per-edit breakdown can say how much of an edit is sealing and opening."""

from __future__ import annotations

import time

import crypto
from client.codec import CryptoCodec as _SdkCodec
from client.engine import Opened, Sealed


class CryptoCodec(_SdkCodec):
    """Seals and opens envelopes with a pad's keys and an author; times both."""

    def __init__(self, keys: crypto.PadKeys, author: crypto.Author) -> None:
        super().__init__(keys, author)
        self.seal_ns = 0
        self.open_ns = 0
        self.seals = 0
        self.opens = 0

    def seal(self, kind: int, ref: bytes, content: bytes, *, height: int) -> Sealed:
        """Seal ``content`` under ``ref`` at ``height``."""
        t = time.perf_counter_ns()
        try:
            return super().seal(kind, ref, content, height=height)
        finally:
            self.seal_ns += time.perf_counter_ns() - t
            self.seals += 1

    def open(self, data: bytes) -> Opened:
        """Open an envelope (``ValueError`` if even its header is unreadable)."""
        t = time.perf_counter_ns()
        try:
            return super().open(data)
        finally:
            self.open_ns += time.perf_counter_ns() - t
            self.opens += 1

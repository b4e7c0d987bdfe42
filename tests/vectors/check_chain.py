"""Check chain vectors: best-tip decisions and scripted relay sessions.

Standard library plus ``client`` only, so the same records run under CPython
and Pyodide.  Two suites:

``chain.best``
    ``input.patches``: ``[[id_hex, parent_hex], ...]`` in arrival order;
    ``expect``: ``{"best": id_hex, "height": n}``.
``chain.session``
    ``input``: ``{"sessions": n, "options": {...}, "steps": [...]}`` where a
    step is ``["edit", s, pos, delete, text]``, ``["push", s]`` (the relay
    takes session s's oldest outgoing patch: dedupe, refuse a stale parent,
    or store, ack and broadcast), ``["drop_ack", s]`` (the same, but the ack
    is lost), ``["deliver", s]`` (session s handles its oldest incoming
    message) or ``["reconnect", s]`` (history since its last sequence number,
    then a resend); ``expect``: ``{"texts": [...], "head": id_hex, "log": n}``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from client import textops
from client.chain import GENESIS, Chain, Pending
from client.doctype import TEXT
from client.engine import Engine, Opened, Sealed, SendPatch


class VectorCodec:
    """Deterministic envelopes without cryptography (ids are SHA-256 of the bytes)."""

    def __init__(self, author: int) -> None:
        self.author = author
        self.counter = 0

    def seal(self, kind: int, ref: bytes, content: bytes) -> Sealed:
        self.counter += 1
        data = bytes([kind]) + ref + self.author.to_bytes(4, "big")
        data += self.counter.to_bytes(8, "big") + content
        return Sealed(hashlib.sha256(data).digest(), data)

    def open(self, data: bytes) -> Opened:
        if len(data) < 45:
            raise ValueError("too short")
        return Opened(hashlib.sha256(data).digest(), data[0], data[1:33], data[45:])


def best(patches: list[list[str]]) -> dict[str, Any]:
    chain: Chain[None] = Chain()
    for patch_id, parent in patches:
        chain.add(Pending(bytes.fromhex(patch_id), bytes.fromhex(parent), None, 0))
    return {"best": chain.best.id.hex(), "height": chain.best.height}


def session(spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("options", {})
    engines = [Engine(TEXT, VectorCodec(n), **options) for n in range(spec["sessions"])]
    outboxes: list[list[bytes]] = [[] for _ in engines]
    inboxes: list[list[tuple[str, bytes, Any]]] = [[] for _ in engines]
    log: list[bytes] = []
    seq_of: dict[bytes, int] = {}

    def drain(n: int) -> None:
        engines[n].flush()
        for event in engines[n].events():
            if isinstance(event, SendPatch):
                outboxes[n].append(event.sealed.data)

    def push(n: int, lose_ack: bool) -> None:
        if not outboxes[n]:
            return
        data = outboxes[n].pop(0)
        patch_id, parent = hashlib.sha256(data).digest(), data[1:33]
        if patch_id not in seq_of:
            if parent != (hashlib.sha256(log[-1]).digest() if log else GENESIS):
                inboxes[n].append(("refuse", patch_id, hashlib.sha256(log[-1]).digest()))
                return
            log.append(data)
            seq_of[patch_id] = len(log)
            for other in range(len(engines)):
                if other != n:
                    inboxes[other].append(("patch", data, len(log)))
        if not lose_ack:
            inboxes[n].append(("ack", patch_id, seq_of[patch_id]))

    def deliver(n: int) -> None:
        if not inboxes[n]:
            return
        kind, data, extra = inboxes[n].pop(0)
        if kind == "patch":
            engines[n].receive(data, extra)
        elif kind == "ack":
            engines[n].acked(data, extra)
        else:
            engines[n].refused(data, extra)
        drain(n)

    for step in spec["steps"]:
        action, n = step[0], step[1]
        if action == "edit":
            engines[n].edit(textops.normalize([(step[2], step[3], step[4])]))
            drain(n)
        elif action in ("push", "drop_ack"):
            push(n, action == "drop_ack")
        elif action == "deliver":
            deliver(n)
        elif action == "reconnect":
            start = engines[n].last_seq
            inboxes[n] = [("patch", log[i], i + 1) for i in range(start, len(log))]
            engines[n].resend()
            outboxes[n] = []
            drain(n)
        else:
            raise ValueError(f"unknown step {action!r}")
    head = hashlib.sha256(log[-1]).digest() if log else GENESIS
    return {"texts": [e.view for e in engines], "head": head.hex(), "log": len(log)}


def check(record: dict[str, Any]) -> None:
    suite, given, expect = record["suite"], record["input"], record["expect"]
    if suite == "chain.best":
        got = best(given["patches"])
    elif suite == "chain.session":
        got = session(given)
    else:
        raise AssertionError(f"unknown suite {suite}")
    assert got == expect, f"expected {json.dumps(expect)[:300]}, got {json.dumps(got)[:300]}"

"""Check chain vectors: best-tip decisions and scripted relay sessions.

Standard library plus ``client`` only, so the same records run under CPython
and Pyodide.  Three suites:

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
``chain.mmr``
    ``input.ids``: patch ids (hex) from height 1; ``expect``: ``{"peaks":
    [[peak_hex, ...] at each height 1..n], "root": hex at n}``
    (docs/PROTOCOL.md §11, :mod:`wire.mmr`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from client import textops
from client.chain import GENESIS, Chain, Pending
from client.doctype import TEXT
from client.engine import Engine, Opened, Sealed, SendPatch
from wire import mmr


class VectorCodec:
    """Deterministic envelopes without cryptography (ids are SHA-256 of the bytes)."""

    def __init__(self, author: int) -> None:
        self.author = author
        self.counter = 0

    def seal(self, kind: int, ref: bytes, content: bytes, *, height: int = 0) -> Sealed:
        self.counter += 1
        data = bytes([kind]) + ref + self.author.to_bytes(4, "big")
        data += self.counter.to_bytes(8, "big") + content
        return Sealed(hashlib.sha256(data).digest(), data)

    def open(self, data: bytes) -> Opened:
        if len(data) < 45:
            raise ValueError("too short")
        return Opened(hashlib.sha256(data).digest(), data[0], data[1:33], data[45:])

    def learn(self, record: bytes) -> bytes:
        raise ValueError("these envelopes have no sessions")


def header(data: bytes) -> tuple[bytes, int, bytes]:
    """(id, kind, ref) of a fake envelope, as a relay would read it."""
    return hashlib.sha256(data).digest(), data[0], data[1:33]


class SimRelay:
    """Fast-forward only, dedupe by id first, refuse stale parents."""

    def __init__(self) -> None:
        self.log: list[bytes] = []
        self.seq_of: dict[bytes, int] = {}
        self.head = GENESIS
        self.snapshots: list[tuple[int, bytes]] = []  # (seq of X, sealed snapshot)
        self.refusals = 0
        self.duplicates = 0  # pushes of an id already stored (resends), acked again

    def push(self, data: bytes) -> tuple[str, bytes, int | bytes]:
        """Returns ("ack", id, seq) or ("refuse", id, head)."""
        patch_id, _, parent = header(data)
        if patch_id in self.seq_of:
            self.duplicates += 1
            return "ack", patch_id, self.seq_of[patch_id]
        if parent != self.head:
            self.refusals += 1
            return "refuse", patch_id, self.head
        self.log.append(data)
        self.seq_of[patch_id] = len(self.log)
        self.head = patch_id
        return "ack", patch_id, len(self.log)

    def put_snapshot(self, data: bytes) -> None:
        _, _, of = header(data)
        if of in self.seq_of:
            self.snapshots.append((self.seq_of[of], data))

    def since(self, seq: int) -> list[tuple[str, object, object]]:
        return [("patch", self.log[i], i + 1) for i in range(seq, len(self.log))]


def best(patches: list[list[str]]) -> dict[str, Any]:
    chain: Chain[None] = Chain()
    for patch_id, parent in patches:
        chain.add(Pending(bytes.fromhex(patch_id), bytes.fromhex(parent), None, 0))
    return {"best": chain.best.id.hex(), "height": chain.best.height}


def mmr_range(ids: list[str]) -> dict[str, Any]:
    peaks: mmr.Peaks = mmr.EMPTY
    each = []
    for height, leaf in enumerate(ids):
        peaks = mmr.append(peaks, height, bytes.fromhex(leaf))
        each.append(mmr.to_hex(peaks))
    return {"peaks": each, "root": mmr.root(peaks, len(ids)).hex()}


def session(spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("options", {})
    engines = [
        Engine(TEXT, VectorCodec(n), session=n.to_bytes(8, "big"), **options)
        for n in range(spec["sessions"])
    ]
    outboxes: list[list[bytes]] = [[] for _ in engines]
    inboxes: list[list[tuple[str, bytes, Any]]] = [[] for _ in engines]
    relay = SimRelay()

    def drain(n: int) -> None:
        engines[n].flush()
        for event in engines[n].events():
            if isinstance(event, SendPatch):
                outboxes[n].append(event.sealed.data)

    def push(n: int, lose_ack: bool) -> None:
        if not outboxes[n]:
            return
        data = outboxes[n].pop(0)
        stored = len(relay.log)
        verdict, patch_id, detail = relay.push(data)
        if verdict == "refuse":
            inboxes[n].append(("refuse", patch_id, detail))
            return
        if len(relay.log) > stored:
            for other in range(len(engines)):
                if other != n:
                    inboxes[other].append(("patch", data, len(relay.log)))
        if not lose_ack:
            inboxes[n].append(("ack", patch_id, detail))

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
            inboxes[n] = [
                ("patch", data, seq) for _, data, seq in relay.since(engines[n].last_seq)
            ]
            engines[n].resend()
            outboxes[n] = []
            drain(n)
        else:
            raise ValueError(f"unknown step {action!r}")
    return {
        "texts": [str(e.view) for e in engines],
        "head": relay.head.hex(),
        "log": len(relay.log),
    }


def check(record: dict[str, Any]) -> None:
    suite, given, expect = record["suite"], record["input"], record["expect"]
    if suite == "chain.best":
        got = best(given["patches"])
    elif suite == "chain.session":
        got = session(given)
    elif suite == "chain.mmr":
        got = mmr_range(given["ids"])
    else:
        raise AssertionError(f"unknown suite {suite}")
    assert got == expect, f"expected {json.dumps(expect)[:300]}, got {json.dumps(got)[:300]}"

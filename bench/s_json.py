"""Scenario json: per-operation cost vs document size on a JSON pad, beside Yjs.

A list of N items (N = 1 000 and 10 000; quick: the same sizes, fewer
operations), each ``{"id", "title", "n"}``.  The same seeded sequence of
operations runs on both sides, one at a time:

* blindpad: a typist engine (JSON document type, real crypto) makes the
  edit, flushes and seals it (local: edit -> sealed PUSH); a watcher engine
  opens the envelope and applies it (remote: envelope -> applied value);
  then the ACK.  Both start from a snapshot of the list.
* Yjs via pycrdt (bench/peer_pycrdt_json.py, in bench/.env): a transaction
  on replica A and the update it emits (local), apply_update on replica B
  (remote).  pycrdt 0.14.13 has no Array move nor counter: a move there is
  delete + insert of a copy, an add is read + set.

Operations: set a title, insert an item, delete an item, move an item, add 1
to an item's ``n``, insert a character in an item's title (a nested string).
Both sides must end with equal replicas and the same list (ids and titles).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import crypto
from bench.codec import CryptoCodec
from bench.common import BENCH, ENV_PY, BenchFailure, Result, summary, table
from client import jsondoc, textops
from client.engine import SNAPSHOT, Engine, SendPatch
from client.jsondoc import JSON, JOp
from client.snapshots import pack

SIZES = {"1k items": 1_000, "10k items": 10_000}
KINDS = ("set", "insert", "delete", "move", "add", "text")


def make_ops(size: int, per_kind: int, seed: int) -> list[list[Any]]:
    """The shared operation sequence (indices valid on the list as it evolves)."""
    rng = random.Random(seed)
    length, next_id, ops = size, size, []
    titles = {n: len(f"item {n}") for n in range(size)}
    order = list(range(size))
    for step in range(per_kind * len(KINDS)):
        kind = KINDS[step % len(KINDS)]
        i = rng.randrange(length)
        if kind == "set":
            ops.append(["set", i, f"t{step}"])
            titles[order[i]] = len(f"t{step}")
        elif kind == "insert":
            ops.append(["insert", i, next_id])
            order.insert(i, next_id)
            titles[next_id] = len(f"item {next_id}")
            next_id += 1
            length += 1
        elif kind == "delete":
            ops.append(["delete", i])
            del order[i]
            length -= 1
        elif kind == "move":
            j = rng.choice([j for j in (0, length - 1, rng.randrange(length)) if j != i] or [0])
            ops.append(["move", i, j])
            order.insert(j, order.pop(i))
        elif kind == "add":
            ops.append(["add", i])
        else:
            ops.append(["text", i, rng.randint(0, titles[order[i]])])
            titles[order[i]] += 1
    return ops


def as_patch(op: list[Any]) -> jsondoc.Patch:
    kind, i = op[0], op[1]
    if kind == "set":
        return (JOp(jsondoc.SET, ("items", i, "title"), op[2]),)
    if kind == "insert":
        return (JOp(jsondoc.INSERT, ("items", i), _item(op[2])),)
    if kind == "delete":
        return (JOp(jsondoc.DELETE, ("items", i)),)
    if kind == "move":
        return (JOp(jsondoc.MOVE, ("items", i), op[2]),)
    if kind == "add":
        return (JOp(jsondoc.ADD, ("items", i, "n"), 1),)
    return (JOp(jsondoc.TEXT, ("items", i, "title"), (textops.Op(op[2], 0, "x"),)),)


def _item(n: int) -> dict[str, Any]:
    return {"id": n, "title": f"item {n}", "n": 0}


def blindpad_side(size: int, ops: list[list[Any]]) -> dict[str, Any]:
    keys = crypto.PadKeys.generate()
    a = CryptoCodec(keys, crypto.Author.generate("typist"))
    b = CryptoCodec(keys, crypto.Author.generate("watcher"))
    doc = {"items": [_item(n) for n in range(size)]}
    body = {"height": 0, "doc": JSON.doc_to_wire(doc), "h": JSON.digest(doc).hex()}
    snap = a.seal(SNAPSHOT, os.urandom(32), pack(body), height=0)
    b.learn(a.own_record or b"")  # as the relay's RECORD would
    typist: Engine[Any, Any] = Engine(JSON, a, pipeline=4)
    watcher: Engine[Any, Any] = Engine(JSON, b, writer=False)
    typist.load_snapshot(snap.data)
    watcher.load_snapshot(snap.data)
    out: dict[str, dict[str, list[float]]] = {}
    for seq, op in enumerate(ops, 1):
        patch = as_patch(op)
        t0 = time.perf_counter_ns()
        typist.edit(patch)
        typist.flush()
        sent = [e for e in typist.events() if isinstance(e, SendPatch)]
        t1 = time.perf_counter_ns()
        watcher.receive(sent[0].sealed.data, seq)
        watcher.events()
        t2 = time.perf_counter_ns()
        typist.acked(sent[0].sealed.id, seq)
        typist.events()
        row = out.setdefault(op[0], {"local_us": [], "remote_us": [], "bytes": []})
        row["local_us"].append((t1 - t0) / 1e3)
        row["remote_us"].append((t2 - t1) / 1e3)
        row["bytes"].append(len(sent[0].sealed.data))
    if jsondoc.canonical(typist.view) != jsondoc.canonical(watcher.view) or not typist.saved:
        raise BenchFailure(f"json {size}: typist and watcher diverged")
    micro = doc_micro(typist.view)
    return {"ops": out, "final": typist.view["items"], **micro}


def doc_micro(doc: Any) -> dict[str, float]:
    """apply, size and digest of the whole document at this size (µs)."""
    patch = (JOp(jsondoc.ADD, ("items", len(doc["items"]) // 2, "n"), 1),)
    timings = {}
    for name, fn in (
        ("apply_us", lambda: JSON.apply(doc, patch)),
        ("size_us", lambda: JSON.size(doc)),
        ("digest_us", lambda: JSON.digest(doc)),
    ):
        t = time.perf_counter_ns()
        for _ in range(20):
            fn()
        timings[name] = (time.perf_counter_ns() - t) / 20 / 1e3
    return timings


def pycrdt_side(size: int, ops: list[list[Any]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "ops.json"
        spec.write_text(json.dumps({"items": size, "ops": ops}))
        done = subprocess.run(
            [str(ENV_PY), str(BENCH / "peer_pycrdt_json.py"), str(spec)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        raise BenchFailure(f"pycrdt peer failed: {done.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if not result["converged"]:
        raise BenchFailure(f"json {size}: the pycrdt replicas diverged")
    return result


def _same_list(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> bool:
    return [(i["id"], i["title"], i["n"]) for i in ours] == [
        (i["id"], i["title"], i["n"]) for i in theirs
    ]


def run(runs: int, quick: bool) -> Result:
    """Both sizes, ``runs`` times; per-kind medians."""
    from bench.peers import ensure_python_env

    ensure_python_env()
    result = Result("json")
    per_kind = 50 if quick else 200
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in SIZES}
    for run_no in range(runs):
        for name, size in SIZES.items():
            ops = make_ops(size, per_kind, seed=run_no)
            ours, theirs = blindpad_side(size, ops), pycrdt_side(size, ops)
            if not _same_list(ours.pop("final"), theirs.pop("final")):
                raise BenchFailure(f"json {name}: blindpad and pycrdt ended with different lists")
            raw[name].append({"blindpad": ours, "pycrdt": theirs})
    rows = []
    for name in SIZES:
        for kind in KINDS:

            def med(side: str, key: str, kind: str = kind, name: str = name) -> dict[str, float]:
                return summary([summary(r[side]["ops"][kind][key])["median"] for r in raw[name]])

            rows.append(
                [
                    name,
                    kind,
                    med("blindpad", "local_us"),
                    med("blindpad", "remote_us"),
                    med("blindpad", "bytes"),
                    med("pycrdt", "local_us"),
                    med("pycrdt", "remote_us"),
                    med("pycrdt", "bytes"),
                ]
            )
    result.tables.append(
        table(
            f"JSON pad: per-operation cost vs document size, µs (median of per-op medians over "
            f"{runs} runs x {per_kind} operations of each kind; min-max across runs); "
            "bytes: blindpad's sealed envelope, pycrdt's update",
            [
                "document",
                "operation",
                "blindpad local (edit -> sealed)",
                "blindpad remote (envelope -> applied)",
                "blindpad bytes",
                "pycrdt local (txn + update)",
                "pycrdt remote (apply_update)",
                "pycrdt bytes",
            ],
            rows,
        )
    )
    micro_rows = [
        [
            name,
            *(
                summary([r["blindpad"][k] for r in raw[name]])
                for k in ("apply_us", "size_us", "digest_us")
            ),
        ]
        for name in SIZES
    ]
    result.tables.append(
        table(
            "JSON pad: whole-document costs behind each operation, µs (apply of one add; "
            "size = node count, every patch; digest = SHA-256 of canonical JSON, every 64th)",
            ["document", "apply", "size", "digest"],
            micro_rows,
        )
    )
    result.data = {"per_kind": per_kind, "sizes": SIZES, "runs": raw}
    return result

"""Scenario 1: per-edit cost vs document size (engine + real crypto, no network).

A typist engine and a watcher engine both start from a sealed snapshot of a
document of 1 KB .. 10 MB.  Each step: one-character local edit -> flush ->
the sealed PUSH frame (local path); the BROADCAST frame decoded and received
by the watcher -> applied text (remote path); the ACK back to the typist.
The breakdown times the pieces separately at the same size: transform (one
OT transform of two small patches, what a concurrent patch costs on top),
integrity (size of every patch, and the integrity value a writer claims
every 64th, amortised: algorithm 1 for this repeated-words document, whose
chunks are cut by size), seal, open, splice.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import json
import os
import pstats
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import crypto
from bench.codec import CryptoCodec
from bench.common import BenchFailure, Result, summary, table
from client import textops
from client.doctype import TEXT, Text
from client.engine import SNAPSHOT, Engine, SendPatch
from wire import frames as f

ROOT = Path(__file__).resolve().parent.parent

SIZES = {"1 KB": 1_000, "10 KB": 10_000, "100 KB": 100_000, "1 MB": 1_000_000, "10 MB": 10_000_000}
WORDS = "the quick brown fox jumps over a lazy dog while blind relays forward sealed bytes\n"


def make_doc(size: int) -> str:
    """An ASCII document of exactly ``size`` characters."""
    return (WORDS * (size // len(WORDS) + 1))[:size]


def _pair(doc: str) -> tuple[Engine[Text, Any], Engine[Text, Any], CryptoCodec, CryptoCodec]:
    keys = crypto.PadKeys.generate()
    a = CryptoCodec(keys, crypto.Author.generate("typist"))
    b = CryptoCodec(keys, crypto.Author.generate("watcher"))
    body = {"height": 0, "doc": doc, "h": hashlib.sha256(doc.encode()).hexdigest()}
    content = json.dumps(body, separators=(",", ":")).encode()
    snap = a.seal(SNAPSHOT, os.urandom(32), content, height=0)
    b.learn(a.own_record or b"")  # as the relay's RECORD would
    typist: Engine[Text, Any] = Engine(TEXT, a, pipeline=4)
    watcher: Engine[Text, Any] = Engine(TEXT, b, writer=False)
    typist.load_snapshot(snap.data)
    watcher.load_snapshot(snap.data)
    a.seal_ns = a.open_ns = b.seal_ns = b.open_ns = 0
    a.seals = a.opens = b.seals = b.opens = 0
    return typist, watcher, a, b


def one_size(size: int, edits: int, profile: bool = False) -> dict[str, Any]:
    """Run ``edits`` edits on a document of ``size`` characters; per-edit µs."""
    doc = make_doc(size)
    typist, watcher, a, b = _pair(doc)
    channel = os.urandom(32)
    local, remote, ack = [], [], []
    prof = cProfile.Profile() if profile else None
    for i in range(edits):
        pos = (i * 7919) % (size + i)
        patch = textops.normalize([(pos, 0, "x")])
        t0 = time.perf_counter_ns()
        typist.edit(patch)
        typist.flush()
        sent = [e for e in typist.events() if isinstance(e, SendPatch)]
        frame = f.encode(f.Push(i + 1, sent[0].sealed.data))
        t1 = time.perf_counter_ns()
        assert len(sent) == 1
        wire = f.encode(f.Broadcast(channel, i + 1, sent[0].sealed.data))
        if prof:
            prof.enable()
        t2 = time.perf_counter_ns()
        got = f.decode(wire)
        assert isinstance(got, f.Broadcast)
        watcher.receive(got.envelope, got.seq)
        watcher.events()
        t3 = time.perf_counter_ns()
        if prof:
            prof.disable()
        typist.acked(sent[0].sealed.id, i + 1)
        typist.events()
        t4 = time.perf_counter_ns()
        local.append((t1 - t0) / 1e3)
        remote.append((t3 - t2) / 1e3)
        ack.append((t4 - t3) / 1e3)
        del frame
    if typist.view != watcher.view or not typist.saved:
        raise BenchFailure(f"edit-cost {size}: typist and watcher diverged")
    # micro-measures at this size
    patch = textops.normalize([(size // 2, 0, "x")])
    other = textops.normalize([(size // 3, 1, "yz")])
    reps = 20 if size >= 1_000_000 else 200
    held = TEXT.apply(doc, ())  # the document as the engine holds it (a rope)
    t = time.perf_counter_ns()
    for _ in range(reps):
        TEXT.apply(held, patch)
    splice = (time.perf_counter_ns() - t) / reps / 1e3
    t = time.perf_counter_ns()
    for _ in range(max(2, reps // 10)):
        TEXT.digest(doc)
    sha = (time.perf_counter_ns() - t) / max(2, reps // 10) / 1e3
    # What a writer's claim costs after a keystroke (PROTOCOL.md §10.4): this
    # repeated-words document is chunked by size, so it claims algorithm 1.
    text = held
    alg, _ = TEXT.claim_integrity(text)  # the first claim starts from scratch
    t = time.perf_counter_ns()
    for i in range(max(2, reps // 10)):
        text = TEXT.apply(text, textops.normalize([((i * 7919) % len(text), 0, "x")]))
        alg, _ = TEXT.claim_integrity(text)
    claim = (time.perf_counter_ns() - t) / max(2, reps // 10) / 1e3
    t = time.perf_counter_ns()
    for _ in range(1000):
        TEXT.size(doc)
    size_us = (time.perf_counter_ns() - t) / 1000 / 1e3
    t = time.perf_counter_ns()
    for _ in range(1000):
        TEXT.transform(patch, other)
    transform = (time.perf_counter_ns() - t) / 1000 / 1e3
    out: dict[str, Any] = {
        "local_us": summary(local),
        "remote_us": summary(remote),
        "ack_us": summary(ack),
        "seal_us": a.seal_ns / max(1, a.seals) / 1e3,
        "open_us": b.open_ns / max(1, b.opens) / 1e3,
        "splice_us": splice,
        "sha256_full_us": sha,
        "integrity_us": size_us + claim / 64,
        "claimed_alg": alg,
        "transform_us": transform,
        "envelope_bytes": len(sent[0].sealed.data),
    }
    if prof:
        stream = io.StringIO()
        pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(8)
        out["profile_remote"] = stream.getvalue()
    return out


def run(runs: int, quick: bool) -> Result:
    """All sizes, ``runs`` times."""
    result = Result("edit_cost")
    edits = 128 if quick else 512
    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in SIZES}
    for run_no in range(runs):
        for name, size in SIZES.items():
            raw[name].append(one_size(size, edits, profile=(run_no == 0 and size == 10_000_000)))
    rows = []
    for name in SIZES:
        runs_ = raw[name]

        def med(key: str, runs_: list[dict[str, Any]] = runs_) -> dict[str, float]:
            return summary([r[key]["median"] for r in runs_])

        def val(key: str, runs_: list[dict[str, Any]] = runs_) -> dict[str, float]:
            return summary([r[key] for r in runs_])

        rows.append(
            [
                name,
                med("local_us"),
                med("remote_us"),
                med("ack_us"),
                val("transform_us"),
                val("integrity_us"),
                val("seal_us"),
                val("open_us"),
                val("splice_us"),
            ]
        )
    result.tables.append(
        table(
            f"Per-edit cost vs document size, µs per edit (median of per-edit medians over "
            f"{runs} runs x {edits} one-char edits; min-max across runs)",
            [
                "document",
                "local edit -> sealed PUSH",
                "BROADCAST -> applied text",
                "ACK -> committed",
                "transform",
                "integrity (size + claim/64)",
                "seal",
                "open",
                "splice",
            ],
            rows,
        )
    )
    pyodide = _under_pyodide(edits)
    if isinstance(pyodide, str):
        result.note(pyodide)
    else:
        small, large = pyodide
        result.tables.append(
            table(
                f"The same under Pyodide (Node, libsodium-wrappers; one run x {edits} edits; "
                "µs per edit, median)",
                ["document", "local edit -> sealed PUSH", "BROADCAST -> applied text"],
                [
                    ["10 KB", small["local_us"], small["remote_us"]],
                    ["10 MB", large["local_us"], large["remote_us"]],
                    [
                        "10 MB ÷ 10 KB",
                        large["local_us"] / small["local_us"],
                        large["remote_us"] / small["remote_us"],
                    ],
                ],
            )
        )
    profile = raw["10 MB"][0].get("profile_remote", "")
    result.data = {"edits_per_run": edits, "sizes": SIZES, "runs": raw, "pyodide": pyodide}
    if profile:
        result.note("cProfile of the remote path at 10 MB (top by tottime):\n" + profile)
    return result


def _under_pyodide(edits: int) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """``one_size`` at 10 KB and 10 MB under Pyodide (bench/pyodide_edit_cost.mjs),
    or one line saying why not."""
    script = Path(__file__).with_name("pyodide_edit_cost.mjs")
    if shutil.which("node") is None or not (ROOT / "node_modules" / "pyodide").is_dir():
        return "Pyodide: skipped (no node, or node_modules/pyodide missing: scripts/setup)"
    from relay.edge.wheel import build_wheel  # not in the wheel Pyodide runs this module from

    with tempfile.TemporaryDirectory(prefix="blindpad-bench-wheel-") as tmp:
        wheel = build_wheel(Path(tmp))
        done = subprocess.run(
            ["node", str(script), str(wheel), str(edits)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            cwd=ROOT,
        )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or len(rows) != 2:
        lines = [line for line in done.stderr.splitlines() if "Error" in line] or ["?"]
        return f"Pyodide: failed ({lines[-1][:300]})"
    return rows[0], rows[1]

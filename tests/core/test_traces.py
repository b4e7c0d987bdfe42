"""Real editing traces (tests/data/README.md) typed by one session, watched by another.

The typist applies every patch of every transaction as a local edit; every
few transactions the network moves (its pushes reach the simulated relay,
acks come back, broadcasts reach the watcher), so patches batch keystrokes
the way a fast typist's would.  Both must end on the trace's ``endContent``.
The two large traces are read from ``../shared/data/traces`` and skipped,
saying so, when that folder is absent.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from sim import FakeCodec, SimRelay

from client import textops
from client.doctype import TEXT
from client.engine import Alarm, Engine, SendPatch

HERE = Path(__file__).resolve().parents[1]  # tests/
SHARED = HERE.parent.parent / "shared" / "data" / "traces"
TRACES = {
    "friendsforever_flat": HERE / "data" / "friendsforever_flat.json.gz",
    "clownschool_flat": HERE / "data" / "clownschool_flat.json.gz",
    "seph-blog1": SHARED / "seph-blog1.json.gz",
    "automerge-paper": SHARED / "automerge-paper.json.gz",
}


def replay(trace: dict[str, object], every: int) -> tuple[str, str, int]:
    relay = SimRelay()
    typist = Engine(TEXT, FakeCodec(1), pipeline=4)
    watcher = Engine(TEXT, FakeCodec(2), writer=False)
    outbox: list[bytes] = []

    def network() -> None:
        typist.flush()
        outbox.extend(e.sealed.data for e in typist.events() if isinstance(e, SendPatch))
        while outbox:
            verdict, patch_id, seq = relay.push(outbox.pop(0))
            assert verdict == "ack"
            assert isinstance(seq, int)
            typist.acked(patch_id, seq)
            watcher.receive(relay.log[seq - 1], seq)
            typist.flush()
            outbox.extend(e.sealed.data for e in typist.events() if isinstance(e, SendPatch))
        assert not any(isinstance(e, Alarm) for e in watcher.events())

    assert trace["startContent"] == ""
    txns = trace["txns"]
    assert isinstance(txns, list)
    for number, txn in enumerate(txns):
        for pos, delete, text in txn["patches"]:
            typist.edit(textops.normalize([(pos, delete, text)]))
        typist.flush()
        if number % every == 0:
            network()
    network()
    assert typist.saved
    return typist.view, watcher.view, len(relay.log)


@pytest.mark.parametrize("name", list(TRACES))
def test_trace_replays_to_its_end_content(name: str) -> None:
    path = TRACES[name]
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared traces folder is not beside this checkout)")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        trace = json.load(f)
    typed, watched, patches = replay(trace, every=16)
    assert typed == trace["endContent"]
    assert watched == trace["endContent"]
    assert 0 < patches < len(trace["txns"])  # keystrokes were batched into patches

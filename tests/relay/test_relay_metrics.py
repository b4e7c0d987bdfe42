"""``/metrics`` through prometheus_client: latency histograms, fan-out, queues, process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from relay_support import ROOT, Client, Pad, running_relay, small_limits

from relay.app import RelayConfig
from wire import frames as f

ZERO = bytes(32)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_histograms_count_what_happened(tmp_path: Path) -> None:
    config = RelayConfig(
        store_url=f"sqlite:///{tmp_path / 'm.sqlite3'}", web_dir=None, limits=small_limits()
    )
    pushes = 5

    async def scenario(url: str) -> str:
        pad = Pad()
        async with Client.connect(handle) as a, Client.connect(handle) as b:
            await a.subscribe(pad)
            await b.subscribe(pad)
            parent = ZERO
            for i in range(pushes):
                envelope, parent = pad.patch(parent, f"{i}".encode())
                assert isinstance(await a.push(envelope), f.Ack)
            stale, _ = pad.patch(ZERO, b"late")
            assert isinstance(await a.push(stale), f.Refuse)
            async with httpx.AsyncClient(base_url=url) as http:
                response = await http.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return response.text

    with running_relay(config) as handle:
        text = asyncio.run(scenario(handle.url))
    got = _samples(text)
    assert got[("blindpad_push_ack_seconds_count", (("outcome", "ack"),))] == pushes
    assert got[("blindpad_push_ack_seconds_count", (("outcome", "refuse"),))] == 1
    assert got[("blindpad_store_append_seconds_count", ())] == pushes + 1  # the stale one too
    assert got[("blindpad_broadcast_fanout_count", ())] == pushes
    assert got[("blindpad_broadcast_fanout_sum", ())] == 2 * pushes  # author's ACK + b
    assert got[("blindpad_outgoing_queue_frames_count", ())] == 2  # two live connections
    assert got[("blindpad_commit_batch_size_count", ())] >= 1
    assert got[("blindpad_refusals_total", (("reason", "STALE"),))] == 1
    assert got[("blindpad_messages_in_total", (("type", "PUSH"),))] == pushes + 1
    assert got[("blindpad_sqlite_synchronous", ())] == 2
    assert got[("process_cpu_seconds_total", ())] > 0
    assert "python_info{" in text


def test_access_log_option(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "--port=0", "--store=memory:", "--no-web", "--access-log"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        url = line.split("listening on ")[1].split(" ")[0]
        assert httpx.get(url + "healthz").text == "ok\n"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert '"GET /healthz HTTP/1.1" 200' in out  # uvicorn's access log goes to stdout


def test_a_tally_counts_a_value_equal_to_a_bound_in_that_bucket_and_keeps_labels_apart() -> None:
    from relay.metrics import Tally

    tally = Tally("t_seconds", "A test.", (1, 2), label="outcome")
    for value, outcome in [(1, "ack"), (1.5, "ack"), (3, "ack"), (0.5, "refuse")]:
        tally.observe(value, outcome)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in tally.family().samples}
    ack = (("outcome", "ack"),)
    assert [got[("t_seconds_bucket", (("le", le), *ack))] for le in ("1.0", "2.0", "+Inf")] == [
        1,
        2,
        3,
    ]
    assert (got[("t_seconds_count", ack)], got[("t_seconds_sum", ack)]) == (3, 5.5)
    assert got[("t_seconds_bucket", (("le", "1.0"), ("outcome", "refuse")))] == 1

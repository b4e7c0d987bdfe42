"""One client's pipelined pushes: answered in order, durable, and sharing commits."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from relay_support import Client, Pad, running_relay

from relay.app import RelayConfig
from relay.limits import Limits
from wire import frames as f

ZERO = bytes(32)


def test_pipelined_pushes_are_acked_in_order_and_share_group_commits(tmp_path: Path) -> None:
    total = 200
    limits = Limits(rate_per_second=100_000, rate_burst=100_000)
    config = RelayConfig(
        store_url=f"sqlite:///{tmp_path / 'r.sqlite3'}", web_dir=None, limits=limits
    )

    async def scenario(url: str, ws: Client) -> None:
        pad = Pad()
        await ws.subscribe(pad)
        parent, requests, envelopes = ZERO, [], []
        for i in range(total):
            envelope, parent = pad.patch(parent, f"{i}".encode())
            envelopes.append(envelope)
        for envelope in envelopes:  # all sent before any ack is read
            request = ws.request_id()
            requests.append(request)
            await ws.send(f.Push(request, envelope))
        # A stale push in the middle of the stream is refused in its turn.
        stale, _ = pad.patch(ZERO, b"late")
        stale_request = ws.request_id()
        await ws.send(f.Push(stale_request, stale))
        answers = [await ws.recv() for _ in range(total + 1)]
        acks = [a for a in answers if isinstance(a, f.Ack)]
        assert [a.request_id for a in acks] == requests
        assert [a.seq for a in acks] == list(range(1, total + 1))
        assert isinstance(answers[-1], f.Refuse)
        assert answers[-1].request_id == stale_request
        async with httpx.AsyncClient(base_url=url) as http:
            metrics = (await http.get("/metrics")).text
        commits = int(re.search(r"blindpad_commit_batch_size_count (\d+)", metrics)[1])
        assert commits < total  # pushes shared fsyncs rather than one each

    async def main(relay_url: str) -> None:
        async with Client.connect(handle) as ws:
            await scenario(relay_url, ws)

    with running_relay(config) as handle:
        asyncio.run(main(handle.url))


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_pipelined_pushes_to_two_pads_are_answered_in_the_order_sent(
    tmp_path: Path, store: str
) -> None:
    """Answers follow the pushes, whichever append the store finishes first: the
    SQLite writer serves channels round-robin, so one pad's appends can be done
    before those of another pad pushed earlier."""
    limits = Limits(rate_per_second=100_000, rate_burst=100_000)
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}" if store == "sqlite" else "memory:"
    config = RelayConfig(store_url=url, web_dir=None, limits=limits)

    async def scenario(ws: Client) -> None:
        pads = [Pad(), Pad()]
        for pad in pads:
            await ws.subscribe(pad)
        parents, sent = [ZERO, ZERO], []
        for i in range(120):
            n = 0 if i % 3 else 1  # two to the first pad, one to the second
            if i % 17 == 16:  # now and then a stale one, refused in its turn
                envelope, _ = pads[n].patch(ZERO, f"late {i}".encode())
            else:
                envelope, parents[n] = pads[n].patch(parents[n], f"{i}".encode())
            request = ws.request_id()
            sent.append(request)
            await ws.send(f.Push(request, envelope))
        answers: list[int] = []
        while len(answers) < len(sent):
            frame = await ws.recv()
            if isinstance(frame, f.Ack | f.Refuse):
                answers.append(frame.request_id)
        assert answers == sent

    async def main() -> None:
        async with Client.connect(handle) as ws:
            await scenario(ws)

    with running_relay(config) as handle:
        asyncio.run(main())

"""End-to-end write-ahead recovery (issue 11, item 1): a real relay, a killed SDK process.

A's process types, one patch reaches the relay with its ack lost and the
next ones never reach it; the process is killed.  B then writes enough for
a snapshot, so A's next process loads the snapshot past the parent of every
logged patch.  It must find which of them landed, merge the rest onto B's
text, and lose and double nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from relay_support import free_port, running_relay
from test_sdk_e2e import FAST, TIMEOUT, opener, relay_on, until

from client import Pad, Status
from relay.app import RelayConfig
from relay.edge.faults import Faults

ROOT = Path(__file__).resolve().parents[2]

CRASHER = """
import asyncio, sys
from client import Pad, Backoff
from client.transport import WebsocketsConnector

DROP = []

class PushesLost:
    # The transport loses PUSH frames (type 0x04) once DROP is set.
    def __init__(self, inner):
        self.inner = inner
    async def send(self, data):
        if not (DROP and data[0] == 0x04):
            await self.inner.send(data)
    async def recv(self):
        return await self.inner.recv()
    async def close(self):
        await self.inner.close()

class Connector:
    async def connect(self, url):
        return PushesLost(await WebsocketsConnector().connect(url))

async def main(link, state):
    pad = await Pad.open(link, state_dir=state, backoff=Backoff(0.05, cap=0.5),
                         connector=Connector())
    await pad.insert(0, "[A1]")
    await pad.synced(60)
    await pad.insert(len(pad.text), "[A2]")  # stored; its ack is lost
    print("sent", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the loop keeps sending meanwhile
    DROP.append(True)
    for token in ("[A3]", "[A4]"):  # never reach the relay
        await pad.insert(len(pad.text), token)
    await pad.delete(0, 1)  # and a delete: "[A1]" loses its "["
    assert len(pad.session.pending()) == 4, pad.session.pending()  # all sealed and logged
    print("typed", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_logged_work_survives_a_snapshot_past_its_parent_exactly_once(tmp_path: Path) -> None:
    stored: list[bytes] = []

    def drop_ack(patch_id: bytes) -> bool:
        stored.append(patch_id)
        return len(stored) == 3  # [A1] is patch 2 (after B's first); [A2] is 3

    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    state = tmp_path / "state"
    chunks = [f"<B{i}:" + "x" * 7000 + ">" for i in range(4)]
    with running_relay(faults=Faults(drop_ack=drop_ack)) as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with opener(links.edit_link) as b:
                await b.insert(0, "<start>")
                await b.synced(TIMEOUT)
                env = {**os.environ, "PYTHONPATH": str(ROOT)}
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(script),
                    links.edit_link,
                    str(state),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=env,
                )
                try:
                    assert proc.stdout is not None
                    assert proc.stdin is not None
                    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
                    assert line.strip() == b"sent"
                    await until(lambda: "[A2]" in b.text, b, timeout=10)  # stored, ack dropped
                    proc.stdin.write(b"go\n")
                    await proc.stdin.drain()
                    line = await asyncio.wait_for(proc.stdout.readline(), TIMEOUT)
                    assert line.strip() == b"typed"
                finally:
                    proc.kill()
                    await proc.wait()
                # B writes on: more bytes than the document, so B snapshots.
                for chunk in chunks:
                    await b.insert(len(b.text), chunk)
                    await b.synced(TIMEOUT)
                expected_b = b.text
                assert expected_b == "[A1]<start>[A2]" + "".join(chunks)
            async with opener(links.edit_link, state_dir=state) as a:
                engine = a.session.engine
                assert engine.snapshots.height > 0, "A joined from a snapshot"
                await until(lambda: a.status == Status.SAVED, a)
                assert not a.alarms, a.alarms
                text = a.text
            for token in ("A1]", "[A2]", "[A3]", "[A4]", *chunks, "<start>"):
                assert text.count(token) == 1, (token, text[:80])
            assert "[A1]" not in text  # A's delete applied
            async with opener(links.view_link) as reader:
                assert reader.text == text

        asyncio.run(main())


def test_offline_typing_past_the_pipeline_survives_a_crash_and_a_snapshot(tmp_path: Path) -> None:
    port = free_port()
    config = RelayConfig(store_url=f"sqlite:///{tmp_path / 'relay.sqlite3'}", web_dir=None)
    tokens = [f"[off{i}]" for i in range(12)]  # more edits than the pipeline's 4 patches
    chunks = [f"<B{i}:" + "y" * 7000 + ">" for i in range(4)]
    crashed = tmp_path / "crashed"

    async def main() -> None:
        first = relay_on(port, config)
        links = await Pad.create(first.__enter__().url)
        a = await Pad.open(links.edit_link, state_dir=tmp_path / "state", backoff=FAST)
        try:
            await a.insert(0, "<a>")
            await a.synced(TIMEOUT)
            await asyncio.to_thread(first.__exit__, None, None, None)
            await until(lambda: a.status == Status.OFFLINE, a)
            for token in tokens:
                await a.insert(len(a.text), token)
            assert 0 < len(a.session.pending()) <= 4  # folded into the pipeline's patches
            shutil.copytree(tmp_path / "state", crashed)  # the disk as a crash leaves it
        finally:
            await a.aclose()
        second = relay_on(port, config)
        await asyncio.to_thread(second.__enter__)
        try:
            async with opener(links.edit_link) as b:  # more than the pad: B snapshots
                for chunk in chunks:
                    await b.insert(len(b.text), chunk)
                    await b.synced(TIMEOUT)
            async with opener(links.edit_link, state_dir=crashed) as again:
                assert again.session.engine.snapshots.height > 1, "joined past A's parent"
                await until(lambda: again.status == Status.SAVED, again)
                assert not again.alarms, again.alarms
                text = again.text
            for token in ["<a>", *tokens, *chunks]:
                assert text.count(token) == 1, (token, text[:80])
            async with opener(links.view_link) as reader:
                assert reader.text == text
        finally:
            await asyncio.to_thread(second.__exit__, None, None, None)

    asyncio.run(main())

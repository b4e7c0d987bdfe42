"""A typist or a watcher of the SDK trace scenario, each in its own process.

``python -m bench.sdk_peer type EDIT_LINK TRACE LIMIT``: opens the pad with
:class:`client.Pad` (default options, no state directory), prints ``READY``,
waits for ``go`` on stdin, then types the first ``LIMIT`` txns of the trace
(each patch one :meth:`~client.Pad.delete` and/or :meth:`~client.Pad.insert`,
yielding to the event loop after every txn), waits until "saved", and prints
one JSON line (times on CLOCK_MONOTONIC, comparable across processes).

``python -m bench.sdk_peer watch VIEW_LINK TARGET_FILE TIMEOUT_S``: opens the
pad read-only, prints ``READY``, and prints one JSON line when its text
equals the target (UTF-8 file), or when the timeout passes.

Both count the websocket message bytes they send and receive (``wire_out``,
``wire_in`` in their JSON line).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from bench.common import load_trace, self_cpu
from bench.wirecount import wire
from client import Pad

TIMEOUT = 900.0


async def type_trace(link: str, name: str, limit: int) -> None:
    trace = load_trace(name)
    assert trace is not None
    edits = [
        [tuple(patch) for patch in txn["patches"]] for txn in trace["txns"][:limit]
    ]  # decoded before the clock starts
    async with Pad.open(link, state_dir=None) as pad:
        await pad.synced(TIMEOUT)
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        c0, t0 = self_cpu(), time.monotonic()
        wire.update({"out": 0, "in": 0})
        for txn in edits:
            for pos, delete, text in txn:
                if delete:
                    await pad.delete(pos, delete)
                if text:
                    await pad.insert(pos, text)
            await asyncio.sleep(0)
        typed = time.monotonic()
        await pad.synced(TIMEOUT)
        out = {
            "t0": t0,
            "typed_s": typed - t0,
            "saved_s": time.monotonic() - t0,
            "cpu_s": self_cpu() - c0,
            "patches": int(pad.session.debug_state()["height"]),
            "alarms": [str(alarm) for alarm in pad.alarms[:5]],
            "length": pad.session.text_length,
            "wire_out": wire["out"],
            "wire_in": wire["in"],
        }
    print(json.dumps(out), flush=True)


async def watch(link: str, target_file: str, timeout: float) -> None:
    target = Path(target_file).read_text(encoding="utf-8")
    async with Pad.open(link, state_dir=None) as pad:
        await pad.synced(TIMEOUT)
        print("READY", flush=True)
        c0 = self_cpu()
        wire.update({"out": 0, "in": 0})

        async def until_target() -> float:
            while not (pad.session.text_length == len(target) and pad.text == target):
                await pad.changed()
            return time.monotonic()

        try:
            t_end, ok = await asyncio.wait_for(until_target(), timeout), True
        except TimeoutError:
            t_end, ok = time.monotonic(), False
        out = {
            "ok": ok and not pad.alarms,
            "t_end": t_end,
            "cpu_s": self_cpu() - c0,
            "alarms": [str(alarm) for alarm in pad.alarms[:5]],
            "length": pad.session.text_length,
            "wire_out": wire["out"],
            "wire_in": wire["in"],
        }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "type":
        asyncio.run(type_trace(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        asyncio.run(watch(sys.argv[2], sys.argv[3], float(sys.argv[4])))

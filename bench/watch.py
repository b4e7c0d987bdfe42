"""Client B of the trace scenario, in its own process: watch until the text is the target.

``python -m bench.watch WS_URL EDIT_SECRET_HEX TARGET_FILE TIMEOUT_S``: connects
read-only (view keys), subscribes, prints ``READY``, waits until its text
equals the target (UTF-8 file), then prints one JSON line with the time
(CLOCK_MONOTONIC, comparable across processes) and its byte counters.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import crypto
from bench.session import open_session


async def main(url: str, secret_hex: str, target_file: str, timeout: float) -> None:
    target = Path(target_file).read_text(encoding="utf-8")
    keys = crypto.PadKeys.from_edit_secret(bytes.fromhex(secret_hex))
    session = await open_session(url, keys.view(), writer=False, from_snapshot=True)
    done = asyncio.Event()
    t_end = 0.0

    def changed() -> None:
        nonlocal t_end
        view = session.engine.view
        if len(view) == len(target) and view == target and not done.is_set():
            t_end = time.monotonic()
            done.set()

    session.on_change = changed
    changed()
    print("READY", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout)
        ok = True
    except TimeoutError:
        ok = False
    out = {
        "ok": ok and not session.alarms,
        "t_end": t_end,
        "bytes_in": session.bytes_in,
        "bytes_out": session.bytes_out,
        "frames_in": session.frames_in,
        "alarms": session.alarms[:5],
        "view_len": len(session.view),
        "open_s": session.codec.open_ns / 1e9,
        "opens": session.codec.opens,
    }
    print(json.dumps(out), flush=True)
    await session.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))

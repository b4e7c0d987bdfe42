"""The pycrdt-websocket peer, run with bench/.env's Python (never the project's).

``serve PORT``: a pycrdt-websocket WebsocketServer behind ``websockets.serve``
on loopback; stops when stdin closes.
``watch URL TARGET_FILE TIMEOUT``: client B; prints READY once synced, then a
JSON line when its text equals the target (time on CLOCK_MONOTONIC).
``type URL TRACE_FILE TIMEOUT``: client A; prints READY once synced, waits for a
line on stdin, types every txn of the trace as one transaction (one update
each, pycrdt's normal use) as fast as it can, prints its start time, then
waits for a second stdin line and prints its byte counters.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from pathlib import Path

import anyio
from pycrdt import Channel, Doc, Provider, Text
from pycrdt.websocket import WebsocketServer
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


class Counted(Channel):
    """A pycrdt Channel over a ``websockets`` connection, counting bytes."""

    def __init__(self, ws, path: str) -> None:
        self._ws = ws
        self._path = path
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_out = 0

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except Exception:
            raise StopAsyncIteration() from None

    async def send(self, message: bytes) -> None:
        self.bytes_out += len(message)
        self.messages_out += 1
        await self._ws.send(message)

    async def recv(self) -> bytes:
        data = await self._ws.recv()
        self.bytes_in += len(data)
        return bytes(data)


async def serve_main(port: int) -> None:
    async with WebsocketServer(auto_clean_rooms=False) as server:

        async def handler(ws) -> None:
            await server.serve(Counted(ws, ws.request.path))

        async with serve(
            handler, "127.0.0.1", port, max_size=None, compression=None, ping_interval=None
        ):
            print("LISTENING", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)


async def watch_main(url: str, target_file: str, timeout: float) -> None:
    target = Path(target_file).read_text(encoding="utf-8")
    doc = Doc()
    text = doc.get("text", type=Text)
    async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        channel = Counted(ws, "bench")
        async with Provider(doc, channel) as provider:
            await provider.synced.wait()
            print("READY", flush=True)
            deadline = time.monotonic() + timeout
            ok = False
            t_end = 0.0
            while time.monotonic() < deadline:
                if len(text) == len(target) and str(text) == target:
                    t_end = time.monotonic()
                    ok = True
                    break
                await asyncio.sleep(0.002)
            print(
                json.dumps(
                    {
                        "ok": ok,
                        "t_end": t_end,
                        "len": len(text),
                        "target_len": len(target),
                        "bytes_in": channel.bytes_in,
                        "bytes_out": channel.bytes_out,
                    }
                ),
                flush=True,
            )


def byte_lengths(txns: list) -> list:
    """The txns with each delete length given in UTF-8 bytes of the deleted text.

    pycrdt 0.14.13's ``del text[a:b]`` takes ``a`` in code points but removes
    ``b - a`` UTF-8 *bytes* (``remove_range(start, stop - start)``), so a
    deletion over non-ASCII text removes too little.  This pre-pass (not
    timed) replays the trace on a str to pass the byte length instead.
    """
    s = ""
    out = []
    for txn in txns:
        ops = []
        for pos, delete, insert in txn["patches"]:
            nbytes = len(s[pos : pos + delete].encode("utf-8"))
            ops.append((pos, nbytes, insert))
            s = s[:pos] + insert + s[pos + delete :]
        out.append(ops)
    return out


async def type_main(url: str, trace_file: str, limit: int) -> None:
    with gzip.open(trace_file, "rt", encoding="utf-8") as f:
        txns = byte_lengths(json.load(f)["txns"][:limit])
    doc = Doc()
    text = doc.get("text", type=Text)
    async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
        channel = Counted(ws, "bench")
        async with Provider(doc, channel) as provider:
            await provider.synced.wait()
            print("READY", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            t0 = time.monotonic()
            c0 = time.process_time()
            for ops in txns:
                with doc.transaction():
                    for pos, delete, insert in ops:
                        if delete:
                            del text[pos : pos + delete]
                        if insert:
                            text.insert(pos, insert)
                await asyncio.sleep(0)
            typed = time.monotonic()
            print(json.dumps({"t0": t0, "typed": typed}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)
            print(
                json.dumps(
                    {
                        "bytes_in": channel.bytes_in,
                        "bytes_out": channel.bytes_out,
                        "updates": channel.messages_out,
                        "cpu_s": time.process_time() - c0,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "serve":
        asyncio.run(serve_main(int(sys.argv[2])))
    elif command == "watch":
        asyncio.run(watch_main(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    elif command == "type":
        asyncio.run(type_main(sys.argv[2], sys.argv[3], int(sys.argv[4])))

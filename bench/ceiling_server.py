"""The ceilings: a bare Starlette + uvicorn websocket broadcast server, with and
without the one check a content-blind relay cannot skip.

``/ws/{room}``: every binary message is sent to the room's other members,
and its first 8 bytes go back to the sender as the acknowledgement.  No
storage, no checks: what this machine can do at best with the same stack
(uvicorn's websockets sans-I/O implementation, like the relay).

``/wsv/{verify_key_hex}``: the same, but each message is ``u32 index ||
sealed envelope`` and the envelope's channel signature is checked first
(:func:`crypto.envelope.verify_channel_signature`, the relay's own check,
one Ed25519 verify) against the key the room is named by; a message that
fails is answered ``b"BAD!"`` and not broadcast.  The least a content-blind
relay must do per push (issue 15's second ceiling).

Run: ``python -m bench.ceiling_server PORT``.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import crypto
from crypto.envelope import verify_channel_signature

rooms: dict[str, set[WebSocket]] = defaultdict(set)


async def endpoint(ws: WebSocket) -> None:
    await ws.accept()
    room = rooms[ws.path_params["room"]]
    room.add(ws)
    try:
        while True:
            data = await ws.receive_bytes()
            for other in list(room):
                if other is not ws:
                    await other.send_bytes(data)
            await ws.send_bytes(data[:8])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        room.discard(ws)


async def verifying(ws: WebSocket) -> None:
    await ws.accept()
    name = ws.path_params["key"]
    key = bytes.fromhex(name)
    room = rooms["v:" + name]
    room.add(ws)
    try:
        while True:
            data = await ws.receive_bytes()
            try:
                verify_channel_signature(data[4:], key)
            except crypto.CryptoError:
                await ws.send_bytes(b"BAD!")
                continue
            for other in list(room):
                if other is not ws:
                    await other.send_bytes(data)
            await ws.send_bytes(data[:8])
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        room.discard(ws)


app = Starlette(
    routes=[WebSocketRoute("/ws/{room}", endpoint), WebSocketRoute("/wsv/{key}", verifying)]
)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        ws="websockets-sansio",
        log_level="warning",
        access_log=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
    )

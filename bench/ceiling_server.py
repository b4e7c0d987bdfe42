"""The ceiling: a bare Starlette + uvicorn websocket broadcast server.

``/ws/{room}``: every binary message is sent to the room's other members,
and its first 8 bytes go back to the sender as the acknowledgement.  No
storage, no checks: what this machine can do at best with the same stack
(uvicorn's websockets sans-I/O implementation, like the relay).
Run: ``python -m bench.ceiling_server PORT``.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

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


app = Starlette(routes=[WebSocketRoute("/ws/{room}", endpoint)])

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

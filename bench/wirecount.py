"""Count this process's websocket message bytes, both ways (imported for its effect).

Importing this module wraps :class:`client.transport.WebsocketsTransport`'s
``send`` and ``recv`` so that :data:`wire` counts the bytes of every message
the SDK sends (``out``) and receives (``in``).  The bench's SDK processes
(:mod:`bench.sdk_peer`, the typists of :mod:`bench.s_human`) import it.
"""

from __future__ import annotations

import client.transport as transport

wire = {"out": 0, "in": 0}  # websocket message bytes of this process
_send, _recv = transport.WebsocketsTransport.send, transport.WebsocketsTransport.recv


async def _counted_send(self: transport.WebsocketsTransport, data: bytes) -> None:
    wire["out"] += len(data)
    await _send(self, data)


async def _counted_recv(self: transport.WebsocketsTransport) -> bytes:
    data = await _recv(self)
    wire["in"] += len(data)
    return data


transport.WebsocketsTransport.send = _counted_send  # type: ignore[method-assign]
transport.WebsocketsTransport.recv = _counted_recv  # type: ignore[method-assign]

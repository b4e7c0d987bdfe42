"""Shared fixtures for the relay tests: a real relay on loopback and a client.

* :func:`running_relay` serves :func:`relay.app.create_app` with uvicorn (the
  websockets sans-I/O implementation) on a free loopback port in a thread, so
  fault hooks can be injected; :class:`RelayProcess` runs ``python -m relay``
  as a subprocess for tests that kill it.
* :class:`Client` is a thin real-``websockets`` client speaking the frames of
  :mod:`relay.frames`; :class:`Pad` seals real envelopes with crypto.  A
  client's SUBSCRIBE carries the pad's read token, and HTTP readers send
  :meth:`Pad.read_headers` (the relay serves nothing of a pad without them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, TypeVar

import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import crypto
from crypto import envelope2
from crypto.envelope import Kind, envelope_id, seal, seal_ephemeral
from relay.app import RelayConfig, create_app
from relay.cli import uvicorn_config
from relay.edge.faults import Faults
from relay.limits import Limits
from relay.store import Store
from wire import frames as f

#: A hang guard, not a speed limit: one step (a relay starting, one answer)
#: that takes this long has hung.  Generous so a loaded machine never trips it.
TIMEOUT = 120.0
F = TypeVar("F", bound=f.Frame)
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class RelayHandle:
    """Where a running relay listens."""

    url: str

    @property
    def ws_url(self) -> str:
        """The websocket endpoint."""
        return self.url.replace("http://", "ws://").rstrip("/") + "/ws"


@contextlib.contextmanager
def running_relay(
    config: RelayConfig | None = None,
    *,
    faults: Faults | None = None,
    port: int = 0,
    clock: Callable[[], float] | None = None,
    store: Store | None = None,
) -> Iterator[RelayHandle]:
    """Serve a relay in a background thread on a loopback port.

    Args:
        config: defaults to an in-memory store and default limits.
        faults: fault hooks.
        port: 0 picks a free port; a fixed one lets a test restart the relay
            under the same links (see :func:`free_port`).
        clock: the relay's clock (tests of timeouts advance a fake one).
        store: an unopened store instead of the config's.

    Yields:
        The relay's address.
    """
    config = config or RelayConfig(store_url="memory:", web_dir=None)
    app = create_app(config, faults=faults, clock=clock, store=store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    server = uvicorn.Server(uvicorn_config(app, config.limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("relay did not start")
            time.sleep(0.01)
        yield RelayHandle(f"http://127.0.0.1:{sock.getsockname()[1]}/")
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()


def free_port() -> int:
    """A loopback port free right now (for a relay restarted on the same port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def limit_args(limits: Limits) -> list[str]:
    """The relay's command-line flags that set every one of ``limits``."""
    args = []
    for field in dataclasses.fields(Limits):
        args += [f"--{field.name.replace('_', '-')}", str(getattr(limits, field.name))]
    return args


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class RelayProcess:
    """``python -m relay`` in a subprocess (for SIGKILL, CLI and memory tests).

    Args:
        args: extra CLI arguments (``--store`` and so on).
        stderr: where the relay's log goes (default: a pipe).
    """

    def __init__(self, *args: str, stderr: int | IO[str] = subprocess.PIPE) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"relay did not start: {line!r}")
        self.handle = RelayHandle(line.split("listening on ")[1].split(" ")[0])

    @property
    def pid(self) -> int:
        """The relay's process id."""
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL the relay and reap it."""
        self.proc.kill()
        self.stop()

    def stop(self) -> None:
        """Terminate (if alive), wait, and close the pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(TIMEOUT)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


class Pad:
    """A pad's keys and an author, sealing real envelopes with crypto."""

    def __init__(self) -> None:
        self.keys = crypto.PadKeys.generate()
        self.author = crypto.Author.generate("tester")
        self.session = crypto.Session.new()

    @property
    def channel_id(self) -> bytes:
        """The pad's channel id."""
        return self.keys.channel_id

    def patch(self, parent: bytes, content: bytes = b"x") -> tuple[bytes, bytes]:
        """Seal a patch on ``parent``; return (envelope, id)."""
        envelope = seal(self.keys, self.author, Kind.PATCH, parent, content)
        return envelope, envelope_id(envelope)

    def sealed(self, kind: Kind, ref: bytes, content: bytes = b"s") -> bytes:
        """Seal a snapshot or trim of patch ``ref``."""
        return seal(self.keys, self.author, kind, ref, content)

    def session2(self, started_ms: int = 1) -> tuple[envelope2.SessionKeys, bytes]:
        """A fresh version-2 session of the pad's author and its record."""
        session = envelope2.SessionKeys.generate()
        record = envelope2.seal_session_record(self.keys, self.author, session, started_ms)
        return session, record

    def patch2(
        self,
        session: envelope2.SessionKeys,
        parent: bytes,
        height: int,
        counter: int,
        content: bytes = b"x",
    ) -> tuple[bytes, bytes]:
        """Seal a version-2 patch; return (envelope, id)."""
        envelope = self.sealed2(session, Kind.PATCH, parent, height, counter, content)
        return envelope, envelope_id(envelope)

    def sealed2(
        self,
        session: envelope2.SessionKeys,
        kind: Kind,
        ref: bytes,
        height: int,
        counter: int,
        content: bytes = b"s",
    ) -> bytes:
        """Seal a version-2 envelope of ``kind`` (patch, snapshot, trim, dispute)."""
        return envelope2.seal(self.keys, session, kind, ref, height, counter, content)

    def ephemeral(self, payload: bytes = b"cursor") -> bytes:
        """Seal an ephemeral."""
        return seal_ephemeral(self.keys, self.author, self.session, payload, now_ms=1)

    def read_headers(self) -> dict[str, str]:
        """The HTTP header that reads this pad: ``Authorization: Blindpad-Read <hex>``."""
        return read_headers(self.keys.read_token)


def read_headers(token: bytes) -> dict[str, str]:
    """``Authorization: Blindpad-Read <64 hex>`` for a read token."""
    return {"Authorization": f"Blindpad-Read {token.hex()}"}


class Client:
    """A protocol client over a real websocket."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection, welcome: f.Welcome) -> None:
        self.ws = ws
        self.welcome = welcome

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, relay: RelayHandle, token: bytes = b"") -> AsyncIterator[Client]:
        """Open a connection and exchange HELLO / WELCOME."""
        async with connect(relay.ws_url, max_size=None, open_timeout=TIMEOUT) as ws:
            await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION, token)))
            welcome = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert isinstance(welcome, f.Welcome), welcome
            yield cls(ws, welcome)

    @staticmethod
    def request_id() -> int:
        """A fresh request id."""
        return next(Client._ids)

    async def send(self, frame: f.Frame) -> None:
        """Send one frame."""
        await self.ws.send(f.encode(frame))

    async def recv(self) -> f.Frame:
        """Receive one frame."""
        data = await asyncio.wait_for(self.ws.recv(), TIMEOUT)
        assert isinstance(data, bytes)
        return f.decode(data)

    async def expect(self, cls: type[F]) -> F:
        """Receive frames until one of ``cls`` (skipping peer notices)."""
        while True:
            frame = await self.recv()
            if isinstance(frame, cls):
                return frame
            assert isinstance(frame, f.PeerJoined | f.PeerLeft), frame

    async def subscribe(
        self,
        pad: Pad,
        since: int = 0,
        start: f.SubscribeFrom = f.SubscribeFrom.SINCE,
        key: bytes | None = None,
        read_token: bytes | None = None,
    ) -> list[f.Frame]:
        """Subscribe with the pad's read token (or ``read_token``); return the
        frames up to and including HISTORY_END or REFUSE."""
        rid = self.request_id()
        vk = pad.keys.verify_key if key is None else key
        token = pad.keys.read_token if read_token is None else read_token
        await self.send(f.Subscribe(rid, pad.channel_id, start, since, vk, token))
        got: list[f.Frame] = []
        while True:
            frame = await self.recv()
            got.append(frame)
            if isinstance(frame, f.HistoryEnd | f.Refuse) and frame.request_id == rid:
                return got

    async def push(self, envelope: bytes, channel: bytes = f.ZERO_ID) -> f.Ack | f.Refuse:
        """Push a patch (``channel``: a version-2 envelope's) and wait for its
        ACK or REFUSE."""
        rid = self.request_id()
        await self.send(f.Push(rid, envelope, channel_id=channel))
        return await self.answer(rid)

    async def register(self, pad: Pad, record: bytes) -> f.Ack | f.Refuse:
        """Register a version-2 session record on ``pad`` (SESSION) and wait for
        its ACK or REFUSE."""
        rid = self.request_id()
        await self.send(f.Session(rid, pad.channel_id, record))
        return await self.answer(rid)

    async def answer(self, rid: int) -> f.Ack | f.Refuse:
        """Wait for the ACK or REFUSE of request ``rid``."""
        while True:
            frame = await self.recv()
            if isinstance(frame, f.Ack | f.Refuse) and frame.request_id == rid:
                return frame


async def closing_error(ws: ClientConnection) -> tuple[f.Error, int | None]:
    """Read until the relay's ERROR; return it and the websocket close code."""
    while True:
        frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if isinstance(frame, f.Error):
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            return frame, ws.close_code


async def knock(relay: RelayHandle, forwarded: str | None = None) -> ClientConnection | f.Error:
    """Open a connection and say HELLO: the open connection if admitted, else the
    relay's ERROR (TOO_MANY_CONNECTIONS closes with 4010).  ``forwarded`` is sent as
    ``X-Forwarded-For``."""
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    ws = await connect(
        relay.ws_url, max_size=None, additional_headers=headers, open_timeout=TIMEOUT
    ).__aenter__()
    with contextlib.suppress(ConnectionClosed):  # a refused one is closed at once
        await ws.send(f.encode(f.Hello(f.PROTOCOL_VERSION)))
    frame = f.decode(await asyncio.wait_for(ws.recv(), TIMEOUT))
    if isinstance(frame, f.Error):
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 4010
        return frame
    assert isinstance(frame, f.Welcome), frame
    return ws


def small_limits(**overrides: int) -> Limits:
    """Default limits with a generous rate, overridden as given."""
    values = {"rate_per_second": 100_000, "rate_burst": 100_000, **overrides}
    return Limits(**values)

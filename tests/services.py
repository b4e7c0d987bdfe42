"""The machine's services for tests that need them: PostgreSQL and Redis.

Each test that needs a service asks here for its address.  The address comes
from an environment variable with the project machines' default; when the
service does not answer, the test is skipped with a line saying what to start,
except under ``CI=true``, where a missing service is a failure (CI promises
both services, so a skip there would hide a broken setup).

* ``BLINDPAD_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
* ``BLINDPAD_TEST_REDIS`` (default ``redis://127.0.0.1:6379/0``)

:func:`fresh_postgres` gives each test its own schema in that database (a
store URL whose ``schema`` names it), so tests, and test runs side by side,
never see each other's pads; the schema is dropped afterwards.
:class:`Proxy` stands between a client and a service so a test can cut,
refuse or swallow the traffic (an outage or a partition on demand).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def _missing(what: str, variable: str, url: str) -> None:
    message = f"{what} is not reachable at {url} (set {variable}, or start it: see `env`)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the service: {message}")
    pytest.skip(message)


def postgres_url() -> str:
    """The test PostgreSQL's URL, or skip (fail under CI=true) if it does not answer."""
    url = os.environ.get("BLINDPAD_TEST_POSTGRES", POSTGRES_DEFAULT)
    if not _reachable(url, 5432):
        _missing("PostgreSQL", "BLINDPAD_TEST_POSTGRES", url)
    return url


def redis_url() -> str:
    """The test Redis's URL, or skip (fail under CI=true) if it does not answer."""
    url = os.environ.get("BLINDPAD_TEST_REDIS", REDIS_DEFAULT)
    if not _reachable(url, 6379):
        _missing("Redis", "BLINDPAD_TEST_REDIS", url)
    return url


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def _sql(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A store URL for a new, empty schema of the test database; dropped afterwards."""
    url = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        yield _with_schema(url, schema)
    finally:
        asyncio.run(_sql(url, f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


class Proxy:
    """A loopback TCP proxy in front of a service that can refuse or swallow traffic.

    ``mode`` is ``forward``, ``refuse`` (accept, then close at once) or
    ``swallow`` (accept and read, forward nothing: a partition).  Leaving
    ``swallow`` cuts the links it held, as a partition's end would.
    """

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 0)
        self.mode = "forward"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def set(self, mode: str) -> None:
        if self.mode == "swallow" and mode != "swallow":
            self.cut()
        self.mode = mode

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "refuse":
                return
            if self.mode == "swallow":
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                up_writer.transport.abort()
                self._writers.discard(up_writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a link ends (cancelled only when the proxy closes: nothing waits on it)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "swallow":
                    continue
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()

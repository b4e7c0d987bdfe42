"""``blindpad relay``: run the relay, back it up, seed it.

Theory of operation
-------------------
``blindpad relay [OPTIONS]`` builds a :class:`relay.app.RelayConfig` from the
options (every :class:`relay.limits.Limits` field is an option named after it,
``--max-frame-bytes`` and so on), binds the listening socket itself (so
``--port 0`` picks a free port and the printed URL is the real one), serves
the app with uvicorn (``ws="websockets-sansio"``), and once the app has
started prints one flushed line::

    blindpad relay listening on http://127.0.0.1:8765/ (store: sqlite:///./blindpad.sqlite3)

``blindpad relay backup PATH [--store URL]`` copies a SQLite store with the
online backup API (safe while the relay runs).  ``blindpad relay seed N``
writes a pad with N sealed patches into a store and prints its edit link.
Exit codes: 0 success, 1 runtime failure (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import sys
from typing import TYPE_CHECKING

from relay.limits import Limits

if TYPE_CHECKING:
    import uvicorn

    from relay.app import RelayConfig

DEFAULT_STORE = "sqlite:///./blindpad.sqlite3"

_LIMIT_HELP = {
    "max_frame_bytes": "largest websocket message (fatal FRAME_TOO_LARGE)",
    "max_patch_bytes": "largest sealed patch or trim (PATCH_TOO_LARGE)",
    "max_snapshot_bytes": "largest sealed snapshot (SNAPSHOT_TOO_LARGE)",
    "max_ephemeral_bytes": "largest sealed ephemeral (EPHEMERAL_TOO_LARGE)",
    "max_pad_bytes": "latest snapshot + patches after it, per pad (PAD_TOO_LARGE)",
    "channel_quota_bytes": "all bytes stored for one pad (CHANNEL_QUOTA)",
    "max_storage_bytes": "all bytes stored by this relay (STORAGE_FULL)",
    "rate_per_second": "frames per second per connection (RATE_LIMITED)",
    "rate_burst": "frames a connection may send in a burst",
    "max_channels": "channels per connection (TOO_MANY_CHANNELS)",
    "presubscribe_bytes": "bytes accepted before the first subscription (fatal)",
    "outgoing_queue_frames": "frames queued per connection before it is closed as slow",
    "max_connections": "open connections, relay-wide (fatal TOO_MANY_CONNECTIONS)",
    "max_connections_per_address": "open connections per client address (fatal)",
    "idle_timeout_seconds": "close a connection silent this long (fatal IDLE_TIMEOUT)",
    "outgoing_queue_bytes": "bytes queued per connection before it is closed as slow",
    "upload_timeout_seconds": "unfinished snapshot upload timeout (fatal SLOW_UPLOAD)",
    "max_upload_bytes": "bytes held by unfinished snapshot uploads, relay-wide",
    "max_history_reads": "concurrent HTTP history reads (over it: 503 Retry-After)",
    "push_bytes_in_flight": "bytes of unanswered pushes per connection (then backpressure)",
    "create_per_minute": "pads one client address may create per minute (CREATE_RATE_LIMITED)",
    "create_burst": "pads one client address may create at once",
    "channel_overhead_bytes": "what an empty pad counts against the storage quotas",
    "new_pad_storage_percent": "new pads refused past this %% of max storage (STORAGE_FULL)",
}


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blindpad relay",
        description="Run the content-blind relay and serve the web page. "
        "Subcommands: 'backup PATH' (copy a SQLite store), 'seed N' (write a test pad).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765; 0 = any free)")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"storage ({DEFAULT_STORE})")
    parser.add_argument("--public-url", help="public address behind a proxy (checks Origin)")
    parser.add_argument("--create-token", help="token HELLO must carry to create a pad")
    parser.add_argument(
        "--trusted-proxies",
        default="",
        help="addresses whose X-Forwarded-For is believed (comma-separated)",
    )
    parser.add_argument("--web-dir", help="directory of the web client (default: ./web)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (warning)")
    defaults = Limits()
    for field in dataclasses.fields(Limits):
        default = getattr(defaults, field.name)
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            type=int,
            default=default,
            help=f"{_LIMIT_HELP[field.name]} (default {default})",
        )
    return parser


def main(argv: list[str]) -> int:
    """Run ``blindpad relay``; return the exit code.

    Args:
        argv: the arguments after ``relay``.

    Returns:
        0 on a clean stop, 1 on a runtime failure, 2 on bad usage.
    """
    if argv and argv[0] == "backup":
        return _backup(argv[1:])
    if argv and argv[0] == "seed":
        return _seed(argv[1:])
    args = _run_parser().parse_args(argv)
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"blindpad relay: {exc}", file=sys.stderr)
        return 2
    return _serve(config, args.host, args.port, args.log_level)


def _config(args: argparse.Namespace) -> RelayConfig:
    from pathlib import Path

    from relay.app import DEFAULT_WEB_DIR, RelayConfig

    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    return RelayConfig(
        store_url=args.store,
        limits=limits,
        public_url=args.public_url,
        create_token=args.create_token.encode() if args.create_token else None,
        trusted_proxies=frozenset(a.strip() for a in args.trusted_proxies.split(",") if a.strip()),
        web_dir=Path(args.web_dir) if args.web_dir else DEFAULT_WEB_DIR,
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _serve(config: RelayConfig, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from relay.app import create_app
    from relay.store import StoreError, lockfile, sqlite_path

    held = None
    try:
        app = create_app(config)
        if config.store_url.startswith("sqlite://"):  # a second relay: one line, exit 1
            held = lockfile.acquire(sqlite_path(config.store_url))
        sock = _bind(host, port)
    except (OSError, ValueError, StoreError) as exc:
        print(f"blindpad relay: {exc}", file=sys.stderr)
        if held is not None:
            lockfile.release(held)
        return 1
    with sock:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = config.public_url or f"http://{shown}:{bound}/"
        server = uvicorn.Server(uvicorn_config(app, config.limits, log_level))
        line = f"blindpad relay listening on {url} (store: {config.store_url})"
        try:
            started = asyncio.run(_serve_until_stopped(server, sock, line))
        finally:
            if held is not None:
                lockfile.release(held)
    if not started:
        print("blindpad relay: startup failed (see the message above)", file=sys.stderr)
        return 1
    return 0


def uvicorn_config(app: object, limits: Limits, log_level: str = "warning") -> uvicorn.Config:
    """The uvicorn configuration the relay runs with (shared with the test harness).

    Args:
        app: the ASGI app.
        limits: the relay's limits (the websocket size cap is derived from them).
        log_level: uvicorn's log level.

    Returns:
        A config using the websockets sans-I/O implementation; messages over
        ``max_frame_bytes + 64 KiB`` are cut by uvicorn (close 1009), smaller
        oversize ones get the relay's own FRAME_TOO_LARGE error.
    """
    import uvicorn

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        ws="websockets-sansio",
        lifespan="on",
        log_level=log_level,
        ws_max_size=limits.max_frame_bytes + 64 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        access_log=False,
        proxy_headers=False,  # the relay believes X-Forwarded-For only from --trusted-proxies
    )


async def _serve_until_stopped(server: uvicorn.Server, sock: socket.socket, line: str) -> bool:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(line, flush=True)
    await task
    return bool(server.started)


def _backup(argv: list[str]) -> int:
    from relay.store import StoreError, sqlite_path
    from relay.store.sqlite import backup

    parser = argparse.ArgumentParser(
        prog="blindpad relay backup",
        description="Copy a SQLite store consistently (online backup; the relay may run).",
    )
    parser.add_argument("path", help="the file to write")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"the store ({DEFAULT_STORE})")
    args = parser.parse_args(argv)
    if not args.store.startswith("sqlite://"):
        print("blindpad relay backup: only sqlite:/// stores can be backed up", file=sys.stderr)
        return 2
    try:
        backup(sqlite_path(args.store), args.path)
    except StoreError as exc:
        print(f"blindpad relay backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {args.store} to {args.path}", flush=True)
    return 0


def _seed(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="blindpad relay seed",
        description="Write a new pad with N sealed patches into a store; print its edit link.",
    )
    parser.add_argument("patches", type=int, help="how many patches")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"the store ({DEFAULT_STORE})")
    parser.add_argument("--base-url", default="http://127.0.0.1:8765", help="relay address")
    args = parser.parse_args(argv)
    from relay.store import StoreError

    try:
        link = asyncio.run(_seed_store(args.store, args.patches, args.base_url))
    except StoreError as exc:
        print(f"blindpad relay seed: {exc}", file=sys.stderr)
        return 1
    print(link, flush=True)
    return 0


async def _seed_store(url: str, n: int, base_url: str) -> str:
    from crypto.links import PadLink
    from relay.edge.seed import seed_pad
    from relay.store import open_store

    store = open_store(url)
    await store.open()
    try:
        pad = await seed_pad(store, n)
    finally:
        await store.close()
    return str(PadLink(base_url, pad.keys))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))

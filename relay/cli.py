"""``blindpad relay``: serve, back up, seed and check a relay.

Theory of operation
-------------------
Four argparse subcommands, each with its own ``--help``; without one,
``blindpad relay [OPTIONS]`` is ``blindpad relay serve [OPTIONS]``.

``serve`` builds a :class:`relay.app.RelayConfig` from the options (every
:class:`relay.limits.Limits` field is an option named after it,
``--max-frame-bytes`` and so on), binds the listening socket itself (so
``--port 0`` picks a free port and the printed URL is the real one), serves
the app with uvicorn (its sans-I/O websocket protocol with corked writes,
:mod:`relay.corked`), and once the app has
started prints one flushed line::

    blindpad relay listening on http://127.0.0.1:8765/ (store: sqlite:///./blindpad.sqlite3)

The page comes from a checkout's ``web/`` or, in an installed wheel, from the
copy the wheel carries; ``--no-web`` serves the API only.  A second line says
which origins may embed pads (``--embed-origins``, ``docs/EMBED.md``).

``backup PATH [--store URL]`` copies a SQLite store with the online backup API
(safe while the relay runs).  ``seed N`` writes a pad with N sealed patches
into a store and prints its edit link.  ``check`` opens the store and the page
without serving (a configuration check), or with ``--url`` asks a running
relay's ``/healthz`` (the container health check: no curl needed).

Only this module's standard-library part loads before a subcommand runs, so
``blindpad relay`` on an install without the ``[relay]`` extra says so in one
line instead of a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib.util
import logging
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from relay.limits import Limits

if TYPE_CHECKING:
    import uvicorn

    from relay.app import RelayConfig

DEFAULT_STORE = "sqlite:///./blindpad.sqlite3"
OK, FAILED, USAGE, NOT_INSTALLED = 0, 1, 2, 3
EXIT_CODES = (
    "exit codes: 0 success, 1 runtime failure (message on stderr), 2 bad usage or a store"
    " of protocol-1 pads, "
    "3 the relay's dependencies are missing (pip install 'blindpad[relay]')"
)
#: What ``serve`` and ``check`` import (the ``[relay]`` extra).
RELAY_MODULES = ("starlette", "uvicorn", "prometheus_client")
SUBCOMMANDS = ("serve", "backup", "seed", "check")
#: Where ``--create-token`` is read from when not given (keeps it out of ``ps``).
CREATE_TOKEN_ENV = "BLINDPAD_RELAY_CREATE_TOKEN"

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
    "history_stall_seconds": "abandon an HTTP history response its reader stalls this long",
}


def _run_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (8765; 0 = any free)")
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        help="storage: sqlite:///PATH, postgresql://... (several relays) or memory:"
        f" ({DEFAULT_STORE})",
    )
    parser.add_argument(
        "--bus",
        help="how relays sharing a PostgreSQL store hear each other's commits: postgres"
        " (LISTEN/NOTIFY, the default with it), redis://HOST:PORT/DB, or none (poll the store)",
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=5.0,
        help="relays sharing a PostgreSQL store: how often each reads its pads' heads"
        " while the bus is up (5; 0.5 while it is down)",
    )
    parser.add_argument("--public-url", help="public address behind a proxy (checks Origin)")
    parser.add_argument(
        "--create-token",
        default=os.environ.get(CREATE_TOKEN_ENV) or None,
        help=f"token HELLO must carry to create a pad (default: ${CREATE_TOKEN_ENV})",
    )
    parser.add_argument(
        "--trusted-proxies",
        default="",
        help="addresses whose X-Forwarded-For is believed (comma-separated)",
    )
    parser.add_argument("--web-dir", help="the web page's directory (default: the installed one)")
    parser.add_argument("--no-web", action="store_true", help="serve the API only, no page")
    parser.add_argument(
        "--embed-origins",
        default="",
        help="origins whose pages may embed pads (/embed/), comma-separated (default: none)",
    )
    parser.add_argument(
        "--verify-processes",
        type=int,
        choices=(0, 1),
        default=1 if (os.cpu_count() or 1) > 1 else 0,
        help="1: check pushes' signatures in a helper process, off the event loop;"
        " 0: on it (default 1 with more than one CPU, else 0)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request (IPs!)")
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


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="blindpad relay",
        description="Run and look after a content-blind relay.",
        epilog="Without a COMMAND, 'blindpad relay [OPTIONS]' is 'blindpad relay serve "
        "[OPTIONS]'. " + EXIT_CODES,
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        prog="blindpad relay [serve]",
        help="run the relay and serve the web page (the default)",
        description="Run the content-blind relay and serve the web page. Other commands, "
        "each with its own --help: backup (copy a SQLite store), seed (write a test pad), "
        "check (check a configuration or a running relay).",
        epilog=EXIT_CODES,
    )
    _run_parser(serve).set_defaults(run=_serve_command)
    _backup_parser(sub.add_parser("backup", help="copy a SQLite store (the relay may run)"))
    _seed_parser(sub.add_parser("seed", help="write a pad with N patches into a store"))
    _check_parser(sub.add_parser("check", help="check a configuration or a running relay"))
    return top


def main(argv: list[str]) -> int:
    """Run ``blindpad relay``; return the exit code.

    Args:
        argv: the arguments after ``relay``.

    Returns:
        0 on a clean stop, 1 on a runtime failure, 2 on bad usage (also a
        store of protocol-1 pads, which this relay cannot serve), 3 when the
        ``[relay]`` extra is not installed.
    """
    if not argv or argv[0] not in SUBCOMMANDS:
        argv = ["serve", *argv]  # `blindpad relay --port 0` and `blindpad relay --help`
    args = _parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


def missing_relay_modules() -> list[str]:
    """The modules of the ``[relay]`` extra that are not installed."""
    return [name for name in RELAY_MODULES if importlib.util.find_spec(name) is None]


def _needs_relay_extra(command: str) -> bool:
    missing = missing_relay_modules()
    if missing:
        print(
            f"blindpad relay {command}: {', '.join(missing)} not installed; "
            "install blindpad[relay] (pip install 'blindpad[relay]')",
            file=sys.stderr,
        )
    return bool(missing)


def _serve_command(args: argparse.Namespace) -> int:
    if _needs_relay_extra("serve"):
        return NOT_INSTALLED
    try:
        config = _config(args)
    except ValueError as exc:
        print(f"blindpad relay: {exc}", file=sys.stderr)
        return USAGE
    return _serve(config, args.host, args.port, args.log_level, access_log=args.access_log)


def _web_dir(args: argparse.Namespace) -> Path | None:
    from relay.app import DEFAULT_WEB_DIR

    if args.no_web and args.web_dir:
        raise ValueError("--no-web and --web-dir exclude each other")
    if args.no_web:
        return None
    return Path(args.web_dir) if args.web_dir else DEFAULT_WEB_DIR


def _config(args: argparse.Namespace) -> RelayConfig:
    from relay.app import RelayConfig

    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    return RelayConfig(
        store_url=args.store,
        limits=limits,
        public_url=args.public_url,
        create_token=args.create_token.encode() if args.create_token else None,
        trusted_proxies=frozenset(a.strip() for a in args.trusted_proxies.split(",") if a.strip()),
        web_dir=_web_dir(args),
        embed_origins=_embed_origins(args.embed_origins),
        bus=args.bus,
        poll_seconds=args.poll_seconds,
        verify_processes=args.verify_processes,
    )


def _embed_origins(text: str) -> tuple[str, ...]:
    from relay.edge.web import embed_origin

    return tuple(embed_origin(item) for item in text.split(",") if item.strip())


def embed_line(config: RelayConfig) -> str:
    """The startup line saying which sites may embed this relay's pads."""
    if config.web_dir is None:
        return "blindpad relay embedding: off (--no-web)"
    if not config.embed_origins:
        return "blindpad relay embedding: no site may frame pads (--embed-origins is empty)"
    return "blindpad relay embedding: pages of " + ", ".join(config.embed_origins) + " may embed"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio then sets TCP_NODELAY on every accepted socket
    # (with proto 0 it does not; relay.corked.no_delay says what that costs).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _serve(
    config: RelayConfig, host: str, port: int, log_level: str, *, access_log: bool = False
) -> int:
    import uvicorn

    from relay.app import create_app
    from relay.store import SchemaTooOld, StoreError, lockfile, sqlite_path

    held = None
    try:
        app = create_app(config)
        if config.store_url.startswith("sqlite://"):  # a second relay: one line, exit 1
            held = lockfile.acquire(sqlite_path(config.store_url))
        # A database that does not answer or refuses, or a store of protocol-1 pads
        # (exit 2): one line, not a traceback.
        asyncio.run(_check_store(config.store_url))
        sock = _bind(host, port)
    except (OSError, ValueError, StoreError) as exc:
        print(f"blindpad relay: {exc}", file=sys.stderr)
        if held is not None:
            lockfile.release(held)
        return USAGE if isinstance(exc, SchemaTooOld) else FAILED
    with sock:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        url = config.public_url or f"http://{shown}:{bound}/"
        server = uvicorn.Server(uvicorn_config(app, config.limits, log_level, access_log))
        line = f"blindpad relay listening on {url} (store: {redacted(config.store_url)})\n"
        line += embed_line(config)
        tune_gc()
        try:
            started = asyncio.run(_serve_until_stopped(server, sock, line))
        except KeyboardInterrupt:
            # uvicorn stops gracefully on Ctrl-C, then raises the signal again for
            # asyncio.run, which turns it into KeyboardInterrupt: a clean stop.
            started = server.started
        finally:
            if held is not None:
                lockfile.release(held)
    if not started:
        print("blindpad relay: startup failed (see the message above)", file=sys.stderr)
        return 1
    return 0


#: The cyclic garbage collector's youngest threshold in a serving relay
#: (CPython's default is 700 allocations).  Every push keeps a few objects
#: alive until its append is durable (a task, a future, the frame), so at the
#: default each young collection found them still alive and moved them into
#: the older generations, whose collections then walked everything the relay
#: holds: the collector was about a fifth of the event loop's time at 500
#: channels x 2 clients (perf), and this threshold took delivered msg/s from
#: about 6,900 to about 8,400 there (bench/RESULTS.md, session 18).  Garbage in
#: cycles (mostly refusals' tracebacks) waits a little longer to be freed: at
#: most this many objects.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Set the collector for a long-running relay: what startup made (modules,
    the app) is frozen out of every collection, and young collections run every
    :data:`GC_YOUNG_THRESHOLD` allocations; the older thresholds keep their
    values."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def redacted(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for lines people read)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def uvicorn_config(
    app: object, limits: Limits, log_level: str = "warning", access_log: bool = False
) -> uvicorn.Config:
    """The uvicorn configuration the relay runs with (shared with the test harness).

    Args:
        app: the ASGI app.
        limits: the relay's limits (the websocket size cap is derived from them).
        log_level: uvicorn's log level.
        access_log: log one line per HTTP request and websocket (at INFO,
            whatever ``log_level`` says): client address, method, path, status.

    Returns:
        A config using the websockets sans-I/O implementation, its writes
        corked (:mod:`relay.corked`); messages over
        ``max_frame_bytes + 64 KiB`` are cut by uvicorn (close 1009), smaller
        oversize ones get the relay's own FRAME_TOO_LARGE error.
    """
    import uvicorn

    from relay.corked import CorkedWebSocketProtocol

    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        ws=CorkedWebSocketProtocol,
        lifespan="on",
        log_level=log_level,
        ws_max_size=limits.max_frame_bytes + 64 * 1024,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        # Every frame is ciphertext, which does not compress: permessage-deflate
        # (which browsers offer) would only cost CPU on both ends.
        ws_per_message_deflate=False,
        access_log=access_log,
        proxy_headers=False,  # the relay believes X-Forwarded-For only from --trusted-proxies
    )
    if access_log:  # after Config, which sets every uvicorn logger to log_level
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    return config


async def _serve_until_stopped(server: uvicorn.Server, sock: socket.socket, line: str) -> bool:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        print(line, flush=True)
    try:
        await task
    except SystemExit:  # uvicorn's "Application startup failed" (logged above)
        return False
    return bool(server.started)


def _backup_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = "Copy a SQLite store consistently (online backup; the relay may run)."
    parser.epilog = EXIT_CODES
    parser.add_argument("path", help="the file to write")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"the store ({DEFAULT_STORE})")
    parser.set_defaults(run=_backup)


def _backup(args: argparse.Namespace) -> int:
    from relay.store import StoreError, sqlite_path
    from relay.store.sqlite import backup

    if not args.store.startswith("sqlite://"):
        print(
            "blindpad relay backup: only sqlite:/// stores; back up PostgreSQL with"
            " pg_dump (docs/DEPLOY.md)",
            file=sys.stderr,
        )
        return USAGE
    try:
        backup(sqlite_path(args.store), args.path)
    except StoreError as exc:
        print(f"blindpad relay backup: {exc}", file=sys.stderr)
        return FAILED
    print(f"backed up {args.store} to {args.path}", flush=True)
    return OK


def _seed_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = "Write a new pad with N sealed patches into a store; print its edit link."
    parser.epilog = EXIT_CODES
    parser.add_argument("patches", type=int, help="how many patches")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"the store ({DEFAULT_STORE})")
    parser.add_argument("--base-url", default="http://127.0.0.1:8765", help="relay address")
    parser.set_defaults(run=_seed)


def _seed(args: argparse.Namespace) -> int:
    from relay.store import SchemaTooOld, StoreError

    try:
        link = asyncio.run(_seed_store(args.store, args.patches, args.base_url))
    except StoreError as exc:
        print(f"blindpad relay seed: {exc}", file=sys.stderr)
        return USAGE if isinstance(exc, SchemaTooOld) else FAILED
    print(link, flush=True)
    return OK


def _check_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Without --url: open the store and load the web page as 'serve' would, print what "
        "was found, and exit (a configuration check before a start or an upgrade). "
        "With --url: ask a running relay's /healthz (a health check needing no curl)."
    )
    parser.epilog = EXIT_CODES
    parser.add_argument("--url", help="a running relay's base URL, e.g. http://127.0.0.1:8765/")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for --url (5)")
    parser.add_argument("--store", default=DEFAULT_STORE, help=f"the store ({DEFAULT_STORE})")
    parser.add_argument("--web-dir", help="the web page's directory (default: the installed one)")
    parser.add_argument("--no-web", action="store_true", help="the relay serves no page")
    parser.set_defaults(run=_check)


def _check(args: argparse.Namespace) -> int:
    if args.url:
        return _check_url(args.url, args.timeout)
    if _needs_relay_extra("check"):
        return NOT_INSTALLED
    from relay.store import SchemaTooOld, StoreError

    try:
        web_dir = _web_dir(args)
        web_line = _check_web(web_dir)
        store_line = asyncio.run(_check_store(args.store))
    except (OSError, ValueError, StoreError) as exc:  # WebAssetsMissing is a ValueError
        print(f"blindpad relay check: {exc}", file=sys.stderr)
        return USAGE if isinstance(exc, SchemaTooOld) else FAILED
    print(f"store: {store_line}\nweb page: {web_line}", flush=True)
    return OK


def _check_url(url: str, timeout: float) -> int:
    target = url.rstrip("/") + "/healthz"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            body = response.read(64).decode(errors="replace").strip()
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        print(f"blindpad relay check: {target}: {exc}", file=sys.stderr)
        return FAILED
    print(f"{target}: {body}", flush=True)
    return OK if body == "ok" else FAILED


def _check_web(web_dir: Path | None) -> str:
    from relay.edge import bundle

    if web_dir is None:
        return "none (--no-web: the API only)"
    if bundle.is_packaged(web_dir):
        found = bundle.load_bundle(web_dir)
        where = "packaged"
    elif (web_dir / "app.js").is_file():
        found = bundle.build_bundle(web_dir)  # raises WebAssetsMissing, naming the fix
        where = "built from sources"
    else:
        from relay.edge import web

        web.routes(web_dir)  # raises WebAssetsMissing when there is no page at all
        return f"plain static files from {web_dir}"
    size = found.size / 1e6
    return f"{where} in {web_dir} ({len(found.assets)} assets, {size:.1f} MB stored)"


async def _check_store(url: str) -> str:
    from relay.store import open_store

    store = open_store(url)
    await store.open()
    try:
        stats = await store.stats()
    finally:
        await store.close()
    return f"{redacted(url)} opens ({stats.channels} pads, {stats.stored_bytes} bytes)"


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

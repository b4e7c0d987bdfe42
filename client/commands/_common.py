"""Shared plumbing of the pad subcommands: parsing, running, errors, progress.

Theory of operation
-------------------
Every command builds an :class:`argparse.ArgumentParser` with
:func:`parser`, parses its link with :func:`link_arg` (a damaged link, or a
view link for a writing command, exits 2 before any connection), and runs
its coroutine with :func:`run`, which maps the SDK's error tree
(:mod:`client.errors`) to a one-line message on stderr and an exit code.
:func:`wait_saved` waits for the relay's acknowledgement and, on a terminal,
shows progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import crypto
from client.errors import BadLink, PadError, ReadOnly

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A failure to report as ``blindpad CMD: message`` with ``code``."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def parser(name: str, description: str, *, pad_options: bool = True) -> argparse.ArgumentParser:
    """An argument parser for ``blindpad NAME`` (with --state-dir / --no-state / --name)."""
    result = argparse.ArgumentParser(prog=f"blindpad {name}", description=description)
    if pad_options:
        result.add_argument(
            "--state-dir",
            type=Path,
            help="where your identity and unsent edits live "
            "(default: $BLINDPAD_STATE_DIR or your config folder)",
        )
        result.add_argument(
            "--no-state", action="store_true", help="keep nothing on disk (fresh identity)"
        )
        result.add_argument("--name", help="your display name (remembered in the state dir)")
        result.add_argument(
            "--timeout", type=float, default=30.0, help="seconds to wait for the relay (30)"
        )
    return result


def open_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :meth:`client.pad.Pad.open` keyword arguments the common options ask for."""
    options: dict[str, Any] = {"name": args.name, "open_timeout": args.timeout}
    if args.no_state:
        options["state_dir"] = None
    elif args.state_dir is not None:
        options["state_dir"] = args.state_dir
    return options


def link_arg(text: str, *, write: bool = False) -> crypto.PadLink:
    """Parse a link argument.

    Raises:
        CommandError: a damaged link, or a view link where writing is needed (code 2).
    """
    try:
        link = crypto.parse_link(text)
    except crypto.InvalidLink as error:
        raise CommandError(f"bad link: {error}", USAGE) from error
    if write and not link.is_edit:
        raise CommandError(
            "this is a view link, which can only read; writing needs the pad's edit link "
            "(nothing was sent)",
            USAGE,
        )
    return link


def run(name: str, coro: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine; report errors on stderr; return the exit code."""
    try:
        return asyncio.run(coro)
    except CommandError as error:
        return fail(name, str(error), error.code)
    except (BadLink, ReadOnly) as error:
        return fail(name, str(error), USAGE)
    except PadError as error:
        return fail(name, str(error), FAILED)
    except TimeoutError:
        return fail(name, "timed out waiting for the relay", FAILED)
    except KeyboardInterrupt:
        return INTERRUPTED


def fail(name: str, message: str, code: int) -> int:
    """Print ``blindpad NAME: message`` on stderr and return ``code``."""
    print(f"blindpad {name}: {message}", file=sys.stderr)
    return code


def progress(message: str) -> None:
    """Show a one-line progress message on stderr when it is a terminal."""
    if sys.stderr.isatty():
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)


def progress_done() -> None:
    """Clear the progress line."""
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)


async def wait_saved(pad: Any, timeout: float) -> None:
    """Wait until every edit is acknowledged, showing progress on a terminal.

    Raises:
        TimeoutError: not acknowledged within ``timeout`` seconds.
        RelayRefused: the relay refused an edit for good.
    """
    waiter = asyncio.ensure_future(pad.synced(timeout))
    try:
        while not waiter.done():
            pending = len(pad.session.pending())
            progress(f"saving: {pending} patch(es) awaiting the relay ({pad.status})")
            await asyncio.wait([waiter], timeout=0.2)
        waiter.result()
    finally:
        waiter.cancel()
        progress_done()


def relay_default() -> str:
    """The relay used when none is given: ``$BLINDPAD_RELAY`` or the local default."""
    return os.environ.get("BLINDPAD_RELAY", "http://127.0.0.1:8765")

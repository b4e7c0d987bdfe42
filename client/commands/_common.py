"""Shared plumbing of the pad subcommands: parsing, running, errors, progress.

Theory of operation
-------------------
Every command builds its :class:`argparse.ArgumentParser` with
:func:`parser` (which adds ``--debug`` and the exit-code table below to
every subcommand), then hands its work to :func:`execute`.  ``execute`` is
the one error path for users: every expected failure becomes one line on
stderr, ``blindpad CMD: what happened[: what to do]``, and an exit code from
the table; a traceback is printed only with ``--debug`` (or the environment
variable ``BLINDPAD_DEBUG=1``, which also covers failures before the
arguments are parsed).  Anything unexpected is a bug: one line asking for a
report, exit code 70.

Checks that need no relay run first, so a command refused for bad usage
has sent nothing: the link (:func:`link_arg`: damaged, or a view link for a
writing command), the text (:func:`read_text_arg`, :func:`check_text`: valid
UTF-8 only), the editor.  One-shot commands open pads with
``retry_first_connect=False`` (:func:`open_options`): when nothing listens
at the link's address they fail at once instead of retrying for
``--timeout`` seconds; a pad the relay does not have is refused (only
``blindpad new`` creates pads).  :func:`wait_saved` waits for the relay's
acknowledgement and, on a terminal, shows progress on stderr.

Exit codes (the same for every command)::

    code  meaning                                               what to do
    0     success
    1     failed at run time: relay unreachable, refusing, or   read the message; retry,
          not answering in --timeout; the editor failed; the    start the relay, or fix
          state directory is unusable                           what it names
    2     bad usage, nothing was sent: bad arguments, a         fix the command line
          damaged link, a view link given to a writing
          command, text that is not UTF-8, no editor found
    3     no such pad on this relay (a mistyped address or      check the link; `blindpad
          port, or a pad made on another relay)                 new` creates pads
    4     done offline (``--offline``, relay unreachable): the   nothing: the next command
          change is kept in the state directory, not on the     that reaches the relay
          relay yet; ``cat`` printed this device's copy         sends it
    70    internal error (a bug in blindpad)                    rerun with --debug, report it
    130   interrupted (Ctrl-C)
    141   the output was closed early (``| head``): quiet
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, BinaryIO

import crypto
from client.errors import (
    BadLink,
    ConnectionFailed,
    PadError,
    PadNotFound,
    ReadOnly,
    RelayRefused,
    WrongDocType,
)
from client.events import retry_hint

OK, FAILED, USAGE, NOT_FOUND, INTERNAL, INTERRUPTED, CLOSED_OUTPUT = 0, 1, 2, 3, 70, 130, 141
OFFLINE = 4

#: The exit-code table, as shown at the end of every ``--help``.
EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    failed at run time (relay unreachable, refusing or too slow; editor failed)
  2    bad usage; nothing was sent (arguments, damaged link, view link for writing,
       text not UTF-8, no editor)
  3    no such pad on this relay (check the link; only `blindpad new` creates pads)
  4    done offline (--offline, relay unreachable): kept in the state directory,
       sent by the next command that reaches the relay; cat printed the local copy
  70   internal error: rerun with --debug (or BLINDPAD_DEBUG=1) and report it
  130  interrupted
  141  output closed early (e.g. piped into `head`)"""

#: Said after "cannot reach the relay": the two usual causes.
REACH_HINT = "is the relay running, and is the link's address right?"


#: What to do about the relay refusals a user can meet (docs/PROTOCOL.md §5).
REFUSAL_HINTS = {
    "CREATE_TOKEN_REQUIRED": "this relay lets only holders of its creation token make pads "
    "(give it with --token or $BLINDPAD_CREATE_TOKEN)",
    "PAD_TOO_LARGE": "the pad would exceed this relay's size limit",
    "PATCH_TOO_LARGE": "the change is larger than this relay accepts at once",
    "CHANNEL_QUOTA": "the pad has used up its storage quota on this relay",
    "STORAGE_FULL": "the relay's storage is full; ask its operator",
    "CREATE_RATE_LIMITED": "this relay limits how many pads one address may create a minute",
}


class CommandError(Exception):
    """A failure to report as ``blindpad CMD: message`` with ``code``."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


class RelayUnreachable(CommandError):
    """Nothing answered at the link's address (``cat --offline`` then reads the local copy)."""


class _Formatter(argparse.HelpFormatter):
    """Wraps the description, keeps the epilog's table as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("exit codes:"):
            return textwrap.indent(text, indent)
        return super()._fill_text(text, width, indent)


def parser(
    name: str, description: str, *, pad_options: bool = True, offline: bool = False
) -> argparse.ArgumentParser:
    """An argument parser for ``blindpad NAME``: --debug always; --state-dir... for pads;
    ``--offline`` for the commands that can work from the local copy."""
    result = argparse.ArgumentParser(
        prog=f"blindpad {name}",
        description=description,
        epilog=EXIT_CODES_HELP,
        formatter_class=_Formatter,
    )
    result.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of a failure (also: BLINDPAD_DEBUG=1)",
    )
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
        result.add_argument(
            "--verify",
            choices=("snapshot", "history"),
            default="snapshot",
            help="open from the latest snapshot (default; its author vouches for the text "
            "before it) or replay and check every patch the relay still holds (history)",
        )
    if offline:
        result.add_argument(
            "--offline",
            action="store_true",
            help="if the relay is unreachable, work on this device's copy of the pad (kept "
            "since it was last opened here) and exit 4; the change is sent by the next "
            "command that reaches the relay",
        )
    return result


def open_options(args: argparse.Namespace, *, remember_name: bool = True) -> dict[str, Any]:
    """The :meth:`client.pad.Pad.open` keyword arguments the common options ask for.

    Args:
        args: the parsed common options.
        remember_name: pass ``--name`` on, which stores it with the identity.
    """
    options: dict[str, Any] = {
        "name": args.name if remember_name else None,
        "open_timeout": args.timeout,
        "retry_first_connect": False,
        "verify": args.verify,
    }
    if getattr(args, "offline", False):
        options["offline"] = True
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


def check_text(text: str, where: str) -> str:
    """Refuse text that cannot be sent as UTF-8 (undecodable bytes in argv arrive as
    lone surrogates).

    Raises:
        CommandError: code 2, before anything is sent.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise CommandError(
            f"{where} is not valid UTF-8 (character {error.start}); nothing was sent", USAGE
        ) from None
    return text


def read_text_arg(file: Path | None, stdin: BinaryIO | None = None) -> str:
    """The text of ``file`` or of standard input, decoded strictly as UTF-8.

    Raises:
        CommandError: unreadable, or not UTF-8 (code 2, before anything is sent).
    """
    where = str(file) if file is not None else "standard input"
    try:
        data = file.read_bytes() if file is not None else (stdin or sys.stdin.buffer).read()
    except OSError as error:
        raise CommandError(f"cannot read {where}: {error.strerror or error}", USAGE) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CommandError(
            f"{where} is not valid UTF-8 (byte {error.start}); nothing was sent", USAGE
        ) from None


def debugging(args: argparse.Namespace | None = None) -> bool:
    """True with ``--debug`` or ``BLINDPAD_DEBUG=1``."""
    return bool(getattr(args, "debug", False)) or os.environ.get("BLINDPAD_DEBUG") == "1"


def execute(name: str, args: argparse.Namespace | None, work: Callable[[], int]) -> int:
    """Run a command's work; map every failure to one stderr line and an exit code.

    Args:
        name: the subcommand, for messages.
        args: its parsed arguments (for ``--debug``).
        work: the command; returns its exit code.

    Returns:
        The exit code (see the module docstring).
    """
    debug = debugging(args)
    try:
        return work()
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing, and keep Python's
        # final flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_OUTPUT
    except Exception as error:
        code, message = describe(error)
        if debug:
            traceback.print_exc()
        return fail(name, message, code)


def describe(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for a failure."""
    if isinstance(error, CommandError):
        return error.code, str(error)
    if isinstance(error, WrongDocType):
        return USAGE, (
            "this is a JSON pad, and this command edits text: use `blindpad set` "
            "(and `blindpad cat` to read it)"
        )
    if isinstance(error, BadLink | ReadOnly):
        return USAGE, str(error)
    if isinstance(error, PadNotFound):
        return NOT_FOUND, (
            f"no such pad on this relay ({error.relay_url}): check the link's address; "
            "only `blindpad new` creates pads"
        )
    if isinstance(error, ConnectionFailed):
        return FAILED, f"{error}: {REACH_HINT}"
    if isinstance(error, RelayRefused) and error.code in REFUSAL_HINTS:
        hint = REFUSAL_HINTS[error.code] + retry_hint(error.retry_after_ms)
        return FAILED, f"the relay refused ({error.code}): {hint}"
    if isinstance(error, PadError):
        return FAILED, str(error)
    if isinstance(error, TimeoutError):
        return FAILED, "timed out waiting for the relay (a longer --timeout may help)"
    if isinstance(error, crypto.InvalidIdentity):
        return FAILED, f"your identity file cannot be used: {error}"
    if isinstance(error, OSError):
        return FAILED, f"{error.strerror or error}: {error.filename or ''}".rstrip(": ")
    summary = f"{type(error).__name__}: {error}"
    return INTERNAL, f"internal error ({summary}); rerun with --debug and report the traceback"


def run(name: str, coro: Coroutine[Any, Any, int], args: argparse.Namespace | None = None) -> int:
    """Run a command's coroutine under :func:`execute`."""

    def work() -> int:
        return asyncio.run(coro)

    try:
        return execute(name, args, work)
    finally:
        coro.close()  # never awaited if asyncio.run could not start: no warning


def shown(doc: Any, kind: str) -> str:
    """What ``cat`` prints: a text exactly, a JSON pad's value as indented JSON."""
    if kind == "text":
        text: str = doc
        return text
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


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


async def saved_or_kept(name: str, pad: Any, timeout: float) -> int:
    """After a change: wait for the relay's ack (:func:`wait_saved`, exit 0), or,
    for a pad opened from its local copy while the relay is unreachable, say in
    one line that the change is kept for later (exit :data:`OFFLINE`)."""
    from client.events import Status

    if pad.opened_offline and pad.status is Status.OFFLINE:
        print(
            f"blindpad {name}: offline: the relay is unreachable; the change is kept in "
            "the state directory and sent by the next command that reaches the relay",
            file=sys.stderr,
        )
        return OFFLINE
    await wait_saved(pad, timeout)
    return OK


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

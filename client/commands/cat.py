"""``blindpad cat LINK``: print a pad's text exactly, or a JSON pad's value as
JSON (over HTTP: no websocket)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

import crypto
from client.commands import _common as c


def _run(args: argparse.Namespace) -> int:
    from client.commands._http import read_text
    from client.state import StateDir, default_state_dir

    link = c.link_arg(args.link)
    if args.at is not None:
        return _run_at(link, args)
    remembered = StateDir(default_state_dir()).remembered(link.keys.channel_id)
    try:
        read = read_text(link, args.timeout, remembered)
    except c.RelayUnreachable:
        if not args.offline:
            raise
        return c.run("cat", _local_copy(str(link), args.timeout), args)
    for alarm in read.alarms:
        print(f"blindpad cat: warning: {alarm.kind.value}: {alarm.detail}", file=sys.stderr)
    sys.stdout.write(c.shown(read.text, link.doctype))
    sys.stdout.flush()
    return c.OK


async def _local_copy(link: str, timeout: float) -> int:
    """``--offline`` with the relay unreachable: print this device's copy of the pad,
    with the edits made here and not sent yet (exit 4)."""
    from client.events import Status
    from client.pad import Pad

    options = {"offline": True, "retry_first_connect": False, "open_timeout": timeout}
    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        doc = pad.text if pad.kind == "text" else pad.value
        offline = pad.opened_offline and pad.status is Status.OFFLINE
    sys.stdout.write(c.shown(doc, pad.kind))
    sys.stdout.flush()
    if not offline:  # the relay answered after all: this is its text
        return c.OK
    print(
        "blindpad cat: offline: the relay is unreachable; this is this device's copy "
        "(as last verified here, with edits made here and not sent yet)",
        file=sys.stderr,
    )
    return c.OFFLINE


def _run_at(link: crypto.PadLink, args: argparse.Namespace) -> int:
    from client.commands._http import read_revision, seq_at_time

    at = args.at
    if isinstance(at, datetime):
        at = seq_at_time(link, args.timeout, int(at.timestamp() * 1000))
    revision = read_revision(link, args.timeout, at)
    if not revision.exact:
        print(
            f"blindpad cat: patch {args.at} was trimmed; showing the nearest kept revision "
            f"before it, after patch {revision.seq}",
            file=sys.stderr,
        )
    for alarm in revision.alarms:
        print(f"blindpad cat: warning: {alarm.kind.value}: {alarm.detail}", file=sys.stderr)
    sys.stdout.write(c.shown(revision.text, link.doctype))
    sys.stdout.flush()
    return c.OK


def _at(value: str) -> int | datetime:
    """``--at``: a patch number, or a time (ISO 8601; UTC unless it names its zone)."""
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is neither a patch number nor a time like 2026-12-04T09:30 (UTC)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main(argv: list[str]) -> int:
    """Run ``blindpad cat``."""
    parser = c.parser(
        "cat",
        "Print the pad's text exactly as stored (no newline added), or a JSON pad's "
        "value as JSON (indented, keys sorted, one newline at the end). Every patch is "
        "verified; problems are reported on stderr.",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument(
        "--at",
        type=_at,
        metavar="SEQ|TIME",
        help="print an older revision: the text after patch SEQ, or as it was at TIME "
        "(ISO 8601, UTC unless a zone is given); before the trimmed floor, the nearest "
        "kept checkpoint (said on stderr)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    parser.add_argument(
        "--offline",
        action="store_true",
        help="if the relay is unreachable, print this device's copy of the pad (kept since "
        "it was last opened here, with unsent edits) and exit 4",
    )
    args = parser.parse_args(argv)
    return c.execute("cat", args, lambda: _run(args))

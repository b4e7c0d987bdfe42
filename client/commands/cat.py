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
    read = read_text(link, args.timeout, remembered)
    for alarm in read.alarms:
        print(f"blindpad cat: warning: {alarm.kind.value}: {alarm.detail}", file=sys.stderr)
    sys.stdout.write(c.shown(read.text, link.doctype))
    sys.stdout.flush()
    return c.OK


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
    args = parser.parse_args(argv)
    return c.execute("cat", args, lambda: _run(args))

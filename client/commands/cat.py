"""``blindpad cat LINK``: print a pad's text exactly (over HTTP: no websocket)."""

from __future__ import annotations

import argparse
import sys

from client.commands import _common as c


def _run(args: argparse.Namespace) -> int:
    from client.commands._http import read_text
    from client.state import StateDir, default_state_dir

    link = c.link_arg(args.link)
    remembered = StateDir(default_state_dir()).remembered(link.keys.channel_id)
    read = read_text(link, args.timeout, remembered)
    for alarm in read.alarms:
        print(f"blindpad cat: warning: {alarm.kind.value}: {alarm.detail}", file=sys.stderr)
    sys.stdout.write(read.text)
    sys.stdout.flush()
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad cat``."""
    parser = c.parser(
        "cat",
        "Print the pad's text exactly as stored (no newline added). Every patch is "
        "verified; problems are reported on stderr.",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    return c.execute("cat", args, lambda: _run(args))

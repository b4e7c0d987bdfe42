"""``blindpad history LINK``: list the stored patches, their authors and sizes."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import crypto
from client.commands import _common as c


def _describe(link: crypto.PadLink, sealed: bytes) -> tuple[str, str, str]:
    """(author name, key fingerprint, time) of one sealed patch."""
    try:
        opened = crypto.open_envelope(link.keys, sealed)
    except crypto.CryptoError as error:
        return "(invalid)", type(error).__name__, "-"
    return (
        opened.author_name or "(no name)",
        opened.author_key.hex()[:16],
        _time(opened.content),
    )


def _time(content: bytes) -> str:
    """The author's clock when sealing (content field ``t``), as UTC; ``-`` if absent."""
    try:
        when = json.loads(content).get("t")
    except (ValueError, AttributeError):
        return "-"
    if type(when) is not int:
        return "-"
    return datetime.fromtimestamp(when / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _run(args: argparse.Namespace) -> int:
    from client.commands._http import HistoryTrimmed, fetch

    link = c.link_arg(args.link)
    try:
        body = fetch(link, "since=0", args.timeout)
    except HistoryTrimmed as gone:  # a trim removed the start: list what remains
        body = fetch(link, f"since={gone.floor}", args.timeout)
        print(f"(patches 1 to {gone.floor} were trimmed: the pad starts from a snapshot there)")
    latest = fetch(link, "from=snapshot", args.timeout)
    if not body.patches:
        if body.head_seq == 0:
            print("(empty pad: nothing stored yet)", flush=True)
        sys.stdout.flush()
        print(f"head: seq {body.head_seq}, id {body.head_id.hex()[:16]}", file=sys.stderr)
        return c.OK
    snapshot_at = latest.snapshot[0] if latest.snapshot else None
    print(f"{'seq':>6}  {'time (UTC)':<19}  {'author':<20} {'key':<16} {'bytes':>7}  mark")
    for seq, sealed in body.patches:
        name, key, when = _describe(link, sealed)
        mark = "snapshot" if seq == snapshot_at else ""
        row = f"{seq:>6}  {when:<19}  {name[:20]:<20} {key:<16} {len(sealed):>7}  {mark}"
        print(row.rstrip())
    sys.stdout.flush()
    print(f"head: seq {body.head_seq}, id {body.head_id.hex()[:16]}", file=sys.stderr)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad history``."""
    parser = c.parser(
        "history",
        "List the pad's stored patches: sequence number, time (UTC, as the author's "
        "clock said when sealing), author name and key fingerprint, sealed size, and "
        "where the latest snapshot sits.",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    return c.execute("history", args, lambda: _run(args))

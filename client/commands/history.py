"""``blindpad history LINK``: list the stored patches, snapshots and checkpoints."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from client.commands import _common as c

if TYPE_CHECKING:
    from client.codec import CryptoCodec
    from client.doctype import DocType


def _describe(
    codec: CryptoCodec, doctype: DocType[Any, Any], sealed: bytes
) -> tuple[str, str, str]:
    """(author name, key fingerprint, time) of one sealed patch or snapshot."""
    from client.commands._http import time_ms

    try:
        opened = codec.open(sealed)
    except ValueError:
        return "(invalid)", "unreadable", "-"
    if opened.content is None or opened.author is None:
        return "(invalid)", (opened.error or "")[:16], "-"
    when = time_ms(opened, doctype)
    shown = "-" if when is None else datetime.fromtimestamp(when / 1000, UTC)
    return (
        opened.author_name or "(no name)",
        opened.author.hex()[:16],
        shown if isinstance(shown, str) else shown.strftime("%Y-%m-%d %H:%M:%S"),
    )


def _run(args: argparse.Namespace) -> int:
    from client.commands._http import fetch, kept, reader
    from client.doctype import named

    link = c.link_arg(args.link)
    listing = kept(link, args.timeout)
    rows: list[tuple[int, str, bytes]] = []  # (seq, mark, sealed)
    bodies = []
    for x in listing.snapshots:
        bodies.append(fetch(link, f"from=snapshot&at={x}", args.timeout))
        snap = bodies[-1].snapshot
        if snap is not None:
            rows.append((x, "checkpoint" if x < listing.floor else "snapshot", snap[1]))
    body = fetch(link, f"since={listing.floor}", args.timeout)
    rows += [(seq, "", sealed) for seq, sealed in body.patches]
    codec, doctype = reader(link, *bodies, body), named(link.doctype)
    if listing.floor:
        print(
            f"(patches 1 to {listing.floor} were trimmed: the pad starts from its snapshot "
            "there; older checkpoints are whole texts, `blindpad cat --at SEQ` prints one)"
        )
    if not rows:
        print("(empty pad: nothing stored yet)", flush=True)
    else:
        print(f"{'seq':>6}  {'time (UTC)':<19}  {'author':<20} {'key':<16} {'bytes':>7}  mark")
    for seq, mark, sealed in sorted(rows, key=lambda row: (row[0], row[1] == "")):
        name, key, when = _describe(codec, doctype, sealed)
        row = f"{seq:>6}  {when:<19}  {name[:20]:<20} {key:<16} {len(sealed):>7}  {mark}"
        print(row.rstrip())
    sys.stdout.flush()
    print(f"head: seq {body.head_seq}, id {body.head_id.hex()[:16]}", file=sys.stderr)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad history``."""
    parser = c.parser(
        "history",
        "List what the relay keeps of the pad: its stored patches and snapshots, and "
        "the checkpoints kept from before the trimmed history, each with its sequence "
        "number, time (UTC, as the author's clock said when sealing), author name and "
        "key fingerprint, and sealed size.",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    return c.execute("history", args, lambda: _run(args))

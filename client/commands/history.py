"""``blindpad history LINK``: list the stored patches, their authors and sizes."""

from __future__ import annotations

import sys

import crypto
from client.commands import _common as c


def _describe(link: crypto.PadLink, sealed: bytes) -> tuple[str, str]:
    try:
        opened = crypto.open(link.keys, sealed)
    except crypto.CryptoError as error:
        return "(invalid)", type(error).__name__
    return opened.author_name or "(no name)", opened.author_key.hex()[:16]


def main(argv: list[str]) -> int:
    """Run ``blindpad history``."""
    parser = c.parser(
        "history",
        "List the pad's stored patches: sequence number, author name and key "
        "fingerprint, sealed size, and where the latest snapshot sits. (The relay "
        "keeps no timestamps, so none are shown.)",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    from client.commands._http import fetch

    try:
        link = c.link_arg(args.link)
        body = fetch(link, "since=0", args.timeout)
        latest = fetch(link, "from=snapshot", args.timeout)
    except c.CommandError as error:
        return c.fail("history", str(error), error.code)
    if body is None:
        print("(empty pad: nothing stored yet)")
        return c.OK
    snapshot_at = latest.snapshot[0] if latest and latest.snapshot else None
    print(f"{'seq':>6}  {'author':<20} {'key':<16} {'bytes':>7}  mark")
    for seq, sealed in body.patches:
        name, key = _describe(link, sealed)
        mark = "snapshot" if seq == snapshot_at else ""
        print(f"{seq:>6}  {name[:20]:<20} {key:<16} {len(sealed):>7}  {mark}".rstrip())
    print(f"head: seq {body.head_seq}, id {body.head_id.hex()[:16]}", file=sys.stderr)
    return c.OK

"""``blindpad watch LINK``: print the text, then changes and presence as they happen.

Watching never writes, so it never changes what is remembered: ``--name``
is the name shown to others while watching, and the identity's stored name
(used by later writes) stays as it was.  A watcher takes its own slot in the
state directory, so writes by the same user run beside it.
"""

from __future__ import annotations

import argparse
import sys

from client.commands import _common as c
from client.events import (
    Alarm,
    ConnectionLost,
    ConnectionRestored,
    CursorMoved,
    PadEvent,
    PeerJoined,
    PeerLeft,
    TextChanged,
)


def describe(event: PadEvent) -> str | None:
    """One line for an event worth showing (None for the others)."""
    if isinstance(event, TextChanged):
        parts = [
            f"@{op.pos}"
            + (f" -{op.delete}" if op.delete else "")
            + (f" +{op.insert!r}" if op.insert else "")
            for op in event.ops
        ]
        return "change " + ", ".join(parts)
    if isinstance(event, PeerJoined | PeerLeft | CursorMoved):
        verb = {PeerJoined: "joined", PeerLeft: "left", CursorMoved: "moved"}[type(event)]
        peer = event.peer
        where = f" at {peer.cursor[0]}-{peer.cursor[1]}" if peer.cursor else ""
        return f"presence {peer.name} ({peer.fingerprint}) {verb}{where}"
    if isinstance(event, ConnectionLost):
        return f"offline: {event.reason} (reconnecting)"
    if isinstance(event, ConnectionRestored):
        return "online again"
    if isinstance(event, Alarm):
        return f"ALARM {event.kind.value}: {event.detail}"
    return None


async def _watch(
    link: str, options: dict[str, object], name: str | None, limit: int | None
) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        stream = pad.events()
        print(f"text ({len(pad.text)} code points): {pad.text!r}", flush=True)
        if pad.vouched is not None:
            who, key = pad.vouched
            print(f"opened from a snapshot made by {who} (key {key[:16]})", flush=True)
        for alarm in pad.alarms:  # raised while opening
            print(describe(alarm), flush=True)
        await pad.set_presence(name=name)
        shown = 0
        async for event in stream:
            line = describe(event)
            if line is None:
                continue
            print(line, flush=True)
            shown += 1
            if limit is not None and shown >= limit:
                break
        stream.close()
    return c.OK


def _run(args: argparse.Namespace) -> int:
    link = c.link_arg(args.link)
    if args.name is not None:
        c.check_text(args.name, "the name")
    options = c.open_options(args, remember_name=False)
    try:
        return c.run("watch", _watch(str(link), options, args.name, args.count), args)
    finally:
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    """Run ``blindpad watch``."""
    parser = c.parser(
        "watch",
        "Print the pad's text, then every change and who is present, as it happens "
        "(Ctrl-C to stop). A view link is enough; watching never writes, and --name "
        "here is shown to others while watching but not remembered.",
    )
    parser.add_argument("link", help="the pad's edit or view link")
    parser.add_argument("--count", type=int, help="stop after this many lines of news")
    args = parser.parse_args(argv)
    return c.execute("watch", args, lambda: _run(args))

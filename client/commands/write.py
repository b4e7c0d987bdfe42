"""``blindpad write LINK [FILE]``: make the pad's text FILE's (or stdin's), as a minimal diff."""

from __future__ import annotations

import argparse
from pathlib import Path

from client.commands import _common as c


async def _write(link: str, text: str, options: dict[str, object], timeout: float) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        await pad.replace(text)
        return await c.saved_or_kept("write", pad, timeout)


def _run(args: argparse.Namespace) -> int:
    # Everything that needs no relay is checked before connecting.
    link = c.link_arg(args.link, write=True)
    text = c.read_text_arg(args.file)
    return c.run("write", _write(str(link), text, c.open_options(args), args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad write``."""
    parser = c.parser(
        "write",
        "Replace the pad's text with FILE (or standard input; UTF-8) as a minimal diff; "
        "exit once the relay has acknowledged it.",
        offline=True,
    )
    parser.add_argument("link", help="the pad's edit link")
    parser.add_argument("file", nargs="?", type=Path, help="the new text (default: stdin)")
    args = parser.parse_args(argv)
    return c.execute("write", args, lambda: _run(args))

"""``blindpad append LINK [TEXT]``: add TEXT (or standard input) at the end of the pad."""

from __future__ import annotations

import argparse

from client.commands import _common as c


async def _append(link: str, text: str, options: dict[str, object], timeout: float) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        await pad.insert(len(pad.text), text)
        return await c.saved_or_kept("append", pad, timeout)


def _run(args: argparse.Namespace) -> int:
    link = c.link_arg(args.link, write=True)
    text = c.read_text_arg(None) if args.text is None else c.check_text(args.text, "the text")
    return c.run("append", _append(str(link), text, c.open_options(args), args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad append``."""
    parser = c.parser(
        "append",
        "Append TEXT, or standard input when TEXT is left out (exactly, no newline "
        "added), and wait for the relay's ack.",
        offline=True,
    )
    parser.add_argument("link", help="the pad's edit link")
    parser.add_argument("text", nargs="?", help="the text to add (default: stdin, UTF-8)")
    args = parser.parse_args(argv)
    return c.execute("append", args, lambda: _run(args))

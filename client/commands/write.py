"""``blindpad write LINK [FILE]``: make the pad's text FILE's (or stdin's), as a minimal diff."""

from __future__ import annotations

import sys
from pathlib import Path

from client.commands import _common as c


async def _write(link: str, text: str, options: dict[str, object], timeout: float) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        await pad.replace(text)
        await c.wait_saved(pad, timeout)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad write``."""
    parser = c.parser(
        "write",
        "Replace the pad's text with FILE (or standard input) as a minimal diff; exit "
        "once the relay has acknowledged it.",
    )
    parser.add_argument("link", help="the pad's edit link")
    parser.add_argument("file", nargs="?", type=Path, help="the new text (default: stdin)")
    args = parser.parse_args(argv)
    try:
        link = c.link_arg(args.link, write=True)
        text = args.file.read_text("utf-8") if args.file else sys.stdin.read()
    except c.CommandError as error:
        return c.fail("write", str(error), error.code)
    except (OSError, UnicodeDecodeError) as error:
        return c.fail("write", f"cannot read the text: {error}", c.USAGE)
    return c.run("write", _write(str(link), text, c.open_options(args), args.timeout))

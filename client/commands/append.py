"""``blindpad append LINK TEXT``: add TEXT at the end of the pad."""

from __future__ import annotations

from client.commands import _common as c


async def _append(link: str, text: str, options: dict[str, object], timeout: float) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        await pad.insert(len(pad.text), text)
        await c.wait_saved(pad, timeout)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad append``."""
    parser = c.parser(
        "append", "Append TEXT (exactly, no newline added) and wait for the relay's ack."
    )
    parser.add_argument("link", help="the pad's edit link")
    parser.add_argument("text", help="the text to add")
    args = parser.parse_args(argv)
    try:
        link = c.link_arg(args.link, write=True)
    except c.CommandError as error:
        return c.fail("append", str(error), error.code)
    return c.run("append", _append(str(link), args.text, c.open_options(args), args.timeout))

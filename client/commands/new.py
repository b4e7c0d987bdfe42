"""``blindpad new [--relay URL]``: make a pad; print its edit link, then its view link."""

from __future__ import annotations

import asyncio

from client.commands import _common as c


async def _new(relay: str, timeout: float) -> int:
    from client.pad import Pad

    try:
        async with asyncio.timeout(timeout):
            links = await Pad.create(relay)
    except TimeoutError as error:
        raise c.CommandError(f"could not reach the relay at {relay}") from error
    print(links.edit_link)
    print(links.view_link)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad new``."""
    parser = c.parser(
        "new",
        "Create a pad (its secret is made here, never sent) and print the edit link, "
        "then the view link.",
        pad_options=False,
    )
    parser.add_argument("--relay", default=c.relay_default(), help="relay base URL")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    return c.run("new", _new(args.relay, args.timeout))

"""``blindpad new [--relay URL]``: make a pad; print its edit link, then its view link."""

from __future__ import annotations

import argparse

from client.commands import _common as c


async def _new(relay: str, timeout: float) -> int:
    from client.pad import Pad

    links = await Pad.create(relay, open_timeout=timeout, retry_first_connect=False)
    print(links.edit_link)
    print(links.view_link, flush=True)
    return c.OK


def _run(args: argparse.Namespace) -> int:
    return c.run("new", _new(args.relay, args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad new``."""
    parser = c.parser(
        "new",
        "Create a pad (its secret is made here, never sent) and print the edit link, "
        "then the view link. The only command that creates pads.",
        pad_options=False,
    )
    parser.add_argument("--relay", default=c.relay_default(), help="relay base URL")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (30)")
    args = parser.parse_args(argv)
    return c.execute("new", args, lambda: _run(args))

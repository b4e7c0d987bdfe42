"""``blindpad new [--relay URL] [--token T] [--json]``: make a pad; print its links.

A relay started with ``--create-token`` lets only holders of that token create
pads: give it with ``--token`` or ``$BLINDPAD_CREATE_TOKEN`` (the option wins).
The token goes in the connection's HELLO only, never into a link.
"""

from __future__ import annotations

import argparse
import os

from client.commands import _common as c

#: The environment variable holding the relay's creation token.
TOKEN_ENV = "BLINDPAD_CREATE_TOKEN"


async def _new(relay: str, timeout: float, token: bytes, kind: str) -> int:
    from client.pad import Pad

    links = await Pad.create(
        relay, open_timeout=timeout, retry_first_connect=False, token=token, kind=kind
    )
    print(links.edit_link)
    print(links.view_link, flush=True)
    return c.OK


def _run(args: argparse.Namespace) -> int:
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV, "")
    kind = "json" if args.json else "text"
    return c.run("new", _new(args.relay, args.timeout, token.encode(), kind), args)


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
    parser.add_argument(
        "--token",
        help=f"the relay's creation token, if it has one (default: ${TOKEN_ENV})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="make a JSON pad (a JSON value that merges by structure; edit it with "
        "`blindpad set`), not a text pad",
    )
    args = parser.parse_args(argv)
    return c.execute("new", args, lambda: _run(args))

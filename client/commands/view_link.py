"""``blindpad view-link LINK``: derive the read-only link of a pad from its edit link."""

from __future__ import annotations

import argparse

from client.commands import _common as c


def _run(args: argparse.Namespace) -> int:
    print(c.link_arg(args.link).view_link(), flush=True)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad view-link``."""
    parser = c.parser(
        "view-link",
        "Print the view link (read and watch, never write) of a pad. Works offline.",
        pad_options=False,
    )
    parser.add_argument("link", help="the pad's edit link (a view link is printed unchanged)")
    args = parser.parse_args(argv)
    return c.execute("view-link", args, lambda: _run(args))

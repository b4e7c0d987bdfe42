"""``blindpad trim LINK``: keep the pad as a snapshot and remove the history before it."""

from __future__ import annotations

import argparse

from client.commands import _common as c


async def _trim(link: str, options: dict[str, object], timeout: float) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        c.progress("trimming: snapshot of the pad, then the history before it")
        try:
            floor = await pad.trim(timeout)
        finally:
            c.progress_done()
        await c.wait_saved(pad, timeout)  # our own unsent edits, if a log held any
    if floor == 0:
        print("nothing to trim: the pad is empty")
    else:
        print(f"trimmed: the pad now starts from a snapshot at patch {floor}")
    return c.OK


def _run(args: argparse.Namespace) -> int:
    link = c.link_arg(args.link, write=True)
    return c.run("trim", _trim(str(link), c.open_options(args), args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad trim``."""
    parser = c.parser(
        "trim",
        "Snapshot the pad as the relay holds it, then have the relay remove the history "
        "before that snapshot, so it stores about the text's size.  Older revisions are "
        "gone afterwards (`blindpad history` lists what remains).",
    )
    parser.add_argument("link", help="the pad's edit link")
    args = parser.parse_args(argv)
    return c.execute("trim", args, lambda: _run(args))

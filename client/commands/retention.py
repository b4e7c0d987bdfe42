"""``blindpad retention LINK [PERCENT]``: show or set how much older history a pad keeps."""

from __future__ import annotations

import argparse

from client.commands import _common as c

DEFAULT_NOTE = (
    "each editor's default applies: older snapshots that fit, with the newest,"
    " in the document's size"
)


async def _retention(
    link: str, keep_pct: int | None, options: dict[str, object], timeout: float
) -> int:
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        if keep_pct is None:
            shown = pad.retention
            if shown is None:
                print(f"no retention setting: {DEFAULT_NOTE}")
            else:
                print(f"keeps older snapshots within {shown}% of the newest one's size")
            return c.OK
        c.progress("saving the retention setting in a snapshot of the pad")
        try:
            await pad.set_retention(keep_pct, timeout)
        finally:
            c.progress_done()
        await c.wait_saved(pad, timeout)
    print(f"set: compactions keep older snapshots within {keep_pct}% of the newest one's size")
    return c.OK


def _percent(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    link = c.link_arg(args.link, write=args.percent is not None)
    work = _retention(str(link), args.percent, c.open_options(args), args.timeout)
    return c.run("retention", work, args)


def main(argv: list[str]) -> int:
    """Run ``blindpad retention``."""
    parser = c.parser(
        "retention",
        "Show the pad's retention setting, or set it with PERCENT: every editor's "
        "compaction then keeps older snapshots (the checkpoints `blindpad history` lists "
        "and `blindpad cat --at` reads) whose bytes total at most PERCENT % of the newest "
        "snapshot's; 0 keeps none.  The setting is signed by you and stored in a snapshot "
        "the relay cannot read.",
    )
    parser.add_argument("link", help="the pad's link (its edit link to set)")
    parser.add_argument(
        "percent", nargs="?", type=_percent, help="the new setting, 0..65535 (omit to show)"
    )
    args = parser.parse_args(argv)
    return c.execute("retention", args, lambda: _run(args))

"""``blindpad edit LINK``: edit the pad in $EDITOR; the diff is applied on save.

While the editor is open the pad stays connected and follows others' edits.
When the editor exits, the user's change (a minimal diff from the text they
started with) is transformed over everything others changed meanwhile, so
both survive, then applied and acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from client.commands import _common as c


def _run_editor(command: str, path: Path) -> int:
    return subprocess.call([*shlex.split(command), str(path)])


async def _edit(link: str, options: dict[str, object], editor: str, timeout: float) -> int:
    from client.pad import Pad
    from client.textops import diff, transform

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        base = pad.text
        with tempfile.TemporaryDirectory(prefix="blindpad-") as folder:
            path = Path(folder) / "pad.txt"
            path.write_text(base, "utf-8")
            status = await asyncio.to_thread(_run_editor, editor, path)
            if status != 0:
                raise c.CommandError(f"the editor exited with status {status}; nothing changed")
            edited = path.read_text("utf-8")
        mine = diff(base, edited)
        if not mine:
            return c.OK
        theirs = diff(base, pad.text)
        await pad.apply(transform(mine, theirs))
        await c.wait_saved(pad, timeout)
    return c.OK


def main(argv: list[str]) -> int:
    """Run ``blindpad edit``."""
    parser = c.parser(
        "edit",
        "Open the pad's text in $VISUAL or $EDITOR (default vi); on exit, apply your "
        "changes rebased over what others changed meanwhile.",
    )
    parser.add_argument("link", help="the pad's edit link")
    args = parser.parse_args(argv)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        link = c.link_arg(args.link, write=True)
    except c.CommandError as error:
        return c.fail("edit", str(error), error.code)
    return c.run("edit", _edit(str(link), c.open_options(args), editor, args.timeout))

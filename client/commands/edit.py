"""``blindpad edit LINK``: edit the pad in $EDITOR; the diff is applied on save.

While the editor is open the pad stays connected and follows others' edits.
When the editor exits, the user's change (a minimal diff from the text they
started with) is transformed over everything others changed meanwhile, so
both survive, then applied and acknowledged.  The editor is looked up
before connecting: without one the command exits 2 having sent nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from client.commands import _common as c


def editor_command() -> list[str]:
    """The editor to run: ``$VISUAL``, else ``$EDITOR``, else ``vi``, found on PATH.

    Raises:
        CommandError: no usable editor (code 2).
    """
    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    source = "$VISUAL/$EDITOR" if chosen else "the default editor"
    try:
        words = shlex.split(chosen or "vi")
    except ValueError as error:
        raise c.CommandError(f"cannot parse {source} {chosen!r}: {error}", c.USAGE) from None
    if not words or shutil.which(words[0]) is None:
        what = repr(words[0]) if words else "(empty)"
        raise c.CommandError(
            f"no editor: {source} {what} is not found; set EDITOR, e.g. EDITOR=nano "
            "(nothing was sent)",
            c.USAGE,
        )
    return words


def _run_editor(command: list[str], path: Path) -> int:
    return subprocess.call([*command, str(path)])


async def _edit(link: str, options: dict[str, object], editor: list[str], timeout: float) -> int:
    from client.pad import Pad
    from client.textdiff import diff
    from client.textops import transform

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        base = pad.text
        with tempfile.TemporaryDirectory(prefix="blindpad-") as folder:
            path = Path(folder) / "pad.txt"
            path.write_text(base, "utf-8")
            status = await asyncio.to_thread(_run_editor, editor, path)
            if status != 0:
                raise c.CommandError(f"the editor exited with status {status}; nothing changed")
            try:
                edited = path.read_text("utf-8")
            except UnicodeDecodeError as error:
                raise c.CommandError(
                    f"the edited file is not valid UTF-8 (byte {error.start}); nothing changed"
                ) from None
        mine = diff(base, edited)
        if not mine:
            return c.OK
        theirs = diff(base, pad.text)
        await pad.apply(transform(mine, theirs))
        return await c.saved_or_kept("edit", pad, timeout)


def _run(args: argparse.Namespace) -> int:
    link = c.link_arg(args.link, write=True)
    editor = editor_command()
    return c.run("edit", _edit(str(link), c.open_options(args), editor, args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad edit``."""
    parser = c.parser(
        "edit",
        "Open the pad's text in $VISUAL or $EDITOR (default vi); on exit, apply your "
        "changes rebased over what others changed meanwhile.",
        offline=True,
    )
    parser.add_argument("link", help="the pad's edit link")
    args = parser.parse_args(argv)
    return c.execute("edit", args, lambda: _run(args))

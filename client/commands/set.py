"""``blindpad set LINK PATH VALUE``: set the value at PATH in a JSON pad.

PATH is a JSON array of keys (strings) and list indices (integers), ``[]``
for the whole value; VALUE is JSON.  Both are checked before anything is
sent: a bad one is one line on stderr and exit code 2, as is a text pad or a
path that does not fit the pad's value.
"""

from __future__ import annotations

import argparse
import json

from client.commands import _common as c


def _parse(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except ValueError as error:
        raise c.CommandError(f"{what} is not JSON ({error})", c.USAGE) from None


def parse_path(text: str) -> list[str | int]:
    """PATH: a JSON array of strings and non-negative integers.

    Raises:
        CommandError: code 2, naming what is wrong.
    """
    path = _parse(text, "PATH")
    ok = isinstance(path, list) and all(
        type(k) is str or (type(k) is int and k >= 0) for k in path
    )
    if not ok:
        raise c.CommandError(
            f'PATH must be a JSON array of keys and indices, like \'["items", 0, "title"]\', '
            f"not {text!r}",
            c.USAGE,
        )
    assert isinstance(path, list)
    return path


async def _set(
    link: str, path: list[str | int], value: object, options: dict[str, object], timeout: float
) -> int:
    from client.errors import InvalidEdit
    from client.pad import Pad

    async with Pad.open(link, **options) as pad:  # type: ignore[arg-type]
        try:
            await pad.set(path, value)
        except InvalidEdit as error:
            raise c.CommandError(f"cannot set {json.dumps(path)}: {error}", c.USAGE) from None
        await c.wait_saved(pad, timeout)
    return c.OK


def _run(args: argparse.Namespace) -> int:
    # Everything that needs no relay is checked before connecting.
    link = c.link_arg(args.link, write=True)
    if link.doctype != "json":
        raise c.CommandError(
            "this is a text pad: `set` edits JSON pads (see `blindpad new --json`)", c.USAGE
        )
    path = parse_path(c.check_text(args.path, "PATH"))
    value = _parse(c.check_text(args.value, "VALUE"), "VALUE")
    return c.run("set", _set(str(link), path, value, c.open_options(args), args.timeout), args)


def main(argv: list[str]) -> int:
    """Run ``blindpad set``."""
    parser = c.parser(
        "set",
        "Set the value at PATH in a JSON pad to VALUE and wait for the relay's ack. "
        "PATH is a JSON array of keys and list indices ('[\"items\", 0]'; '[]' is the "
        "whole value); VALUE is JSON. Concurrent edits elsewhere in the value are kept.",
    )
    parser.add_argument("link", help="the JSON pad's edit link")
    parser.add_argument("path", help="where, as a JSON array: '[\"key\", 0]'")
    parser.add_argument("value", help="the new value, as JSON")
    args = parser.parse_args(argv)
    return c.execute("set", args, lambda: _run(args))

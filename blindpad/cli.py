"""The ``blindpad`` command line: a thin dispatcher above client and relay.

Each subcommand lives in its own module and is imported only when it runs, so
``blindpad --help`` stays instant and ``blindpad relay`` never loads the
client's document engine (and vice versa).  A subcommand module exposes
``main(argv: list[str]) -> int``.  This is the one place that names both
packages: ``client`` never imports ``relay`` and ``relay`` never imports
``client`` (tests/test_architecture.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

#: name -> (module, one-line summary).  Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "relay": ("relay.cli", "run the content-blind relay (and serve the web page)"),
    "new": ("client.commands.new", "create a pad; print its edit link, then its view link"),
    "cat": ("client.commands.cat", "print a pad's text (a JSON pad's value as JSON)"),
    "set": ("client.commands.set", "set the value at a path in a JSON pad"),
    "write": ("client.commands.write", "replace a pad's text with a file or stdin"),
    "append": ("client.commands.append", "append text to a pad"),
    "watch": ("client.commands.watch", "print changes and who is present as they happen"),
    "edit": ("client.commands.edit", "edit a pad in $EDITOR, merged with others' changes"),
    "history": ("client.commands.history", "list a pad's patches, authors and sizes"),
    "trim": ("client.commands.trim", "keep the pad as a snapshot; remove the history before it"),
    "retention": ("client.commands.retention", "show or set how much older history a pad keeps"),
    "view-link": ("client.commands.view_link", "derive the read-only link from an edit link"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: blindpad COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += [
        "",
        "Run 'blindpad COMMAND --help' for a command's options and exit codes",
        "(0 success, 1 failed at run time, 2 bad usage, 3 no such pad, 70 internal error).",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named by ``argv[0]``; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"blindpad: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    run: Callable[[list[str]], int] = module.main
    return run(rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``blindpad`` command line: a thin dispatcher.

Each subcommand lives in its own module and is imported only when it runs, so
``blindpad --help`` stays instant and ``blindpad relay`` never loads the
client's document engine (and vice versa).  A subcommand module exposes
``main(argv: list[str]) -> int``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

#: name -> (module, one-line summary).  Modules are imported lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "relay": ("relay.cli", "run the content-blind relay (and serve the web page)"),
}


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: blindpad COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "Run 'blindpad COMMAND --help' for a command's options."]
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

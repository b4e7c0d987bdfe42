"""The ``blindpad`` subcommands that use a pad; one module each, imported lazily.

Each module exposes ``main(argv: list[str]) -> int``.  The exit codes, the
``--debug`` option and the one error path are in :mod:`client.commands._common`
(its docstring holds the table; ``EXIT_CODES_HELP`` is the same table for
``--help``).
"""

"""The ``blindpad`` subcommands that use a pad; one module each, imported lazily.

Each module exposes ``main(argv: list[str]) -> int``.  Exit codes: 0 success,
1 a failure at run time (relay unreachable or refusing, integrity alarm in
``cat``), 2 bad usage (bad arguments, damaged link, a view link given to a
writing command: refused before anything is sent), 130 interrupted.
"""

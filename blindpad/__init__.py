"""The ``blindpad`` launcher: the one package allowed to import client and relay.

It holds the ``blindpad`` console script (:mod:`blindpad.cli`), which names
each subcommand by module path and imports only the one that runs.  The
packages below it keep to their lines (tests/test_architecture.py):
``crypto`` and ``wire`` import nothing of ours; ``client`` and ``relay``
import ``crypto`` and ``wire``, never each other.
"""

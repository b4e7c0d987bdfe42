"""``python -m client`` is gone: the command line is ``blindpad`` (``python -m blindpad``).

The dispatcher names the relay's subcommand too, and the client package never
refers to the relay, so it lives in the ``blindpad`` launcher package.
"""

import sys

print(
    "python -m client is now python -m blindpad (or the blindpad command): "
    f"python -m blindpad {' '.join(sys.argv[1:])}".rstrip(),
    file=sys.stderr,
)
sys.exit(2)

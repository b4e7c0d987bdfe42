"""``python -m relay ...`` is ``blindpad relay ...`` without the client package."""

import sys

from relay.cli import main

sys.exit(main(sys.argv[1:]))

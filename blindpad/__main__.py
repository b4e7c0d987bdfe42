"""``python -m blindpad ...`` is the ``blindpad`` command."""

import sys

from blindpad.cli import main

sys.exit(main())

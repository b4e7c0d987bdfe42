"""Shared test configuration.

Layout: one folder per package under test (crypto, wire, core = the
sans-I/O client core, frontends = the SDK and the command line, relay,
web), with the shared helpers (relay_support, sim, vectors) here.

Hypothesis profiles: ``ci`` (the default: derandomised, no deadline, so runs
are reproducible and never fail on a slow machine) and ``thorough`` (many more
examples, random), chosen with ``BLINDPAD_HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# The test folders are named after the packages they test (tests/crypto,
# tests/relay, ...).  pytest puts tests/ on sys.path (for relay_support, sim,
# vectors), where those folders would pass for namespace packages and shadow
# the real ones, so the project's root goes first.
_ROOT = str(Path(__file__).resolve().parent.parent)
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)


settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=5000,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("BLINDPAD_HYPOTHESIS_PROFILE", "ci"))

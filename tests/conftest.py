"""Shared test configuration.

Hypothesis profiles: ``ci`` (the default: derandomised, no deadline, so runs
are reproducible and never fail on a slow machine) and ``thorough`` (many more
examples, random), chosen with ``BLINDPAD_HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

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

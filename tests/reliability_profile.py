"""The reliability suite's two profiles, chosen by ``BLINDPAD_RELIABILITY``.

``ci`` (the default) is bounded so that the whole test command stays well
inside CI's budget on a busy two-core machine; ``thorough`` runs for hours and
is what docs/RELIABILITY.md reports.  Every size in the suite comes from
:func:`pick`, so one variable moves them all.
"""

from __future__ import annotations

import os

PROFILES = ("ci", "thorough")
PROFILE = os.environ.get("BLINDPAD_RELIABILITY", "ci")
if PROFILE not in PROFILES:
    raise SystemExit(f"BLINDPAD_RELIABILITY must be one of {PROFILES}, not {PROFILE!r}")
THOROUGH = PROFILE == "thorough"


def pick(ci: int, thorough: int) -> int:
    """The size for the running profile (an environment override wins, see below)."""
    return thorough if THOROUGH else ci


def sized(name: str, ci: int, thorough: int) -> int:
    """Like :func:`pick`, but ``BLINDPAD_<NAME>`` (an integer) overrides both."""
    raw = os.environ.get(f"BLINDPAD_{name.upper()}")
    if raw is None:
        return pick(ci, thorough)
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"BLINDPAD_{name.upper()} must be an integer, not {raw!r}") from None
    if value < 1:
        raise SystemExit(f"BLINDPAD_{name.upper()} must be at least 1, not {value}")
    return value

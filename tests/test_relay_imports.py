"""The relay cannot read pads: it must never import the client package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_relay_never_imports_client() -> None:
    code = (
        "import relay.app, relay.cli, relay.edge.seed, sys; "
        "bad = [m for m in sys.modules if m == 'client' or m.startswith('client.')]; "
        "assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr

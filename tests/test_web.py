"""The web page in a real browser: Debian's Chromium driven by playwright-core.

One relay process (``python -m relay``, SQLite store) and one run of
``tests/web/e2e.mjs`` serve every test here: one Chromium, one context per
simulated person, scenarios in order on one pad. Each test asserts its
scenario's line. The browser parts skip, saying why, when Chromium or the
npm packages are not installed (``scripts/setup`` installs both as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from relay_support import RelayProcess

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BLINDPAD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
SCENARIOS = [
    "converge",
    "caret",
    "ime",
    "surrogate",
    "undo",
    "view",
    "screenshot",
    "offline",
    "reload",
    "network",
]


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is not installed (run scripts/setup as root: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("playwright-core", "pyodide", "libsodium-wrappers"):
        if not (ROOT / "node_modules" / package).is_dir():
            return f"node_modules/{package} is missing (run scripts/setup)"
    return None


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Run every browser scenario once; map scenario name -> its JSON result."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    store = tmp_path_factory.mktemp("web") / "relay.sqlite3"
    relay = RelayProcess("--store", f"sqlite:///{store}")
    try:
        run = subprocess.run(
            ["node", "tests/web/e2e.mjs", relay.handle.url, str(ARTIFACTS)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        relay.stop()
    results: dict[str, dict[str, object]] = {}
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[str(result["scenario"])] = result
    if not results:
        pytest.fail(f"e2e.mjs ran no scenario (exit {run.returncode}):\n{run.stderr[-4000:]}")
    return results


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_browser(e2e: dict[str, dict[str, object]], scenario: str) -> None:
    result = e2e.get(scenario)
    assert result is not None, f"scenario {scenario} did not report"
    assert result["ok"], result["detail"]


def test_screenshot_saved(e2e: dict[str, dict[str, object]]) -> None:
    shot = ARTIFACTS / "web-two-pages.png"
    assert shot.is_file()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

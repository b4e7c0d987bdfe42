"""The web page in a real browser: Debian's Chromium driven by playwright-core.

One relay process (``python -m relay``, SQLite store) and one run of
``tests/web/e2e.mjs`` serve every test here: one Chromium, one context per
simulated person, scenarios in order on one pad. Each test asserts its
scenario's line. The browser parts skip, saying why, when Chromium or the
npm packages are not installed (``scripts/setup`` installs both as root).

The ``crlf`` scenario's pad is written by the Python SDK before the browser
opens it, and read back by the SDK after: the page must leave every ``\r``
it did not edit. No wall-clock limit a slow machine trips: the node run has
only a hang guard (``BLINDPAD_E2E_TIMEOUT_S``, default 60 min).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from relay_support import RelayProcess
from reliability_profile import sized

import crypto
from client import Pad
from client.commands import _http

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BLINDPAD_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
HANG_GUARD_S = float(os.environ.get("BLINDPAD_E2E_TIMEOUT_S", 3600))
CRLF_TEXT = "line 1 😀\r\nline 2\r\nlone CR\rend\r\n"
# What the crlf scenario types: "typed ✓" at the end, Enter after "line",
# then "," after "lone" and "!" at the end in one frame.
CRLF_TYPED = "line 1 😀\r\nline\n 2\r\nlone, CR\rend\r\ntyped ✓!"
SCENARIOS = [
    "converge",
    "caret",
    "ime",
    "surrogate",
    "undo",
    "view",
    "profile",
    "screenshot",
    "small",
    "a11y",
    "history",
    "checkpoints",
    "offline",
    "netdown",
    "crlf",
    "download",
    "errors",
    "reload",
    "snapshotted",
    "network",
]


def _missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"{CHROMIUM} is not installed (run scripts/setup as root: apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("playwright-core", "pyodide", "libsodium-wrappers", "axe-core"):
        if not (ROOT / "node_modules" / package).is_dir():
            return f"node_modules/{package} is missing (run scripts/setup)"
    return None


async def _write_crlf_pad(url: str) -> str:
    links = await Pad.create(url)
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.insert(0, CRLF_TEXT)
        await pad.synced()
    return links.edit_link


async def _write_checkpointed_pad(url: str) -> tuple[str, int, str]:
    """A pad whose relay keeps a checkpoint below its trimmed floor: typed one
    character a patch, compacting (the default) under a generous retention,
    until the listing shows one.  Returns the link, that checkpoint's patch
    number and the text there."""
    links = await Pad.create(url)
    link = crypto.parse_link(links.view_link)
    typed = ""
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.set_retention(1000)
        while len(typed) < 3000:
            for _ in range(20):
                typed += chr(0x4E00 + len(typed))
                await pad.insert(len(pad.text), typed[-1])
                await pad.synced()
            listing = await asyncio.to_thread(_http.kept, link, 30)
            below = [x for x in listing.snapshots if x < listing.floor]
            if below:
                return links.edit_link, below[-1], typed[: below[-1]]
    pytest.fail(f"no checkpoint below the floor after {len(typed)} patches")


async def _read_pad(link: str) -> str:
    async with Pad.open(link, state_dir=None) as pad:
        return pad.text


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Run every browser scenario once; map scenario name -> its JSON result."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    store = tmp_path_factory.mktemp("web") / "relay.sqlite3"
    relay = RelayProcess("--store", f"sqlite:///{store}")
    try:
        crlf_link = asyncio.run(_write_crlf_pad(relay.handle.url))
        ckpt_link, ckpt_seq, ckpt_text = asyncio.run(_write_checkpointed_pad(relay.handle.url))
        run = subprocess.run(
            ["node", "tests/web/e2e.mjs", relay.handle.url, str(ARTIFACTS)],
            cwd=ROOT,
            env={
                **os.environ,
                "BLINDPAD_E2E_CRLF_LINK": crlf_link,
                "BLINDPAD_E2E_CHECKPOINT": json.dumps(
                    {"link": ckpt_link, "seq": ckpt_seq, "text": ckpt_text}
                ),
                # The reliability suite's browser case (docs/RELIABILITY.md).
                "BLINDPAD_E2E_SNAPSHOTTED_RUNS": str(sized("browser_recovery_runs", 3, 100)),
            },
            capture_output=True,
            text=True,
            timeout=HANG_GUARD_S,
            check=False,
        )
        crlf_after = asyncio.run(_read_pad(crlf_link))
    except subprocess.TimeoutExpired as hung:
        out = hung.stdout.decode() if isinstance(hung.stdout, bytes) else (hung.stdout or "")
        done = [json.loads(line)["scenario"] for line in out.splitlines() if line.startswith("{")]
        pytest.fail(
            f"tests/web/e2e.mjs hung: no exit after {HANG_GUARD_S:g} s "
            f"(BLINDPAD_E2E_TIMEOUT_S); scenarios finished: {done}"
        )
    finally:
        relay.stop()
    results: dict[str, dict[str, object]] = {"crlf-python": {"text": crlf_after}}
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


def test_crlf_pad_keeps_its_line_breaks(e2e: dict[str, dict[str, object]]) -> None:
    """The SDK reads back every \\r it wrote, and what the page typed, as typed."""
    assert e2e["crlf"]["ok"], e2e["crlf"]["detail"]
    assert e2e["crlf-python"]["text"] == CRLF_TYPED


@pytest.mark.parametrize("ext", ["txt", "md"])
def test_download_holds_the_exact_text(e2e: dict[str, dict[str, object]], ext: str) -> None:
    """The file the page saved is the pad's text as the SDK reads it, byte for byte."""
    assert e2e["download"]["ok"], e2e["download"]["detail"]
    files = e2e["download"]["files"]
    assert isinstance(files, dict)
    saved = base64.b64decode(files[ext]["base64"])
    assert saved == str(e2e["crlf-python"]["text"]).encode("utf-8")
    assert b"\r\nline" in saved  # CRLF kept
    assert b"CR\rend" in saved  # a lone CR kept
    assert "😀".encode() in saved
    assert files[ext]["name"] == f"line-1.{ext}"


@pytest.mark.parametrize(
    "name",
    [
        "web-two-pages.png",
        "web-offline.png",
        "web-small.png",
        "web-small-settings.png",
        "web-history.png",
        "web-history-compare.png",
    ],
)
def test_screenshot_saved(e2e: dict[str, dict[str, object]], name: str) -> None:
    shot = ARTIFACTS / name
    assert shot.is_file()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

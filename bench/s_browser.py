"""Scenario 7: the web page in Debian's Chromium.

``bench/browser.mjs`` (playwright-core) opens two pages on one pad in fresh
browser contexts against a real relay (SQLite): the time from navigation to
the status "saved" (Pyodide, our wheel and libsodium booting, history
loaded; a first visit restores Python from the relay's start-up snapshot
when it serves one), the same for a new tab on the link with the browser's
cache warm (the table says which path each boot took),
then, keystroke by keystroke (50-99 ms apart), the time from a key press in
page A to the character showing in page B (through Python under Pyodide,
libsodium, the relay and back), measured from outside through CDP and inside
the pages on the shared wall clock, the longest time Python held the main
thread in one animation frame (the page's own counter), and the page's
start-up marks (``blindpad:*``: ms after navigation) as a second table.
Skipped, saying so, without ``/usr/bin/chromium``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from bench.common import BenchFailure, Result, percentile, relay_process, summary, table

SCRIPT = Path(__file__).resolve().parent / "browser.mjs"


def run(runs: int, quick: bool) -> Result:
    """``runs`` cold boots of two pages, 10 (quick) or 50 keystrokes each."""
    result = Result("browser")
    chromium = os.environ.get("BLINDPAD_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        result.note(f"{chromium} is missing: browser scenario skipped (scripts/setup installs it)")
        return result
    keys = 10 if quick else 50
    with relay_process() as server:
        out = subprocess.run(
            ["node", str(SCRIPT), server.http_url + "/", str(runs), str(keys)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if out.returncode != 0:
        raise BenchFailure(f"browser.mjs failed: {out.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if len(rows) != runs or not all(r["converged"] for r in rows):
        raise BenchFailure(f"browser: pages did not converge ({rows})")
    latencies = [ms for r in rows for ms in r["latencies"]]
    in_page = [ms for r in rows for ms in r.get("in_page", [])]
    result.data = {"runs": rows}
    result.tables.append(
        table(
            f"Web page in headless Chromium ({runs} cold boots of two pages; {keys} keystrokes "
            "each; ms)",
            ["measure", "value"],
            [
                [
                    "navigation -> saved, page A (creates the pad)",
                    summary([r["boot_ms"] for r in rows]),
                ],
                [
                    "navigation -> saved, page B (opens the link)",
                    summary([r["boot_b_ms"] for r in rows]),
                ],
                [
                    "navigation -> saved, a new tab on the link (warm HTTP cache)",
                    summary([r["boot_warm_ms"] for r in rows]),
                ],
                ["how the first boots started (page A, page B)", _paths(rows, "paths")],
                ["how the warm boots started", _paths(rows, "warm_path")],
                ["keystroke in A -> shown in B, median (in the pages)", percentile(in_page, 0.5)],
                ["keystroke in A -> shown in B, p99 (in the pages)", percentile(in_page, 0.99)],
                ["keystroke in A -> shown in B, median (through CDP)", percentile(latencies, 0.5)],
                ["keystroke in A -> shown in B, p99 (through CDP)", percentile(latencies, 0.99)],
                [
                    "longest main-thread block by Python in one frame",
                    summary([r["worst_frame_ms"] for r in rows]),
                ],
            ],
        )
    )
    result.tables.append(_marks(rows))
    return result


def _paths(rows: list[dict[str, Any]], key: str) -> str:
    """How many boots took each path (<html data-boot>: cold, served, snapshot)."""
    seen: list[str] = []
    for r in rows:
        got = r.get(key, [])
        seen += got if isinstance(got, list) else [got]
    return ", ".join(f"{name} {seen.count(name)}" for name in sorted(set(seen))) or "-"


#: The page's start-up marks in the order they come (web/app.js ``mark``).
MARKS = [
    "boot", "pyodide-module", "python", "client", "imported", "snapshot-taken", "sodium",
    "python-ready", "opened", "connecting", "files", "syncing", "saved",
]  # fmt: skip


def _marks(rows: list[dict[str, Any]]) -> str:
    """Median ms after navigation of each start-up mark, per kind of boot."""
    kinds = [("a", "cold, page A"), ("b", "cold, page B"), ("warm", "warm tab")]
    body = []
    for name in MARKS:
        cells: list[Any] = []
        for key, _ in kinds:
            seen = [r["marks"][key][name] for r in rows if name in r.get("marks", {}).get(key, {})]
            cells.append(summary(seen) if seen else "-")
        body.append([name, *cells])
    return table(
        "Where a boot's time goes: the page's marks, ms after navigation (median, range)",
        ["mark", *(label for _, label in kinds)],
        body,
    )

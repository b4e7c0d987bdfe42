"""The ``blindpad relay`` command line: help, start line, backup, seed, web files."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
from relay_support import ROOT, RelayProcess, running_relay

from relay.app import RelayConfig
from relay.cli import main


def test_help_lists_every_limit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in ("--host", "--port", "--store", "--public-url", "--create-token"):
        assert option in result.stdout
    assert "--max-pad-bytes" in result.stdout
    assert "--channel-quota-bytes" in result.stdout


def test_start_seed_backup(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite3"
    store = f"sqlite:///{db}"
    assert main(["seed", "50", "--store", store]) == 0
    proc = RelayProcess("--store", store)
    try:
        assert proc.handle.url.startswith("http://127.0.0.1:")
        copy = tmp_path / "copy.sqlite3"
        assert main(["backup", str(copy), "--store", store]) == 0
        assert copy.stat().st_size > 0
    finally:
        proc.stop()
    assert main(["backup", str(tmp_path / "x"), "--store", "memory:"]) == 2


def test_web_files_and_mime_types(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>the editor</p>")
    (tmp_path / "app.wasm").write_bytes(b"\0asm")
    (tmp_path / "boot.mjs").write_text("export {}")
    config = RelayConfig(store_url="memory:", web_dir=tmp_path)

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            assert "the editor" in (await http.get("/p/")).text
            wasm = await http.get("/app.wasm")
            assert wasm.headers["content-type"] == "application/wasm"
            mjs = await http.get("/boot.mjs")
            assert mjs.headers["content-type"].startswith("text/javascript")

    with running_relay(config) as relay:
        asyncio.run(fetch(relay.url))

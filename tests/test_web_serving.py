"""The relay serves the web client: hashed assets, MIME types, a lock of our wheel only.

Also the sans-I/O editor binding (client/browser.py) on CPython: crossing
edits, selections through remote changes, undo of one's own edits only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, running_relay

import crypto
from client import textops
from client.browser import EditorBinding, _Step, _through, color_of
from client.events import TextChanged
from client.session import PadSession
from relay.app import DEFAULT_WEB_DIR, RelayConfig, create_app
from relay.edge import web

needs_runtime = pytest.mark.skipif(
    not (ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm").is_file(),
    reason="node_modules/pyodide is missing (run scripts/setup)",
)


@needs_runtime
def test_page_assets_mime_types_and_lock() -> None:
    config = RelayConfig(store_url="memory:", web_dir=DEFAULT_WEB_DIR)

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            page = await http.get("/p/")
            assert page.status_code == 200
            assert page.headers["cache-control"] == "no-cache"
            assert "default-src 'self'" in page.headers["content-security-policy"]
            assert (await http.get("/")).text == page.text
            urls = re.findall(r'(?:src|href|data-[a-z-]+)="(/assets/[^"]+)"', page.text)
            assert len(urls) >= 7
            assert all("{{" not in u for u in urls)
            base = next(u for u in urls if u.endswith("/") and "/pyodide-" in u)
            for name, mime in [
                ("pyodide.asm.wasm", "application/wasm"),
                ("pyodide.mjs", "text/javascript"),
                ("pyodide.asm.mjs", "text/javascript"),
                ("python_stdlib.zip", "application/zip"),
            ]:
                got = await http.get(base + name)
                assert got.status_code == 200, name
                assert got.headers["content-type"].startswith(mime), name
                assert "immutable" in got.headers["cache-control"]
            lock_url = next(u for u in urls if u.endswith("pyodide-lock.json"))
            lock = (await http.get(lock_url)).json()
            assert list(lock["packages"]) == ["blindpad"]
            entry = lock["packages"]["blindpad"]
            wheel = await http.get(lock_url.rsplit("/", 1)[0] + "/" + entry["file_name"])
            assert hashlib.sha256(wheel.content).hexdigest() == entry["sha256"]
            assert lock["info"]["abi_version"]
            names = zipfile.ZipFile(BytesIO(wheel.content)).namelist()
            assert "client/browser.py" in names
            assert not any(n.startswith("relay/") for n in names)
            for url in urls:
                if not url.endswith("/"):
                    assert (await http.get(url)).status_code == 200, url
            assert (await http.get("/assets/app.0000.js")).status_code == 404

    with running_relay(config) as relay:
        asyncio.run(fetch(relay.url))


@needs_runtime
def test_asset_names_follow_content(tmp_path: Path) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    for name in ("index.html", "app.js", "style.css"):
        (web_dir / name).write_bytes((DEFAULT_WEB_DIR / name).read_bytes())
    modules = ROOT / "node_modules"
    first = web.build_bundle(web_dir, modules)
    assert web.build_bundle(web_dir, modules).urls == first.urls  # deterministic
    (web_dir / "app.js").write_text("// v2\n" + (DEFAULT_WEB_DIR / "app.js").read_text())
    second = web.build_bundle(web_dir, modules)
    assert second.urls["app.js"] != first.urls["app.js"]
    assert second.urls["pyodide"] == first.urls["pyodide"]
    assert second.urls["app.js"].encode() in second.html


def test_missing_runtime_refuses_with_the_command(tmp_path: Path) -> None:
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    for name in ("index.html", "app.js", "style.css"):
        (web_dir / name).write_bytes((DEFAULT_WEB_DIR / name).read_bytes())
    with pytest.raises(web.WebAssetsMissing, match="scripts/setup"):
        create_app(RelayConfig(store_url="memory:", web_dir=web_dir))
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--port", "0", "--store", "memory:"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "BLINDPAD_NODE_MODULES": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "scripts/setup" in result.stderr
    assert "pyodide" in result.stderr


# --- the binding, on CPython ----------------------------------------------------


def _ops(patch: textops.Patch) -> list[tuple[int, int, str]]:
    return [(op.pos, op.delete, op.insert) for op in patch]


def _binding(text: str) -> EditorBinding:
    keys = crypto.PadKeys.generate()
    session = PadSession(keys, crypto.Author.generate("t"))
    session._synced_once = True  # as after HISTORY_END on an empty pad
    binding = EditorBinding(session)
    if text:
        binding.local_edit(textops.normalize([(0, 0, text)]), 0)
    return binding


def _remote(binding: EditorBinding, patch: textops.Patch) -> None:
    """Feed a remote change the way the session reports one."""
    engine = binding.session.engine
    engine.view = textops.apply(engine.view, patch)
    engine.open = textops.transform(engine.open, patch)
    binding.session._events.append(TextChanged(patch))


def test_crossing_local_and_remote_edits_converge() -> None:
    b = _binding("hello world")
    _remote(b, textops.normalize([(0, 0, ">> ")]))  # not yet shown on the page
    shown = "hello world"
    local = textops.normalize([(11, 0, "!")])
    b.local_edit(local, 10_000)  # typed on the stale displayed text
    shown = textops.apply(shown, local)
    patches, sel = b.take_changes((12, 12))
    for patch in patches:
        shown = textops.apply(shown, patch)
    assert shown == b.session.text == ">> hello world!"
    assert sel == (15, 15)  # the caret moved with the remote insert before it


def test_undo_removes_only_own_edit_through_remote_changes() -> None:
    b = _binding("abc")
    b.local_edit(textops.normalize([(3, 0, " MINE")]), 5_000)
    _remote(b, textops.normalize([(0, 0, "THEIRS ")]))
    b.take_changes(None)
    undo = b.undo(6_000)
    assert undo is not None
    assert b.session.text == "THEIRS abc"
    redo = b.redo(7_000)
    assert redo is not None
    assert b.session.text == "THEIRS abc MINE"


def test_undo_stack_transform_keeps_entries_on_their_text() -> None:
    doc = "abc"
    first = textops.normalize([(3, 0, "X")])  # "abcX"
    second = textops.normalize([(0, 1, "")])  # "bcX"
    stack = [_Step(textops.invert(first, doc), 0)]
    doc1 = textops.apply(doc, first)
    stack.append(_Step(textops.invert(second, doc1), 0))
    doc2 = textops.apply(doc1, second)
    remote = textops.normalize([(1, 0, "R")])  # "bRcX"
    doc3 = textops.apply(doc2, remote)
    stack = _through(stack, remote)
    doc4 = textops.apply(doc3, stack[-1].patch)
    assert doc4 == "abRcX"
    assert textops.apply(doc4, stack[0].patch) == "abRc"


def test_colours_are_stable_and_distinct() -> None:
    assert color_of("aa" * 32) == color_of("aa" * 32)
    assert len({color_of(f"{i:064x}") for i in range(20)}) > 10
    assert json.dumps(color_of("00" * 32)).startswith('"hsl(')

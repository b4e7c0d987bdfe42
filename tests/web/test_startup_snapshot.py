"""The relay's start-up snapshot of the page's Python (relay/edge/snapshot.py).

The relay makes it once per build, in Node, and serves it; these tests check
how it is made, kept and served with a stand-in ``node`` (a shell script on
PATH: fast, no Pyodide), and what the page is told. The page restoring from
the real one is in test_web_snapshot.py.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, running_relay

from relay.app import DEFAULT_WEB_DIR, RelayConfig
from relay.edge import snapshot
from relay.edge.bundle import NODE_MODULES_ENV, build_bundle, load_bundle, write_packaged

needs_runtime = pytest.mark.skipif(
    not (ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm").is_file(),
    reason="node_modules/pyodide is missing (run scripts/setup)",
)


def stand_in_node(folder: Path, script: str) -> Path:
    """A ``node`` in ``folder`` that runs the sh ``script`` in place of
    snapshot.mjs ("$5": the output file), appending a line to ``runs`` each
    time, and passes any other call to the real node (the browser driver's)."""
    real = shutil.which("node") or "node"
    folder.mkdir(parents=True, exist_ok=True)
    node = folder / "node"
    node.write_text(
        f'#!/bin/sh\ncase "$1" in *snapshot.mjs) ;; *) exec {real} "$@";; esac\n'
        f'echo run >> "{folder}/runs"\n{script}\n'
    )
    node.chmod(node.stat().st_mode | stat.S_IXUSR)
    return folder


def runtime_only(modules: Path) -> Path:
    """A ``node_modules`` with the checkout's runtime and a cache of its own."""
    modules.mkdir()
    for name in ("pyodide", "libsodium", "libsodium-wrappers"):
        (modules / name).symlink_to(ROOT / "node_modules" / name)
    return modules


NodeOnPath = Callable[[str], Path]


@pytest.fixture
def node_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeOnPath:
    """Put a :func:`stand_in_node` first on PATH; return its folder."""
    monkeypatch.delenv(snapshot.ENV, raising=False)

    def put(script: str) -> Path:
        folder = stand_in_node(tmp_path / "bin", script)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        return folder

    return put


def runs(folder: Path) -> int:
    path = folder / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_the_page_and_the_relay_import_the_same_modules() -> None:
    source = (ROOT / "web" / "app.js").read_text(encoding="utf-8")
    listed = re.search(r"const SNAPSHOT_IMPORTS = \[(.*?)\];", source, re.S)
    assert listed, "web/app.js has no SNAPSHOT_IMPORTS"
    assert tuple(re.findall(r'"([\w.]+)"', listed.group(1))) == snapshot.STARTUP_IMPORTS


def test_no_default_name_is_written_in_the_code_the_snapshot_holds() -> None:
    """test_web_snapshot.py finds a secret by searching the snapshot's bytes
    for it, the author's display name among them; a name the page can draw
    (client.browser.random_name) written in a docstring would be found there
    by chance (once in 81 boots: CI failed so on "Calm Heron")."""
    from client.browser import _ADJECTIVES, _ANIMALS

    names = [f"{adjective} {animal}".encode() for adjective in _ADJECTIVES for animal in _ANIMALS]
    packages = ("client", "crypto", "wire")
    sources = [path for package in packages for path in (ROOT / package).rglob("*.py")]
    assert len(sources) > 20, sources
    texts = [(path.name, path.read_bytes()) for path in sources]
    stdlib = ROOT / "node_modules" / "pyodide" / "python_stdlib.zip"
    if stdlib.is_file():
        with zipfile.ZipFile(stdlib) as archive:
            texts += [(member, archive.read(member)) for member in archive.namelist()]
    found = [(where, name) for where, data in texts for name in names if name in data]
    assert found == [], found


def test_a_snapshot_is_made_once_per_build_and_kept(
    tmp_path: Path, node_on_path: NodeOnPath
) -> None:
    bin_dir = node_on_path('printf "memory of %s" "$4" > "$5"')
    modules = tmp_path / "node_modules"

    first = snapshot.startup_snapshot(modules, b"pyodide 1", b"wheel 1")
    assert first is not None
    assert first.parent == modules / snapshot.CACHE
    imports = ",".join(snapshot.STARTUP_IMPORTS)
    assert gzip.decompress(first.read_bytes()) == f"memory of {imports}".encode()
    assert snapshot.startup_snapshot(modules, b"pyodide 1", b"wheel 1") == first
    assert runs(bin_dir) == 1  # the second relay start found it

    other = snapshot.startup_snapshot(modules, b"pyodide 1", b"wheel 2")  # the client changed
    assert other is not None
    assert other != first
    assert runs(bin_dir) == 2
    assert sorted(p.name for p in (modules / snapshot.CACHE).iterdir()) == sorted(
        [first.name, other.name]
    )


def test_a_failing_node_gives_no_snapshot_and_one_line(
    tmp_path: Path, node_on_path: NodeOnPath, capsys: pytest.CaptureFixture[str]
) -> None:
    node_on_path('echo "Error: no Pyodide here" >&2\nexit 3')
    assert snapshot.startup_snapshot(tmp_path / "nm", b"pyodide", b"wheel") is None
    said = capsys.readouterr().err.strip().splitlines()
    assert said[-1] == (
        "blindpad relay: no start-up snapshot for the page (node exited 3: Error: no Pyodide "
        "here): first visits start Python cold"
    )
    assert not list((tmp_path / "nm").rglob("*.gz"))


def test_turned_off_it_is_neither_made_nor_named(
    tmp_path: Path, node_on_path: NodeOnPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = node_on_path('printf x > "$5"')
    monkeypatch.setenv(snapshot.ENV, "off")
    assert snapshot.startup_snapshot(tmp_path / "nm", b"pyodide", b"wheel") is None
    assert runs(bin_dir) == 0


@needs_runtime
def test_the_relay_serves_it_and_names_it_in_the_page(
    tmp_path: Path, node_on_path: NodeOnPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = node_on_path('printf "not really python" > "$5"')
    modules = runtime_only(tmp_path / "node_modules")
    bundle = build_bundle(DEFAULT_WEB_DIR, modules)
    url = bundle.urls["snapshot"]
    assert re.fullmatch(r"/assets/startup-[0-9a-f]{32}\.bin", url), url
    assert f'data-snapshot-url="{url}"'.encode() in bundle.html

    monkeypatch.setenv(NODE_MODULES_ENV, str(modules))
    with running_relay(RelayConfig(store_url="memory:", web_dir=DEFAULT_WEB_DIR)) as relay:
        page = httpx.get(relay.url + "p/").text
        named = re.search(r'data-snapshot-url="([^"]*)"', page)
        assert named
        assert named.group(1) == url
        got = httpx.get(relay.url + url.lstrip("/"))
        plain = httpx.get(relay.url + url.lstrip("/"), headers={"Accept-Encoding": "identity"})
    assert got.status_code == 200
    assert got.content == b"not really python"
    assert got.headers["content-encoding"] == "gzip"
    assert "immutable" in got.headers["cache-control"]
    assert plain.status_code == 200
    assert plain.content == b"not really python"
    assert "content-encoding" not in plain.headers
    assert runs(bin_dir) == 1  # made once, for both bundles


@needs_runtime
def test_a_packaged_page_names_none(tmp_path: Path) -> None:
    write_packaged(ROOT, tmp_path / "static")
    loaded = load_bundle(tmp_path / "static")
    assert loaded.urls["snapshot"] == ""
    assert b'data-snapshot-url=""' in loaded.html
    assert not any("/startup-" in u for u in loaded.assets)

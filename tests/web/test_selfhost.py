"""Self-hosting: compressed assets, the packaged page, creation tokens everywhere.

The slow part builds the wheel once (``pip wheel``), installs it into a fresh
virtualenv in a temporary directory outside the repository, starts
``blindpad relay`` there and drives the page in Chromium
(``tests/web/selfhost.mjs``).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, running_relay

from client import Pad
from client.errors import RelayRefused
from relay.app import CHECKOUT_WEB_DIR, RelayConfig
from relay.edge import bundle, web

TOKEN = "s3cret token"

WASM = ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm"
needs_runtime = pytest.mark.skipif(
    not WASM.is_file(), reason="node_modules/pyodide is missing (run scripts/setup)"
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, gzip;q=0.8", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("*", True),
        ("*, gzip;q=0", False),
        ("GZIP", True),
        ("gzip;q=bad", False),
    ],
)
def test_accept_encoding(header: str, expected: bool) -> None:
    assert web.accepts_gzip(header) is expected


async def _wasm_both_ways(url: str) -> dict[str, int]:
    """Fetch the wasm gzip-encoded and plain; return the bytes each sent."""
    async with httpx.AsyncClient(base_url=url) as http:
        page = (await http.get("/p/")).text
        base = page.split('data-pyodide="', 1)[1].split('"', 1)[0]
        sizes = {}
        for accept in ("gzip, deflate, br", "identity"):
            async with http.stream(
                "GET", base + "pyodide.asm.wasm", headers={"Accept-Encoding": accept}
            ) as response:
                raw = b"".join([chunk async for chunk in response.aiter_raw()])
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/wasm"
            assert response.headers["vary"] == "Accept-Encoding"
            assert "immutable" in response.headers["cache-control"]
            if accept == "identity":
                assert "content-encoding" not in response.headers
                assert raw == WASM.read_bytes()
            else:
                assert response.headers["content-encoding"] == "gzip"
                assert gzip.decompress(raw) == WASM.read_bytes()
            sizes[accept] = len(raw)
        zipped = await http.get(base + "python_stdlib.zip", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in zipped.headers  # already compressed
        return sizes


@needs_runtime
def test_sources_bundle_serves_gzip_once_compressed() -> None:
    config = RelayConfig(store_url="memory:", web_dir=CHECKOUT_WEB_DIR, create_token=b"t")
    with running_relay(config) as relay:
        sizes = asyncio.run(_wasm_both_ways(relay.url))
        page = httpx.get(relay.url).text
    assert sizes["gzip, deflate, br"] < sizes["identity"] // 2
    assert 'data-create-token="required"' in page  # the page asks for the token


def test_token_refusal_says_the_token_when_creating() -> None:
    from client.browser import failure_text
    from client.events import Failed

    refused = Failed("CREATE_TOKEN_REQUIRED", "the relay refused a subscribe")
    assert "did not accept" in failure_text(refused, creating=True)
    assert "did not accept" not in failure_text(refused)
    assert "CREATE_TOKEN_REQUIRED" in failure_text(refused, creating=True)


@needs_runtime
def test_packaged_bundle_round_trip(tmp_path: Path) -> None:
    written = bundle.write_packaged(ROOT, tmp_path / "static")
    loaded = bundle.load_bundle(tmp_path / "static")
    assert loaded.urls == written.urls
    assert loaded.html == written.html
    wasm = next(a for u, a in loaded.assets.items() if u.endswith(".wasm"))
    assert wasm.encoding == "gzip"
    assert loaded.size < 8_000_000
    with running_relay(RelayConfig(store_url="memory:", web_dir=tmp_path / "static")) as relay:
        sizes = asyncio.run(_wasm_both_ways(relay.url))
        page = httpx.get(relay.url).text
    assert sizes["identity"] == WASM.stat().st_size
    assert 'data-create-token=""' in page  # no token: the page never asks
    (tmp_path / "static" / "manifest.json").write_text('{"format": 99}')
    with pytest.raises(bundle.WebAssetsMissing, match="format 99"):
        bundle.load_bundle(tmp_path / "static")


def _blindpad(*args: str, env: dict[str, str], state: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BLINDPAD_CREATE_TOKEN"}
    environ |= {"PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(state), **env}
    return subprocess.run(
        [sys.executable, "-m", "blindpad", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environ,
        timeout=60,
        check=False,
    )


def test_create_token_for_the_cli_and_the_sdk(tmp_path: Path) -> None:
    config = RelayConfig(store_url="memory:", web_dir=None, create_token=TOKEN.encode())
    with running_relay(config) as relay:
        url = relay.url.rstrip("/")
        refused = _blindpad("new", "--relay", url, env={}, state=tmp_path)
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert refused.stderr.count("\n") == 1
        assert "CREATE_TOKEN_REQUIRED" in refused.stderr
        assert "--token or $BLINDPAD_CREATE_TOKEN" in refused.stderr
        wrong = _blindpad("new", "--relay", url, "--token", "guess", env={}, state=tmp_path)
        assert wrong.returncode == 1
        by_option = _blindpad("new", "--relay", url, "--token", TOKEN, env={}, state=tmp_path)
        assert by_option.returncode == 0, by_option.stderr
        env = {"BLINDPAD_CREATE_TOKEN": TOKEN}
        by_env = _blindpad("new", "--relay", url, env=env, state=tmp_path)
        assert by_env.returncode == 0, by_env.stderr
        edit = by_env.stdout.splitlines()[0]
        # Opening an existing pad needs no token: only creating does.
        wrote = _blindpad("append", edit, "hello", env={}, state=tmp_path)
        assert wrote.returncode == 0, wrote.stderr
        assert _blindpad("cat", edit, env={}, state=tmp_path).stdout == "hello"

        async def sdk() -> None:
            with pytest.raises(RelayRefused) as refusal:
                await Pad.create(url, retry_first_connect=False)
            assert refusal.value.code == "CREATE_TOKEN_REQUIRED"
            links = await Pad.create(url, token=TOKEN.encode(), retry_first_connect=False)
            async with Pad.open(links.edit_link, state_dir=None) as pad:
                await pad.insert(0, "from the SDK")
                await pad.synced(20)

        asyncio.run(sdk())


# --- the installed relay (slow: builds the wheel, two fresh virtualenvs, Chromium) ---


def _browser_missing() -> str | None:
    chromium = os.environ.get("BLINDPAD_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).is_file():
        return f"{chromium} is not installed (run scripts/setup as root)"
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        return "node_modules/playwright-core is missing (run scripts/setup)"
    return None


def _script(*args: str) -> str:
    """Run scripts/install-relay; return its output (failing the test on error)."""
    run = subprocess.run(
        [str(ROOT / "scripts" / "install-relay"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"install-relay {args[0]}: {run.stderr[-3000:]}"
    return run.stdout


class Installed:
    """A wheel built from this checkout, installed in a venv outside the repository."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheel = Path(_script("build", str(root / "dist")).split()[-1])
        out = _script("install", str(self.wheel), str(root / "venv"))
        assert "web page: packaged" in out, out
        self.bin = root / "venv" / "bin"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run an installed command from the temporary directory, not the checkout."""
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.root,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "BLINDPAD_CREATE_TOKEN", "BLINDPAD_NODE_MODULES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not WASM.is_file():
        pytest.skip("node_modules/pyodide is missing (run scripts/setup)")
    root = tmp_path_factory.mktemp("selfhost")
    assert ROOT not in root.parents
    return Installed(root)


class _Started:
    def __init__(
        self, installed: Installed, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [str(installed.bin / "blindpad"), "relay", "--port", "0", *args],
            cwd=installed.root,
            env={**_clean_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            pytest.fail(f"the installed relay did not start: {line!r}")
        self.url = line.split("listening on ")[1].split(" ")[0]

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.mark.slow
def test_wheel_size_and_contents(installed: Installed) -> None:
    size = installed.wheel.stat().st_size
    print(f"\nwheel {installed.wheel.name}: {size / 1e6:.2f} MB")
    assert 3_000_000 < size < 12_000_000
    site = next((installed.root / "venv" / "lib").glob("python3*/site-packages"))
    static = site / "relay" / "edge" / "static"
    assert (static / "manifest.json").is_file()
    assert list(static.rglob("pyodide.asm.wasm.gz"))
    assert not (site / "web").exists()


@pytest.mark.slow
def test_sdk_install_needs_no_relay_extra(installed: Installed) -> None:
    venv = installed.root / "sdk"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    installing = subprocess.run(
        [*pip, str(installed.wheel)], capture_output=True, text=True, timeout=300, check=False
    )
    assert installing.returncode == 0, installing.stderr[-3000:]
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert not (site / "starlette").exists()
    assert not (site / "uvicorn").exists()
    result = subprocess.run(
        [str(venv / "bin" / "blindpad"), "relay", "--port", "0"],
        cwd=installed.root,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "install blindpad[relay]" in result.stderr
    helped = subprocess.run([str(venv / "bin" / "blindpad"), "new", "--help"], capture_output=True)
    assert helped.returncode == 0


@pytest.mark.slow
def test_installed_relay_serves_a_working_page(installed: Installed) -> None:
    reason = _browser_missing()
    if reason is not None:
        pytest.skip(reason)
    relay = _Started(installed, "--store", f"sqlite:///{installed.root / 'relay.sqlite3'}")
    # The token comes from the environment here (as in deploy/blindpad-relay.service).
    guarded = _Started(installed, "--store", "memory:", env={"BLINDPAD_RELAY_CREATE_TOKEN": TOKEN})
    try:
        run = subprocess.run(
            ["node", "tests/web/selfhost.mjs", relay.url, guarded.url, TOKEN],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        results = {r["scenario"]: r for r in map(json.loads, _json_lines(run.stdout))}
        assert results, f"selfhost.mjs ran no scenario ({run.returncode}): {run.stderr[-3000:]}"
        for name in ("saved", "gzip", "token"):
            assert results[name]["ok"], results[name]["detail"]
        print(f"\n{results['gzip']['detail']}")
        assert results["gzip"]["name"] == "pyodide.asm.wasm"
        for scenario, text in [
            ("saved", "typed on an installed relay"),
            ("token", "created with the token"),
        ]:
            cat = installed.run("blindpad", "cat", results[scenario]["edit"])
            assert cat.returncode == 0, cat.stderr
            assert cat.stdout == text
    finally:
        relay.stop()
        guarded.stop()


def _json_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("{")]


def test_one_reconnect_policy_for_sdk_and_browser() -> None:
    from client import browser, pad, transport

    assert pad.Backoff is transport.Backoff
    assert isinstance(browser.RECONNECT, transport.Backoff)
    assert browser.RECONNECT.jitter > 0
    draws = iter([0.0, 1.0, 0.5, 0.0])
    backoff = transport.Backoff(initial=1.0, factor=2.0, cap=5.0, jitter=0.5)
    policy = transport.Reconnect(backoff, draw=lambda: next(draws))
    # 1 * (1 - 0), 2 * (1 - 0.5), 4 * (1 - 0.25); a live connection restarts the count.
    assert [policy.ended(live=False) for _ in range(3)] == [1.0, 1.0, 3.0]
    assert policy.ended(live=True) == 1.0


def test_container_and_service_files_use_the_tested_commands() -> None:
    """No container engine runs here: hold the files to what CI does run."""
    docker = (ROOT / "Dockerfile").read_text()
    assert "RUN scripts/install-relay build /dist" in docker
    assert "RUN install-relay install /dist/blindpad-*.whl /opt/blindpad" in docker
    assert "\nUSER blindpad\n" in docker
    assert 'VOLUME ["/data"]' in docker
    assert '"check", "--url", "http://127.0.0.1:8765/"' in docker
    assert '"--host", "0.0.0.0"' in docker
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"node_modules", ".venv", ".git", "relay/edge/static"} <= set(ignored)
    unit = (ROOT / "deploy" / "blindpad-relay.service").read_text()
    assert "ExecStart=/opt/blindpad/bin/blindpad relay serve" in unit
    assert "DynamicUser=yes" in unit
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    assert "build: .." in compose
    assert "- serve" in compose

"""Embedding (``docs/EMBED.md``): ``/embed/``, ``--embed-origins``, ``<blindpad-pad>``.

The fast part checks the relay's side over HTTP: who may frame which page
(``frame-ancestors``), the origins handed to the embed page, the element's
script at its stable URL. The browser part is one Chromium run
(``tests/web/embed.mjs``): a relay process listing one host origin, two
host origins on loopback serving ``docs/embed-example.html`` filled in,
the Python SDK writing before and reading after. No wall-clock limit: the
node run has only a hang guard (``BLINDPAD_E2E_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
from relay_support import ROOT, RelayProcess, running_relay
from test_web import HANG_GUARD_S, _missing

from client import Pad
from relay import cli
from relay.app import CHECKOUT_WEB_DIR, RelayConfig
from relay.edge import web

EXAMPLE = ROOT / "docs" / "embed-example.html"
SCRIPT = ROOT / "web" / "blindpad-pad.js"
PLACEHOLDER_LINK = "https://relay.example/p/#PASTE-THE-REST-OF-YOUR-LINK"
needs_runtime = pytest.mark.skipif(
    not (ROOT / "node_modules" / "pyodide").is_dir(),
    reason="node_modules is missing (scripts/setup)",
)


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://Docs.Example.org", "https://docs.example.org"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        (" https://a.example:8443 ", "https://a.example:8443"),
    ],
)
def test_embed_origin_accepts_origins(text: str, origin: str) -> None:
    assert web.embed_origin(text) == origin


@pytest.mark.parametrize(
    "text",
    ["*", "https://*.example.org", "example.org", "https://a.example/page", "ftp://a.example",
     "https://user@a.example", "https://a.example/?q", "'self'"],
)  # fmt: skip
def test_embed_origin_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        web.embed_origin(text)


def test_cli_refuses_a_bad_origin_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--store", "memory:", "--no-web", "--embed-origins", "https://*.x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "is not an origin" in err


def test_startup_line_says_who_may_embed() -> None:
    listed = RelayConfig(embed_origins=("https://a.example", "http://127.0.0.1:9"))
    assert cli.embed_line(listed).endswith(
        "pages of https://a.example, http://127.0.0.1:9 may embed"
    )
    assert "no site may frame" in cli.embed_line(RelayConfig())
    assert "off" in cli.embed_line(RelayConfig(web_dir=None))


def _csp(response: httpx.Response) -> str:
    return response.headers["content-security-policy"].split("frame-ancestors ", 1)[1]


@needs_runtime
def test_only_the_embed_page_may_be_framed_and_only_by_listed_origins() -> None:
    origins = ("https://a.example", "http://127.0.0.1:9")
    config = RelayConfig(store_url="memory:", web_dir=CHECKOUT_WEB_DIR, embed_origins=origins)
    with running_relay(config) as relay, httpx.Client(base_url=relay.url) as client:
        page, pad, embed = client.get("/"), client.get("/p/"), client.get("/embed/")
        script = client.get(web.EMBED_SCRIPT_URL, headers={"Accept-Encoding": "identity"})
    assert _csp(page) == _csp(pad) == "'none'"
    assert _csp(embed) == "https://a.example http://127.0.0.1:9"
    assert 'data-embed-origins="https://a.example http://127.0.0.1:9"' in embed.text
    assert 'data-embed-origins=""' in pad.text  # the normal page obeys nobody
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == "no-cache"  # stable URL, revalidated
    assert script.content == SCRIPT.read_bytes()
    with running_relay(RelayConfig(store_url="memory:", web_dir=CHECKOUT_WEB_DIR)) as relay:
        assert _csp(httpx.get(relay.url + "embed/")) == "'none'"  # default: nobody


def test_embed_script_is_small_and_loads_nothing() -> None:
    source = SCRIPT.read_text()
    assert len(source.encode()) < 8 * 1024
    for loader in ("import(", "fetch(", "XMLHttpRequest", "WebSocket", 'createElement("script'):
        assert loader not in source
    # the one URL it makes is its own relay's /embed/, with the secret in the fragment
    assert "frame.src = `${RELAY}/embed/?${query}${link.slice(hash)}`" in source


@contextlib.contextmanager
def _host(page: list[bytes]) -> Iterator[str]:
    """Serve ``page[0]`` as ``/host.html`` on a loopback port of its own (one host origin)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/host.html" and bool(page)
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page[0] if found else b"")

        def log_message(self, *args: object) -> None:
            del args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def _create(url: str) -> str:
    links = await Pad.create(url)
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.insert(0, "from python\n")
        await pad.synced()
    return links.edit_link


async def _create_json(url: str) -> str:
    links = await Pad.create(url, kind="json")
    async with Pad.open(links.edit_link, state_dir=None) as pad:
        await pad.set([], {"title": "from python", "items": ["a", "b"], "count": 1})
        await pad.synced()
    return links.edit_link


async def _read(link: str) -> str:
    async with Pad.open(link, state_dir=None) as pad:
        return pad.text


async def _read_json(link: str) -> object:
    async with Pad.open(link, state_dir=None) as pad:
        return pad.value


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Run tests/web/embed.mjs once; map scenario name -> its JSON result."""
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)
    store = tmp_path_factory.mktemp("embed") / "relay.sqlite3"
    with contextlib.ExitStack() as stack:
        page: list[bytes] = []  # filled in once the relay's address is known
        ok = stack.enter_context(_host(page))
        bad = stack.enter_context(_host(page))
        relay = RelayProcess("--store", f"sqlite:///{store}", "--embed-origins", ok.rstrip("/"))
        stack.callback(relay.stop)
        assert relay.proc.stdout is not None
        startup = relay.proc.stdout.readline()
        link = asyncio.run(_create(relay.handle.url))
        json_link = asyncio.run(_create_json(relay.handle.url))
        base = relay.handle.url.rstrip("/")
        filled = EXAMPLE.read_text().replace(PLACEHOLDER_LINK, link)
        page.append(filled.replace("https://relay.example", base).encode())
        try:
            run = subprocess.run(
                ["node", "tests/web/embed.mjs", relay.handle.url, ok, bad, link, json_link],
                cwd=ROOT,
                env=os.environ,
                capture_output=True,
                text=True,
                timeout=HANG_GUARD_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"tests/web/embed.mjs hung: no exit after {HANG_GUARD_S:g} s")
        after = asyncio.run(_read(link))
        value = asyncio.run(_read_json(json_link))
    results: dict[str, dict[str, object]] = {
        "sdk": {"text": after, "value": value, "startup": startup}
    }
    for line in run.stdout.splitlines():
        if line.startswith("{"):
            result = json.loads(line)
            results[str(result["scenario"])] = result
    if len(results) == 1:
        pytest.fail(f"embed.mjs ran no scenario (exit {run.returncode}):\n{run.stderr[-4000:]}")
    return results


@pytest.mark.parametrize("scenario", ["api", "page", "readonly", "json", "blocked"])
def test_embedded(embedded: dict[str, dict[str, object]], scenario: str) -> None:
    result = embedded.get(scenario)
    assert result is not None, f"scenario {scenario} did not report"
    assert result["ok"], result["detail"]


def test_sdk_sees_what_the_host_and_the_page_wrote(embedded: dict[str, dict[str, object]]) -> None:
    assert embedded["sdk"]["text"] == "from the host from python\n typed on the page"


def test_relay_said_who_may_embed(embedded: dict[str, dict[str, object]]) -> None:
    startup = str(embedded["sdk"]["startup"])
    assert startup.startswith("blindpad relay embedding: pages of http://127.0.0.1:")
    assert startup.rstrip().endswith("may embed")


def test_sdk_sees_what_two_elements_did_to_a_json_pad(
    embedded: dict[str, dict[str, object]],
) -> None:
    assert embedded["sdk"]["value"] == {
        "count": 43,
        "done": True,
        "items": ["b", "c", "a"],
        "title": "hello from python",
    }

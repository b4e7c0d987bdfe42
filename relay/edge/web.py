"""Serving the web client: the page, Pyodide, libsodium and our own wheel.

Theory of operation
-------------------
:func:`routes` is the relay's only hook into the web client. When
``web_dir`` holds the blindpad page (``index.html`` + ``app.js``), it builds
a :class:`WebBundle` once, when the app is created (so when the relay
starts), and serves it:

* ``GET /`` (the "new pad" page) and ``GET /p/`` (the pad: the secret is in
  the fragment, which browsers never send) return ``index.html`` with every
  ``{{name}}`` replaced by the hashed URL of that asset, ``no-cache``;
* ``GET /assets/...`` returns a file whose *path carries a content hash*, so
  it is ``immutable``: a reload after an upgrade fetches a new HTML, which
  names only new URLs, and never mixes versions.

What the bundle holds (nothing is fetched at request time; nothing from
another origin, ever):

==============================  ==============================================
``assets/pyodide-<h>/``         ``pyodide.mjs``, ``pyodide.asm.mjs``,
                                ``pyodide.asm.wasm``, ``python_stdlib.zip``
                                from ``node_modules/pyodide`` (``<h>`` hashes
                                all four)
``assets/client-<h>/``          our wheel, built from the current sources by
                                :func:`relay.edge.wheel.build_wheel`, and a
                                ``pyodide-lock.json`` listing only it, with
                                its sha256 (Pyodide fetches wheels next to
                                the lock)
``assets/<name>.<h>.<ext>``     libsodium UMD scripts and ``web/`` files
==============================  ==============================================

MIME types are set explicitly (``application/wasm``, ``text/javascript``):
with a wrong one Pyodide's ``loadPyodide`` hangs without an error.

If the page is there but the npm runtime is not (a pip-installed relay, or a
checkout where setup never ran), :class:`WebAssetsMissing` (a ``ValueError``)
is raised when the app is created, naming the one command that fetches the
assets, so ``blindpad relay`` refuses to start instead of serving a page that
hangs. ``web_dir=None`` serves a placeholder page; a directory with an
``index.html`` but no ``app.js`` is served as plain static files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from relay import http
from relay.edge.wheel import DIST_NAME, PACKAGES, build_wheel, project_version

#: Fetches the npm runtime (Pyodide, libsodium-wrappers) into ``node_modules``.
SETUP_COMMAND = "scripts/setup"
#: Overrides where ``node_modules`` is looked for (default: beside ``web/``).
NODE_MODULES_ENV = "BLINDPAD_NODE_MODULES"

PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")
SODIUM_FILES = {
    "libsodium.js": "libsodium/dist/modules/libsodium.js",
    "libsodium-wrappers.js": "libsodium-wrappers/dist/modules/libsodium-wrappers.js",
}
PAGE_FILES = ("app.js", "style.css")
MIME = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
}
IMMUTABLE = "public, max-age=31536000, immutable"
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_.-]+)\}\}")


class WebAssetsMissing(ValueError):
    """The web page is installed but the runtime it needs is not."""


@dataclasses.dataclass(frozen=True, slots=True)
class Asset:
    """One served file: in memory (``data``) or on disk (``path``)."""

    media_type: str
    data: bytes | None = None
    path: Path | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class WebBundle:
    """Everything the page needs, keyed by URL path (``/assets/...``).

    Attributes:
        assets: URL path -> asset.
        urls: template name (``app.js``, ``pyodide``, ``lock``...) -> URL path.
        html: ``index.html`` with the placeholders filled in.
    """

    assets: dict[str, Asset]
    urls: dict[str, str]
    html: bytes


def _digest(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], bytes] = {}


def _file_sha256(path: Path) -> bytes:
    """SHA-256 of a file, remembered per (path, size, mtime): Pyodide is 13 MB."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        _FILE_HASHES[key] = h.digest()
    return _FILE_HASHES[key]


def _media_type(name: str) -> str:
    return MIME.get(Path(name).suffix, "application/octet-stream")


def node_modules_for(web_dir: Path) -> Path:
    """Where the npm runtime is looked for: ``$BLINDPAD_NODE_MODULES`` or beside ``web/``."""
    override = os.environ.get(NODE_MODULES_ENV)
    return Path(override) if override else web_dir.resolve().parent / "node_modules"


def _missing_message(node_modules: Path, missing: list[str]) -> str:
    return (
        f"the web client's runtime is missing from {node_modules} "
        f"({', '.join(missing)}); fetch it once with `{SETUP_COMMAND}` "
        f"(it runs `npm ci`: Pyodide and libsodium-wrappers from the npm registry), "
        f"or point ${NODE_MODULES_ENV} at a node_modules that has them"
    )


def _lock(upstream: Path, wheel_name: str, wheel: bytes) -> bytes:
    """A Pyodide lock listing only our wheel, keeping upstream's ``info`` block."""
    info = json.loads(upstream.read_text(encoding="utf-8"))["info"]
    entry = {
        "name": DIST_NAME,
        "version": project_version(),
        "file_name": wheel_name,
        "install_dir": "site",
        "package_type": "package",
        "sha256": hashlib.sha256(wheel).hexdigest(),
        "imports": list(PACKAGES),
        "depends": [],
        "unvendored_tests": False,
        "tool": {},
    }
    lock = {"info": info, "packages": {DIST_NAME: entry}}
    return json.dumps(lock, indent=1, sort_keys=True).encode()


def _wheel() -> tuple[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="blindpad-wheel-") as tmp:
        path = build_wheel(Path(tmp))
        return path.name, path.read_bytes()


def build_bundle(web_dir: Path, node_modules: Path | None = None) -> WebBundle:
    """Collect the page, the runtime and a freshly built wheel.

    Args:
        web_dir: the ``web/`` directory (``index.html``, ``app.js``, ``style.css``).
        node_modules: where ``pyodide`` and ``libsodium*`` are installed
            (default :func:`node_modules_for`).

    Returns:
        The bundle to serve.

    Raises:
        WebAssetsMissing: a runtime file is missing (the message names the fix).
    """
    modules = node_modules or node_modules_for(web_dir)
    runtime = [modules / "pyodide" / name for name in PYODIDE_FILES]
    sodium = {name: modules / rel for name, rel in SODIUM_FILES.items()}
    missing = [
        str(p.relative_to(modules)) for p in [*runtime, *sodium.values()] if not p.is_file()
    ]
    if missing:
        raise WebAssetsMissing(_missing_message(modules, missing))
    assets: dict[str, Asset] = {}
    urls: dict[str, str] = {}

    pyodide_hash = _digest(*(_file_sha256(p) for p in runtime))[:16]
    base = f"/assets/pyodide-{pyodide_hash}/"
    for path in runtime:
        assets[base + path.name] = Asset(_media_type(path.name), path=path)
    urls["pyodide"] = base
    urls["pyodide.mjs"] = base + "pyodide.mjs"

    wheel_name, wheel = _wheel()
    lock = _lock(modules / "pyodide" / "pyodide-lock.json", wheel_name, wheel)
    client = f"/assets/client-{_digest(wheel, lock)[:16]}/"
    assets[client + wheel_name] = Asset("application/zip", data=wheel)
    assets[client + "pyodide-lock.json"] = Asset("application/json", data=lock)
    urls["lock"] = client + "pyodide-lock.json"
    urls["wheel"] = client + wheel_name

    files = {**sodium, **{name: web_dir / name for name in PAGE_FILES}}
    for name, path in files.items():
        data = path.read_bytes()
        stem, ext = name.rsplit(".", 1)
        url = f"/assets/{stem}.{_digest(data)[:16]}.{ext}"
        assets[url] = Asset(_media_type(name), data=data)
        urls[name] = url

    template = (web_dir / "index.html").read_text(encoding="utf-8")
    html = _PLACEHOLDER.sub(lambda m: urls.get(m.group(1), m.group(0)), template)
    return WebBundle(assets=assets, urls=urls, html=html.encode())


def _serve(bundle: WebBundle) -> tuple[Route, Route, Route]:
    headers = {
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        # Nothing but this origin: no CDN, no third party, ever.
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
            "connect-src 'self' ws: wss:; style-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
    }

    async def page(request: Request) -> Response:
        del request
        return HTMLResponse(bundle.html, headers=headers)

    async def asset(request: Request) -> Response:
        found = bundle.assets.get(request.url.path)
        if found is None:
            return http.error(404, "NOT_FOUND", "no such asset (an old page? reload it)")
        cache = {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
        if found.path is not None:
            return FileResponse(found.path, media_type=found.media_type, headers=cache)
        return Response(found.data, media_type=found.media_type, headers=cache)

    return Route("/", page), Route("/p/", page), Route("/assets/{rest:path}", asset)


def routes(web_dir: Path | None) -> list[BaseRoute]:
    """The routes of the web client (see the module docstring).

    Args:
        web_dir: the ``web/`` directory, or None for a placeholder page.

    Returns:
        Routes for ``/``, ``/p/`` and the assets.

    Raises:
        WebAssetsMissing: the page is installed but its runtime is not.
    """
    if web_dir is None:
        page = http.page_handler(None)
        return [Route("/", page), Route("/p/", page)]
    if not (web_dir / "app.js").is_file():
        if not web_dir.is_dir():
            raise WebAssetsMissing(
                f"the web client is not installed (no {web_dir}); it ships with the blindpad "
                f"sources: run the relay from a checkout after `{SETUP_COMMAND}`"
            )
        page = http.page_handler(web_dir)
        return [Route("/", page), Route("/p/", page), Mount("/", StaticFiles(directory=web_dir))]
    return list(_serve(build_bundle(web_dir)))

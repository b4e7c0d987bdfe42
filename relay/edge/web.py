"""Serving the web client: the page, Pyodide, libsodium and our own wheel.

Theory of operation
-------------------
:func:`routes` is the relay's only hook into the web client. The bundle
(:mod:`relay.edge.bundle`) comes from a checkout's ``web/`` (built once, when
the app is created) or from the folder a wheel carries
(:data:`PACKAGED_WEB_DIR`, written at build time), and is served so:

* ``GET /`` (the "new pad" page) and ``GET /p/`` (the pad: the secret is in
  the fragment, which browsers never send) return ``index.html`` with every
  ``{{name}}`` replaced by the hashed URL of that asset, ``no-cache``;
* ``GET /assets/...`` returns a file whose *path carries a content hash*, so
  it is ``immutable``: a reload after an upgrade fetches a new HTML, which
  names only new URLs, and never mixes versions;
* ``GET /embed/`` is the same page in embed mode (``docs/EMBED.md``): only
  there may other sites frame it, and only the origins the operator listed
  (``--embed-origins``): its ``frame-ancestors`` names them (``'none'`` when
  none are), and ``data-embed-origins`` tells the page whose commands to
  obey.  Every other page keeps ``frame-ancestors 'none'``;
* ``GET /embed/v1/blindpad-pad.js`` is the ``<blindpad-pad>`` element, at a
  stable URL (``v1``: its message protocol), ``no-cache`` so an upgrade
  reaches hosts at once;
* ``GET /sw.js`` is the service worker (``web/sw.js``, scope ``/``,
  ``no-cache``): it precaches ``/``, ``/p/`` and every asset into a cache
  named by :func:`cache_name` (the protocol version and a hash of the asset
  URLs, which carry their contents' hashes), so a pad opened once opens with
  the relay stopped, and an upgrade is a new cache (docs/PROTOCOL.md §15.3).
  The page learns that name too (``data-build``): it keeps its start-up
  snapshot of Python in that cache, so an upgrade drops it with the rest
  (docs/SECURITY.md, "The start-up snapshot").

Compression: a compressible asset is sent ``Content-Encoding: gzip`` to a
client whose ``Accept-Encoding`` allows gzip, and decoded to one that does not
(streamed, never held whole); every such response carries
``Vary: Accept-Encoding``. A bundle built from sources gzips each asset once,
on first demand (about 0.6 s for the 9.6 MB wasm), and keeps the result.

MIME types are set explicitly (``application/wasm``, ``text/javascript``):
with a wrong one Pyodide's ``loadPyodide`` hangs without an error.

If the page is there but the npm runtime is not (a checkout where setup never
ran), :class:`WebAssetsMissing` (a ``ValueError``) is raised when the app is
created, naming the one command that fetches the assets, so ``blindpad
relay`` refuses to start instead of serving a page that hangs. ``web_dir=None``
serves a placeholder page (``--no-web``); a directory with an ``index.html``
but no ``app.js`` is served as plain static files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import AsyncIterator
from html import escape as html_escape
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from relay import http
from relay.edge.bundle import (
    MIME,
    NODE_MODULES_ENV,
    PAGE_FILES,
    PYODIDE_FILES,
    SETUP_COMMAND,
    SODIUM_FILES,
    Asset,
    WebAssetsMissing,
    WebBundle,
    build_bundle,
    gzip_bytes,
    is_packaged,
    load_bundle,
    node_modules_for,
)
from wire.frames import PROTOCOL_VERSION

__all__ = [
    "IMMUTABLE",
    "MIME",
    "NODE_MODULES_ENV",
    "PACKAGED_WEB_DIR",
    "PAGE_FILES",
    "PYODIDE_FILES",
    "SETUP_COMMAND",
    "SODIUM_FILES",
    "Asset",
    "WebAssetsMissing",
    "WebBundle",
    "accepts_gzip",
    "build_bundle",
    "cache_name",
    "embed_origin",
    "node_modules_for",
    "routes",
    "service_worker",
]

#: Where a wheel carries the page (written by ``setup.py``; absent in a checkout).
PACKAGED_WEB_DIR = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
#: Filled when the page is served (not when the bundle is built): the relay's choice.
TOKEN_PLACEHOLDER = b"{{create-token}}"
#: Filled when the page is served: the origins allowed to embed (space-separated).
EMBED_PLACEHOLDER = b"{{embed-origins}}"
#: Filled when the page is served: :func:`cache_name`, the id of this build of
#: the page and its runtime (the page keys its start-up snapshot by it).
BUILD_PLACEHOLDER = b"{{build}}"
#: The stable URL of the embed script, and the bundle file it serves.
EMBED_SCRIPT_URL, EMBED_SCRIPT = "/embed/v1/blindpad-pad.js", "blindpad-pad.js"
_CSP = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "connect-src 'self' ws: wss:; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors "
)
_CHUNK = 1 << 16


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip`` or ``*``, q > 0).

    Args:
        header: the header's value ("" when absent).

    Returns:
        True when a gzip-encoded body may be sent.
    """
    allowed: dict[str, bool] = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        allowed[name.strip().lower()] = q > 0
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", False)))


def embed_origin(text: str) -> str:
    """Check one ``--embed-origins`` entry and return it normalised.

    Args:
        text: an origin, ``https://host[:port]`` (or ``http://``).

    Returns:
        ``scheme://host[:port]``, lower-cased, as browsers compare origins.

    Raises:
        ValueError: not an origin (a path, a wildcard, a missing scheme...),
            with one line saying which entry and what an origin looks like.
    """
    parts = urlsplit(text.strip())
    netloc = parts.netloc.lower()
    ok = parts.scheme in ("http", "https") and netloc and "@" not in netloc and "*" not in netloc
    if not ok or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"--embed-origins: {text!r} is not an origin (write https://host or https://host:port)"
        )
    return f"{parts.scheme}://{netloc}"


async def _gunzip(path: Path) -> AsyncIterator[bytes]:
    """Decode a gzip file chunk by chunk (for the rare client refusing gzip)."""
    decoder = zlib.decompressobj(wbits=31)
    with path.open("rb") as f:
        while chunk := await asyncio.to_thread(f.read, _CHUNK):
            yield decoder.decompress(chunk)
    yield decoder.flush()


class _Compressed:
    """Gzip variants of plain assets, each made once on first demand."""

    def __init__(self) -> None:
        self._done: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    async def get(self, url: str, asset: Asset) -> bytes:
        if url not in self._done:
            async with self._lock:
                if url not in self._done:
                    data = await asyncio.to_thread(asset.read)
                    self._done[url] = await asyncio.to_thread(gzip_bytes, data, 6)
        return self._done[url]


async def _respond(asset: Asset, url: str, gzip_ok: bool, compressed: _Compressed) -> Response:
    headers = {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if asset.compressible:
        headers["Vary"] = "Accept-Encoding"
    kind = asset.media_type
    if asset.encoding == "gzip" and not gzip_ok:
        if asset.path is None:
            plain = zlib.decompress(asset.read(), wbits=31)
            return Response(plain, media_type=kind, headers=headers)
        return StreamingResponse(_gunzip(asset.path), media_type=kind, headers=headers)
    if asset.encoding is None and asset.compressible and gzip_ok:
        data = await compressed.get(url, asset)
        return Response(data, media_type=kind, headers={**headers, "Content-Encoding": "gzip"})
    if asset.encoding is not None:
        headers["Content-Encoding"] = asset.encoding
    if asset.path is not None:
        return FileResponse(asset.path, media_type=kind, headers=headers)
    return Response(asset.data, media_type=kind, headers=headers)


def _page_headers(frame_ancestors: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        # Nothing but this origin: no CDN, no third party, ever.
        "Content-Security-Policy": _CSP + frame_ancestors,
    }


def cache_name(bundle: WebBundle) -> str:
    """The service worker's cache: ``blindpad-p<protocol>-<hash of the asset URLs>``."""
    digest = hashlib.sha256("\n".join(sorted(bundle.assets)).encode()).hexdigest()[:16]
    return f"blindpad-p{PROTOCOL_VERSION}-{digest}"


def service_worker(bundle: WebBundle) -> bytes | None:
    """``/sw.js``: the bundle's template with its cache name and precache list."""
    if bundle.service_worker is None:
        return None
    precache = json.dumps(["/", "/p/", *sorted(bundle.assets)])
    script = bundle.service_worker.replace(b"{{cache}}", cache_name(bundle).encode())
    return script.replace(b"{{precache}}", precache.encode())


def _serve(bundle: WebBundle, token_required: bool, embed_origins: tuple[str, ...]) -> list[Route]:
    # The page asks for the creation token before creating a pad, only where one is needed.
    html = bundle.html.replace(TOKEN_PLACEHOLDER, b"required" if token_required else b"")
    html = html.replace(BUILD_PLACEHOLDER, cache_name(bundle).encode())
    listed = " ".join(embed_origins)
    embed_html = html.replace(EMBED_PLACEHOLDER, html_escape(listed).encode())
    html = html.replace(EMBED_PLACEHOLDER, b"")
    headers = _page_headers("'none'")
    embed_headers = _page_headers(listed or "'none'")

    async def page(request: Request) -> Response:
        del request
        return HTMLResponse(html, headers=headers)

    async def embed_page(request: Request) -> Response:
        del request
        return HTMLResponse(embed_html, headers=embed_headers)

    compressed = _Compressed()

    async def asset(request: Request) -> Response:
        url = request.url.path
        found = bundle.assets.get(url)
        if found is None:
            return http.error(404, "NOT_FOUND", "no such asset (an old page? reload it)")
        gzip_ok = accepts_gzip(request.headers.get("accept-encoding", ""))
        return await _respond(found, url, gzip_ok, compressed)

    script_url = bundle.urls.get(EMBED_SCRIPT)

    async def embed_script(request: Request) -> Response:
        if script_url is None:  # a bundle packaged before the element existed
            return http.error(404, "NOT_FOUND", "this relay's page has no embed script")
        gzip_ok = accepts_gzip(request.headers.get("accept-encoding", ""))
        response = await _respond(bundle.assets[script_url], script_url, gzip_ok, compressed)
        # A stable URL: revalidated on every load, loadable by any host page.
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        return response

    worker = service_worker(bundle)

    async def worker_script(request: Request) -> Response:
        del request
        if worker is None:
            return http.error(404, "NOT_FOUND", "this relay's page has no service worker")
        headers = {
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Service-Worker-Allowed": "/",
        }
        return Response(worker, media_type=MIME[".js"], headers=headers)

    return [
        Route("/", page),
        Route("/p/", page),
        Route("/embed/", embed_page),
        Route(EMBED_SCRIPT_URL, embed_script),
        Route("/sw.js", worker_script),
        Route("/assets/{rest:path}", asset),
    ]


def routes(
    web_dir: Path | None, *, token_required: bool = False, embed_origins: tuple[str, ...] = ()
) -> list[BaseRoute]:
    """The routes of the web client (see the module docstring).

    Args:
        web_dir: the ``web/`` directory of a checkout, a packaged bundle's
            folder (:data:`PACKAGED_WEB_DIR`), or None for a placeholder page.
        token_required: the relay has a creation token (the page then asks
            for it before creating a pad: ``{{create-token}}`` in
            ``index.html`` becomes ``required``).
        embed_origins: the origins whose pages may frame ``/embed/``
            (checked by :func:`embed_origin`); none by default.

    Returns:
        Routes for ``/``, ``/p/``, ``/embed/``, the embed script and the assets.

    Raises:
        WebAssetsMissing: the page is installed but its runtime is not.
    """
    if web_dir is None:
        page = http.page_handler(None)
        return [Route("/", page), Route("/p/", page)]
    if is_packaged(web_dir):
        return list(_serve(load_bundle(web_dir), token_required, embed_origins))
    if not (web_dir / "app.js").is_file():
        if not web_dir.is_dir():
            raise WebAssetsMissing(
                f"the web page is not installed (no {web_dir}): this blindpad was built "
                "without it; run `blindpad relay --no-web` for an API-only relay, or install "
                "a wheel built from a checkout after `scripts/setup` (python -m build --wheel)"
            )
        page = http.page_handler(web_dir)
        return [Route("/", page), Route("/p/", page), Mount("/", StaticFiles(directory=web_dir))]
    return list(_serve(build_bundle(web_dir), token_required, embed_origins))

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
  names only new URLs, and never mixes versions.

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
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

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
    "node_modules_for",
    "routes",
]

#: Where a wheel carries the page (written by ``setup.py``; absent in a checkout).
PACKAGED_WEB_DIR = Path(__file__).resolve().parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
#: Filled when the page is served (not when the bundle is built): the relay's choice.
TOKEN_PLACEHOLDER = b"{{create-token}}"
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


def _serve(bundle: WebBundle, token_required: bool) -> tuple[Route, Route, Route]:
    # The page asks for the creation token before creating a pad, only where one is needed.
    html = bundle.html.replace(TOKEN_PLACEHOLDER, b"required" if token_required else b"")
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
        return HTMLResponse(html, headers=headers)

    compressed = _Compressed()

    async def asset(request: Request) -> Response:
        url = request.url.path
        found = bundle.assets.get(url)
        if found is None:
            return http.error(404, "NOT_FOUND", "no such asset (an old page? reload it)")
        gzip_ok = accepts_gzip(request.headers.get("accept-encoding", ""))
        return await _respond(found, url, gzip_ok, compressed)

    return Route("/", page), Route("/p/", page), Route("/assets/{rest:path}", asset)


def routes(web_dir: Path | None, *, token_required: bool = False) -> list[BaseRoute]:
    """The routes of the web client (see the module docstring).

    Args:
        web_dir: the ``web/`` directory of a checkout, a packaged bundle's
            folder (:data:`PACKAGED_WEB_DIR`), or None for a placeholder page.
        token_required: the relay has a creation token (the page then asks
            for it before creating a pad: ``{{create-token}}`` in
            ``index.html`` becomes ``required``).

    Returns:
        Routes for ``/``, ``/p/`` and the assets.

    Raises:
        WebAssetsMissing: the page is installed but its runtime is not.
    """
    if web_dir is None:
        page = http.page_handler(None)
        return [Route("/", page), Route("/p/", page)]
    if is_packaged(web_dir):
        return list(_serve(load_bundle(web_dir), token_required))
    if not (web_dir / "app.js").is_file():
        if not web_dir.is_dir():
            raise WebAssetsMissing(
                f"the web page is not installed (no {web_dir}): this blindpad was built "
                "without it; run `blindpad relay --no-web` for an API-only relay, or install "
                "a wheel built from a checkout after `scripts/setup` (python -m build --wheel)"
            )
        page = http.page_handler(web_dir)
        return [Route("/", page), Route("/p/", page), Mount("/", StaticFiles(directory=web_dir))]
    return list(_serve(build_bundle(web_dir), token_required))

"""The web bundle: the page, Pyodide, libsodium and our wheel, as the relay serves them.

Theory of operation
-------------------
A :class:`WebBundle` maps URL paths (``/assets/...``) to :class:`Asset` s and
holds ``index.html`` with every ``{{name}}`` replaced by the hashed URL of
that asset. It comes from one of two places:

* **sources** (:func:`build_bundle`): a checkout's ``web/`` plus the npm
  runtime in ``node_modules`` plus a wheel built from the current sources by
  :func:`relay.edge.wheel.build_wheel`, collected when the relay starts;
* **a packaged folder** (:func:`load_bundle`): what :func:`write_bundle`
  wrote at wheel-build time (``setup.py`` calls :func:`write_packaged` into
  ``relay/edge/static/`` of the wheel), read back with its ``manifest.json``.
  This is how ``pip install 'blindpad[relay]'`` serves a page from anywhere.

What the bundle holds (nothing from another origin, ever):

==============================  ==============================================
``assets/pyodide-<h>/``         ``pyodide.mjs``, ``pyodide.asm.mjs``,
                                ``pyodide.asm.wasm``, ``python_stdlib.zip``
                                from ``node_modules/pyodide`` (``<h>`` hashes
                                all four)
``assets/client-<h>/``          our wheel and a ``pyodide-lock.json`` listing
                                only it, with its sha256 (Pyodide fetches
                                wheels next to the lock)
``assets/<name>.<h>.<ext>``     libsodium UMD scripts and ``web/`` files
                                (``blindpad-pad.js`` also at a stable URL)
``assets/startup-<h>.bin``      the page's start-up snapshot (gzip only;
                                :mod:`relay.edge.snapshot`), when one is made
==============================  ==============================================

Compression: text-like assets (JavaScript, wasm, JSON, CSS) are *compressible*.
A packaged bundle stores them gzip-compressed only (``encoding="gzip"``: the
wheel carries one copy, 3.6 MB instead of 9.6 MB for the wasm); a bundle from
sources keeps them plain and the server compresses each once, on first
demand. Zip files (the stdlib, our wheel) are already compressed and left as
they are.

This module uses the standard library only: the wheel-build hook imports it
where neither Starlette nor the project's dependencies are installed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from relay.edge.snapshot import startup_snapshot
from relay.edge.wheel import DIST_NAME, PACKAGES, build_wheel, project_version

#: Fetches the npm runtime (Pyodide, libsodium-wrappers) into ``node_modules``.
SETUP_COMMAND = "scripts/setup"
#: Overrides where ``node_modules`` is looked for (default: beside ``web/``).
NODE_MODULES_ENV = "BLINDPAD_NODE_MODULES"
#: The manifest of a packaged bundle (:func:`write_bundle`).
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1

PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")
SODIUM_FILES = {
    "libsodium.js": "libsodium/dist/modules/libsodium.js",
    "libsodium-wrappers.js": "libsodium-wrappers/dist/modules/libsodium-wrappers.js",
}
PAGE_FILES = ("app.js", "strings.js", "style.css")
#: The service worker's template (served at ``/sw.js``, not under ``/assets/``).
SERVICE_WORKER = "sw.js"
#: Page files a ``web/`` copied from an older checkout may lack (then not served).
OPTIONAL_PAGE_FILES = ("blindpad-pad.js",)
MIME = {
    ".wasm": "application/wasm",
    ".mjs": "text/javascript; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".zip": "application/zip",
    ".whl": "application/zip",
}
#: Media types worth gzip (the others are already compressed).
COMPRESSIBLE = ("application/wasm", "text/", "application/json")
_PLACEHOLDER = re.compile(r"\{\{([A-Za-z0-9_.-]+)\}\}")


class WebAssetsMissing(ValueError):
    """The web page is installed but the runtime it needs is not."""


@dataclasses.dataclass(frozen=True, slots=True)
class Asset:
    """One served file: in memory (``data``) or on disk (``path``).

    Attributes:
        media_type: the ``Content-Type`` of the decoded file.
        data: the stored bytes, or None when on disk.
        path: the stored file, or None when in memory.
        encoding: how the stored bytes are encoded (``"gzip"``) or None.
    """

    media_type: str
    data: bytes | None = None
    path: Path | None = None
    encoding: str | None = None

    @property
    def compressible(self) -> bool:
        """Whether a gzip variant is served (so responses vary on Accept-Encoding)."""
        return self.encoding == "gzip" or self.media_type.startswith(COMPRESSIBLE)

    def read(self) -> bytes:
        """The stored bytes (encoded as :attr:`encoding` says)."""
        if self.data is not None:
            return self.data
        if self.path is None:
            raise ValueError("an asset holds data or a path")
        return self.path.read_bytes()


@dataclasses.dataclass(frozen=True, slots=True)
class WebBundle:
    """Everything the page needs, keyed by URL path (``/assets/...``).

    Attributes:
        assets: URL path -> asset.
        urls: template name (``app.js``, ``pyodide``, ``lock``...) -> URL path.
        html: ``index.html`` with the placeholders filled in.
        service_worker: ``web/sw.js`` as written (its ``{{cache}}`` and
            ``{{precache}}`` are the server's to fill), or None for a bundle
            without one (an older packaged page).
    """

    assets: dict[str, Asset]
    urls: dict[str, str]
    html: bytes
    service_worker: bytes | None = None

    @property
    def size(self) -> int:
        """Bytes stored (encoded), HTML included."""
        total = len(self.html)
        for asset in self.assets.values():
            total += len(asset.data) if asset.data is not None else _size(asset.path)
        return total


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None else 0


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


def media_type(name: str) -> str:
    """The ``Content-Type`` served for a file name."""
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


def build_bundle(
    web_dir: Path, node_modules: Path | None = None, *, snapshot: bool = True
) -> WebBundle:
    """Collect the page, the runtime and a freshly built wheel from sources.

    Args:
        web_dir: the ``web/`` directory (``index.html`` and :data:`PAGE_FILES`).
        node_modules: where ``pyodide`` and ``libsodium*`` are installed
            (default :func:`node_modules_for`).
        snapshot: add the page's start-up snapshot (:mod:`relay.edge.snapshot`)
            when it can be made.

    Returns:
        The bundle to serve (nothing compressed yet).

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
        assets[base + path.name] = Asset(media_type(path.name), path=path)
    urls["pyodide"] = base
    urls["pyodide.mjs"] = base + "pyodide.mjs"

    wheel_name, wheel = _wheel()
    lock = _lock(modules / "pyodide" / "pyodide-lock.json", wheel_name, wheel)
    client = f"/assets/client-{_digest(wheel, lock)[:16]}/"
    assets[client + wheel_name] = Asset("application/zip", data=wheel)
    assets[client + "pyodide-lock.json"] = Asset("application/json", data=lock)
    urls["lock"] = client + "pyodide-lock.json"
    urls["wheel"] = client + wheel_name

    # Python's memory after importing the client, for first visits (snapshot.py).
    urls["snapshot"] = ""
    made = startup_snapshot(modules, pyodide_hash.encode(), wheel) if snapshot else None
    if made is not None:
        url = "/assets/" + made.name.removesuffix(".gz")  # startup-<key>.bin
        assets[url] = Asset(media_type(url), data=made.read_bytes(), encoding="gzip")
        urls["snapshot"] = url

    files = {**sodium, **{name: web_dir / name for name in PAGE_FILES}}
    files |= {n: web_dir / n for n in OPTIONAL_PAGE_FILES if (web_dir / n).is_file()}
    for name, path in files.items():
        data = path.read_bytes()
        stem, ext = name.rsplit(".", 1)
        url = f"/assets/{stem}.{_digest(data)[:16]}.{ext}"
        assets[url] = Asset(media_type(name), data=data)
        urls[name] = url

    template = (web_dir / "index.html").read_text(encoding="utf-8")
    html = _PLACEHOLDER.sub(lambda m: urls.get(m.group(1), m.group(0)), template)
    worker = web_dir / SERVICE_WORKER
    service_worker = worker.read_bytes() if worker.is_file() else None
    return WebBundle(assets=assets, urls=urls, html=html.encode(), service_worker=service_worker)


def gzip_bytes(data: bytes, level: int = 9) -> bytes:
    """Gzip ``data`` reproducibly (no file name, mtime 0)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_bundle(bundle: WebBundle, out: Path) -> None:
    """Write a bundle as a packaged folder that :func:`load_bundle` reads.

    Compressible assets are stored gzip-compressed only (``NAME.gz``) when
    that saves at least a tenth; the others as they are.

    Args:
        bundle: what to write.
        out: the folder (replaced if it exists).
    """
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / "index.html").write_bytes(bundle.html)
    if bundle.service_worker is not None:
        (out / SERVICE_WORKER).write_bytes(bundle.service_worker)
    entries: dict[str, dict[str, str | None]] = {}
    for url, asset in sorted(bundle.assets.items()):
        data, encoding = asset.read(), asset.encoding
        if encoding is None and asset.compressible:
            packed = gzip_bytes(data)
            if len(packed) * 10 <= len(data) * 9:
                data, encoding = packed, "gzip"
        rel = url.lstrip("/") + (".gz" if encoding == "gzip" else "")
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        entries[url] = {"file": rel, "media_type": asset.media_type, "encoding": encoding}
    manifest = {"format": MANIFEST_FORMAT, "urls": bundle.urls, "assets": entries}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def is_packaged(folder: Path) -> bool:
    """Whether ``folder`` holds a bundle written by :func:`write_bundle`."""
    return (folder / MANIFEST).is_file()


def load_bundle(folder: Path) -> WebBundle:
    """Read a packaged bundle (files stay on disk).

    Args:
        folder: what :func:`write_bundle` wrote.

    Returns:
        The bundle.

    Raises:
        WebAssetsMissing: the manifest is unreadable, of another format, or
            names a file that is not there.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        assets = {
            url: Asset(e["media_type"], path=folder / e["file"], encoding=e["encoding"])
            for url, e in manifest["assets"].items()
        }
        html = (folder / "index.html").read_bytes()
        worker = folder / SERVICE_WORKER
        service_worker = worker.read_bytes() if worker.is_file() else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WebAssetsMissing(f"the packaged web page in {folder} is unusable: {exc}") from exc
    absent = [str(a.path) for a in assets.values() if a.path is None or not a.path.is_file()]
    if absent:
        raise WebAssetsMissing(f"the packaged web page lacks {', '.join(absent[:3])}")
    return WebBundle(
        assets=assets, urls=dict(manifest["urls"]), html=html, service_worker=service_worker
    )


def write_packaged(root: Path, out: Path) -> WebBundle:
    """Build the bundle of a checkout and write it (the wheel-build hook).

    Args:
        root: the checkout (``web/``, ``node_modules/``, the packages).
        out: the folder to write, e.g. ``build/lib/relay/edge/static``.

    Returns:
        The bundle written.

    Raises:
        WebAssetsMissing: ``web/`` or the npm runtime is missing.
    """
    web_dir = root / "web"
    if not (web_dir / "index.html").is_file():
        raise WebAssetsMissing(
            f"no web page at {web_dir}: build the relay's wheel from a checkout "
            "(python -m build --wheel), not from an sdist"
        )
    # No start-up snapshot: it would double the wheel (7 MB); such a relay's
    # first visits boot Python cold, and each browser then keeps its own.
    bundle = build_bundle(web_dir, root / "node_modules", snapshot=False)
    write_bundle(bundle, out)
    return bundle

"""Build the pure-Python wheel of blindpad's client side, deterministically.

Theory of operation
-------------------
Browsers (and the Pyodide test gate in Node) run the same ``client``,
``crypto`` and ``wire`` packages as CPython. They get them as one wheel, which the relay
serves next to Pyodide and the page unpacks into site-packages
(``pyodide.unpackArchive`` or a Pyodide lock entry). This module builds that
wheel with the stdlib only, so it runs anywhere Python does.

The wheel is byte-for-byte reproducible from the same sources: files are
added in sorted order with a fixed timestamp (1980-01-01, the zip epoch),
fixed permissions and fixed compression, and the dist-info (``METADATA``,
``WHEEL``, ``top_level.txt``, ``RECORD`` with each file's urlsafe-base64
SHA-256) is generated, not copied. It holds only ``*.py`` and ``py.typed``
files of ``client/``, ``crypto/`` and ``wire/``: never ``relay/`` (the relay's code
has no business in a browser) and never caches.

Usage: ``python -m relay.edge.wheel OUTDIR`` prints the path of the wheel written.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

DIST_NAME = "blindpad"
PACKAGES = ("client", "crypto", "wire")
_ROOT = Path(__file__).resolve().parents[2]
_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16


def project_version(root: Path = _ROOT) -> str:
    """Return the ``version`` from ``[project]`` in ``pyproject.toml``.

    Args:
        root: the repository root.

    Returns:
        The version string, e.g. ``"0.1.0"``.

    Raises:
        ValueError: no version line is found.
    """
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.MULTILINE)
    if match is None:
        raise ValueError("pyproject.toml has no [project] version")
    return match.group(1)


def _sources(root: Path) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            wanted = path.suffix == ".py" or path.name == "py.typed"
            if wanted and path.is_file() and "__pycache__" not in path.parts:
                files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    return files


def _dist_info(version: str) -> list[tuple[str, bytes]]:
    info = f"{DIST_NAME}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {DIST_NAME}\nVersion: {version}\n"
        "Summary: blindpad client, crypto and wire packages (browser build)\n"
        "Requires-Python: >=3.11\n"
    )
    wheel = (
        "Wheel-Version: 1.0\nGenerator: blindpad relay.edge.wheel\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    top_level = "".join(f"{name}\n" for name in PACKAGES)
    return [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", wheel.encode()),
        (f"{info}/top_level.txt", top_level.encode()),
    ]


def _record(version: str, files: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    lines = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}\n")
    record = f"{DIST_NAME}-{version}.dist-info/RECORD"
    lines.append(f"{record},,\n")
    return record, "".join(lines).encode()


def build_wheel(dest_dir: Path, root: Path = _ROOT) -> Path:
    """Write the wheel into ``dest_dir`` and return its path.

    Args:
        dest_dir: output directory (created if missing).
        root: the repository root holding the :data:`PACKAGES` and ``pyproject.toml``.

    Returns:
        The path of ``blindpad-<version>-py3-none-any.whl``.

    Raises:
        OSError: a source cannot be read or the wheel cannot be written.
    """
    version = project_version(root)
    files = _sources(root) + _dist_info(version)
    files.append(_record(version, files))
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{DIST_NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_EPOCH)
            entry.external_attr = _FILE_MODE
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data, compresslevel=9)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m relay.edge.wheel OUTDIR``.

    Args:
        argv: arguments after the program name (``sys.argv[1:]`` by default).

    Returns:
        The exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m relay.edge.wheel OUTDIR", file=sys.stderr)
        return 2
    print(build_wheel(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

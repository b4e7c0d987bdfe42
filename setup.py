"""Wheel-build hook: the relay's wheel carries the web page it serves.

Everything else about the package is in ``pyproject.toml``. After the usual
``build_py``, :func:`relay.edge.bundle.write_packaged` writes the page, the
Pyodide runtime and libsodium (from ``node_modules``, which ``scripts/setup``
fills) and the client wheel the page installs into Pyodide into
``relay/edge/static/`` of the build tree, compressible files gzip-compressed.
Editable installs skip it (a checkout serves ``web/`` itself). The build
folder is emptied first, so a module deleted from the sources never ships.

``BLINDPAD_WHEEL_WEB=0`` builds a wheel without the page (API-only relays).
Build from a checkout: ``python -m build --wheel`` or ``pip wheel --no-deps .``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithWeb(build_py):
    """``build_py``, then the web bundle into ``relay/edge/static``."""

    def run(self) -> None:
        if not self.editable_mode:
            # pip and build reuse ./build: a module deleted from the sources
            # must not ride along in the wheel from an earlier build.
            shutil.rmtree(self.build_lib, ignore_errors=True)
        super().run()
        if self.editable_mode or os.environ.get("BLINDPAD_WHEEL_WEB") == "0":
            return
        sys.path.insert(0, str(ROOT))
        from relay.edge.bundle import write_packaged

        bundle = write_packaged(ROOT, Path(self.build_lib) / "relay" / "edge" / "static")
        print(f"blindpad: packaged the web page ({bundle.size / 1e6:.1f} MB)")


setup(cmdclass={"build_py": BuildWithWeb})

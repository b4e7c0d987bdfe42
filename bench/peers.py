"""Install the peers into bench's own environments (never the project's .venv).

* ``bench/.env/``: a venv with pycrdt, pycrdt-websocket, websockets and
  matplotlib (for ``--plot``);
* ``bench/node_modules/``: chainpad 5.3.1 and ws, from bench/package.json.

Both are ignored by git.  Installing is idempotent: a marker file records what
was installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from bench.common import BENCH, ENV_PY

PY_PACKAGES = ["pycrdt==0.14.13", "pycrdt-websocket==0.16.5", "websockets", "matplotlib"]


def ensure_python_env() -> None:
    """Create bench/.env and install the Python peers if missing."""
    marker = BENCH / ".env" / "bench-installed.txt"
    wanted = "\n".join(PY_PACKAGES)
    if marker.exists() and marker.read_text() == wanted and ENV_PY.exists():
        return
    print("bench: installing pycrdt, pycrdt-websocket, matplotlib into bench/.env", flush=True)
    if not ENV_PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH / ".env")], check=True)
    subprocess.run(
        [str(ENV_PY), "-m", "pip", "install", "-q", *PY_PACKAGES], check=True, timeout=900
    )
    marker.write_text(wanted)


def ensure_node_modules() -> None:
    """npm install chainpad and ws into bench/node_modules if missing."""
    if (BENCH / "node_modules" / "chainpad" / "package.json").exists() and (
        BENCH / "node_modules" / "ws" / "package.json"
    ).exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: the ChainPad peer and load generator need node")
    print("bench: npm install (chainpad@5.3.1, ws) into bench/node_modules", flush=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock"],
        cwd=BENCH,
        check=True,
        timeout=900,
    )


def ensure_all() -> None:
    """Both environments."""
    ensure_python_env()
    ensure_node_modules()

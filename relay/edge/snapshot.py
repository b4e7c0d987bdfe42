"""The page's start-up snapshot: Python's memory, made once per build and served.

Theory of operation
-------------------
A first visit to the page used to start CPython under Pyodide and import our
client (about 2.5 s of CPU on an idle machine, far more on a busy one) before
it could open a pad; later visits restored Python from a snapshot the browser
had taken of itself (web/app.js). This module makes that snapshot *once per
build*, where the relay builds its bundle, so that a first visit restores too:

* :func:`startup_snapshot` runs ``snapshot.mjs`` in Node: it boots the same
  Pyodide the page loads, unpacks the same wheel the page loads, imports
  :data:`STARTUP_IMPORTS` (what the page imports; tests check the two lists
  agree) and writes Pyodide's memory snapshot. Nothing of any pad exists
  there: no link, key, author or text ever reaches that interpreter.
* The result is kept gzip-compressed (about 7 MB for 31 MB) in
  ``node_modules/.cache/blindpad-startup/``, named by a digest of everything
  it is made from (Pyodide's files, the wheel, the import list, the script),
  so a relay start that finds it pays nothing, and any change to the client
  makes a new one.
* The bundle serves it as an immutable asset, and ``index.html`` names it in
  ``data-snapshot-url`` (empty when there is none). The page restores from it
  when this browser holds no snapshot of its own; if it does not restore, the
  page boots cold and takes its own, as before.

It is code the relay serves, like ``app.js`` and the wheel: it adds no trust
(docs/SECURITY.md, "The start-up snapshot"). It is optional: without Node,
when making it fails (one line on stderr says why), or with
``BLINDPAD_STARTUP_SNAPSHOT=off``, there is none, and first visits boot cold.

This module uses the standard library only (the wheel-build hook imports it).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: What the snapshot has imported: web/app.js's SNAPSHOT_IMPORTS, the same list.
STARTUP_IMPORTS = (
    "client.browser",
    "client.jsondoc",
    "client.engine",
    "client.recovery",
    "client.commands._http",
    "crypto._sodium",
)
SCRIPT = Path(__file__).with_name("snapshot.mjs")
#: ``off`` (or ``0``, ``no``): make and serve no snapshot.
ENV = "BLINDPAD_STARTUP_SNAPSHOT"
#: Where snapshots are kept, under ``node_modules``.
CACHE = Path(".cache") / "blindpad-startup"
#: Snapshots of other builds kept beside the one in use (each about 7 MB; a
#: relay reads its snapshot into memory, so a deleted file harms no relay).
KEEP_OTHERS = 4
#: A hang guard only: Node makes one in 3-10 s.
TIMEOUT_S = 600


def disabled() -> bool:
    """Whether :data:`ENV` turns the snapshot off."""
    return os.environ.get(ENV, "").strip().lower() in ("off", "0", "no", "false")


def snapshot_key(runtime: bytes, wheel: bytes) -> str:
    """The digest that names a snapshot: of Pyodide's files (``runtime``:
    their digest), the wheel, the imports and the script that makes it."""
    h = hashlib.sha256()
    for part in (runtime, wheel, ",".join(STARTUP_IMPORTS).encode(), SCRIPT.read_bytes()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:32]


def startup_snapshot(modules: Path, runtime: bytes, wheel: bytes) -> Path | None:
    """The gzip-compressed start-up snapshot for this runtime and wheel.

    Args:
        modules: the ``node_modules`` holding ``pyodide`` (and the cache).
        runtime: a digest of Pyodide's files (the bundle's).
        wheel: our wheel's bytes, as the page loads them.

    Returns:
        The cached file (made now if missing), or None when it is turned off
        or cannot be made (then one line on stderr says why).
    """
    if disabled():
        return None
    if not SCRIPT.is_file():
        _say(f"{SCRIPT} is missing")
        return None
    folder = modules / CACHE
    path = folder / f"startup-{snapshot_key(runtime, wheel)}.bin.gz"
    if path.is_file():
        os.utime(path)  # in use: kept by _forget_others
        return path
    node = shutil.which("node")
    if node is None:
        _say("no `node` on PATH")
        return None
    print(
        "blindpad relay: making the page's start-up snapshot (once per build)",
        file=sys.stderr,
        flush=True,
    )
    try:
        data = _make(node, modules / "pyodide", wheel)
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_bytes(gzip.compress(data, compresslevel=6, mtime=0))
        os.replace(partial, path)  # atomic: relays starting together agree
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        said = str(error).strip()
        _say(said.splitlines()[-1] if said else type(error).__name__)
        return None
    _forget_others(folder, path)
    return path


def _make(node: str, pyodide: Path, wheel: bytes) -> bytes:
    with tempfile.TemporaryDirectory(prefix="blindpad-startup-") as tmp:
        wheel_path = Path(tmp) / "blindpad.whl"
        wheel_path.write_bytes(wheel)
        out = Path(tmp) / "snapshot.bin"
        imports = ",".join(STARTUP_IMPORTS)
        done = subprocess.run(
            [node, str(SCRIPT), str(pyodide), str(wheel_path), imports, str(out)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 or not out.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ValueError(f"node exited {done.returncode}: {lines[-1] if lines else ''}")
        return out.read_bytes()


def _forget_others(folder: Path, newest: Path) -> None:
    """Keep :data:`KEEP_OTHERS` older snapshots (other checkouts may still use them)."""
    others = sorted(
        (p for p in folder.glob("startup-*.bin.gz") if p != newest),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in others[KEEP_OTHERS:]:
        old.unlink(missing_ok=True)


def _say(why: str) -> None:
    print(
        f"blindpad relay: no start-up snapshot for the page ({why}): "
        "first visits start Python cold",
        file=sys.stderr,
        flush=True,
    )

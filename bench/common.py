"""Shared helpers: statistics, tables, traces, processes, CPU accounting, the machine.

Everything here is plain stdlib plus the project's own packages.  Processes
started here always have a deadline and are stopped in ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TRACES_DIR = ROOT.parent / "shared" / "data" / "traces"
LOCAL_TRACES = ROOT / "tests" / "data"
TRACE_NAMES = ["friendsforever_flat", "clownschool_flat", "seph-blog1", "automerge-paper"]
ENV_PY = BENCH / ".env" / "bin" / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")
TIMEOUT = 60.0
#: Relay options for benchmarks: the default rate limit (200 frames/s per
#: connection) would cap a fast typist, and the default pad-creation limit
#: (a burst of 20 per address) and connection cap (64 per address) would
#: refuse the hundreds of pads and connections the load generator opens from
#: one loopback address, standing for many users: every run raises them.
RELAY_BENCH_ARGS = [
    "--rate-per-second",
    "10000000",
    "--rate-burst",
    "10000000",
    "--create-per-minute",
    "10000000",
    "--create-burst",
    "10000000",
    "--max-connections-per-address",
    "1024",
]


class BenchFailure(Exception):
    """A scenario did not converge or a check failed: a failure, not a time."""


# --- statistics and tables --------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (empty: zeros)."""
    if not values:
        return {"median": 0.0, "min": 0.0, "max": 0.0, "n": 0}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def fmt(value: float) -> str:
    """A compact human number."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"


def cell(stats: dict[str, float] | float | str) -> str:
    """A table cell: ``median (min-max)`` for a summary."""
    if isinstance(stats, dict):
        if stats.get("n", 0) <= 1 or fmt(stats["min"]) == fmt(stats["max"]):
            return fmt(stats["median"])
        return f"{fmt(stats['median'])} ({fmt(stats['min'])}-{fmt(stats['max'])})"
    if isinstance(stats, bool):
        return str(stats)
    if isinstance(stats, int):
        return f"{stats:,}"
    if isinstance(stats, float):
        return fmt(stats)
    return str(stats)


def table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table, printed and returned."""
    lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


@dataclass
class Result:
    """What one scenario produced: tables (Markdown), raw data (JSON), notes."""

    name: str
    tables: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, text: str) -> None:
        """Record and print a note."""
        print(f"note: {text}", flush=True)
        self.notes.append(text)


# --- traces -------------------------------------------------------------------


def trace_path(name: str) -> Path | None:
    """Where trace ``name`` is, or None when absent."""
    for folder in (TRACES_DIR, LOCAL_TRACES):
        path = folder / f"{name}.json.gz"
        if path.exists():
            return path
    return None


def load_trace(name: str) -> dict[str, Any] | None:
    """The trace as a dict, or None when absent."""
    path = trace_path(name)
    if path is None:
        return None
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


# --- processes and CPU --------------------------------------------------------


def _stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (state is [0])."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (from /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` and of its children (the relay's signature
    helper, :mod:`relay.verifier`), live or reaped."""
    total = sum(int(x) for x in _stat(pid)[11:15]) / CLK_TCK  # utime stime cutime cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat(entry.name)[1])
        except OSError:
            continue
        if parent == pid:
            total += tree_cpu_seconds(int(entry.name))
    return total


def self_cpu() -> float:
    """This process's CPU seconds."""
    t = os.times()
    return t.user + t.system


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = TIMEOUT) -> None:
    """Wait until something listens on loopback ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchFailure(f"server exited early with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchFailure(f"nothing listens on port {port} after {timeout}s")


@dataclass
class Server:
    """A server subprocess on loopback."""

    proc: subprocess.Popen[Any]
    port: int
    store_path: Path | None = None

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        """Its websocket endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        """Its HTTP base."""
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        """CPU seconds so far, its child processes' included."""
        return tree_cpu_seconds(self.pid)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """Terminate, then kill after a grace period; reap."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def relay_process(
    store: str | None = None, extra: Sequence[str] = (), *, keep_dir: Path | None = None
) -> Iterator[Server]:
    """Run ``python -m relay`` on loopback (SQLite in a temp dir unless ``store``)."""
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        folder = keep_dir or Path(tmp)
        store_path = None
        if store is None:
            store_path = folder / "relay.sqlite3"
            store = f"sqlite:///{store_path}"
        elif store.startswith("sqlite:///"):
            store_path = Path(store.removeprefix("sqlite:///"))
        port = free_port()
        cmd = [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--store", store, *RELAY_BENCH_ARGS, *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_port(port, proc)
            yield Server(proc, port, store_path)
        finally:
            stop_process(proc)
            if proc.stderr is not None:
                proc.stderr.close()


def new_pad(server: Server) -> str:
    """A new pad on ``server``, made with ``blindpad new`` (the CLI users run): its edit link."""
    made = subprocess.run(
        [sys.executable, "-m", "blindpad", "new", "--relay", server.http_url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        raise BenchFailure(f"blindpad new failed: {made.stderr.strip()}")
    return made.stdout.split()[0]


def store_bytes_on_disk(path: Path | None) -> int:
    """Bytes of a SQLite store and its WAL/SHM files."""
    if path is None:
        return 0
    total = 0
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            total += p.stat().st_size
    return total


# --- the machine ---------------------------------------------------------------


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory, load, versions."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f.readline().split(":", 1)[1].strip()
    node = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "node": node,
        "kernel": platform.release(),
    }

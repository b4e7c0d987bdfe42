"""``python -m bench``: measure blindpad beside its peers (see bench/README.md).

Options: ``--quick`` (every scenario at reduced size), ``--only NAME`` (one
scenario; repeatable), ``--runs N`` (repetitions: tables show median, min and
max), ``--json PATH`` (raw results; default bench/out/results.json),
``--plot`` (PNG charts beside the JSON, drawn with bench/.env's matplotlib).
A scenario that does not converge is reported as a failure and the exit code
is 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import (
    s_browser,
    s_concurrent,
    s_edit_cost,
    s_fair,
    s_human,
    s_json,
    s_large,
    s_open,
    s_scaleout,
    s_sdk_trace,
    s_storage,
    s_throughput,
    s_trace,
    s_wal,
    s_year,
)
from bench.common import BENCH, ENV_PY, BenchFailure, Result, machine
from bench.peers import ensure_all

SCENARIOS: dict[str, Callable[[int, bool], Result]] = {
    "edit_cost": s_edit_cost.run,
    "throughput": s_throughput.run,
    "trace": s_trace.run,
    "sdk_trace": s_sdk_trace.run,
    "open": s_open.run,
    "storage": s_storage.run,
    "concurrent": s_concurrent.run,
    "fair": s_fair.run,
    "browser": s_browser.run,
    "scaleout": s_scaleout.run,
    "human": s_human.run,
    "year": s_year.run,
    "wal": s_wal.run,
    "large": s_large.run,
    "json": s_json.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 10 min)")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="scenario")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (3; quick: 1)")
    parser.add_argument("--json", type=Path, default=BENCH / "out" / "results.json")
    parser.add_argument("--plot", action="store_true", help="PNG charts beside the JSON")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    ensure_all()
    info = machine()
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# {command}\nmachine: {json.dumps(info)}\n", flush=True)
    results: dict[str, object] = {}
    failed = False
    started = time.monotonic()
    for name in args.only or list(SCENARIOS):
        print(f"## scenario {name} (runs={runs}, quick={args.quick})", flush=True)
        t = time.monotonic()
        try:
            result = SCENARIOS[name](runs, args.quick)
        except BenchFailure as error:
            result = Result(name, failures=[f"FAILED: {error}"])
            print(f"FAILED: {error}", flush=True)
        except Exception as error:
            result = Result(name, failures=[f"ERROR: {error!r}"])
            traceback.print_exc()
        result.seconds = time.monotonic() - t
        failed = failed or bool(result.failures)
        print(f"({name}: {result.seconds:.1f} s, failures: {len(result.failures)})\n", flush=True)
        results[name] = {
            "tables": result.tables,
            "data": result.data,
            "notes": result.notes,
            "failures": result.failures,
            "seconds": result.seconds,
        }
        _write(args.json, command, info, runs, args.quick, results, started)
    print(f"total: {time.monotonic() - started:.1f} s; JSON: {args.json}")
    if args.plot:
        subprocess.run(
            [str(ENV_PY), str(BENCH / "plot.py"), str(args.json), str(args.json.parent)],
            check=False,
            timeout=300,
        )
    return 1 if failed else 0


def _write(
    path: Path,
    command: str,
    info: dict[str, object],
    runs: int,
    quick: bool,
    results: dict[str, object],
    started: float,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "command": command,
        "machine": info,
        "runs": runs,
        "quick": quick,
        "seconds": time.monotonic() - started,
        "scenarios": results,
    }
    path.write_text(json.dumps(body, indent=1, default=str))
    md = path.with_suffix(".md")
    parts = [f"# `{command}`\n", f"machine: `{json.dumps(info)}`\n"]
    for name, r in results.items():
        assert isinstance(r, dict)
        parts.append(f"## {name} ({r['seconds']:.0f} s)\n")
        parts += r["tables"]
        parts += [f"- failure: {x}" for x in r["failures"]]
        parts += [f"- note: {x}" for x in r["notes"]]
    md.write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    sys.exit(main())

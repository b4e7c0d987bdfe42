"""Run every golden vector file in a directory: stdlib only.

A vector file is ``<prefix>*.jsonl``: one JSON object per line, each with at
least ``suite`` and ``case``.  The records of ``text*.jsonl`` are checked by
``check_text.check(record)``, those of ``crypto*.jsonl`` by
``check_crypto.check(record)``, and so on: the checker is the module
``check_<prefix>.py`` beside the vector files.  A checker raises
``AssertionError`` on a mismatch.

This runner is what runs the same vectors under CPython (from pytest) and
under Pyodide (from ``tests/pyodide/run.mjs``), so it must import nothing
outside the standard library besides the project's pure packages, which the
checkers import themselves.

    python tests/vectors/runner.py [DIRECTORY]

prints one line per prefix and exits 1 if any vector failed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


class VectorFailure(AssertionError):
    """One or more vectors failed; ``failures`` lists ``(file:line case, message)``."""

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        shown = "\n".join(f"  {where}: {message}" for where, message in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        super().__init__(f"{len(failures)} vector(s) failed:\n{shown}{more}")


def _checker(directory: Path, prefix: str) -> ModuleType:
    path = directory / f"check_{prefix}.py"
    if not path.exists():
        raise FileNotFoundError(f"no checker {path.name} for vector files {prefix}*.jsonl")
    spec = importlib.util.spec_from_file_location(f"check_{prefix}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prefix(path: Path) -> str:
    stem = path.stem
    end = 0
    while end < len(stem) and stem[end].isalpha():
        end += 1
    return stem[:end]


def run(directory: Path = HERE) -> dict[str, int]:
    """Check every vector file in ``directory``.

    Returns:
        The number of records checked per prefix (``{"text": 250, ...}``).

    Raises:
        VectorFailure: listing every failing record (all files are checked first).
    """
    counts: dict[str, int] = {}
    failures: list[tuple[str, str]] = []
    checkers: dict[str, ModuleType] = {}
    for path in sorted(directory.glob("*.jsonl")):
        prefix = _prefix(path)
        if prefix not in checkers:
            checkers[prefix] = _checker(directory, prefix)
        check = checkers[prefix].check
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                where = f"{path.name}:{number} {record.get('suite')}/{record.get('case')}"
                try:
                    check(record)
                except Exception as error:  # every failure is reported, not just the first
                    failures.append((where, f"{type(error).__name__}: {error}"))
                counts[prefix] = counts.get(prefix, 0) + 1
    if failures:
        raise VectorFailure(failures)
    return counts


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else HERE
    try:
        counts = run(directory)
    except VectorFailure as failure:
        print(failure, file=sys.stderr)
        return 1
    total = sum(counts.values())
    detail = ", ".join(f"{prefix} {count}" for prefix, count in sorted(counts.items()))
    print(f"{total} vectors passed ({detail})")
    return 0 if total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

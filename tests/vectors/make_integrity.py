"""Write the golden vectors of integrity algorithm 2: ``tests/vectors/integrity.jsonl``.

Run ``python tests/vectors/make_integrity.py`` after a deliberate change of
``wire.integrity`` and review the diff.  Each line is one JSON object
``{"suite", "case", "input", "expect"}``; ``check_integrity.py`` beside this
file checks one record.  Output is deterministic.

Suite ``integrity.v2``: input ``{"text": str}``, or for long texts
``{"lcg": {"alphabet": str, "length": n, "seed": s}}``: the text of ``n``
code points where, with ``x`` starting at ``s``, each code point is
``alphabet[(x >> 33) % len(alphabet)]`` after
``x = (x * 6364136223846793005 + 1442695040888963407) mod 2**64``
(so any runtime can rebuild it).  Expect ``{"ends": [...], "digest": hex}``:
the chunk ends (exclusive code point positions, the last one the length)
and the digest (docs/PROTOCOL.md §10.4).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wire import integrity

OUT = Path(__file__).with_name("integrity.jsonl")

Record = dict[str, Any]


def lcg_text(alphabet: str, length: int, seed: int) -> str:
    """The text an ``lcg`` input names (see the module docstring)."""
    out = []
    x = seed
    for _ in range(length):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(alphabet[(x >> 33) % len(alphabet)])
    return "".join(out)


def _record(case: str, inputs: dict[str, Any], text: str) -> Record:
    expect = {"ends": integrity.chunk_ends_slow(text), "digest": integrity.digest(text).hex()}
    return {"suite": "integrity.v2", "case": case, "input": inputs, "expect": expect}


def records() -> list[Record]:
    out: list[Record] = []
    for case, text in [
        ("empty", ""),
        ("one code point", "a"),
        ("astral and combining", "a😀b中c\u0301\n"),
        ("a lone surrogate passes (UTF-8 surrogatepass)", "x\ud800y"),
        ("one chunk of prose", "The quick brown fox jumps over the lazy dog.\n" * 3),
    ]:
        out.append(_record(case, {"text": text}, text))
    lcgs = [
        ("several chunks, ASCII", "abcdefghijklmnopqrstuvwxyz .,\n", 6_000, 1),
        ("several chunks, mixed scripts", "aé中😀 \n", 9_000, 2),
        ("forced ends: one code point repeated", "z", 20_000, 3),
        ("forced ends between natural ones: two letters", "ab", 30_000, 4),
        ("two levels of nodes", "abcdefghijklmnopqrstuvwxyz \n", 150_000, 5),
    ]
    for case, alphabet, length, seed in lcgs:
        spec = {"alphabet": alphabet, "length": length, "seed": seed}
        out.append(_record(case, {"lcg": spec}, lcg_text(alphabet, length, seed)))
    return out


def _line(record: Record) -> str:
    return json.dumps(record, sort_keys=True)  # ASCII: the lone surrogate case stays valid UTF-8


def render() -> str:
    """The exact text of ``integrity.jsonl``."""
    return "\n".join(_line(r) for r in records()) + "\n"


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT} ({len(records())} records)")


if __name__ == "__main__":
    main()

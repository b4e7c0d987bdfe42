"""Check one golden vector of integrity algorithm 2 (``integrity*.jsonl``).

Standard library plus ``wire.integrity`` only: this runs under CPython and
under Pyodide.  ``check(record)`` raises ``AssertionError`` naming the case
and the mismatch; the record format is described in ``make_integrity.py``.
Both ways of finding the chunk ends (the definition, one code point at a
time, and the one the clients use) must give the recorded ends.
"""

from __future__ import annotations

from typing import Any

from wire import integrity


def _text(inputs: dict[str, Any]) -> str:
    if "text" in inputs:
        return str(inputs["text"])
    spec = inputs["lcg"]
    alphabet, x, out = spec["alphabet"], spec["seed"], []
    for _ in range(spec["length"]):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(alphabet[(x >> 33) % len(alphabet)])
    return "".join(out)


def check(record: dict[str, Any]) -> None:
    """Check one record; ``AssertionError`` on a mismatch."""
    where = f"{record.get('suite')} / {record.get('case')!r}"
    if record["suite"] != "integrity.v2":
        raise AssertionError(f"{where}: unknown suite")
    text, expect = _text(record["input"]), record["expect"]
    for name, found in [
        ("chunk_ends", integrity.chunk_ends(text)),
        ("chunk_ends_slow", integrity.chunk_ends_slow(text)),
    ]:
        if found != expect["ends"]:
            raise AssertionError(f"{where}: {name}\n  got:  {found!r}\n  want: {expect['ends']!r}")
    got = integrity.digest(text).hex()
    if got != expect["digest"]:
        raise AssertionError(f"{where}: digest\n  got:  {got}\n  want: {expect['digest']}")

"""The Yjs side of bench/s_json.py, run with bench/.env's Python (pycrdt).

``python peer_pycrdt_json.py OPS_FILE``: build the same list of items as the
blindpad side (an Array of Maps, each title a nested Text), then run every
operation of OPS_FILE (JSON: {"items": N, "ops": [[kind, ...], ...]}) on
replica A inside one transaction, capture the update it emits and apply it
to replica B.  Prints one JSON line: per operation kind, the local times
(transaction + update), the remote times (apply_update), the update sizes,
and whether A and B ended equal.

pycrdt 0.14.13's Array has no move: a move is pop + insert of a copy (what a
pycrdt user writes; concurrent edits inside the moved item are then lost).
Its Map has no counter: add is read + set (concurrent adds are lost).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pycrdt import Array, Doc, Map, Text


def item(n: int) -> Map:
    return Map({"id": n, "title": Text(f"item {n}"), "n": 0})


def main(path: str) -> None:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    a, b = Doc(), Doc()
    arr_a = a.get("items", type=Array)
    updates: list[bytes] = []
    a.observe(lambda event: updates.append(event.update))
    with a.transaction():
        arr_a.extend([item(n) for n in range(spec["items"])])
    b.apply_update(a.get_update())
    arr_b = b.get("items", type=Array)
    updates.clear()
    out: dict[str, dict[str, list[float]]] = {}
    for op in spec["ops"]:
        kind = op[0]
        t0 = time.perf_counter_ns()
        with a.transaction():
            if kind == "set":
                arr_a[op[1]]["title"] = Text(op[2])
            elif kind == "insert":
                arr_a.insert(op[1], item(op[2]))
            elif kind == "delete":
                del arr_a[op[1]]
            elif kind == "move":
                moved = arr_a[op[1]].to_py()
                del arr_a[op[1]]
                arr_a.insert(op[2], Map({**moved, "title": Text(moved["title"])}))
            elif kind == "add":
                entry = arr_a[op[1]]
                entry["n"] = entry["n"] + 1
            elif kind == "text":
                arr_a[op[1]]["title"].insert(op[2], "x")
        update = updates.pop()
        t1 = time.perf_counter_ns()
        b.apply_update(update)
        t2 = time.perf_counter_ns()
        row = out.setdefault(kind, {"local_us": [], "remote_us": [], "bytes": []})
        row["local_us"].append((t1 - t0) / 1e3)
        row["remote_us"].append((t2 - t1) / 1e3)
        row["bytes"].append(len(update))
    same = arr_a.to_py() == arr_b.to_py()
    print(json.dumps({"ops": out, "converged": same, "final": arr_a.to_py()}))


if __name__ == "__main__":
    main(sys.argv[1])

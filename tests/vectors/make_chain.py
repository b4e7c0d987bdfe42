"""Write tests/vectors/chain.jsonl: best-tip decisions and scripted relay sessions.

The expectations are what the engine decides today; the vectors pin those
decisions so every runtime (CPython, Pyodide) and every later change must
agree.  Deterministic: the same file every run.

    python tests/vectors/make_chain.py
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from check_chain import best, mmr_range, session  # noqa: E402


def pid(n: int) -> str:
    return hashlib.sha256(f"patch {n}".encode()).hexdigest()


def best_cases(rng: random.Random) -> list[dict[str, Any]]:
    zero = "00" * 32
    cases = [
        ("single", [[pid(1), zero]]),
        ("longest wins", [[pid(1), zero], [pid(2), zero], [pid(3), pid(2)]]),
        ("tie to the lowest id", [[pid(1), zero], [pid(2), zero]]),
        ("orphan then parent", [[pid(3), pid(2)], [pid(2), zero], [pid(1), zero]]),
        ("descendants tie too", [[pid(1), zero], [pid(2), pid(1)], [pid(3), pid(1)]]),
    ]
    for n in range(40):
        count = rng.randint(2, 12)
        parents = [rng.randint(0, i) for i in range(count)]
        patches = [
            [pid(100 * n + i + 1), zero if p == 0 else pid(100 * n + p)]
            for i, p in enumerate(parents)
        ]
        rng.shuffle(patches)
        cases.append((f"random {n}", patches))
    return [
        {
            "suite": "chain.best",
            "case": name,
            "input": {"patches": patches},
            "expect": best(patches),
        }
        for name, patches in cases
    ]


def mmr_cases() -> list[dict[str, Any]]:
    cases = [("empty", 0), ("one", 1), ("three", 3), ("a power of two", 8), ("thirteen", 13)]
    return [
        {
            "suite": "chain.mmr",
            "case": name,
            "input": {"ids": [pid(i) for i in range(1, n + 1)]},
            "expect": mmr_range([pid(i) for i in range(1, n + 1)]),
        }
        for name, n in cases
    ]


def random_steps(rng: random.Random, sessions: int, count: int) -> list[list[Any]]:
    texts = ["😀", "ab", "漢字", "x", "\n", "\U0001d518"]
    steps: list[list[Any]] = []
    for _ in range(count):
        n = rng.randrange(sessions)
        roll = rng.random()
        if roll < 0.35:
            steps.append(["edit", n, None, 0, rng.choice(texts)])
        elif roll < 0.6:
            steps.append(["push", n])
        elif roll < 0.65:
            steps.append(["drop_ack", n])
        elif roll < 0.97:
            steps.append(["deliver", n])
        else:
            steps.append(["reconnect", n])
    # Settle: everyone reconnects, then push and deliver until quiet.
    for _ in range(3):
        for n in range(sessions):
            steps.append(["reconnect", n])
        steps += [[a, n] for _ in range(12) for n in range(sessions) for a in ("push", "deliver")]
    return steps


def session_cases(rng: random.Random) -> list[dict[str, Any]]:
    records = []
    for n in range(30):
        sessions = rng.randint(2, 4)
        spec: dict[str, Any] = {
            "sessions": sessions,
            "options": {"pipeline": rng.choice([1, 2, 4]), "hash_every": rng.choice([1, 8])},
            "steps": random_steps(rng, sessions, rng.randint(10, 60)),
        }
        resolve_positions(spec, rng)
        expect = session(spec)
        assert len(set(expect["texts"])) == 1, f"session {n} did not converge: {expect}"
        records.append(
            {"suite": "chain.session", "case": f"random {n}", "input": spec, "expect": expect}
        )
    return records


def resolve_positions(spec: dict[str, Any], rng: random.Random) -> None:
    """Give each edit a valid position and deletion by replaying the steps so far."""
    steps = spec["steps"]
    for index, step in enumerate(steps):
        if step[0] != "edit" or step[2] is not None:
            continue
        prefix = {**spec, "steps": steps[:index]}
        view = session(prefix)["texts"][step[1]]
        step[2] = rng.randint(0, len(view))
        step[3] = rng.randint(0, min(2, len(view) - step[2]))


def render() -> str:
    """The whole vector file, deterministically."""
    rng = random.Random(20261121)
    records = best_cases(rng) + session_cases(rng) + mmr_cases()
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main() -> None:
    path = HERE / "chain.jsonl"
    text = render()
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {text.count(chr(10))} records to {path.name}")


if __name__ == "__main__":
    main()

"""Random JSON documents and patches for the JSON document type's tests.

A patch is generated against the document it applies to, one operation at a
time (each on the document the previous ones left), from a small key and
value alphabet so that concurrent patches collide often.  Every string may
hold astral-plane and CJK characters.
"""

from __future__ import annotations

import random

from client import jsondoc, textops
from client.jsondoc import JOp, Patch, Path

KEYS = ("a", "b", "c", "é")
CHARS = "ab😀中 "


def gen_text(rng: random.Random, size: int = 3) -> str:
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, size)))


def gen_value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth < 2 and roll < 0.2:
        return [gen_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and roll < 0.35:
        return {k: gen_value(rng, depth + 1) for k in rng.sample(KEYS, rng.randint(0, 2))}
    if roll < 0.55:
        return rng.randint(-3, 5)
    if roll < 0.8:
        return gen_text(rng)
    return rng.choice([None, True, False, 1.5])


def gen_doc(rng: random.Random) -> object:
    doc: dict[str, object] = {
        "a": [gen_value(rng, 1) for _ in range(rng.randint(0, 5))],
        "b": {k: gen_value(rng, 1) for k in rng.sample(KEYS, rng.randint(0, 3))},
        "c": gen_text(rng, 6),
        "n": rng.randint(0, 9),
    }
    return doc


def _places(doc: object, path: Path, out: list[Path]) -> None:
    out.append(path)
    if type(doc) is dict:
        for key, value in doc.items():
            _places(value, (*path, key), out)
    elif type(doc) is list:
        for index, value in enumerate(doc):
            _places(value, (*path, index), out)


def gen_text_patch(rng: random.Random, text: str) -> textops.Patch:
    pos = rng.randint(0, len(text))
    delete = rng.randint(0, min(2, len(text) - pos))
    insert = gen_text(rng, 2)
    if not delete and not insert:
        insert = "x"
    return ((textops.Op(pos, delete, insert)),)


def gen_op(rng: random.Random, doc: object) -> JOp:
    places: list[Path] = []
    _places(doc, (), places)
    path = rng.choice(places)
    node = jsondoc.get(doc, path)
    choices: list[JOp] = []
    if type(node) is dict:
        choices.append(JOp(jsondoc.SET, (*path, rng.choice(KEYS)), gen_value(rng, 1)))
    if type(node) is list:
        choices.append(JOp(jsondoc.INSERT, (*path, rng.randint(0, len(node))), gen_value(rng, 1)))
        if len(node) >= 2:
            f = rng.randrange(len(node))
            t = rng.choice([t for t in range(len(node)) if t != f])
            choices += [JOp(jsondoc.MOVE, (*path, f), t)] * 2
    if type(node) is int and type(node) is not bool:
        choices += [JOp(jsondoc.ADD, path, rng.choice([-2, -1, 1, 3]))] * 2
    if type(node) is str:
        choices += [JOp(jsondoc.TEXT, path, gen_text_patch(rng, node))] * 2
    if path:
        choices.append(JOp(jsondoc.DELETE, path))
        if rng.random() < 0.5:
            choices.append(JOp(jsondoc.SET, path, gen_value(rng, 1)))
    if not choices:
        choices.append(JOp(jsondoc.SET, (), gen_doc(rng)))
    return rng.choice(choices)


def gen_patch(rng: random.Random, doc: object, count: int | None = None) -> Patch:
    ops: list[JOp] = []
    for _ in range(rng.randint(1, 3) if count is None else count):
        op = gen_op(rng, doc)
        doc = jsondoc.apply(doc, (op,))
        ops.append(op)
    return tuple(ops)

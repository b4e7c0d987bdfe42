"""The simulator's JSON world: :class:`sim.RelayWorld` on a JSON document.

Sessions edit one document of this shape, concurrently::

    {"items": [{"id": tag, "n": int}, ...],   # insert, delete, move, add to n
     "keys": {tag: int, ...},                 # create (set), delete, add
     "c": int,                                # add
     "t": str}                                # text edits with unique characters

The oracle is exact, like the text world's, and independent of
:mod:`client.jsondoc`: every item, key and character is a fresh tag.  At the
end every session holds the same value, and:

- ``items`` holds each tag inserted and not deleted, once (moves neither
  duplicate nor lose one), and each item's ``n`` is the sum of every add to
  it (adds commute; an add concurrent with the item's delete goes with it);
- ``keys`` holds each key created and not deleted, its value the sum of the
  adds to it;
- ``c`` is the sum of every add to it;
- ``t`` holds each character inserted and not deleted, once.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sim import Oracle, RelayWorld, Session

from client import textops
from client.jsondoc import ADD, DELETE, INSERT, JSON, MOVE, SET, TEXT, JOp, canonical


class JsonOracle(Oracle):
    """What the sessions did to the JSON document, independently of the engine."""

    def __init__(self, alphabet: list[str]) -> None:
        super().__init__(alphabet=alphabet)
        self.items: set[str] = set()
        self.items_deleted: set[str] = set()
        self.item_adds: Counter[str] = Counter()
        self.keys: set[str] = set()
        self.keys_deleted: set[str] = set()
        self.key_adds: Counter[str] = Counter()
        self.counter = 0

    def fresh(self) -> str:
        """A new tag for an item or a key (not a character of ``t``)."""
        tag = self.alphabet[self.next_tag]
        self.next_tag += 1
        return tag

    def check_value(self, value: Any) -> None:
        assert set(value) == {"items", "keys", "c", "t"}, value
        ids = [item["id"] for item in value["items"]]
        assert len(ids) == len(set(ids)), f"an item appears twice: {ids}"
        assert set(ids) == self.items - self.items_deleted, (ids, self.items, self.items_deleted)
        for item in value["items"]:
            assert item == {"id": item["id"], "n": self.item_adds[item["id"]]}, item
        assert set(value["keys"]) == self.keys - self.keys_deleted
        for key, count in value["keys"].items():
            assert count == self.key_adds[key], (key, count)
        assert value["c"] == self.counter
        self.verify(value["t"])


class JsonSession(Session):
    """A simulated client editing the JSON document."""

    def edit(self, rng: random.Random, oracle: Oracle) -> None:
        assert isinstance(oracle, JsonOracle)
        doc = self.engine.view
        if "items" not in doc:
            return  # joined mid-run and has not read the history yet: nothing to edit
        items, keys, text = doc["items"], doc["keys"], doc["t"]
        roll = rng.random()
        ops: list[JOp] = []
        if roll < 0.25 or not items:
            tag = oracle.fresh()
            oracle.items.add(tag)
            ops.append(JOp(INSERT, ("items", rng.randint(0, len(items))), {"id": tag, "n": 0}))
        elif roll < 0.35:
            index = rng.randrange(len(items))
            oracle.items_deleted.add(items[index]["id"])
            ops.append(JOp(DELETE, ("items", index)))
        elif roll < 0.5 and len(items) > 1:
            f = rng.randrange(len(items))
            t = rng.choice([t for t in range(len(items)) if t != f])
            ops.append(JOp(MOVE, ("items", f), t))
        elif roll < 0.6:
            index = rng.randrange(len(items))
            amount = rng.choice([-2, 1, 5])
            oracle.item_adds[items[index]["id"]] += amount
            ops.append(JOp(ADD, ("items", index, "n"), amount))
        elif roll < 0.68 or not keys:
            tag = oracle.fresh()
            oracle.keys.add(tag)
            ops.append(JOp(SET, ("keys", tag), 0))
        elif roll < 0.73:
            key = rng.choice(sorted(keys))
            oracle.keys_deleted.add(key)
            ops.append(JOp(DELETE, ("keys", key)))
        elif roll < 0.8:
            key = rng.choice(sorted(keys))
            oracle.key_adds[key] += 3
            ops.append(JOp(ADD, ("keys", key), 3))
        elif roll < 0.85:
            oracle.counter += 1
            ops.append(JOp(ADD, ("c",), 1))
        else:
            ops.append(JOp(TEXT, ("t",), self._text_edit(rng, oracle, text)))
        self.engine.edit(tuple(ops))
        self.engine.flush()

    def _text_edit(self, rng: random.Random, oracle: Oracle, text: str) -> textops.Patch:
        if not text or rng.random() < 0.6:
            pos = rng.randint(0, len(text))
            return textops.normalize([(pos, 0, oracle.tags(rng.randint(1, 3), self.number))])
        pos = rng.randrange(len(text))
        count = min(len(text) - pos, rng.randint(1, 3))
        for tag in text[pos : pos + count]:
            oracle.deleted_by.setdefault(tag, set()).add(self.number)
        return textops.normalize([(pos, count, "")])


#: The document every JSON world starts from (set by the first session).
START = {"items": [], "keys": {}, "c": 0, "t": ""}


class JsonRelayWorld(RelayWorld):
    """Mode (a) on a JSON document, under :class:`JsonOracle`."""

    doctype = JSON

    def __init__(self, seed: int, sessions: int, edits: int) -> None:
        super().__init__(seed, sessions, edits)
        self.oracle = JsonOracle(self.oracle.alphabet)
        first = self.sessions[0]
        first.engine.edit((JOp(SET, (), START),))
        first.engine.flush()
        first.drain()
        self.settle()  # everyone starts from the shape above

    def session(self, number: int) -> Session:
        return JsonSession(number, super().session(number).engine)

    def check(self) -> None:
        first = self.sessions[0].engine
        for session in self.sessions:
            engine = session.engine
            engine.check_invariants()
            assert engine.head.id == self.relay.head, f"session {session.number} head differs"
            assert canonical(engine.view) == canonical(first.view), (
                f"session {session.number} differs"
            )
            assert all(a.kind.value == "invalid-patch" for a in session.alarms), session.alarms
        assert isinstance(self.oracle, JsonOracle)
        self.oracle.check_value(first.view)

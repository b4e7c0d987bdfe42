"""JSON pads through the SDK and a real relay on loopback (issue 21).

Three clients edit one JSON pad concurrently (keys, list items, moves, adds,
nested strings) and converge to the oracle's value; the SDK's JSON methods,
errors and events; a JSON pad reopened from its snapshot, from its history
and from a state directory.  No timing assertions: waits are on events.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from relay_support import running_relay

from client import Backoff, InvalidEdit, Pad, ValueChanged, WrongDocType
from client.jsondoc import canonical

TIMEOUT = 300.0  # a hang guard, not a speed limit
FAST = Backoff(initial=0.05, cap=0.5)
START = {"items": [], "keys": {}, "notes": "", "c": 0}


def opener(link: str, **options: Any) -> contextlib.AbstractAsyncContextManager[Pad]:
    return Pad.open(link, **{"state_dir": None, "backoff": FAST, **options})


async def until(condition: Callable[[], bool], *pads: Pad) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            waits = [asyncio.ensure_future(pad.changed()) for pad in pads]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


class Oracle:
    """What the three clients did, independently of client.jsondoc."""

    def __init__(self) -> None:
        self.items: set[str] = set()
        self.deleted: set[str] = set()
        self.adds: Counter[str] = Counter()
        self.keys: dict[str, int] = {}
        self.chars: Counter[str] = Counter()
        self.c = 0

    def check(self, value: Any) -> None:
        ids = [item["id"] for item in value["items"]]
        assert len(ids) == len(set(ids)), f"an item is duplicated: {ids}"
        assert set(ids) == self.items - self.deleted
        for item in value["items"]:
            assert item["n"] == self.adds[item["id"]], item
            assert Counter(item["s"]) == Counter(item["id"]) + Counter("!" * self.adds[item["id"]])
        assert value["keys"] == self.keys
        assert Counter(value["notes"]) == self.chars
        assert value["c"] == self.c


async def _edit(pad: Pad, me: int, rng: random.Random, oracle: Oracle, steps: int) -> None:
    for step in range(steps):
        value = pad.value
        items = value["items"]
        roll = rng.random()
        if roll < 0.3 or not items:
            tag = f"c{me}.{step}"
            oracle.items.add(tag)
            item = {"id": tag, "n": 0, "s": tag}
            await pad.insert_item(["items"], rng.randint(0, len(items)), item)
        elif roll < 0.45 and len(items) > 1:
            f = rng.randrange(len(items))
            await pad.move_item(["items"], f, rng.choice([t for t in range(len(items)) if t != f]))
        elif roll < 0.6:
            index = rng.randrange(len(items))
            oracle.adds[items[index]["id"]] += 1
            await pad.add(["items", index, "n"], 1)
            # a nested string: a text edit inside a list item that may be moving
            text = items[index]["s"]
            await pad.edit_text(["items", index, "s"], rng.randint(0, len(text)), insert="!")
        elif roll < 0.65 and me == 0:
            index = rng.randrange(len(items))
            oracle.deleted.add(items[index]["id"])
            await pad.delete_at(["items", index])
        elif roll < 0.75:
            key = f"k{me}.{step}"
            oracle.keys[key] = step
            await pad.set(["keys", key], step)
        elif roll < 0.85:
            oracle.c += 2
            await pad.add(["c"], 2)
        else:
            char = "😀中ab"[me]
            oracle.chars[char] += 1
            await pad.edit_text(["notes"], rng.randint(0, len(value["notes"])), insert=char)
        await asyncio.sleep(rng.random() * 0.003)


def refusals(url: str) -> float:
    text = httpx.get(url.rstrip("/") + "/metrics", timeout=TIMEOUT).text
    found = re.findall(r'blindpad_refusals_total\{reason="(\w+)"\} ([0-9.e+]+)', text)
    return sum(float(value) for _, value in found)


def test_three_clients_converge_on_the_oracles_value() -> None:
    oracle = Oracle()
    with running_relay() as relay:
        asyncio.run(_three_clients(relay.url, oracle))
        assert refusals(relay.url) > 0  # the edits really raced: stale pushes were rebased


async def _three_clients(url: str, oracle: Oracle) -> None:
    links = await Pad.create(url, kind="json")
    assert ".json." in links.edit_link
    async with (
        opener(links.edit_link) as a,
        opener(links.edit_link) as b,
        opener(links.edit_link) as c,
    ):
        await a.set([], START)
        await until(lambda: b.value == START and c.value == START, a, b, c)
        await asyncio.gather(
            *(_edit(pad, n, random.Random(n), oracle, 80) for n, pad in enumerate((a, b, c)))
        )
        for pad in (a, b, c):
            await pad.synced(TIMEOUT)
        same = lambda: canonical(a.value) == canonical(b.value) == canonical(c.value)  # noqa: E731
        await until(same, a, b, c)
        oracle.check(a.value)
        assert not a.alarms
        assert not b.alarms
        assert not c.alarms


def test_json_methods_errors_and_events() -> None:
    with running_relay() as relay:
        asyncio.run(_methods(relay.url))


async def _methods(url: str) -> None:
    links = await Pad.create(url, kind="json")
    text_links = await Pad.create(url)
    async with (
        opener(links.edit_link) as a,
        opener(links.edit_link) as b,
        opener(text_links.edit_link) as t,
    ):
        assert a.kind == "json"
        assert a.value == {}
        with pytest.raises(WrongDocType, match=r"pad\.value"):
            _ = a.text
        with pytest.raises(WrongDocType):
            await a.insert(0, "x")
        with pytest.raises(WrongDocType):
            _ = t.value
        with pytest.raises(WrongDocType):
            await t.set(["k"], 1)
        events = b.events()
        await a.set(["list"], [1, 2, 3])
        await a.set(["name"], "abc")
        await a.move_item(["list"], 0, 2)
        await a.insert_item(["list"], 0, {"x": None})
        await a.add(["list", 1], 40)
        await a.edit_text(["name"], 1, delete=1, insert="😀")
        await a.delete_at(["list", 0])
        for bad in (
            lambda: a.set(["list", "k"], 1),  # a key into a list
            lambda: a.set(["nope", "k"], 1),  # no such container
            lambda: a.set(["k"], float("nan")),
            lambda: a.set(["k"], {1: 2}),
            lambda: a.add(["name"], 1),  # not an integer
            lambda: a.add(["list", 0], 0.5),
            lambda: a.insert_item(["list"], 9, 0),
            lambda: a.move_item(["list"], 0, 3),
            lambda: a.move_item(["list"], 7, 7),
            lambda: a.delete_at([]),
            lambda: a.edit_text(["name"], 9, insert="x"),
            lambda: a.set("name", 1),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidEdit):
                await bad()
        want = {"list": [42, 3, 1], "name": "a😀c"}
        assert a.value == want
        await a.synced(TIMEOUT)
        await until(lambda: b.value == want, b)
        seen: list[ValueChanged] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                if isinstance(event, ValueChanged):
                    seen.append(event)
                if len(seen) == 7:
                    break
        assert [(e.kind, e.path) for e in seen] == [
            ("s", ("list",)),
            ("s", ("name",)),
            ("m", ("list", 0)),
            ("i", ("list", 0)),
            ("a", ("list", 1)),
            ("t", ("name",)),
            ("d", ("list", 0)),
        ]
        b.value["list"].append("a copy")  # pad.value is a copy: nothing changes
        assert b.value == want


def test_a_json_pad_reopens_from_snapshot_history_state_and_a_trim(tmp_path: Path) -> None:
    with running_relay() as relay:
        asyncio.run(_reopen(relay.url, tmp_path))


async def _reopen(url: str, tmp_path: Path) -> None:
    links = await Pad.create(url, kind="json")
    async with opener(links.edit_link, state_dir=tmp_path) as a:
        await a.set([], {"items": [], "text": ""})
        for n in range(120):  # patches outweigh the document: snapshots are made
            await a.insert_item(["items"], n // 2, {"n": n, "pad": "x" * 300})
            await a.edit_text(["text"], 0, insert="é")
            if n % 3 == 0:
                await a.move_item(["items"], 0, n // 2)
        await a.synced(TIMEOUT)
        want = canonical(a.value)
    async with opener(links.view_link) as v:
        assert canonical(v.value) == want
        assert v.vouched is not None  # opened from a snapshot, verified against its digest
    async with opener(links.view_link, verify="history") as h:
        assert canonical(h.value) == want
    async with opener(links.edit_link, state_dir=tmp_path, compact=True) as again:
        assert canonical(again.value) == want
        await again.add(["items", 0, "n"], 1)
        await again.synced(TIMEOUT)
        await again.trim(TIMEOUT)  # the owner trim: a snapshot at the head, history gone
        want = canonical(again.value)
    async with opener(links.view_link, verify="history") as after:
        assert canonical(after.value) == want  # the earliest point kept is the trim's snapshot

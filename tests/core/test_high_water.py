"""Writer sessions, counters and the high-water table; compressed snapshots (issue 14)."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim import FakeCodec, header

from client import payload, snapshots, textops
from client.doctype import TEXT, InvalidPatch
from client.engine import Engine, SendPatch, SendSnapshot
from client.textops import Patch


def engine(author: int, session: bytes, **options: int) -> Engine[str, Patch]:
    return Engine(TEXT, FakeCodec(author), session=session, **options)  # type: ignore[arg-type]


def typed(e: Engine[str, Patch], text: str) -> list[bytes]:
    """Type ``text`` one character at a time, each sealed and acknowledged alone."""
    out = []
    for char in text:
        e.edit(textops.normalize([(len(e.view), 0, char)]))
        e.flush()
        (p,) = [ev.sealed.data for ev in e.events() if isinstance(ev, SendPatch)]
        e.acked(header(p)[0])
        out.append(p)
    return out


def test_every_patch_carries_its_session_and_a_counter_that_only_grows() -> None:
    a = engine(1, b"A" * 8)
    sealed = typed(a, "abc")
    bodies = [payload.decode(TEXT, p[45:]) for p in sealed]
    assert [(b.session, b.counter) for b in bodies] == [(b"A" * 8, n) for n in (1, 2, 3)]
    assert a.replica.hw == {b"A" * 8: (3, 3)}


def test_a_payload_with_half_a_stamp_or_a_bad_one_is_invalid() -> None:
    good = {"o": [[0, 0, "x"]], "n": 1, "s": "00" * 8, "c": 1}
    assert payload.decode(TEXT, json.dumps(good).encode()).counter == 1
    for bad in ({"s": "00" * 8}, {"c": 1}, {"s": "AA" * 8, "c": 1}, {"s": "00" * 8, "c": 0}):
        body = {"o": [[0, 0, "x"]], "n": 1, **bad}
        with pytest.raises(InvalidPatch):
            payload.decode(TEXT, json.dumps(body).encode())
    old = {"o": [[0, 0, "x"]], "n": 1}  # before sessions: still a patch, unstamped
    assert payload.decode(TEXT, json.dumps(old).encode()).session is None


def test_the_table_follows_the_best_chain_and_a_joiner_starts_from_the_snapshots() -> None:
    a, b = engine(1, b"A" * 8, min_snapshot_bytes=0), engine(2, b"B" * 8)
    history = typed(a, "hello")
    made = [ev for ev in a.events() if isinstance(ev, SendSnapshot)]
    for p in history:
        b.receive(p)
    assert b.replica.hw == a.replica.hw == {b"A" * 8: (5, 5)}
    a.edit(textops.normalize([(0, 0, "!")]))
    a.flush()
    snap = a.snapshots.seal(a.head, a.auth)
    contents = snapshots.read(TEXT, FakeCodec(1).open(snap.data).content or b"")
    assert contents.hw == {b"A" * 8: (5, 5)}  # the head's table: the open patch is not in it
    assert made or contents.height == 5
    joiner = engine(3, b"C" * 8)
    joiner.load_snapshot(snap.data, 5)
    assert joiner.replica.hw == {b"A" * 8: (5, 5)}


def test_reverting_a_patch_restores_its_sessions_entry() -> None:
    a = engine(1, b"A" * 8)
    b = engine(2, b"B" * 8)
    one, two = typed(a, "x"), typed(b, "yz")
    watcher = engine(3, b"C" * 8, pipeline=1)
    watcher.receive(one[0])
    assert watcher.replica.hw == {b"A" * 8: (1, 1)}
    for p in two:  # a longer branch beside it: the best chain switches
        watcher.receive(p)
    assert watcher.replica.hw == {b"B" * 8: (2, 2)}


def test_a_snapshot_keeps_only_sessions_near_its_patch() -> None:
    table = {b"o" * 8: (9, 10), b"n" * 8: (3, 70_000)}
    assert snapshots.hw_to_wire(table, 70_000) == {(b"n" * 8).hex(): [3, 70_000]}


def test_snapshot_content_is_compressed_bounded_and_old_json_still_reads() -> None:
    body = {"height": 0, "doc": "ab" * 1000, "h": TEXT.digest("ab" * 1000).hex()}
    packed = snapshots.pack(body)
    assert len(packed) < 200
    assert snapshots.read(TEXT, packed).doc == "ab" * 1000
    assert snapshots.read(TEXT, json.dumps(body).encode()).doc == "ab" * 1000
    raw = json.dumps(body).encode()
    lying = bytes([1]) + (len(raw) - 1).to_bytes(4, "big") + zlib.compress(raw)
    with pytest.raises(InvalidPatch, match="length"):
        snapshots.read(TEXT, lying)  # inflates past what it says: stopped at the bound
    huge = bytes([1]) + (1 << 30).to_bytes(4, "big") + zlib.compress(b"{}")
    with pytest.raises(InvalidPatch, match="over the limit"):
        snapshots.read(TEXT, huge)
    with pytest.raises(InvalidPatch, match="unknown format"):
        snapshots.read(TEXT, b"\x02junk")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=30))
def test_the_table_is_the_highest_counter_of_each_session_on_the_chain(
    writers: list[int],
) -> None:
    engines = [engine(n, bytes([n]) * 8) for n in range(3)]
    watcher = engine(9, b"W" * 8)
    for n in writers:  # each writes on the watcher's head, in turn
        e = engines[n]
        e.edit(textops.normalize([(0, 0, "x")]))
        e.flush()
        (p,) = [ev.sealed.data for ev in e.events() if isinstance(ev, SendPatch)]
        for other in (*engines, watcher):
            other.receive(p)
    expected: dict[bytes, tuple[int, int]] = {}
    for node in sorted(watcher.chain.nodes.values(), key=lambda node: node.height):
        body = node.patch
        if node.on_chain and body is not None and body.session is not None:
            expected[body.session] = (body.counter or 0, node.height)
    assert watcher.replica.hw == expected

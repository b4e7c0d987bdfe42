"""The Merkle mountain range of patch ids (wire.mmr, docs/PROTOCOL.md §11)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import mmr

ids = st.lists(st.binary(min_size=32, max_size=32), max_size=80)


def leaf(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(4, "big")).digest()


def test_three_ids_by_hand() -> None:
    a, b, c = leaf(1), leaf(2), leaf(3)
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    assert mmr.of([a, b, c]) == (ab, c)  # largest subtree first
    abcd = hashlib.sha256(b"\x01" + ab + hashlib.sha256(b"\x01" + c + leaf(4)).digest())
    assert mmr.of([a, b, c, leaf(4)]) == (abcd.digest(),)
    root = hashlib.sha256(b"\x02" + (3).to_bytes(8, "big") + ab + c).digest()
    assert mmr.root((ab, c), 3) == root


@given(ids, ids)
def test_extending_in_parts_is_extending_at_once(first: list[bytes], then: list[bytes]) -> None:
    start = mmr.of(first)
    assert len(start) == len(first).bit_count()
    assert mmr.extend(start, len(first), then) == (mmr.of(first + then), len(first + then))
    assert mmr.extends(start, len(first), then, mmr.of(first + then), len(first + then))


@given(ids.filter(bool), ids.filter(bool), st.data())
def test_another_history_never_extends(
    first: list[bytes], then: list[bytes], data: st.DataObject
) -> None:
    target = mmr.of(first + then)
    changed = list(first)
    at = data.draw(st.integers(0, len(changed) - 1))
    changed[at] = hashlib.sha256(changed[at]).digest()  # a fork below the remembered point
    assert not mmr.extends(mmr.of(changed), len(changed), then, target, len(first + then))
    shorter = then[:-1]  # a history that stops short of the snapshot
    assert not mmr.extends(mmr.of(first), len(first), shorter, target, len(first + then))


def test_peaks_from_json_are_checked_against_the_height() -> None:
    peaks = mmr.of([leaf(1), leaf(2), leaf(3)])
    assert mmr.from_hex(mmr.to_hex(peaks), 3) == peaks
    with pytest.raises(ValueError, match="a list of 1 hashes"):
        mmr.from_hex(mmr.to_hex(peaks), 4)  # height 4 is one complete tree
    with pytest.raises(ValueError, match="64 hex digits"):
        mmr.from_hex(["ab", "cd"], 3)
    with pytest.raises(ValueError, match="cannot be a range"):
        mmr.append(peaks, 4, leaf(5))

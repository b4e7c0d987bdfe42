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


def block_nodes(leaves: list[bytes], start: int, level: int) -> list[tuple[int, bytes]]:
    """The leaves after ``start`` as nodes: whole aligned subtrees of ``2**level`` where
    they fit (as a relay that kept only block roots names them), single ids elsewhere."""
    size, nodes, at = 1 << level, [], start
    while at < len(leaves):
        if at % size == 0 and at + size <= len(leaves):
            nodes.append((level, mmr.block_root(leaves[at : at + size])))
            at += size
        else:
            nodes.append((0, leaves[at]))
            at += 1
    return nodes


@given(st.integers(0, 700), st.integers(0, 700), st.sampled_from([1, 2, 4, 8]))
def test_nodes_of_whole_subtrees_extend_like_their_ids(a: int, b: int, level: int) -> None:
    start, end = min(a, b), max(a, b)
    leaves = [leaf(n) for n in range(end)]
    nodes = block_nodes(leaves, start, level)
    assert mmr.extend_nodes(mmr.of(leaves[:start]), start, nodes) == (mmr.of(leaves), end)
    assert mmr.extends_by_nodes(mmr.of(leaves[:start]), start, nodes, mmr.of(leaves), end)
    assert mmr.unpack_nodes(mmr.pack_nodes(nodes)) == nodes


def test_a_subtree_must_start_at_a_multiple_of_its_size() -> None:
    leaves = [leaf(n) for n in range(260)]
    block = mmr.block_root(leaves[4:260])
    with pytest.raises(ValueError, match="cannot start"):
        mmr.append_node(mmr.of(leaves[:4]), 4, 8, block)
    assert not mmr.extends_by_nodes(mmr.of(leaves[:4]), 4, [(8, block)], mmr.of(leaves), 260)
    with pytest.raises(ValueError, match="complete subtree"):
        mmr.block_root(leaves[:3])


@given(st.integers(0, 2000))
def test_the_prefix_at_a_multiple_of_256_is_the_large_peaks(height: int) -> None:
    leaves = [leaf(n) for n in range(height)]
    whole = height // 256 * 256
    assert mmr.prefix(mmr.of(leaves), height, 8) == (mmr.of(leaves[:whole]), whole)


def test_packed_nodes_are_checked() -> None:
    with pytest.raises(ValueError, match="33 bytes"):
        mmr.unpack_nodes(b"\x00" * 32)
    with pytest.raises(ValueError, match="at most 63"):
        mmr.unpack_nodes(b"\x40" + b"\x00" * 32)

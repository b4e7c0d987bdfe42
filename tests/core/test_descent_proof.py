"""A descent proof across a trim, from the nodes a relay names (client.trust, PROTOCOL.md §11)."""

from __future__ import annotations

import hashlib

from test_mmr import block_nodes

from client.events import AlarmKind
from client.trust import OK, DescentProof
from wire import mmr

LEAVES = [hashlib.sha256(n.to_bytes(4, "big")).digest() for n in range(1000)]


def proof_of(remembered: int, target: int, leaves: list[bytes] = LEAVES) -> DescentProof:
    """The proof a client starts at ``remembered`` towards a snapshot at ``target``."""
    start = (remembered, leaves[remembered - 1])
    return DescentProof(start, mmr.of(leaves[:remembered]), (target, mmr.of(leaves[:target])))


def test_ids_and_block_roots_prove_descent_in_pages() -> None:
    proof = proof_of(300, 900)
    nodes = block_nodes(LEAVES[:900], 300, mmr.BLOCK_LEVEL)  # 300..511 ids, a block, then ids
    proof.take(300, mmr.pack_nodes(nodes[:100]))
    assert not proof.complete
    assert proof.next_from == 400
    proof.take(400, mmr.pack_nodes(nodes[100:]))
    assert proof.complete
    assert proof.verdict() is OK


def test_a_point_inside_a_trimmed_block_is_proved_from_the_blocks_start() -> None:
    proof = proof_of(300, 900)
    nodes = block_nodes(LEAVES[:900], 256, mmr.BLOCK_LEVEL)  # the block 257..512 is a root
    proof.take(256, mmr.pack_nodes(nodes))
    assert proof.complete
    assert proof.verdict() is OK


def test_another_branch_is_a_fork_and_too_few_nodes_withheld() -> None:
    other = LEAVES[:600] + [hashlib.sha256(b"other" + bytes([n])).digest() for n in range(100)]
    proof = proof_of(650, 700)
    proof.take(512, mmr.pack_nodes(block_nodes(other, 512, mmr.BLOCK_LEVEL)))
    assert proof.verdict().kind is AlarmKind.FORK
    short = proof_of(300, 900)
    short.take(300, mmr.pack_nodes(block_nodes(LEAVES[:800], 300, mmr.BLOCK_LEVEL)))
    short.take(800, b"")
    assert short.complete
    assert short.verdict().kind is AlarmKind.WITHHELD


def test_a_start_below_the_point_is_accepted_only_at_its_block_start() -> None:
    proof = proof_of(300, 900)
    proof.take(255, mmr.pack_nodes(block_nodes(LEAVES[:900], 255, mmr.BLOCK_LEVEL)))
    assert proof.stalled  # not the multiple of 256 below the point
    late = proof_of(512, 900)  # a point at a block's end is never proved from an earlier start
    late.take(256, mmr.pack_nodes(block_nodes(LEAVES[:900], 256, mmr.BLOCK_LEVEL)))
    assert late.stalled


def test_ids_from_the_blocks_start_must_pass_through_the_remembered_point() -> None:
    """A relay that answers from the block's start with ids cannot skip the point's check."""
    other = LEAVES[:290] + [hashlib.sha256(b"other%d" % n).digest() for n in range(700)]
    target = (900, mmr.of(other[:900]))
    proof = DescentProof((300, LEAVES[299]), mmr.of(LEAVES[:300]), target)
    proof.take(256, mmr.pack_nodes((0, leaf) for leaf in other[256:900]))
    assert proof.complete
    assert proof.verdict().kind is AlarmKind.FORK


def aged_history(blocks: int) -> tuple[list[bytes], list[bytes]]:
    """A history of ``blocks`` blocks as block roots (made up: the range only sees
    roots), block 257's from its own leaves; returns (block roots, block 257's leaves)."""
    leaves = [hashlib.sha256(b"leaf%d" % n).digest() for n in range(256)]
    roots = [hashlib.sha256(b"block%d" % n).digest() for n in range(blocks)]
    roots[257] = mmr.block_root(leaves)
    return roots, leaves


def group_root(roots: list[bytes], group: int) -> bytes:
    return mmr.block_root(roots[group * 256 : group * 256 + 256])


def test_a_point_inside_an_aged_group_is_proved_from_the_groups_start() -> None:
    """The relay keeps a group of 256 old blocks as one level-16 root: a device
    whose point lies inside it proves descent from the group's start."""
    roots, leaves = aged_history(800)  # 204,800 patches; group 1 ends at 131,072
    remembered = [(16, group_root(roots, 0)), (8, roots[256]), *((0, x) for x in leaves[:44])]
    anchor, height = mmr.extend_nodes(mmr.EMPTY, 0, remembered)
    assert height == 65_536 + 256 + 44
    target = mmr.extend_nodes(mmr.EMPTY, 0, [(8, root) for root in roots])
    proof = DescentProof((height, leaves[43]), anchor, (target[1], target[0]))
    answer = [(16, group_root(roots, 1)), *((8, root) for root in roots[512:])]
    proof.take(65_536, mmr.pack_nodes(answer))
    assert proof.complete
    assert proof.verdict() is OK


def test_a_group_start_is_not_believed_for_a_group_too_recent_to_have_aged() -> None:
    """A group ages only once it ends 65,536 patches below the floor: a relay that
    answers from the start of a nearer group skips what the device verified."""
    roots, leaves = aged_history(767)  # group 1 ends 65,280 patches below the target
    remembered = [(16, group_root(roots, 0)), (8, roots[256]), *((0, x) for x in leaves[:44])]
    anchor, height = mmr.extend_nodes(mmr.EMPTY, 0, remembered)
    target = mmr.extend_nodes(mmr.EMPTY, 0, [(8, root) for root in roots])
    proof = DescentProof((height, leaves[43]), anchor, (target[1], target[0]))
    proof.take(
        65_536, mmr.pack_nodes([(16, group_root(roots, 1)), *((8, r) for r in roots[512:])])
    )
    assert proof.stalled
    assert proof.verdict().kind is AlarmKind.WITHHELD

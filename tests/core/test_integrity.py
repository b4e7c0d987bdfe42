"""Integrity algorithm 2 (``wire.integrity``, ``client.rope.Digests``): its laws,
beside the golden vectors; and the varints of version 2's binary fields."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import doctype, textops
from client.rope import Digests, Rope
from crypto import varint
from wire import integrity as i2

ALPHABETS = ["ab", "abcdefghijklmnopqrstuvwxyz \n", "aé中😀 \n", "\x00\x01", "z"]


def texts() -> st.SearchStrategy[str]:
    """Short and long texts over small and large alphabets (forced and natural ends)."""
    return st.builds(
        lambda alphabet, length, seed: "".join(
            random.Random(seed).choice(alphabet) for _ in range(length)
        ),
        st.sampled_from(ALPHABETS),
        st.sampled_from([0, 1, 9, 10, 63, 64, 65, 1_000, 9_000, 20_000]),
        st.integers(0, 2**16),
    ) | st.text(max_size=300)


@given(texts())
def test_the_fast_chunk_ends_are_the_definitions(text: str) -> None:
    assert i2.chunk_ends(text) == i2.chunk_ends_slow(text)


@given(texts())
def test_chunks_cover_the_text_within_their_bounds(text: str) -> None:
    ends = i2.chunk_ends(text)
    starts = [0, *ends][: len(ends)]
    assert ends == sorted(ends)
    assert (ends[-1] if ends else 0) == len(text)
    for start, end in zip(starts, ends, strict=True):
        assert end - start <= i2.MAX_CHUNK
        assert end - start >= i2.MIN_CHUNK or end == len(text)


def test_small_texts_are_one_leaf_and_the_empty_text_is_the_empty_leaf() -> None:
    assert i2.digest("") == hashlib.sha256(b"\x00").digest()
    assert i2.digest("a😀") == hashlib.sha256(b"\x00" + "a😀".encode()).digest()


def test_an_edit_changes_only_the_leaves_near_it() -> None:
    """What makes the value cheap to keep: chunk ends move with the text after
    an edit, so nearly every leaf hash stays; and any change moves the digest."""
    rng = random.Random(5)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz .,\n") for _ in range(200_000))

    def leaves(doc: str) -> list[bytes]:
        ends = i2.chunk_ends(doc)
        return [i2.leaf_hash(doc[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]

    before = leaves(text)
    for pos, delete, insert in [(100_000, 0, "x"), (5, 3, ""), (150_000, 40, "new words here")]:
        edited = text[:pos] + insert + text[pos + delete :]
        after = leaves(edited)
        changed = len(set(after) - set(before))
        assert 1 <= changed <= 3, (pos, changed, len(before))
        assert i2.digest(edited) != i2.digest(text)


def test_every_level_at_least_halves_so_the_tree_ends() -> None:
    # A level whose every hash ends a group would repeat forever without the
    # "at least two a group" rule: here every leaf hash does (last byte 0xFF).
    hashes = [bytes(31) + b"\xff"] * 7
    groups = i2._groups(hashes)
    assert [len(g) for g in groups] == [2, 2, 2, 1]
    assert len(i2._groups([bytes(32)] * 200)) == 4  # at most 64 a node


EDITS = st.lists(st.tuples(st.integers(0), st.integers(0), st.text(max_size=40)), max_size=6)


@given(texts(), EDITS)
def test_the_index_kept_through_edits_is_the_index_made_afresh(
    text: str, edits: list[tuple[int, int, str]]
) -> None:
    """:class:`wire.integrity.Index` redoes only the chunks near an edit, yet
    its ends, leaves and digest are those of the text made from scratch."""
    index = i2.Index(text)
    for at, width, insert in edits:
        pos = at % (len(text) + 1)
        delete = width % (len(text) - pos + 1)
        text = text[:pos] + insert + text[pos + delete :]
        index.replace(text, pos, delete, len(insert))
        fresh = i2.Index(text)
        assert index.ends == fresh.ends
        assert index.leaves == fresh.leaves
        assert index.digest() == i2.digest(text)


@given(texts(), st.lists(st.tuples(st.integers(0), st.integers(0, 300), st.text(max_size=300))))
def test_many_edits_replayed_in_one_pass_give_the_index_made_afresh(
    text: str, edits: list[tuple[int, int, str]]
) -> None:
    """:meth:`wire.integrity.Index.replace_many`: edits far apart, close
    together (one chunk reaching the next edit) and touching, in one pass."""
    index = i2.Index(text)
    cuts = sorted({at % (len(text) + 1) for at, _, _ in edits})
    pieces: list[str] = []
    replayed: list[tuple[int, int, int]] = []  # (pos in the new text, delete, insert)
    shift = copied = 0  # the old text before ``copied`` is in ``pieces``
    for cut, (_, width, insert) in zip(cuts, edits, strict=False):
        if cut < copied:
            continue  # edits may touch, not overlap
        delete = min(width, len(text) - cut)
        pieces += [text[copied:cut], insert]
        replayed.append((cut + shift, delete, len(insert)))
        shift += len(insert) - delete
        copied = cut + delete
    after = "".join(pieces) + text[copied:]
    index.replace_many(after, [e for e in replayed if e[1] or e[2]])
    fresh = i2.Index(after)
    assert (index.ends, index.leaves) == (fresh.ends, fresh.leaves)


def test_the_index_redoes_few_chunks_for_an_edit_in_a_long_text() -> None:
    rng = random.Random(9)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz .,\n") for _ in range(300_000))
    index = i2.Index(text)
    redone: list[int] = []
    hashed = i2.leaf_hash

    def counting(chunk: str) -> bytes:
        redone.append(len(chunk))
        return hashed(chunk)

    i2.leaf_hash = counting  # type: ignore[assignment]
    try:
        text = text[:150_000] + "x" + text[150_000:]
        index.replace(text, 150_000, 0, 1)
    finally:
        i2.leaf_hash = hashed  # type: ignore[assignment]
    assert 1 <= len(redone) <= 3, redone  # of about 290 chunks
    assert index.digest() == i2.digest(text)


def _edit(rng: random.Random, text: Rope, alphabet: str) -> Rope:
    """``text`` after a few random operations, small and large, as an editor makes them."""
    ops: list[textops.Op] = []
    at = 0
    for _ in range(rng.randint(1, 4)):
        if at > len(text):
            break
        pos = rng.randint(at, len(text))
        delete = rng.randint(0, min(len(text) - pos, rng.choice([1, 5, 3_000, 40_000])))
        insert = "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 3, 100, 20_000])))
        if delete or insert:
            ops.append(textops.Op(pos, delete, insert))
            at = pos + delete + 1
    return text.apply(tuple(ops))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(ALPHABETS), st.sampled_from([0, 10, 5_000, 60_000]), st.integers(0, 2**16))
def test_digests_of_edited_ropes_are_the_digests_of_their_texts(
    alphabet: str, length: int, seed: int
) -> None:
    """``client.rope.Digests`` brings a kept index to each new version of a
    text (several versions live at once, as the engine's texts are); every
    value equals the digest from scratch."""
    rng = random.Random(seed)
    digests = Digests()
    versions = [Rope.of("".join(rng.choice(alphabet) for _ in range(length)))]
    for _ in range(12):
        text = _edit(rng, rng.choice(versions[-4:]), alphabet)
        versions.append(text)
        assert digests.digest(text) == i2.digest(str(text))
    assert digests.digest(str(versions[-1])) == i2.digest(str(versions[-1]))  # a str too


def test_a_keystroke_in_a_large_text_redoes_a_few_chunks_not_the_text() -> None:
    """The cost of a digest after a keystroke is the chunks near it: counted
    as the code points the index reads, not timed."""
    rng = random.Random(7)
    text = Rope.of("".join(rng.choice(ALPHABETS[1]) for _ in range(300_000)))
    digests = Digests()
    digests.digest(text)
    read: list[int] = []
    real = i2._candidates

    def counting(text: i2.Text, begin: int = 0, stop: int | None = None) -> list[int]:
        read.append((len(text) if stop is None else stop) - begin)
        return real(text, begin, stop)

    edited = text.apply((textops.Op(150_000, 0, "x"),))
    i2._candidates = counting
    try:
        got = digests.digest(edited)
    finally:
        i2._candidates = real
    assert got == i2.digest(str(edited))
    assert 0 < sum(read) < 20_000  # of 300,000


def test_varints_are_minimal_and_bounded() -> None:
    for value in (0, 1, 127, 128, 300, 2**21, 2**63, 2**64 - 1):
        out = bytearray()
        varint.write(out, value)
        assert varint.read(bytes(out) + b"\xff", 0) == (value, len(out))
        assert len(out) == max(1, (value.bit_length() + 6) // 7)
    for bad in (b"", b"\x80", b"\x81\x00", b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x02"):
        with pytest.raises(ValueError, match="varint"):
            varint.read(bad, 0)
    with pytest.raises(ValueError, match="varint holds"):
        varint.write(bytearray(), 2**64)


def test_a_writer_claims_algorithm_2_for_a_long_text_unless_it_is_chunked_by_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``TextType.claim_integrity``: SHA-256 (alg 1) below ``INCREMENTAL_FROM``
    code points, alg 2 above it; alg 1 again for a text that repeats a short
    stretch (its chunks cut by size, where an edit rechunks all after it)."""
    monkeypatch.setattr(doctype, "INCREMENTAL_FROM", 100_000)
    text_type = doctype.TextType()
    rng = random.Random(3)
    prose = Rope.of("".join(rng.choice(ALPHABETS[1]) for _ in range(120_000)))
    assert text_type.claim_integrity(prose[:99_999]) == (1, text_type.digest(prose[:99_999]))
    assert text_type.claim_integrity(prose) == (2, i2.digest(str(prose)))
    edited = prose.apply((textops.Op(60_000, 0, "x"),))
    assert text_type.claim_integrity(edited) == (2, i2.digest(str(edited)))
    periodic = Rope.of("lorem ipsum dolor " * 10_000)
    assert text_type.claim_integrity(periodic)[0] == 2  # none kept says otherwise yet
    periodic = periodic.apply((textops.Op(5, 0, "x"),))
    assert text_type.claim_integrity(periodic) == (1, text_type.digest(periodic))
    assert text_type.integrity(periodic, 2) == i2.digest(str(periodic))  # readers can check

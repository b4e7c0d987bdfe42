"""Integrity algorithm 2 (``wire.integrity``): its laws, beside the golden vectors."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given
from hypothesis import strategies as st

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

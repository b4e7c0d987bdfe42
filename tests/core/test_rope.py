"""The rope reads and edits exactly as a str does (client/rope.py).

Every property compares a :class:`Rope` cut into random chunks with the
plain ``str`` it holds: ``apply`` against :func:`client.textops.apply`,
slices, length, equality and the SHA-256 integrity value, on texts with
astral characters and CRLF.  Chained edits keep sharing chunks, so the
second edit runs on a rope the first one built.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client import rope, textops
from client.doctype import TEXT
from client.rope import Rope

ALPHABET = st.sampled_from(list("ab\r\né😀中 "))
TEXTS = st.text(ALPHABET, max_size=60)


@st.composite
def ropes(draw: st.DrawFn) -> tuple[Rope, str]:
    """A text, as a rope cut at random places (the cuts are not canonical)."""
    text = draw(TEXTS)
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=8)))
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    return Rope(chunks), text


@st.composite
def patches(draw: st.DrawFn, size: int) -> textops.Patch:
    """A canonical patch for a text of ``size`` code points."""
    ops: list[textops.Op] = []
    pos = 0
    while pos <= size and draw(st.booleans()):
        at = draw(st.integers(pos, size))
        delete = draw(st.integers(0, size - at))
        insert = draw(st.text(ALPHABET, max_size=12))
        if delete or insert:
            ops.append(textops.Op(at, delete, insert))
        pos = at + delete + 1
    return textops.normalize(ops)


@given(st.data())
def test_edits_are_those_of_a_str(data: st.DataObject) -> None:
    piece, text = data.draw(ropes())
    for _ in range(3):
        patch = data.draw(patches(len(text)))
        piece, text = piece.apply(patch), textops.apply(text, patch)
        assert str(piece) == text
        assert len(piece) == len(text)
        assert piece == text
        assert piece == Rope.of(text)


@given(ropes(), st.integers(-70, 70), st.integers(-70, 70))
def test_slices_are_those_of_a_str(held: tuple[Rope, str], start: int, stop: int) -> None:
    piece, text = held
    assert piece[start:stop] == text[start:stop]
    assert piece[start:] == text[start:]
    assert piece[:stop] == text[:stop]


@given(ropes())
def test_the_integrity_value_is_the_whole_texts(held: tuple[Rope, str]) -> None:
    piece, text = held
    assert piece.digest() == hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    assert TEXT.digest(piece) == TEXT.digest(text)


def test_a_long_text_is_cut_and_an_edit_keeps_the_other_chunks() -> None:
    text = "x😀\r\n" * (rope.MAX_CHUNK * 2)
    piece = Rope.of(text)
    chunks = list(piece.chunks())
    assert len(chunks) > 4
    assert all(0 < len(c) <= rope.MAX_CHUNK for c in chunks)
    middle = len(text) // 2
    edited = piece.apply(textops.normalize([(middle, 3, "typed")]))
    assert str(edited) == text[:middle] + "typed" + text[middle + 3 :]
    after = list(edited.chunks())
    kept = sum(any(a is b for b in chunks) for a in after)
    assert kept >= len(after) - 2  # only the touched chunk was rebuilt
    assert str(piece) == text  # the text before is untouched


def test_the_text_document_type_edits_into_a_rope() -> None:
    doc = TEXT.apply("hello", textops.normalize([(5, 0, " world")]))
    assert isinstance(doc, Rope)
    assert doc == "hello world"
    assert TEXT.doc_to_wire(doc) == "hello world"
    undo = TEXT.invert(textops.normalize([(0, 5, "HELLO")]), doc)
    assert str(TEXT.apply(TEXT.apply(doc, textops.normalize([(0, 5, "HELLO")])), undo)) == str(doc)


def test_chunks_that_deletions_shrink_merge_instead_of_piling_up() -> None:
    block = rope.MAX_CHUNK // 2  # the size long texts are cut into
    text = "".join(chr(ord("a") + k) * block for k in range(16))
    piece = Rope.of(text)
    assert len(list(piece.chunks())) == 16
    for k in range(16):  # each block shrinks to its first character, left to right
        piece = piece.apply(textops.normalize([(k + 1, block - 1, "")]))
    assert str(piece) == "abcdefghijklmnop"
    assert len(list(piece.chunks())) <= 2  # not 16 chunks of one character


@given(st.data())
def test_a_keystroke_cuts_the_chunks_as_the_general_rebuild_does(data: st.DataObject) -> None:
    """The one-op path (one chunk spliced) leaves the very chunks the general
    rebuild leaves, so the shape of a text never depends on the path taken;
    a tiny chunk size makes every case reachable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rope, "MAX_CHUNK", 8)
        piece = Rope.of(data.draw(TEXTS))
        for _ in range(4):
            at = data.draw(st.integers(0, len(piece)))
            delete = data.draw(st.integers(0, min(6, len(piece) - at)))
            insert = data.draw(st.text(ALPHABET, max_size=6))
            if not (delete or insert):
                continue
            op = (textops.Op(at, delete, insert),)
            quick, general = piece.apply(op), piece._rebuilt(op)
            assert list(quick.chunks()) == list(general.chunks())
            assert str(quick) == textops.apply(str(piece), op)
            piece = quick

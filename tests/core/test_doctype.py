"""The text document type: what the engine relies on beyond the text algebra."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_textops import doc_and_patch

from client import textops
from client.doctype import TEXT
from client.textops import Patch


@given(doc_and_patch(), st.integers(1, 8), st.integers(1, 6))
def test_split_pieces_then_rest_equal_the_patch(
    dp: tuple[str, Patch], budget: int, count: int
) -> None:
    doc, patch = dp
    pieces, rest = TEXT.split(patch, budget, count)
    assert len(pieces) <= count
    assert pieces or not patch
    for piece in pieces:
        assert sum(len(op.insert) for op in piece) <= max(budget, 1)
        doc_after = TEXT.apply(doc, piece)
        doc = doc_after
    assert TEXT.apply(doc, rest) == TEXT.apply(dp[0], patch)


def test_split_returns_a_small_patch_whole() -> None:
    patch = textops.normalize([(0, 1, "ab"), (5, 0, "😀")])
    assert TEXT.split(patch, 100, 4) == ([patch], ())


@given(doc_and_patch())
def test_separate_into_removals_then_additions(dp: tuple[str, Patch]) -> None:
    doc, patch = dp
    removals, additions = TEXT.separate(patch)
    assert all(not op.insert for op in removals)
    assert all(not op.delete for op in additions)
    assert TEXT.apply(TEXT.apply(doc, removals), additions) == TEXT.apply(doc, patch)

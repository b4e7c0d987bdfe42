"""The one interface through which a document type plugs into the chain.

The chain engine (:mod:`client.engine` and its parts) never looks inside a
document or a patch: it asks a :class:`DocType` to apply, compose, invert,
transform and serialise them.  Text ships first (:data:`TEXT`); a JSON type
with structural merge or rich text later implements the same interface (the
patch algebra, a size and a digest, and wire forms for patches and
documents: every method of :class:`DocType`) and reuses the whole engine,
simulator and relay unchanged.

The laws a document type must satisfy (the engine relies on each):

* ``apply(apply(d, p), invert(p, d)) == d``
* ``apply(d, compose(a, b)) == apply(apply(d, a), b)``
* convergence: ``apply(apply(d, a), transform(b, a)) == apply(apply(d, b), transform(a, b))``
  with a deterministic tie-break that does not depend on which side is local;
* ``simplify`` never changes ``apply``'s result;
* ``patch_from_wire(patch_to_wire(p)) == p``, and ``patch_from_wire`` raises
  :class:`~client.textops.InvalidPatch` (never anything else) on any bad input.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, TypeVar

from client import textdiff, textops
from client.rope import Digests, Rope
from client.textops import InvalidPatch
from wire import integrity

D = TypeVar("D")
P = TypeVar("P")

__all__ = ["TEXT", "DocType", "InvalidPatch", "TextType", "compose_all", "named"]


class DocType(Protocol[D, P]):
    """What the engine needs from a document type (``D``) and its patches (``P``)."""

    name: str

    def empty(self) -> D:
        """The document at the genesis of a channel."""
        ...

    def size(self, doc: D) -> int:
        """A cheap (O(1)) size, carried in every patch as an integrity check."""
        ...

    def size_change(self, patch: P) -> int | None:
        """How much ``patch`` changes :meth:`size`, when that does not depend on
        the document (``None`` when it does): lets a writer seal the pieces of
        a large edit without building the document after each one."""
        ...

    def digest(self, doc: D) -> bytes:
        """A collision-resistant hash of the whole document (O(size)): integrity
        algorithm 1 (snapshots and local copies carry it)."""
        ...

    def integrity(self, doc: D, alg: int) -> bytes | None:
        """The integrity value of ``doc`` under algorithm ``alg`` (1: :meth:`digest`),
        or ``None`` when this type does not know ``alg``."""
        ...

    def claim_integrity(self, doc: D) -> tuple[int, bytes]:
        """The algorithm and value a writer claims for ``doc`` (PROTOCOL.md §10.4):
        whichever this type computes cheapest for it."""
        ...

    def identity(self) -> P:
        """The patch that changes nothing."""
        ...

    def is_identity(self, patch: P) -> bool:
        """True if ``patch`` changes nothing."""
        ...

    def apply(self, doc: D, patch: P) -> D:
        """The document after ``patch``; raises ``InvalidPatch`` if it does not apply."""
        ...

    def compose(self, first: P, then: P) -> P:
        """One patch with the effect of ``first`` followed by ``then``."""
        ...

    def apply_all(self, doc: D, patches: list[P]) -> D:
        """The document after ``patches`` in order, each one that applied
        before (to the view, or decoded: its text is not checked again);
        however this type does it fastest."""
        ...

    def invert(self, patch: P, doc: D) -> P:
        """The patch undoing ``patch``, which was applied to ``doc``."""
        ...

    def transform(self, patch: P, over: P) -> P:
        """``patch`` rebased onto the document after the concurrent ``over``."""
        ...

    def simplify(self, patch: P, doc: D) -> P:
        """``patch`` (which applies to ``doc``) without redundant remove-and-reinsert."""
        ...

    def diff(self, old: D, new: D) -> P:
        """A small patch turning ``old`` into ``new``."""
        ...

    def rediff(self, old: D, patch: P) -> P:
        """A small patch with the effect of ``patch`` on ``old``: the minimal one
        where it is found within the diff's budget, else ``patch`` simplified
        (:meth:`simplify`), never a coarse replace of a whole range: rebased
        over a concurrent patch, such a replace keeps its copy of the range
        beside what the other patch kept, and the text doubles."""
        ...

    def merge_diff(self, old: D, new: D) -> P:
        """A patch turning ``old`` into ``new`` that keeps inserted and removed
        units whole, for three-way merges (:mod:`client.recovery`)."""
        ...

    def separate(self, patch: P) -> tuple[P, P]:
        """``(removals, additions)``: ``patch == compose(removals, additions)``,
        where ``removals`` only removes and ``additions`` only adds."""
        ...

    def split(self, patch: P, budget: int, count: int) -> tuple[list[P], P]:
        """Up to ``count`` consecutive pieces of about ``budget`` or less, and the rest.

        Applying the pieces in order, then the rest, equals applying ``patch``;
        a patch within the budget comes back whole as the only piece.  Runs
        in O(size of the patch): the rest is built directly, not composed.
        """
        ...

    def patch_to_wire(self, patch: P) -> object:
        """A JSON-serialisable form of ``patch``."""
        ...

    def patch_from_wire(self, data: object) -> P:
        """The inverse of :meth:`patch_to_wire`; raises ``InvalidPatch`` on bad input."""
        ...

    def patch_to_bytes(self, patch: P) -> bytes:
        """The operations of a binary patch content (PROTOCOL.md §10.1)."""
        ...

    def patch_from_bytes(self, data: bytes) -> P:
        """The inverse of :meth:`patch_to_bytes`; raises ``InvalidPatch`` on bad input."""
        ...

    def doc_to_wire(self, doc: D) -> object:
        """A JSON-serialisable form of a whole document (for snapshots)."""
        ...

    def doc_from_wire(self, data: object) -> D:
        """The inverse of :meth:`doc_to_wire`; raises ``InvalidPatch`` on bad input."""
        ...


#: The smallest text whose writers claim integrity algorithm 2 (PROTOCOL.md
#: §10.4): 64 keystrokes in as many places cost algorithm 2 about 7 ms from 1
#: to 4 MB (typed in one place, under 1.2 ms), SHA-256 of the whole text 2 ms
#: a megabyte (bench/RESULTS.md); from here on, typing costs a fifth of it.
INCREMENTAL_FROM = 1 << 21

#: A text document: a ``str``, or the :class:`Rope` that edits make of it.
Text = str | Rope


class TextType:
    """Plain Unicode text; positions are code points (see :mod:`client.textops`).

    Documents are ``str`` or :class:`client.rope.Rope` (what :meth:`apply`
    returns: an edit costs the same however long the text is); both read the
    same, and ``str(doc)`` is the text.
    """

    name = "text"

    def __init__(self) -> None:
        self._digests = Digests()

    def empty(self) -> Text:
        return ""

    def size(self, doc: Text) -> int:
        return len(doc)

    def size_change(self, patch: textops.Patch) -> int:
        return sum(len(op.insert) - op.delete for op in patch)

    def digest(self, doc: Text) -> bytes:
        if isinstance(doc, Rope):
            return doc.digest()  # chunk by chunk: the same value, no whole copy
        return hashlib.sha256(doc.encode("utf-8", "surrogatepass")).digest()

    def integrity(self, doc: Text, alg: int) -> bytes | None:
        if alg == 1:
            return self.digest(doc)
        return self._digests.digest(doc) if alg == integrity.ALG else None

    def claim_integrity(self, doc: Text) -> tuple[int, bytes]:
        # Algorithm 2 from INCREMENTAL_FROM code points, unless this text's
        # chunks are mostly cut by size (it repeats a short stretch: an edit
        # rechunks all that follows it, at about eight times SHA-256's cost).
        # Below, SHA-256 of the whole text costs less than replaying 64
        # keystrokes made in 64 places into the chunk tree.
        if len(doc) >= INCREMENTAL_FROM:
            value = self._digests.digest_unless_by_size(doc)
            if value is not None:
                return integrity.ALG, value
        return 1, self.digest(doc)

    def identity(self) -> textops.Patch:
        return ()

    def is_identity(self, patch: textops.Patch) -> bool:
        return not patch

    def apply(self, doc: Text, patch: textops.Patch) -> Text:
        textops.check(patch, len(doc))
        return Rope.of(doc).apply(patch)

    def compose(self, first: textops.Patch, then: textops.Patch) -> textops.Patch:
        return textops.compose_checked(first, then)  # checked where they came in

    def apply_all(self, doc: Text, patches: list[textops.Patch]) -> Text:
        # One by one: a rope's edit costs the chunks it touches, where
        # composing first copies the inserted text once per level.
        rope = Rope.of(doc)
        for patch in patches:
            textops.check(patch, len(rope), scan_text=False)
            rope = rope.apply(patch)
        return rope

    def invert(self, patch: textops.Patch, doc: Text) -> textops.Patch:
        return textops.invert(patch, doc)

    def transform(self, patch: textops.Patch, over: textops.Patch) -> textops.Patch:
        return textops.transform(patch, over)

    def simplify(self, patch: textops.Patch, doc: Text) -> textops.Patch:
        return textops.simplify(patch, doc)

    def diff(self, old: Text, new: Text) -> textops.Patch:
        return textdiff.diff(str(old), str(new))

    def rediff(self, old: Text, patch: textops.Patch) -> textops.Patch:
        found = textdiff.diff_or_none(str(old), str(self.apply(old, patch)))
        return found if found is not None else textops.simplify(patch, old)

    def merge_diff(self, old: Text, new: Text) -> textops.Patch:
        return textdiff.diff_words(str(old), str(new))

    def separate(self, patch: textops.Patch) -> tuple[textops.Patch, textops.Patch]:
        removals = tuple(textops.Op(op.pos, op.delete, "") for op in patch if op.delete)
        additions: list[textops.Op] = []
        removed = 0
        for op in patch:
            if op.insert:
                additions.append(textops.Op(op.pos - removed, 0, op.insert))
            removed += op.delete
        return removals, tuple(additions)

    def split(
        self, patch: textops.Patch, budget: int, count: int
    ) -> tuple[list[textops.Patch], textops.Patch]:
        """Split by operations, and long inserts into chunks of ``budget`` characters.

        Each piece is expressed in the coordinates of the document the previous
        pieces produced.  A piece's wire size is about its insert's UTF-8 size
        plus a few bytes per operation; ``budget`` counts characters, so
        callers pass a quarter of their byte limit (a code point is at most
        four bytes of UTF-8).
        """
        if budget < 1 or count < 1:
            raise ValueError("split budget and count must be at least 1")
        units: list[tuple[int, int, str]] = []  # (original position, delete, text)
        for op in patch:
            text = op.insert
            chunks = [text[i : i + budget] for i in range(0, len(text), budget)] or [""]
            units.append((op.pos, op.delete, chunks[0]))
            units += [(op.pos + op.delete, 0, chunk) for chunk in chunks[1:]]
        pieces: list[textops.Patch] = []
        current: list[textops.Op] = []
        used = shift = 0  # shift: length change made by the pieces already closed
        for index, (pos, delete, text) in enumerate(units):
            cost = len(text) + 16
            if current and used + cost > budget:
                pieces.append(textops.normalize(current, scan_text=False))
                shift += sum(len(o.insert) - o.delete for o in current)
                current, used = [], 0
                if len(pieces) == count:
                    # Everything left, as one patch on the document the pieces made.
                    rest = [textops.Op(p + shift, d, t) for p, d, t in units[index:]]
                    return pieces, textops.normalize(rest, scan_text=False)
            current.append(textops.Op(pos + shift, delete, text))
            used += cost
        if current:
            pieces.append(textops.normalize(current, scan_text=False))
        return pieces, ()

    def patch_to_wire(self, patch: textops.Patch) -> object:
        return textops.to_wire(patch)

    def patch_from_wire(self, data: object) -> textops.Patch:
        return textops.from_wire(data)

    def patch_to_bytes(self, patch: textops.Patch) -> bytes:
        return textops.to_bytes(patch)

    def patch_from_bytes(self, data: bytes) -> textops.Patch:
        return textops.from_bytes(data)

    def doc_to_wire(self, doc: Text) -> object:
        return str(doc)

    def doc_from_wire(self, data: object) -> Text:
        if not isinstance(data, str):
            raise InvalidPatch(f"a text document must be a string, not {type(data).__name__}")
        return data


def compose_all(doctype: DocType[D, P], patches: list[P]) -> P:
    """``patches`` composed, in pairs: a run of inserts is not copied once per patch."""
    while len(patches) > 1:
        pairs = zip(patches[::2], patches[1::2], strict=False)
        odd = [patches[-1]] if len(patches) % 2 else []
        patches = [doctype.compose(a, b) for a, b in pairs] + odd
    return patches[0] if patches else doctype.identity()


#: The text document type.
TEXT = TextType()


def named(name: str) -> DocType[Any, Any]:
    """The document type a link names (:attr:`crypto.PadLink.doctype`):
    ``"json"`` is :data:`client.jsondoc.JSON`, anything else plain text."""
    if name == "json":
        from client.jsondoc import JSON

        return JSON
    return TEXT

"""Line breaks between a document and a textarea, which knows only ``\\n``.

Theory of operation
-------------------
A browser textarea normalises its value: every ``\\r\\n`` and every lone
``\\r`` becomes ``\\n``.  A page that compared the textarea with the document
would see a difference nobody typed and "fix" it for everyone, so the page
never puts the document itself in the textarea: it shows :func:`shown` of
it and translates positions through a table of where the document has
``\\r\\n`` pairs (:class:`LineBreaks`; a lone ``\\r`` is one code point on
both sides, only drawn as ``\\n``).  Positions are code points.

* An edit made in the textarea (:func:`edit_to_doc`) keeps its text as the
  user typed it and lands between the same characters of the document; a
  ``\\r\\n`` shown as one ``\\n`` is deleted whole.  One seam needs care: a
  ``\\n`` typed (or brought next to it by a deletion) right after a lone
  ``\\r`` would fuse with it into one ``\\r\\n`` — two line breaks on the
  page, one in the document.  There the edit inserts a ``\\r`` before that
  ``\\n``, so the document keeps both breaks the user sees.
* A change of the document (:func:`change_to_shown`) is widened to whole
  ``\\r\\n`` pairs at its edges, and the widened region is replaced by its
  shown form, so the page always shows exactly :func:`shown` of the document.

Example:
    >>> doc = "a\\r\\nb\\rc"
    >>> shown(doc)
    'a\\nb\\nc'
    >>> edit_to_doc(doc, ((Op(1, 1, ""),)))  # delete the first shown break
    (Op(pos=1, delete=2, insert=''),)
"""

from __future__ import annotations

import re
from bisect import bisect_left

from client.textdiff import diff
from client.textops import Op, Patch, apply, normalize

_PAIR = re.compile("\r\n")


def shown(doc: str) -> str:
    """The document as a textarea shows it: every ``\\r\\n`` and lone ``\\r`` as ``\\n``."""
    return doc.replace("\r\n", "\n").replace("\r", "\n") if "\r" in doc else doc


class LineBreaks:
    """Positions between a document and its shown form.

    Args:
        doc: the document.
    """

    def __init__(self, doc: str) -> None:
        self._pairs = [m.start() for m in _PAIR.finditer(doc)] if "\r" in doc else []
        self._shown_at = [at - k for k, at in enumerate(self._pairs)]

    def to_shown(self, pos: int) -> int:
        """The shown position of document position ``pos`` (inside a pair: after it)."""
        return pos - bisect_left(self._pairs, pos - 1)

    def to_doc(self, pos: int) -> int:
        """The document position of shown position ``pos`` (never inside a pair)."""
        return pos + bisect_left(self._shown_at, pos)


def edit_to_doc(doc: str, patch: Patch, breaks: LineBreaks | None = None) -> Patch:
    """Translate an edit of ``shown(doc)`` into the same edit of ``doc``.

    Args:
        doc: the document the page shows.
        patch: a canonical patch on ``shown(doc)``.
        breaks: ``LineBreaks(doc)``, if the caller has it.

    Returns:
        A canonical patch on ``doc`` with ``shown(apply(doc, result)) ==
        apply(shown(doc), patch)``.
    """
    if "\r" not in doc:
        return patch
    breaks = breaks or LineBreaks(doc)
    ops = []
    for op in patch:
        start, end = breaks.to_doc(op.pos), breaks.to_doc(op.pos + op.delete)
        if op.insert and "\r" in doc[start:end]:
            # A replace over \r breaks: what it puts back the same (the page's
            # edits at two places in one frame arrive as one op spanning the
            # text between them; so does a replace of the whole text) keeps
            # the document's own breaks, so only what changed is touched.
            for sub in diff(shown(doc[start:end]), op.insert):
                ops.append(_one(doc, breaks, Op(op.pos + sub.pos, sub.delete, sub.insert)))
        else:
            ops.append(_one(doc, breaks, op))
    return normalize(ops)


def _one(doc: str, breaks: LineBreaks, op: Op) -> Op:
    """One op of the shown text as the same op of ``doc``."""
    start, end = breaks.to_doc(op.pos), breaks.to_doc(op.pos + op.delete)
    insert = op.insert
    if doc[start - 1 : start] == "\r" and (insert or doc[end : end + 1]).startswith("\n"):
        insert = "\r" + insert  # keep the lone \r's break apart from the \n
    return Op(start, end - start, insert)


def change_to_shown(doc: str, patch: Patch, breaks: LineBreaks | None = None) -> Patch:
    """Translate a change of ``doc`` into the change of ``shown(doc)``.

    Args:
        doc: the document before the change.
        patch: a canonical patch on ``doc``.
        breaks: ``LineBreaks(doc)``, if the caller has it.

    Returns:
        A canonical patch ``s`` with ``apply(shown(doc), s) == shown(apply(doc, patch))``.
    """
    if "\r" not in doc and not any("\r" in op.insert for op in patch):
        return patch
    breaks = breaks or LineBreaks(doc)
    groups: list[tuple[int, int, list[Op]]] = []
    for op in patch:
        start = op.pos - 1 if doc[op.pos - 1 : op.pos] == "\r" else op.pos
        end = op.pos + op.delete
        end = end + 1 if doc[end : end + 1] == "\n" else end
        if groups and start <= groups[-1][1]:
            groups[-1] = (groups[-1][0], max(end, groups[-1][1]), [*groups[-1][2], op])
        else:
            groups.append((start, end, [op]))
    ops = []
    for start, end, members in groups:
        local = [Op(op.pos - start, op.delete, op.insert) for op in members]
        old, new = shown(doc[start:end]), shown(apply(doc[start:end], tuple(local)))
        same = 0  # trim what is shown the same, so carets near the change stay put
        while same < min(len(old), len(new)) and old[same] == new[same]:
            same += 1
        tail = 0
        while tail < min(len(old), len(new)) - same and old[-1 - tail] == new[-1 - tail]:
            tail += 1
        at = breaks.to_shown(start) + same
        ops.append(Op(at, len(old) - same - tail, new[same : len(new) - tail]))
    return normalize(ops)


__all__ = ["LineBreaks", "change_to_shown", "edit_to_doc", "shown"]

"""The textarea's side of a pad session: crossing edits, shown line breaks, own undo.

Theory of operation
-------------------
:class:`EditorBinding` sits between a :class:`~client.session.PadSession`
and a textarea.  The textarea shows the
*shown* document: the session's text minus the remote changes not yet
handed to the page (``_undelivered``), with its line breaks as the
textarea draws them (``\r\n`` and lone ``\r`` as ``\n``; positions map
through :mod:`client.linebreaks`, so opening a pad never rewrites line
breaks nobody touched).  The page hands over its local edits
(:meth:`EditorBinding.local_edit`, in page coordinates) and takes the
remote changes when it can (:meth:`EditorBinding.take_changes`, never
during an IME composition), so a local edit and a remote change that
cross are transformed against each other exactly like two concurrent
patches (TP1): neither side ever splices text at a stale offset.  The
caret and the selection move through every remote change with
:func:`client.textops.transform_selection`.

Undo/redo is blindpad's own (the textarea's native undo cannot survive
remote edits): each local edit pushes its inverse; edits within
:data:`UNDO_GROUP_MS` of each other form one step.  Every remote change
``r`` is transformed through the stack top-down, as ot.js and Firepad
do: ``entry' = T(entry, r)`` and ``r := T(r, entry)`` before going one
entry down, so each entry stays expressed on the text it will be
applied to, and an undo removes only the user's own edit.

Sans-I/O: runs on CPython too and is tested there; :mod:`client.browser`
drives it under Pyodide.  Positions are code points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client import linebreaks, textops
from client.events import PadEvent, TextChanged
from client.linebreaks import LineBreaks
from client.session import PadSession
from client.textops import Patch

UNDO_GROUP_MS = 800
UNDO_LIMIT = 500


def end_of(patch: Patch) -> int:
    """Where a caret belongs after ``patch``: the end of its last op, in the new text."""
    shift = 0
    for op in patch[:-1]:
        shift += len(op.insert) - op.delete
    last = patch[-1]
    return last.pos + shift + len(last.insert)


@dataclass
class _Step:
    """One undo (or redo) step: a patch on the text it will be applied to."""

    patch: Patch
    at_ms: int


@dataclass
class EditorBinding:
    """A textarea's view of a :class:`PadSession` (see the module docstring).

    Args:
        session: the pad session (owns the engine and speaks the frames).
    """

    session: PadSession
    _doc: str = ""  # the document as the page shows it (before its line breaks are mapped)
    _undelivered: list[Patch] = field(default_factory=list)
    _undo: list[_Step] = field(default_factory=list)
    _redo: list[_Step] = field(default_factory=list)
    _events: list[PadEvent] = field(default_factory=list)
    _groupable: bool = False
    _shown: bool = False  # the page has the whole text (:meth:`reset`): every change counts

    def events(self) -> list[PadEvent]:
        """Take the session events seen by the binding (alarms, failures, status)."""
        self._absorb()
        events, self._events = self._events, []
        return events

    def _absorb(self) -> None:
        for event in self.session.events():
            if isinstance(event, TextChanged):
                patch: Patch = tuple(event.ops)
                if not self._shown:
                    continue  # the page gets the whole text once the history is in
                self._undelivered.append(patch)
                self._undo = _through(self._undo, patch)
                self._redo = _through(self._redo, patch)
                self._groupable = False
            else:
                self._events.append(event)

    def reset(self) -> str:
        """Drop the undelivered changes; the whole text as the page shows it."""
        self._absorb()
        self._undelivered.clear()
        self._shown = True
        self._doc = self.session.text
        return linebreaks.shown(self._doc)

    # --- positions ---------------------------------------------------------

    def to_doc(self, pos: int) -> int:
        """A position on the page (code points, ``\\n`` line breaks) in the shown document."""
        return LineBreaks(self._doc).to_doc(pos) if "\r" in self._doc else pos

    def to_page(self, pos: int) -> int:
        """A position in the shown document on the page."""
        return LineBreaks(self._doc).to_shown(pos) if "\r" in self._doc else pos

    # --- from the page -----------------------------------------------------

    def local_edit(self, patch: Patch, now_ms: int) -> None:
        """The user changed the page's text by ``patch`` (page coordinates).

        The edit is translated to the document (:func:`client.linebreaks.edit_to_doc`):
        the text keeps the line breaks the user typed, the document keeps its own.

        Raises:
            client.errors.ReadOnly, NotReady, InvalidEdit: see :meth:`PadSession.edit`.
        """
        if not patch:
            return
        self._absorb()
        patch = linebreaks.edit_to_doc(self._doc, patch)
        self._doc = textops.apply(self._doc, patch)
        for i, remote in enumerate(self._undelivered):
            patch, self._undelivered[i] = (
                textops.transform(patch, remote),
                textops.transform(remote, patch),
            )
        before = self.session.text
        self.session.edit(patch)
        inverse = textops.invert(patch, before)
        top = self._undo[-1] if self._undo else None
        if top is not None and self._groupable and now_ms - top.at_ms < UNDO_GROUP_MS:
            top.patch = textops.compose(inverse, top.patch)
            top.at_ms = now_ms
        else:
            self._undo.append(_Step(inverse, now_ms))
            del self._undo[:-UNDO_LIMIT]
        self._redo.clear()
        self._groupable = True
        self._absorb()

    def take_changes(
        self, sel: tuple[int, int] | None
    ) -> tuple[list[Patch], tuple[int, int] | None]:
        """Hand the remote changes to the page, with the selection moved through them.

        Args:
            sel: the page's ``(anchor, head)`` in page coordinates, or None.

        Returns:
            The patches to apply in order (page coordinates), and the new selection.
        """
        self._absorb()
        patches, self._undelivered = self._undelivered, []
        out = []
        for patch in patches:
            shown = self._deliver(patch)
            if sel is not None:
                sel = textops.transform_selection(sel, shown)
            out.append(shown)
        return out, sel

    def _deliver(self, patch: Patch) -> Patch:
        shown = linebreaks.change_to_shown(self._doc, patch)
        self._doc = textops.apply(self._doc, patch)
        return shown

    def undo(self, now_ms: int) -> Patch | None:
        """Undo the user's last own edit; the patch to apply (after :meth:`take_changes`)."""
        return self._replay(self._undo, self._redo, now_ms)

    def redo(self, now_ms: int) -> Patch | None:
        """Redo the last undone edit; the patch to apply (after :meth:`take_changes`)."""
        return self._replay(self._redo, self._undo, now_ms)

    def _replay(self, source: list[_Step], target: list[_Step], now_ms: int) -> Patch | None:
        self._absorb()
        if self._undelivered or not source:
            return None
        step = source.pop()
        before = self.session.text
        simple = textops.simplify(step.patch, before)
        if not simple:
            return self._replay(source, target, now_ms)
        self.session.edit(simple)
        target.append(_Step(textops.invert(simple, before), now_ms))
        self._groupable = False
        self._absorb()
        return self._deliver(simple)

    @property
    def can_undo(self) -> bool:
        """Whether an own edit can be undone."""
        return bool(self._undo)


def _through(stack: list[_Step], remote: Patch) -> list[_Step]:
    """Transform an undo stack through a remote change made on the current text."""
    out: list[_Step] = []
    for step in reversed(stack):
        moved = textops.transform(step.patch, remote)
        remote = textops.transform(remote, step.patch)
        if moved:
            out.append(_Step(moved, step.at_ms))
    out.reverse()
    return out


__all__ = ["UNDO_GROUP_MS", "UNDO_LIMIT", "EditorBinding", "end_of"]

"""The page's view of a JSON pad: its value as formatted JSON text.

The page binds a textarea to an :class:`~client.editor.EditorBinding` for a
text pad.  A JSON pad has no structured editor, so the page binds
:class:`JsonView` instead, which offers the same calls: the shown text is
the value as indented JSON with sorted keys, and whenever the value changes
the page receives one text patch from the old formatting to the new
(:func:`client.textdiff.diff`), so its usual patch path updates the
textarea.  Typing in the textarea is refused (it is read-only); programs
edit by path through the embed API (docs/EMBED.md), which lands in
:meth:`JsonView.edit` with the same checks as the SDK's ``Pad.set`` and
friends (:func:`client.jsondoc.path_edit`).  Someone else's operations are
kept as ``{"kind", "path"}`` records for the embed API's ``change`` events
(:meth:`JsonView.take_ops`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from client import jsondoc, textops
from client.errors import InvalidEdit, ReadOnly
from client.events import PadEvent, ValueChanged
from client.session import PadSession
from client.textdiff import diff
from client.textops import Patch


def formatted(value: Any) -> str:
    """The value as the page shows it: indented JSON, keys sorted, non-ASCII kept."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass
class JsonView:
    """The page's view of a JSON pad (the calls of ``EditorBinding``, and :meth:`edit`)."""

    session: PadSession
    _shown: str = ""
    _changed: bool = False
    _events: list[PadEvent] = field(default_factory=list)
    _ops: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[PadEvent]:
        """Take the session events other than value changes (alarms, failures...)."""
        self._absorb()
        events, self._events = self._events, []
        return events

    def _absorb(self) -> None:
        for event in self.session.events():
            if isinstance(event, ValueChanged):
                self._changed = True
                self._ops.append({"kind": event.kind, "path": list(event.path)})
            else:
                self._events.append(event)

    def take_ops(self) -> list[dict[str, Any]]:
        """Someone else's operations since the last call, as ``{"kind", "path"}``
        (a :class:`~client.events.ValueChanged` each)."""
        self._absorb()
        ops, self._ops = self._ops, []
        return ops

    def reset(self) -> str:
        """The whole value, formatted."""
        self._absorb()
        self._changed = False
        self._ops.clear()
        self._shown = formatted(self.session.text)
        return self._shown

    def to_doc(self, pos: int) -> int:
        return pos

    def to_page(self, pos: int) -> int:
        return pos

    def local_edit(self, patch: Patch, now_ms: int) -> None:
        """Refused: the page shows JSON pads read-only."""
        raise ReadOnly("this is a JSON pad: the page shows it read-only")

    def edit(
        self, method: str, args: list[Any], sel: tuple[int, int] | None
    ) -> tuple[dict[str, Any] | None, list[Patch], tuple[int, int] | None]:
        """One edit by path (``method`` of :data:`client.jsondoc.EDITS`, ``args``
        starting with the path), made on the session at once.

        Returns:
            The operation made as ``{"kind", "path"}`` (``None`` for an edit
            that changes nothing), the patches that bring the shown text up
            to date (someone else's changes not yet taken included), and
            ``sel`` moved through them.

        Raises:
            InvalidEdit: bad arguments or an edit that does not fit the value
                (one line); ReadOnly: a view link (from the session).
        """
        if not args:
            raise InvalidEdit(f"{method} needs a path")
        try:
            op = jsondoc.path_edit(self.session.text, method, args[0], *args[1:])
        except jsondoc.InvalidPatch as error:
            raise InvalidEdit(str(error)) from error
        if op is None:
            return None, [], sel
        self.session.edit((op,))
        self._changed = True
        patches, sel = self.take_changes(sel)
        return {"kind": op.kind, "path": list(op.path)}, patches, sel

    def take_changes(
        self, sel: tuple[int, int] | None
    ) -> tuple[list[Patch], tuple[int, int] | None]:
        """One patch from the text shown to the value's new formatting, if it changed."""
        self._absorb()
        if not self._changed:
            return [], sel
        self._changed = False
        new = formatted(self.session.text)
        patch = diff(self._shown, new)
        self._shown = new
        if not patch:
            return [], sel
        if sel is not None:
            sel = textops.transform_selection(sel, patch)
        return [patch], sel

    def undo(self, now_ms: int) -> Patch | None:
        return None

    def redo(self, now_ms: int) -> Patch | None:
        return None

    @property
    def can_undo(self) -> bool:
        return False


__all__ = ["JsonView", "formatted"]

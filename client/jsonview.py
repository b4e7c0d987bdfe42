"""A read-only page view of a JSON pad: its value as formatted JSON text.

The page binds a textarea to an :class:`~client.editor.EditorBinding` for a
text pad.  A JSON pad has no structured editor yet, so the page opens it
with its view link and binds :class:`JsonView` instead, which offers the
same calls: the shown text is the value as indented JSON with sorted keys,
and whenever someone else's edit changes the value (a
:class:`~client.events.ValueChanged`) the page receives one text patch from
the old formatting to the new (:func:`client.textdiff.diff`), so its usual
patch path updates the textarea.  Every local edit is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from client import textops
from client.errors import ReadOnly
from client.events import PadEvent, ValueChanged
from client.session import PadSession
from client.textdiff import diff
from client.textops import Patch


def formatted(value: Any) -> str:
    """The value as the page shows it: indented JSON, keys sorted, non-ASCII kept."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass
class JsonView:
    """The page's read-only view of a JSON pad (the calls of ``EditorBinding``)."""

    session: PadSession
    _shown: str = ""
    _changed: bool = False
    _events: list[PadEvent] = field(default_factory=list)

    def events(self) -> list[PadEvent]:
        """Take the session events other than value changes (alarms, failures...)."""
        self._absorb()
        events, self._events = self._events, []
        return events

    def _absorb(self) -> None:
        for event in self.session.events():
            if isinstance(event, ValueChanged):
                self._changed = True
            else:
                self._events.append(event)

    def reset(self) -> str:
        """The whole value, formatted."""
        self._absorb()
        self._changed = False
        self._shown = formatted(self.session.text)
        return self._shown

    def to_doc(self, pos: int) -> int:
        return pos

    def to_page(self, pos: int) -> int:
        return pos

    def local_edit(self, patch: Patch, now_ms: int) -> None:
        """Refused: the page shows JSON pads read-only."""
        raise ReadOnly("this is a JSON pad: the page shows it read-only")

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

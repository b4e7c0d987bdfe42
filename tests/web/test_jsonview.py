"""The page's read-only view of a JSON pad (client/jsonview.py), on CPython."""

from __future__ import annotations

import pytest

import crypto
from client import textops
from client.errors import ReadOnly
from client.events import ValueChanged
from client.jsondoc import JSON, JOp
from client.jsonview import JsonView, formatted
from client.session import PadSession
from wire import frames as f


def _joined(keys: crypto.PadKeys) -> PadSession:
    """A JSON session live on an empty pad (SUBSCRIBE answered by HISTORY_END)."""
    session = PadSession(keys, crypto.Author.generate("t"), doctype=JSON)
    session.connected()
    subscribe = f.decode_client(session.frames_to_send()[1])
    assert isinstance(subscribe, f.Subscribe)
    end = f.HistoryEnd(subscribe.request_id, subscribe.channel_id, 0, f.ZERO_ID)
    session.receive_frame(f.encode(end))
    return session


def test_the_view_shows_formatted_json_and_follows_changes() -> None:
    view = JsonView(_joined(crypto.PadKeys.generate()))
    assert view.reset() == "{}"
    assert view.take_changes((0, 0)) == ([], (0, 0))
    engine = view.session.engine
    patch = (JOp("s", ("b",), [1, "ü"]), JOp("s", ("a",), {"x": None}))
    engine.view = JSON.apply(engine.view, patch)
    view.session._events += [ValueChanged(op.path, op.kind) for op in patch]
    patches, sel = view.take_changes((2, 2))
    assert len(patches) == 1
    page = textops.apply("{}", patches[0])
    assert page == formatted({"a": {"x": None}, "b": [1, "ü"]})
    assert page.startswith('{\n  "a": {')
    assert sel is not None
    assert view.take_changes(None) == ([], None)
    assert not view.can_undo
    with pytest.raises(ReadOnly):
        view.local_edit(textops.normalize([(0, 0, "x")]), 0)

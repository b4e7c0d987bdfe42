"""The page's read-only view of a JSON pad (client/jsonview.py), on CPython."""

from __future__ import annotations

import pytest

import crypto
from client import textops
from client.errors import InvalidEdit, ReadOnly
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
    assert view.take_ops() == [{"kind": "s", "path": ["b"]}, {"kind": "s", "path": ["a"]}]
    assert view.take_ops() == []


def test_an_edit_by_path_changes_the_value_and_the_shown_text() -> None:
    view = JsonView(_joined(crypto.PadKeys.generate()))
    view.reset()
    op, patches, _ = view.edit("set", [["list"], [1, 2]], (0, 0))
    assert op == {"kind": "s", "path": ["list"]}
    assert view.session.text == {"list": [1, 2]}
    assert textops.apply("{}", patches[0]) == formatted({"list": [1, 2]})
    op, patches, _ = view.edit("move_item", [["list"], 0, 1], None)
    assert op == {"kind": "m", "path": ["list", 0]}
    assert view.session.text == {"list": [2, 1]}
    assert view.edit("add", [["list", 0], 0], None) == (None, [], None)  # changes nothing
    assert view.session.pending()  # sealed and queued for the relay
    assert view.take_ops() == []  # our own edits are not someone else's
    with pytest.raises(InvalidEdit, match="no key 'nope'"):
        view.edit("set", [["nope", "x"], 1], None)
    with pytest.raises(InvalidEdit, match="set takes"):
        view.edit("set", [["x"]], None)
    with pytest.raises(InvalidEdit, match="needs a path"):
        view.edit("delete_at", [], None)
    assert view.session.text == {"list": [2, 1]}


def test_a_view_link_cannot_edit_by_path() -> None:
    view = JsonView(_joined(crypto.PadKeys.generate().view()))
    view.reset()
    with pytest.raises(ReadOnly):
        view.edit("set", [["a"], 1], None)

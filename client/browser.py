"""The browser front end: a textarea bound to a :class:`~client.session.PadSession`.

Theory of operation
-------------------
The page (``web/app.js``) runs this module under Pyodide, on the main thread.
Two layers:

:class:`EditorBinding` (sans-I/O, runs on CPython too, tested there)
    sits between the session and the textarea.  The textarea shows the
    *displayed* text; the session holds ``text`` = displayed text + the
    remote changes not yet handed to the page (``_undelivered``).  The page
    hands over its local edits (:meth:`EditorBinding.local_edit`, in the
    displayed coordinates) and takes the remote changes when it can
    (:meth:`EditorBinding.take_changes`, never during an IME composition),
    so a local edit and a remote change that cross are transformed against
    each other exactly like two concurrent patches (TP1): neither side ever
    splices text at a stale offset.  The caret and the selection move
    through every remote change with :func:`client.textops.transform_selection`.

    Undo/redo is blindpad's own (the textarea's native undo cannot survive
    remote edits): each local edit pushes its inverse; edits within
    :data:`UNDO_GROUP_MS` of each other form one step.  Every remote change
    ``r`` is transformed through the stack top-down, as ot.js and Firepad
    do: ``entry' = T(entry, r)`` and ``r := T(r, entry)`` before going one
    entry down, so each entry stays expressed on the text it will be
    applied to, and an undo removes only the user's own edit.

:class:`BrowserPad` (Pyodide only: the one module that imports ``js``)
    owns the browser's ``WebSocket`` (binary frames, ``create_proxy``
    callbacks, reconnects with backoff) and ``localStorage``: the author key
    (``blindpad.author``), the last head seen and the sealed patches not yet
    acknowledged, per channel, written *before* frames are sent and restored
    on reload (the session adopts them).  Edits typed while offline are
    sealed at once too (parented on the last head; rebased if that moved), so
    a reload while offline loses nothing either.

Positions here are code points; the UTF-16 offsets of the textarea are
converted in ``web/app.js``, which never splits a surrogate pair.  The page
talks to :class:`BrowserPad` with small arguments and JSON strings.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import crypto
from client import textops
from client.errors import PadError
from client.events import (
    Alarm,
    ConnectionLost,
    ConnectionRestored,
    Failed,
    PadEvent,
    Peer,
    TextChanged,
)
from client.session import PadSession, Phase
from client.textops import Op, Patch

if TYPE_CHECKING:  # pragma: no cover - ``js`` exists only under Pyodide
    from collections.abc import Callable

UNDO_GROUP_MS = 800
UNDO_LIMIT = 500
PRESENCE_MIN_INTERVAL_MS = 60
BROWSER_PIPELINE = 32
RECONNECT_DELAYS_MS = (200, 500, 1000, 2000, 3000)
_ADJECTIVES = ("Amber", "Brisk", "Calm", "Deft", "Eager", "Fable", "Gentle", "Hazel", "Ivory")
_ANIMALS = ("Otter", "Heron", "Lynx", "Marten", "Puffin", "Ibex", "Wren", "Koala", "Newt")


def random_name() -> str:
    """A friendly default display name ("Calm Heron")."""
    return f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_ANIMALS)}"


def color_of(author_hex: str) -> str:
    """A stable, readable colour for an author key (hex): an HSL hue from its hash."""
    digest = hashlib.sha256(author_hex.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") * 360 // 65536
    return f"hsl({hue} 70% 42%)"


def patch_from_json(ops: list[list[Any]]) -> Patch:
    """A patch from ``[[pos, delete, insert], ...]`` (loose ops are normalised)."""
    return textops.normalize(Op(int(p), int(d), str(i)) for p, d, i in ops)


def patch_to_json(patch: Patch) -> list[list[int | str]]:
    """``[[pos, delete, insert], ...]`` of a patch."""
    return [[op.pos, op.delete, op.insert] for op in patch]


def _end_of(patch: Patch) -> int:
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
    _undelivered: list[Patch] = field(default_factory=list)
    _undo: list[_Step] = field(default_factory=list)
    _redo: list[_Step] = field(default_factory=list)
    _events: list[PadEvent] = field(default_factory=list)
    _groupable: bool = False

    def events(self) -> list[PadEvent]:
        """Take the session events seen by the binding (alarms, failures, status)."""
        self._absorb()
        events, self._events = self._events, []
        return events

    def _absorb(self) -> None:
        for event in self.session.events():
            if isinstance(event, TextChanged):
                patch: Patch = tuple(event.ops)
                if not self.session.ready:
                    continue  # the page gets the whole text once the history is in
                self._undelivered.append(patch)
                self._undo = _through(self._undo, patch)
                self._redo = _through(self._redo, patch)
                self._groupable = False
            else:
                self._events.append(event)

    # --- from the page -----------------------------------------------------

    def local_edit(self, patch: Patch, now_ms: int) -> None:
        """The user changed the displayed text by ``patch`` (displayed coordinates).

        Raises:
            client.errors.ReadOnly, NotReady, InvalidEdit: see :meth:`PadSession.edit`.
        """
        if not patch:
            return
        self._absorb()
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
            sel: the page's ``(anchor, head)`` in displayed coordinates, or None.

        Returns:
            The patches to apply in order, and the new selection.
        """
        self._absorb()
        patches, self._undelivered = self._undelivered, []
        for patch in patches:
            if sel is not None:
                sel = textops.transform_selection(sel, patch)
        return patches, sel

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
        return simple

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


def peer_json(peer: Peer) -> dict[str, Any]:
    """A peer as the page draws it."""
    return {
        "session": peer.session,
        "name": peer.name,
        "color": peer.color or color_of(peer.author),
        "sel": list(peer.cursor) if peer.cursor is not None else None,
    }


# --------------------------------------------------------------------------- Pyodide side


def _js() -> Any:
    import importlib

    return importlib.import_module("js")


def _ffi() -> Any:
    import importlib

    return importlib.import_module("pyodide.ffi")


class _Storage:
    """``localStorage`` with JSON values; failures (private mode, quota) are reported once."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.error: str | None = None

    def get(self, key: str) -> Any:
        try:
            raw = self.store.getItem(key)
            return None if raw is None or not isinstance(raw, str) else json.loads(raw)
        except Exception as error:  # a JsException or bad JSON: start afresh
            self.error = f"local storage unreadable: {error}"
            return None

    def put(self, key: str, value: Any) -> None:
        try:
            self.store.setItem(key, json.dumps(value))
        except Exception as error:  # QuotaExceededError and friends
            self.error = f"local storage full or disabled: {error}"


def load_author(storage: _Storage) -> crypto.Author:
    """The browser's author identity, created on the first visit."""
    stored = storage.get("blindpad.author")
    if isinstance(stored, dict):
        try:
            return crypto.Author.from_json(json.dumps(stored))
        except crypto.InvalidIdentity:
            pass
    author = crypto.Author.generate(random_name())
    storage.put("blindpad.author", json.loads(author.to_json()))
    return author


class BrowserPad:
    """One pad in one tab: the session, the binding, the socket and the storage.

    Args:
        base_url: the relay's base URL (the page's origin and path before ``/p/``).
        fragment: the link's fragment (``1.e....``), or ``"new"`` for a new pad.
        schedule: a JS function asking the page for a tick soon.
    """

    def __init__(self, base_url: str, fragment: str, schedule: Callable[[], None]) -> None:
        js = _js()
        self.schedule = schedule
        self.storage = _Storage(js.localStorage)
        self.author = load_author(self.storage)
        if fragment == "new":
            self.link = crypto.PadLink.new(base_url)
        else:
            self.link = crypto.parse_link(f"{base_url}/p/#{fragment}")
        self.channel = self.link.keys.channel_id.hex()
        head = self.storage.get(f"blindpad.head.{self.channel}")
        last_head = (int(head[0]), bytes.fromhex(head[1])) if isinstance(head, list) else None
        pending = self.storage.get(f"blindpad.pending.{self.channel}") or []
        self.session = PadSession(
            self.link.keys,
            self.author,
            pipeline=BROWSER_PIPELINE,
            last_head=last_head,
            recovered=[bytes.fromhex(h) for h in pending],
        )
        self.binding = EditorBinding(self.session)
        self.color = color_of(self.author.public_key.hex())
        self.session.set_presence(name=self.author.name, color=self.color)
        self._persisted: tuple[list[str], Any] = (list(pending), head)
        self._socket: Any = None
        self._proxies: list[Any] = []
        self._attempt = 0
        self._sent_ready = False
        self._sel: tuple[int, int] | None = None
        self._sel_sent: tuple[int, int] | None = None
        self._sel_sent_ms = 0
        self._messages: list[str] = []
        self.connecting = False
        self.connect()

    # --- the socket --------------------------------------------------------

    def connect(self) -> None:
        """Open the websocket (again)."""
        js, ffi = _js(), _ffi()
        url = self.link.base_url.replace("http", "ws", 1) + "/ws"
        ws = js.WebSocket.new(url)
        ws.binaryType = "arraybuffer"
        self._socket = ws
        self.connecting = True

        def opened(event: Any) -> None:
            if ws is self._socket:
                self.connecting = False
                self.session.connected()
                self._pump()

        def message(event: Any) -> None:
            if ws is not self._socket:
                return
            data = event.data
            if isinstance(data, str):
                return
            try:
                self.session.receive_frame(data.to_bytes())
            except PadError as error:
                self._messages.append(str(error))
                ws.close()
            self._pump()

        def closed(event: Any) -> None:
            if ws is not self._socket:
                return
            self.connecting = False
            self._socket = None
            self.session.disconnected(f"connection closed ({getattr(event, 'code', '?')})")
            for proxy in self._proxies:
                proxy.destroy()
            self._proxies = []
            delay = RECONNECT_DELAYS_MS[min(self._attempt, len(RECONNECT_DELAYS_MS) - 1)]
            self._attempt += 1
            js.setTimeout(ffi.create_once_callable(self._reconnect), delay)
            self.schedule()

        for kind, handler in (("open", opened), ("message", message), ("close", closed)):
            proxy = ffi.create_proxy(handler)
            self._proxies.append(proxy)
            ws.addEventListener(kind, proxy)

    def _reconnect(self) -> None:
        if self._socket is None and self.session.phase is not Phase.CLOSED:
            self.connect()

    def _pump(self, *, wake: bool = True) -> None:
        """Persist the write-ahead log and the head, send what the session queued.

        ``wake`` asks the page for a tick (after socket events; not from a tick).
        """
        pending = [data.hex() for data in self.session.pending()]
        head = self.session.last_head
        head_json = [head[0], head[1].hex()] if head is not None else None
        if (pending, head_json) != self._persisted:
            self.storage.put(f"blindpad.pending.{self.channel}", pending)
            if head_json is not None:
                self.storage.put(f"blindpad.head.{self.channel}", head_json)
            self._persisted = (pending, head_json)
        frames = self.session.frames_to_send()
        if frames and self._socket is not None and not self.connecting:
            ffi = _ffi()
            for frame in frames:
                self._socket.send(ffi.to_js(frame))
        if self.session.phase is Phase.LIVE:
            self._attempt = 0
        if wake:
            self.schedule()

    # --- called by the page ------------------------------------------------

    def edit(self, pos: int, delete: int, insert: str, now_ms: int) -> None:
        """A local edit in displayed code points (see :meth:`EditorBinding.local_edit`)."""
        self.binding.local_edit(textops.normalize([Op(pos, delete, insert)]), now_ms)
        if self.session.phase is not Phase.LIVE:
            # Seal offline work now, so the write-ahead log holds it; it is
            # resent (or rebased) once live.
            self.session.engine.flush()
        self._pump(wake=False)

    def tick(self, anchor: int, head: int, composing: bool, now_ms: int) -> str:
        """One animation frame: take remote changes, send presence; JSON for the page."""
        self.session.tick()
        out: dict[str, Any] = {"patches": [], "sel": None, "reset": None}
        if not composing and anchor >= 0:
            if self.session.ready and not self._sent_ready:
                self.binding.take_changes(None)
                self._sent_ready = True
                out["reset"] = self.session.text
                anchor = head = 0
            patches, sel = self.binding.take_changes((anchor, head))
            out["patches"] = [patch_to_json(p) for p in patches]
            out["sel"] = list(sel) if sel is not None else None
            self._sel = sel
            self._maybe_send_presence(now_ms)
        self._pump(wake=False)
        return json.dumps(self._state(out))

    def _maybe_send_presence(self, now_ms: int) -> None:
        if self._sel == self._sel_sent or not self.session.ready:
            return
        if now_ms - self._sel_sent_ms < PRESENCE_MIN_INTERVAL_MS:
            self.schedule()
            return
        self._sel_sent, self._sel_sent_ms = self._sel, now_ms
        if self._sel is not None:
            self.session.set_presence(cursor=self._sel)

    def _state(self, out: dict[str, Any]) -> dict[str, Any]:
        for event in self.binding.events():
            if isinstance(event, Alarm):
                self._messages.append(f"Alarm ({event.kind.value}): {event.detail}")
            elif isinstance(event, Failed):
                self._messages.append(f"The relay refused: {event.code}: {event.message}")
            elif isinstance(event, ConnectionLost | ConnectionRestored):
                pass
        if self.storage.error:
            self._messages.append(self.storage.error)
            self.storage.error = None
        messages, self._messages = self._messages, []
        out.update(
            status=self.status(),
            ready=self._sent_ready,
            writer=self.link.is_edit,
            peers=[peer_json(peer) for peer in self.session.peers],
            me={"name": self.author.name, "color": self.color},
            messages=messages,
            canUndo=self.binding.can_undo,
        )
        return out

    def status(self) -> str:
        """``connecting``, ``offline``, ``syncing`` or ``saved`` (acknowledged)."""
        phase = self.session.phase
        if phase is Phase.LIVE:
            return self.session.status.value
        if not self.session.ready:
            return "connecting" if self.connecting or phase is Phase.JOINING else "offline"
        return "offline"

    def undo(self, now_ms: int) -> str:
        """Undo the user's last own edit; JSON ``{"patches", "sel"}`` for the page."""
        return self._history(self.binding.undo, now_ms)

    def redo(self, now_ms: int) -> str:
        """Redo; JSON ``{"patches", "sel"}`` for the page."""
        return self._history(self.binding.redo, now_ms)

    def _history(self, action: Callable[[int], Patch | None], now_ms: int) -> str:
        patches, _ = self.binding.take_changes(None)
        patch = action(now_ms)
        out: dict[str, Any] = {"patches": [patch_to_json(p) for p in patches], "sel": None}
        if patch:
            out["patches"].append(patch_to_json(patch))
            caret = _end_of(patch)
            out["sel"] = [caret, caret]
        if self.session.phase is not Phase.LIVE:
            self.session.engine.flush()
        self._pump(wake=False)
        return json.dumps(out)

    def unsaved(self) -> bool:
        """Whether some local edit is not acknowledged yet (leaving would ask first)."""
        return not self.session.engine.saved

    def text(self) -> str:
        """The session's text (the page's, once changes are taken)."""
        return self.session.text

    def reset(self) -> str:
        """Drop the undelivered changes and return the whole text (the page resyncs)."""
        self.binding.take_changes(None)
        return self.session.text

    def debug(self) -> str:
        """JSON of the session's inner state, for bug reports and tests."""
        engine = self.session.engine
        return json.dumps(
            {
                "phase": self.session.phase.value,
                "inflight": [own.sealed.id.hex()[:8] for own in engine.inflight],
                "open": patch_to_json(engine.open),
                "awaiting": engine._awaiting.hex()[:8] if engine._awaiting else None,
                "last_seq": engine.last_seq,
                "height": engine.height,
            }
        )

    def links(self) -> str:
        """JSON ``{"edit": link or null, "view": link, "fragment": this page's}``."""
        edit = str(self.link) if self.link.is_edit else None
        view = str(self.link.view_link())
        return json.dumps({"edit": edit, "view": view, "fragment": self.link.fragment()})


def start(base_url: str, fragment: str, schedule: Callable[[], None]) -> BrowserPad:
    """Open the pad of ``fragment`` on the relay at ``base_url`` (called by ``web/app.js``).

    Raises:
        crypto.InvalidLink: the fragment is damaged (the message says how).
    """
    return BrowserPad(base_url, fragment, schedule)

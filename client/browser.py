"""The browser front end: a textarea bound to a :class:`~client.session.PadSession`.

Theory of operation
-------------------
The page (``web/app.js``) runs this module under Pyodide, on the main thread.
Two layers:

:class:`~client.editor.EditorBinding` (sans-I/O, :mod:`client.editor`)
    sits between the session and the textarea: crossing edits, line
    breaks shown as ``\n``, the user's own undo.

:class:`BrowserPad` (Pyodide only: the one module that imports ``js``)
    owns the browser's ``WebSocket`` (binary frames, ``create_proxy``
    callbacks) and ``localStorage``: the author key (``blindpad.author``),
    the name and colour the user chose in the page's "You" menu
    (``blindpad.profile``, :meth:`BrowserPad.choose`; the generated name
    and the author key's colour until then),
    the last head seen and the sealed patches not yet acknowledged, per
    channel, written *before* frames are sent and restored on reload (the
    session adopts them), and the text they were made on
    (``blindpad.base.<channel>``: ``{"parent", "height", "text"}``, written
    only when their first parent changes, before the patches), so they are
    merged onto whatever the pad holds by then, snapshots and trims included
    (:mod:`client.recovery`).  Edits typed while offline are sealed at once
    too (:meth:`PadSession.flush`), so a reload while offline loses nothing.

    **IndexedDB** (database ``blindpad``, object store ``pads``; the page
    reads and writes it, :func:`start` and the ``persist`` callback) holds,
    per pad, the same write-ahead log and head (key ``<channel>/log``:
    ``{"gen", "pending", "head"}``), its base (``<channel>/base``) and the
    pad's **local copy** (``<channel>/copy``: the last verified text and
    head, :mod:`client.offline`'s format, written at most every
    :data:`COPY_EVERY_MS`, when the socket drops, and when the page hides).
    Local storage stays the synchronous write-ahead log (IndexedDB is
    asynchronous: a tab closed within a write could lose it); each log
    write bumps a generation number in both (``blindpad.gen.<channel>``), and
    at start the newer of the two is adopted, so a log only IndexedDB holds
    (local storage full) is not lost either, and pads kept in local storage
    by an older page are taken over as they are.  When the first connection
    fails and the pad has a local copy its log fits, the pad opens from it
    (:meth:`PadSession.restore`): shown, editable, "offline", synced once
    the relay answers.
    It uses the session's public surface only.  When the socket drops, the
    browser goes offline, or the session says the relay stopped answering
    (:attr:`PadSession.stalled`), it waits the delay of the shared
    :class:`client.transport.Reconnect` policy (jittered exponential
    backoff, as the SDK) and tells the page when the next attempt is.
    Peers not heard from lately, or all of them while we are offline, are
    drawn as away.  The page's history view fetches what the relay keeps
    (with the read token) and hands the body here: each version is replayed
    and verified by the CLI's reader (:func:`client.commands._http.replay`).
    What cannot work (a damaged link, a refused pad) is one line for the
    page, never a traceback.

Positions here are code points; the UTF-16 offsets of the textarea are
converted in ``web/app.js``, which never splits a surrogate pair.  The page
talks to :class:`BrowserPad` with small arguments and JSON strings.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import re
import secrets
from typing import TYPE_CHECKING, Any

import crypto
from client import linebreaks, offline, textdiff, textops
from client.doctype import named
from client.editor import EditorBinding, end_of
from client.errors import InvalidEdit, NotReady, PadError, ReadOnly
from client.events import Alarm, Failed, Peer
from client.jsonview import JsonView, formatted
from client.offline import LocalCopy
from client.recovery import Base
from client.rope import plain
from client.session import PadSession, Phase
from client.textops import InvalidPatch, Op, Patch
from client.transport import Backoff, Reconnect, websocket_url
from wire import mmr
from wire.errors import WireError
from wire.history import HistoryBody, parse_history

if TYPE_CHECKING:  # pragma: no cover - ``js`` exists only under Pyodide
    from collections.abc import Callable

    from client.codec import CryptoCodec

PRESENCE_MIN_INTERVAL_MS = 60
#: The local copy (the whole text) goes to IndexedDB at most this often while
#: the head moves (and when the socket drops, and when the page hides).
COPY_EVERY_MS = 5_000
BROWSER_PIPELINE = 32
RECONNECT = Backoff(initial=0.5, factor=2.0, cap=15.0, jitter=0.5)
_ADJECTIVES = ("Amber", "Brisk", "Calm", "Deft", "Eager", "Fable", "Gentle", "Hazel", "Ivory")
_ANIMALS = ("Otter", "Heron", "Lynx", "Marten", "Puffin", "Ibex", "Wren", "Koala", "Newt")
#: The name and colour this browser's user chose (``{"name", "color"}``, ``""``: the default).
PROFILE_KEY = "blindpad.profile"
MAX_NAME = 64
_HEX_COLOR = re.compile(r"#[0-9a-f]{6}")
_HSL = re.compile(r"hsl\((\d+) (\d+)% (\d+)%\)")


def random_name() -> str:
    """A friendly default display name: one of ``_ADJECTIVES``, a space, one of ``_ANIMALS``.

    No name it can draw is written out anywhere in the code: the page's
    start-up snapshot holds the code, and a test searches the snapshot for
    the author's name (tests/web/test_startup_snapshot.py).
    """
    return f"{secrets.choice(_ADJECTIVES)} {secrets.choice(_ANIMALS)}"


def color_of(author_hex: str) -> str:
    """A stable, readable colour for an author key (hex): an HSL hue from its hash."""
    digest = hashlib.sha256(author_hex.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") * 360 // 65536
    return f"hsl({hue} 70% 42%)"


def hex_color(color: str) -> str:
    """``#rrggbb`` of a colour this module makes: a chosen ``#rrggbb``, or :func:`color_of`'s.

    Example:
        >>> hex_color("hsl(0 100% 50%)")
        '#ff0000'
    """
    if _HEX_COLOR.fullmatch(color):
        return color
    found = _HSL.fullmatch(color)
    if found is None:
        raise ValueError(f"not a colour of this module: {color!r}")
    hue, sat, light = (int(g) for g in found.groups())
    rgb = colorsys.hls_to_rgb(hue / 360, light / 100, sat / 100)
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def clean_name(name: object) -> str:
    """A display name as others see it: one line, spaces collapsed, at most 64 code points."""
    return " ".join(str(name).split())[:MAX_NAME] if isinstance(name, str) else ""


def clean_color(color: object) -> str:
    """A chosen colour as ``#rrggbb`` (lower case), or ``""`` for anything else."""
    if not isinstance(color, str) or not _HEX_COLOR.fullmatch(color.lower()):
        return ""
    return color.lower()


def read_profile(stored: Any) -> tuple[str, str]:
    """The chosen ``(name, color)`` from local storage; ``""`` where the default stands."""
    if not isinstance(stored, dict):
        return "", ""
    return clean_name(stored.get("name", "")), clean_color(stored.get("color", ""))


def patch_from_json(ops: list[list[Any]]) -> Patch:
    """A patch from ``[[pos, delete, insert], ...]`` (loose ops are normalised)."""
    return textops.normalize(Op(int(p), int(d), str(i)) for p, d, i in ops)


def patch_to_json(patch: Patch) -> list[list[int | str]]:
    """``[[pos, delete, insert], ...]`` of a patch."""
    return [[op.pos, op.delete, op.insert] for op in patch]


def peer_json(peer: Peer, *, away: bool = False) -> dict[str, Any]:
    """A peer as the page draws it (``away``: not heard from lately, drawn grey)."""
    return {
        "session": peer.session,
        "name": peer.name,
        "color": peer.color or color_of(peer.author),
        "sel": list(peer.cursor) if peer.cursor is not None else None,
        "away": away,
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


def _read_base(stored: Any) -> list[Base[str]]:
    """The write-ahead log's base from local storage (none if absent or damaged)."""
    try:
        parent, height, text = stored["parent"], stored["height"], stored["text"]
        if type(height) is int and isinstance(text, str):
            return [Base(bytes.fromhex(parent), height, text)]
    except (TypeError, KeyError, ValueError):
        pass
    return []


def _read_head(stored: Any) -> tuple[tuple[int, bytes] | None, mmr.Peaks | None]:
    """The remembered point ``[height, id hex, peaks hex | null]`` from local storage."""
    try:
        head = (int(stored[0]), bytes.fromhex(stored[1]))
    except (TypeError, KeyError, IndexError, ValueError):
        return None, None
    try:
        peaks = mmr.from_hex(stored[2], head[0]) if len(stored) > 2 else None
    except ValueError:
        peaks = None  # damaged: the point still checks rollbacks and held forks
    return head, peaks


def _read_stored(stored: str) -> dict[str, Any]:
    """What the page read from IndexedDB for this pad: ``{"log", "base", "copy"}``,
    each the JSON a ``persist`` call wrote (a damaged one is left out)."""
    try:
        raw = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    parts: dict[str, Any] = {}
    for part, value in raw.items() if isinstance(raw, dict) else ():
        try:
            parts[part] = json.loads(value) if isinstance(value, str) else None
        except ValueError:
            continue
    return parts


def _gen(value: Any) -> int:
    return value if type(value) is int else 0


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


class Unopened:
    """What :func:`start` returns when the pad cannot be opened: one line for the page."""

    def __init__(self, failure: str) -> None:
        self.failure = failure


class BrowserPad:
    """One pad in one tab: the session, the binding, the socket and the storage.

    Args:
        link: the pad's link (its base URL is the relay's).
        schedule: a JS function asking the page for a tick soon.
        create: this page made the link ("Create a new pad"): the relay may
            create the pad.  Any other link must name a pad the relay has; this
            browser remembers the pads it created, so a new pad made offline
            and reloaded before it reached the relay is still created.
        token: the relay's creation token, when it needs one to create pads
            (the page asks for it and keeps it in ``sessionStorage``).
    """

    failure: str | None = None  # an open pad has none (see Unopened)

    def __init__(
        self,
        link: crypto.PadLink,
        schedule: Callable[[], None],
        *,
        create: bool = False,
        token: bytes = b"",
        persist: Callable[[str, str], None] | None = None,
        stored: str = "",
    ) -> None:
        js = _js()
        self.json_pad = link.doctype == "json"  # shown read-only; edited by the embed API
        self.schedule = schedule
        self._wake_deadline = 0  # the session deadline a timer will tick for (epoch ms)
        self.storage = _Storage(js.localStorage)
        self.author = load_author(self.storage)
        self.link = link
        self.channel = self.link.keys.channel_id.hex()
        head = self.storage.get(f"blindpad.head.{self.channel}")
        pending = self.storage.get(f"blindpad.pending.{self.channel}") or []
        base_stored = self.storage.get(f"blindpad.base.{self.channel}")
        self.persist = persist
        idb = _read_stored(stored)
        log: dict[str, Any] = idb["log"] if isinstance(idb.get("log"), dict) else {}
        self._gen = _gen(self.storage.get(f"blindpad.gen.{self.channel}"))
        if _gen(log.get("gen")) > self._gen and isinstance(log.get("pending"), list):
            # Local storage missed writes IndexedDB has (full, or cleared): take IndexedDB's.
            self._gen = _gen(log.get("gen"))
            pending, head = log["pending"], log.get("head", head)
            base_stored = idb.get("base", base_stored)
        last_head, last_peaks = _read_head(head)
        self._copy = self._read_copy(idb.get("copy"), link)
        created_key = f"blindpad.created.{self.channel}"
        if create:
            self.storage.put(created_key, True)
        self.creating = create or self.storage.get(created_key) is True
        self.session = PadSession(
            self.link.keys,
            self.author,
            pipeline=BROWSER_PIPELINE,
            last_head=last_head,
            last_peaks=last_peaks,
            recovered=[bytes.fromhex(h) for h in pending],
            recovered_bases=_read_base(base_stored),
            create=self.creating,
            token=token,
            doctype=named(link.doctype),
        )
        self.binding: EditorBinding | JsonView = (
            JsonView(self.session) if self.json_pad else EditorBinding(self.session)
        )
        self.default_color = color_of(self.author.public_key.hex())
        name, color = read_profile(self.storage.get(PROFILE_KEY))
        self.chosen = bool(name or color)
        self.name = name or self.author.name
        self.color = color or self.default_color
        self.session.set_presence(name=self.name, color=self.color)
        self.reconnect = Reconnect(RECONNECT)
        self._persisted: tuple[list[str], Any] = (list(pending), head)
        self._base_parent: bytes | None = None  # the base written last (None: not this run)
        self._socket: Any = None
        self._proxies: list[Any] = []
        self._live_here = False  # the current socket reached LIVE
        self._retry_at: int | None = None  # epoch ms of the next attempt, while waiting
        self._timer = 0  # the current wait (older timers that fire do nothing)
        self._sent_ready = False
        self._sel: tuple[int, int] | None = None
        self._sel_sent: tuple[int, int] | None = None
        self._sel_sent_ms = 0
        self._messages: list[str] = []
        self._fatal: str | None = None
        self._kept: HistoryBody | None = None  # the history the page loaded last
        self._checkpoints: dict[int, HistoryBody] = {}  # older checkpoints, by seq
        self.opened_offline = False  # opened from the local copy (the relay did not answer)
        self._copy_height: int | None = None  # the height of the copy stored last
        self._copy_at = 0  # epoch ms of that write
        self.connecting = False
        self.connect()

    @staticmethod
    def _read_copy(stored: Any, link: crypto.PadLink) -> LocalCopy | None:
        if not isinstance(stored, str):
            return None
        try:
            return offline.decode(named(link.doctype), stored.encode("utf-8"))
        except (InvalidPatch, ValueError):
            return None  # damaged: this pad needs the relay to open

    def _open_offline(self) -> None:
        """The relay did not answer before the pad loaded: open from the local copy."""
        copy, self._copy = self._copy, None
        if copy is not None and not self.session.ready and self.session.restore(copy):
            self.opened_offline = True
            self._copy_height = copy.height

    def keep_copy(self, now_ms: int = 0, *, force: bool = True) -> None:
        """Hand the local copy to the page for IndexedDB, if the session has a
        new clean one (``force``: now; else at most every :data:`COPY_EVERY_MS`)."""
        if self.persist is None or (not force and now_ms - self._copy_at < COPY_EVERY_MS):
            return
        copy = self.session.local_copy()
        if copy is None or copy.height == self._copy_height:
            return
        self._copy_height, self._copy_at = copy.height, now_ms
        data = offline.encode(named(self.link.doctype), copy).decode("utf-8")
        self._store("copy", data)

    def _store(self, part: str, value: Any) -> None:
        if self.persist is not None:
            try:
                self.persist(f"{self.channel}/{part}", json.dumps(value))
            except Exception as error:  # a JsException: the page's store failed
                self.storage.error = f"IndexedDB unusable: {error}"

    # --- the socket --------------------------------------------------------

    def connect(self) -> None:
        """Open the websocket (again)."""
        js, ffi = _js(), _ffi()
        ws = js.WebSocket.new(websocket_url(self.link.base_url))
        ws.binaryType = "arraybuffer"
        self._socket = ws
        self._retry_at = None
        self._live_here = False
        self.connecting = True

        def opened(event: Any) -> None:
            if ws is self._socket:
                self.connecting = False
                self.session.connected()
                self._pump()

        def message(event: Any) -> None:
            if ws is not self._socket or isinstance(event.data, str):
                return
            try:
                self.session.receive_frame(event.data.to_bytes())
            except PadError as error:
                self._messages.append(str(error))
                self._lost(f"{error}")
                return
            self._pump()

        def closed(event: Any) -> None:
            if ws is self._socket:
                self._lost(f"connection closed ({getattr(event, 'code', '?')})")

        for kind, handler in (("open", opened), ("message", message), ("close", closed)):
            proxy = ffi.create_proxy(handler)
            self._proxies.append(proxy)
            ws.addEventListener(kind, proxy)

    def _lost(self, reason: str) -> None:
        """The socket is gone (closed, failed, stalled, or the browser went offline)."""
        ws, self._socket = self._socket, None
        self.connecting = False
        if ws is not None:
            ws.close()
        for proxy in self._proxies:
            proxy.destroy()
        self._proxies = []
        self.session.disconnected(reason)
        if not self.session.ready:
            self._open_offline()
        self.keep_copy(self.session.clock())
        if self._fatal is None and self.session.phase is not Phase.CLOSED:
            delay = self.reconnect.ended(live=self._live_here)
            self._retry_at = self.session.clock() + int(delay * 1000)
            self._timer += 1
            timer = self._timer
            later = _ffi().create_once_callable(lambda: self._reconnect(timer))
            _js().setTimeout(later, int(delay * 1000))
        self.schedule()

    def _reconnect(self, timer: int | None = None) -> None:
        if timer is not None and timer != self._timer:
            return  # an older wait, overtaken by retry_now()
        if self._socket is None and self._fatal is None and self.session.phase is not Phase.CLOSED:
            self.connect()

    def went_offline(self) -> None:
        """The browser says the network is gone: stop waiting on a dead socket."""
        if self._socket is not None:
            self._lost("the browser is offline")

    def retry_now(self) -> None:
        """The browser says the network is back: try at once instead of waiting."""
        if self._socket is None:
            self._timer += 1
            self._reconnect()

    def _pump(self, *, wake: bool = True) -> None:
        """Persist the write-ahead log and the head, send what the session queued.

        ``wake`` asks the page for a tick (after socket events; not from a tick).
        """
        pending = [data.hex() for data in self.session.write_ahead()]
        head, peaks = self.session.last_head, self.session.last_peaks
        head_json: list[Any] | None = None
        if head is not None:
            head_json = [head[0], head[1].hex(), mmr.to_hex(peaks) if peaks is not None else None]
        base = self.session.pending_base()
        if base is not None and base.parent != self._base_parent:
            # The log moves to a new base: the copy goes there first, so a tab
            # closed right after still has a copy the log fits (14.1).
            self.keep_copy(self.session.clock())
            # The whole text: written when the log's first parent changes only.
            body = {"parent": base.parent.hex(), "height": base.height, "text": plain(base.doc)}
            self.storage.put(f"blindpad.base.{self.channel}", body)
            self._store("base", body)
            self._base_parent = base.parent
        if (pending, head_json) != self._persisted:
            self._gen += 1
            self.storage.put(f"blindpad.pending.{self.channel}", pending)
            if head_json is not None:
                self.storage.put(f"blindpad.head.{self.channel}", head_json)
            self.storage.put(f"blindpad.gen.{self.channel}", self._gen)
            self._store("log", {"gen": self._gen, "pending": pending, "head": head_json})
            self._persisted = (pending, head_json)
        self.keep_copy(self.session.clock(), force=False)
        frames = self.session.frames_to_send()
        if frames and self._socket is not None and not self.connecting:
            ffi = _ffi()
            for frame in frames:
                self._socket.send(ffi.to_js(frame))
        if self.session.phase is Phase.LIVE:
            self._live_here = True
        if wake:
            self.schedule()

    # --- called by the page ------------------------------------------------

    def edit(self, pos: int, delete: int, insert: str, now_ms: int) -> str:
        """A local edit in page code points; ``""``, or one line saying why it was undone."""
        try:
            self.binding.local_edit(textops.normalize([Op(pos, delete, insert)]), now_ms)
        except PadError as error:
            return edit_refused(error)
        if self.session.phase is not Phase.LIVE:
            self.session.flush()  # the write-ahead log holds offline work too
        self._pump(wake=False)
        return ""

    def json_edit(self, method: str, args_json: str, anchor: int, head: int) -> str:
        """One edit by path on a JSON pad (the embed API's ``set``...: ``method`` of
        :data:`client.jsondoc.EDITS`, ``args_json`` the arguments, path first).

        Returns JSON: ``{"problem": one line}`` when refused, else ``{"problem":
        null, "op": {"kind", "path"} | null, "value", "patches", "sel"}``: the
        value now, and the patches and selection that bring the shown text up
        to date.
        """
        if not isinstance(self.binding, JsonView):
            return json.dumps(
                {"problem": "this is a text pad: the path methods are for JSON pads"}
            )
        try:
            args = json.loads(args_json)
            if not isinstance(args, list):
                raise InvalidEdit("the arguments must be a list")
            op, patches, sel = self.binding.edit(method, args, (anchor, head))
        except PadError as error:
            return json.dumps({"problem": str(error)})
        if self.session.phase is not Phase.LIVE:
            self.session.flush()  # the write-ahead log holds offline work too
        self._pump(wake=False)
        out = {"problem": None, "op": op, "value": self.session.text}
        out.update(patches=[patch_to_json(p) for p in patches], sel=list(sel) if sel else None)
        return json.dumps(out)

    def value(self) -> str:
        """A JSON pad's value as JSON (the embed API's ``getValue``)."""
        return json.dumps(self.session.text if self.json_pad else None)

    def tick(self, anchor: int, head: int, composing: bool, now_ms: int) -> str:
        """One animation frame: take remote changes, send presence; JSON for the page."""
        self.session.tick()
        if self.session.stalled:
            self._lost("the relay stopped answering")
        out: dict[str, Any] = {"patches": [], "sel": None, "reset": None}
        # Nothing is shown before the history is loaded: the first change
        # the page (and an embedding host) sees is the reset to the whole text.
        if not composing and anchor >= 0 and (self._sent_ready or self.session.ready):
            if not self._sent_ready:
                out["reset"] = self.binding.reset()
                self._sent_ready = True
                anchor = head = 0
            patches, sel = self.binding.take_changes((anchor, head))
            if isinstance(self.binding, JsonView):
                ops = self.binding.take_ops()
                if ops or out["reset"] is not None:  # the embed API's change event
                    out["json"] = {"value": self.session.text, "ops": ops}
            out["patches"] = [patch_to_json(p) for p in patches]
            out["sel"] = list(sel) if sel is not None else None
            self._sel = sel
            self._maybe_send_presence(now_ms)
        self._pump(wake=False)
        self._wake_at_deadline()
        return json.dumps(self._state(out, now_ms))

    def _wake_at_deadline(self) -> None:
        """Ask for a tick when the session next has something to do, if that is
        sooner than the page's once-a-second tick (a push refused YIELD is
        asked for again in 20 ms, not a second later)."""
        deadline = self.session.next_deadline_ms()
        wait = deadline - self.session.clock()
        if not 0 < wait < 1000 or deadline == self._wake_deadline:
            return
        self._wake_deadline = deadline
        _js().setTimeout(_ffi().create_once_callable(self.schedule), wait)

    def _maybe_send_presence(self, now_ms: int) -> None:
        if self._sel == self._sel_sent or not self.session.ready:
            return
        if now_ms - self._sel_sent_ms < PRESENCE_MIN_INTERVAL_MS:
            self.schedule()
            return
        self._sel_sent, self._sel_sent_ms = self._sel, now_ms
        if self._sel is not None:
            to_doc = self.binding.to_doc
            self.session.set_presence(cursor=(to_doc(self._sel[0]), to_doc(self._sel[1])))

    def _state(self, out: dict[str, Any], now_ms: int) -> dict[str, Any]:
        alarms = []
        for event in self.binding.events():
            if isinstance(event, Alarm):
                self._messages.append(f"Alarm ({event.kind.value}): {event.detail}")
                alarms.append({"kind": event.kind.value, "detail": event.detail})
            elif isinstance(event, Failed):
                self._failed(event)
        if self.storage.error:
            self._messages.append(self.storage.error)
            self.storage.error = None
        messages, self._messages = self._messages, []
        retry = None if self._retry_at is None else max(0, self._retry_at - now_ms)
        out.update(
            status=self.status(),
            retryInMs=retry,
            fatal=self._fatal,
            ready=self._sent_ready,
            writer=self.link.is_edit,
            kind="json" if self.json_pad else "text",
            editable=self.link.is_edit and not self.json_pad,
            peers=[self._peer_json(peer, now_ms) for peer in self.session.peers],
            me={"name": self.name, "color": self.color},
            messages=messages,
            alarms=alarms,
            canUndo=self.binding.can_undo,
        )
        return out

    def _failed(self, event: Failed) -> None:
        text = failure_text(event, creating=self.creating)
        if self.session.fatal is not None:
            self._fatal = text  # nothing to show and nothing a retry would change
            if self._socket is not None:
                self._socket.close()
        else:
            self._messages.append(text)

    def _peer_json(self, peer: Peer, now_ms: int) -> dict[str, Any]:
        heard = self.session.last_heard_ms(peer)
        quiet = heard is None or now_ms - heard > self.session.presence_timeout_ms // 2
        away = quiet or self.session.phase is not Phase.LIVE
        out = peer_json(peer, away=away)
        if peer.cursor is not None:
            out["sel"] = [
                self.binding.to_page(peer.cursor[0]),
                self.binding.to_page(peer.cursor[1]),
            ]
        return out

    def status(self) -> str:
        """``connecting``, ``offline``, ``syncing`` or ``saved`` (acknowledged)."""
        phase = self.session.phase
        if phase is Phase.LIVE:
            return self.session.status.value
        if not self.session.ready and self._retry_at is None:
            return "connecting"
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
            caret = end_of(patch)
            out["sel"] = [caret, caret]
        if self.session.phase is not Phase.LIVE:
            self.session.flush()
        self._pump(wake=False)
        return json.dumps(out)

    def set_name(self, name: str) -> None:
        """Show this tab under ``name`` (an embedding page's choice; not stored)."""
        self.name = name
        self.session.set_presence(name=name)
        self.schedule()

    def choose(self, name: str, color: str) -> str:
        """Show this browser's user as ``name`` in ``color`` (``#rrggbb``), remembered.

        An empty or invalid value stands for the default (the generated name,
        the colour of the author key); the choice is kept in local storage for
        every pad this browser opens on this relay.

        Returns:
            :meth:`profile` after the change.
        """
        name, color = clean_name(name), clean_color(color)
        self.storage.put(PROFILE_KEY, {"name": name, "color": color})
        self.chosen = bool(name or color)
        self.name = name or self.author.name
        self.color = color or self.default_color
        self.session.set_presence(name=self.name, color=self.color)
        self.schedule()
        return self.profile()

    def profile(self) -> str:
        """JSON ``{"name", "color": "#rrggbb", "chosen"}`` of how others see this tab."""
        chosen = {"name": self.name, "color": hex_color(self.color), "chosen": self.chosen}
        return json.dumps(chosen)

    # --- history: what the relay keeps ------------------------------------

    def history_request(self) -> str:
        """JSON ``{"snapshots", "history", "authorization"}``: what the page fetches.

        The page GETs the snapshot listing, then the history from the
        relay's floor (PROTOCOL.md §4), with the read token in the header;
        it hands the body to :meth:`history_load`.
        """
        base = f"{self.link.base_url}/v1/channels/{self.channel}"
        token = self.link.keys.read_token.hex()
        return json.dumps(
            {
                "snapshots": f"{base}/snapshots",
                "history": f"{base}/history",
                "authorization": f"Blindpad-Read {token}",
            }
        )

    def history_load(self, data: Any) -> str:
        """Read a history body; JSON ``{"revisions": [...]}`` oldest first, or ``{"failure"}``.

        Each revision is ``{"seq", "time", "author", "color", "kind"}``:
        the text after patch ``seq`` (``kind`` ``snapshot`` for the kept
        snapshot it starts from, ``patch``, or ``unreadable`` for a patch
        that does not open), the author's clock when sealing (a claim, ms)
        and the author as this page knows them (present now: their name).
        """
        body = _history_body(data, "history")
        if isinstance(body, str):
            return json.dumps({"failure": body})
        from client.commands._http import reader  # the CLI's reader: loaded on first use only

        self._kept = body
        self._checkpoints = {}
        codec = reader(self.link, body)
        revisions = [
            self._revision_entry(codec, seq, sealed, "patch") for seq, sealed in body.patches
        ]
        if body.snapshot is not None:
            revisions.insert(0, self._revision_entry(codec, *body.snapshot, "snapshot"))
        return json.dumps({"revisions": revisions})

    def history_checkpoint(self, data: Any) -> str:
        """Read the history body of a checkpoint kept below the relay's floor
        (``?from=snapshot&at=SEQ``); JSON: its revision entry (``kind``
        ``checkpoint``), or ``{"failure"}``.  Call after :meth:`history_load`."""
        body = _history_body(data, "checkpoint")
        if isinstance(body, str):
            return json.dumps({"failure": body})
        if body.snapshot is None:
            return json.dumps({"failure": "The relay sent no checkpoint."})
        seq, sealed = body.snapshot
        from client.commands._http import reader

        self._checkpoints[seq] = body
        return json.dumps(self._revision_entry(reader(self.link, body), seq, sealed, "checkpoint"))

    def _revision_entry(
        self, codec: CryptoCodec, seq: int, sealed: bytes, kind: str
    ) -> dict[str, Any]:
        from client.commands._http import time_ms  # the CLI's reader: loaded on first use only

        try:
            opened = codec.open(sealed)
        except ValueError:
            opened = None
        if opened is None or opened.content is None or opened.author is None:
            return {"seq": seq, "time": None, "author": None, "color": None, "kind": "unreadable"}
        key = opened.author.hex()
        name, color = opened.author_name, color_of(key)
        if key == self.author.public_key.hex():
            name, color = self.name, self.color
        for peer in self.session.peers:
            if peer.author == key:
                name, color = peer.name, peer.color or color
        return {"seq": seq, "time": time_ms(opened), "author": name, "color": color, "kind": kind}

    def revision(self, seq: int) -> str:
        """JSON ``{"seq", "text", "compare"}``: the text after patch ``seq`` as the
        page shows it, and how the text now differs from it
        (:func:`client.textdiff.compare`: ``[kind, text or count]`` segments).

        Replayed and verified from the loaded history's snapshot (a reader's
        engine, as ``blindpad cat --at``); ``{"failure"}`` when it cannot be.
        """
        from client.commands._common import CommandError
        from client.commands._http import replay

        body = self._checkpoints.get(seq, self._kept)
        if body is None:
            return json.dumps({"failure": "The history is not loaded."})
        try:
            engine, last = replay(self.link, body, "the history's snapshot", upto=seq)
        except CommandError as error:
            return json.dumps({"failure": f"This version cannot be shown: {error}."})
        show = formatted if self.json_pad else linebreaks.shown  # as the pad is shown
        then, now = show(plain(engine.view)), show(self.session.text)
        return json.dumps({"seq": last, "text": then, "compare": textdiff.compare(then, now)})

    def unsaved(self) -> bool:
        """Whether some local edit is not acknowledged yet (leaving would ask first)."""
        return self.session.unsaved

    def text(self) -> str:
        """The document's text, line breaks as they are (the page shows them as ``\\n``)."""
        text: str = self.session.text
        return text

    def reset(self) -> str:
        """Drop the undelivered changes and return the whole text as shown (the page resyncs)."""
        return self.binding.reset()

    def debug(self) -> str:
        """JSON of the session's inner state, for bug reports and tests."""
        return json.dumps(self.session.debug_state())

    def links(self) -> str:
        """JSON ``{"edit": link or null, "view": link, "fragment": this page's}``."""
        edit = str(self.link) if self.link.is_edit else None
        view = str(self.link.view_link())
        return json.dumps({"edit": edit, "view": view, "fragment": self.link.fragment()})


_FAILURES = {
    "CREATE_TOKEN_REQUIRED": "This pad does not exist on this relay, and only its operator can "
    "create pads here: check that the link is complete",
    "NO_VERIFY_KEY": "This pad does not exist on this relay: check that the link is complete "
    "and names the right relay, or create a new pad",
    "VERSION_MISMATCH": "This page is older than the relay: reload it",
    "BAD_VERIFY_KEY": "This link does not match the pad on this relay: check the link",
    "PAD_TOO_LARGE": "The pad is full (the relay's size limit): your last edits were not saved",
    "STORAGE_FULL": "The relay is out of storage: your last edits were not saved",
    "CHANNEL_QUOTA": "The pad reached its storage quota: your last edits were not saved",
    "CREATE_RATE_LIMITED": "This relay limits how many pads one address may create a minute: "
    "the pad was not created",
}


#: The refusal of a pad this page creates on a relay with a creation token.
TOKEN_REFUSED = (
    "This relay lets only holders of its creation token create pads, and it did not accept "
    "the one given: create the pad again and enter the token its operator gave you"
)


def failure_text(event: Failed, *, creating: bool = False) -> str:
    """One line for the page: what the relay refused, and what to do.

    Args:
        event: the failure.
        creating: this page is creating the pad (a token refusal then means
            the token was missing or wrong, not that the link is).
    """
    if creating and event.code == "CREATE_TOKEN_REQUIRED":
        return f"{TOKEN_REFUSED} ({event.code})."
    known = _FAILURES.get(event.code)
    if known is not None:
        return f"{known}{event.retry_hint()} ({event.code})."
    return f"The relay refused: {event.message} ({event.code}). Reload the page to try again."


def _history_body(data: Any, what: str) -> HistoryBody | str:
    """A history body the page fetched (bytes or a JS buffer), or one line why not."""
    try:
        return parse_history(bytes(data.to_bytes() if hasattr(data, "to_bytes") else data))
    except WireError as error:
        return f"The relay sent an unusable {what} ({error})."


def edit_refused(error: PadError) -> str:
    """One line for the page when an edit cannot be made."""
    if isinstance(error, ReadOnly):
        return "This is a view link: it cannot change the pad. Ask for the edit link to write."
    if isinstance(error, NotReady):
        return "The pad is still loading: your edit was undone, type it again in a moment."
    return f"That edit could not be applied ({error}); the text was reloaded."


def channel_of(base_url: str, fragment: str) -> str:
    """The channel id (hex) of the pad ``fragment`` names, ``""`` for a new or
    damaged one: the page reads that pad's IndexedDB records before :func:`start`."""
    if fragment == "new":
        return ""
    try:
        return crypto.parse_link(f"{base_url}/p/#{fragment}").keys.channel_id.hex()
    except crypto.InvalidLink:
        return ""


def start(
    base_url: str,
    fragment: str,
    schedule: Callable[[], None],
    token: str = "",
    readonly: bool = False,
    persist: Callable[[str, str], None] | None = None,
    stored: str = "",
) -> BrowserPad | Unopened:
    """Open the pad of ``fragment`` on the relay at ``base_url`` (called by ``web/app.js``).

    ``token`` is the relay's creation token the page asked for (``""``: none).
    ``readonly`` opens an edit link as its view link (an embedding page's
    ``readonly`` attribute): this tab then holds no write key at all.
    ``persist(key, json)`` writes one IndexedDB record of this pad (see the
    module docstring); ``stored`` is JSON ``{"log", "base", "copy"}`` of the
    records the page read (``""``: none, or no IndexedDB).

    Returns:
        The open pad, or :class:`Unopened` with one line for the page when the
        link cannot be used (damaged, incomplete).
    """
    try:
        if fragment == "new":
            link = crypto.PadLink.new(base_url)
        else:
            link = crypto.parse_link(f"{base_url}/p/#{fragment}")
            if readonly and link.is_edit:
                link = link.view_link()
    except crypto.InvalidLink as error:
        return Unopened(
            f"This link cannot be opened: {error}. Copy the whole link again, "
            "everything after '#' included."
        )
    return BrowserPad(
        link,
        schedule,
        create=fragment == "new",
        token=token.encode(),
        persist=persist,
        stored=stored,
    )

"""The asyncio SDK: ``async with Pad.open(link) as pad``.

Theory of operation
-------------------
A :class:`Pad` is a thin asyncio front end over one sans-I/O
:class:`~client.session.PadSession`.  Three tasks run per open pad:

* the **connection loop** opens a transport (:mod:`client.transport`), tells
  the session, reads frames into it until the transport drops, then sleeps
  an exponential backoff with jitter (:class:`client.transport.Reconnect`
  over a :class:`Backoff`: capped, injectable; the browser page uses the same)
  and starts again.  The session resumes *since* the last sequence number it
  saw and resends every unacknowledged patch, same bytes, same ids;
* a **writer** per connection sends the frames the session queued;
* a **ticker** wakes the session when it has something due (rate-limit
  retries, presence heartbeat, peers expiring).

After every step the pad *pumps*: it writes the session's unacknowledged
patches to the state directory (fsync: write-ahead, before any of them is
sent), records the last head, hands frames to the writer and events to every
:meth:`Pad.events` stream, and wakes :meth:`Pad.synced` waiters.  Everything
runs on one event loop, so no lock is needed: the session is only touched
between awaits.

**Typing ahead.**  While an edit made now could not be sent at once (a
patch of ours is at the relay and the writer keeps :data:`PACE_MS`, or the
pipeline is full: :attr:`PadSession.edits_wait`), :meth:`Pad.insert` and
:meth:`Pad.delete` (text pads without a state directory) join adjacent
keystrokes -- typing on, backspacing over what was just typed and before
it, deleting forward -- into one pending edit (:class:`_Typing`) instead of
handing each to the session; any other use of the session first hands the
pending edit over (:attr:`Pad._session`), so every reader, every frame and
every tick sees every edit in order.  A program typing a trace pays a few
comparisons a keystroke instead of the session's bookkeeping; a person,
whose keys each leave before the next, never types ahead.  With a state
directory each edit is in the write-ahead log when it returns, so nothing
is typed ahead.

``Pad.open`` returns once the pad's history has been loaded (so
:attr:`Pad.text` is meaningful and write-ahead recovery has run); it raises
:class:`~client.errors.ConnectionFailed` if that takes longer than
``open_timeout``, or at once if the very first connection cannot be made
and ``retry_first_connect`` is false (what one-shot commands want: nothing
listens there, so waiting helps nothing).  It raises
:class:`~client.errors.PadNotFound` if the relay does not have the pad:
only :meth:`Pad.create` (``create=True``) makes one, so a mistyped address
never looks like an empty pad.  Later network failures are never raised:
the pad goes offline, keeps local edits (sealed at once into the
write-ahead log, so a crash while offline loses none), and reconnects by
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import random as _random
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from types import TracebackType
from typing import Any

import crypto
from client import jsondoc
from client.doctype import TEXT, DocType
from client.errors import (
    BadLink,
    ConnectionFailed,
    Distrusted,
    InvalidEdit,
    PadClosed,
    PadNotFound,
    ProtocolError,
    RelayRefused,
    WrongDocType,
)
from client.events import Acked, Alarm, PadEvent, Peer, Status
from client.relayside import DEFAULT_RETENTION_PCT
from client.session import DEFAULT_PRESENCE_TIMEOUT_MS, PadSession, Phase, wall_clock_ms
from client.snapshots import MAX_KEEP_PCT
from client.state import PadState, StateDir, default_name, default_state_dir
from client.textdiff import diff
from client.textops import Op, Patch
from client.transport import (
    Backoff,
    Connector,
    Reconnect,
    Transport,
    TransportClosed,
    websocket_url,
)
from client.validate import check_edit, check_patch


@dataclasses.dataclass(frozen=True, slots=True)
class PadLinks:
    """The two links of a new pad."""

    edit_link: str
    view_link: str


class _Default:
    """Marker for "the default state directory"."""


DEFAULT_STATE = _Default()


def parse(link: str | crypto.PadLink) -> crypto.PadLink:
    """Parse a link, mapping crypto's error into the SDK's tree.

    Raises:
        BadLink: the link is damaged or mistyped.
    """
    if isinstance(link, crypto.PadLink):
        return link
    try:
        return crypto.parse_link(link)
    except crypto.InvalidLink as error:
        raise BadLink(str(error)) from error


class _Opening:
    """What :meth:`Pad.open` returns: awaitable, and an async context manager."""

    def __init__(self, start: Callable[[], Awaitable[Pad]]) -> None:
        self._start = start
        self._pad: Pad | None = None

    def __await__(self) -> Generator[Any, None, Pad]:
        return self._start().__await__()

    async def __aenter__(self) -> Pad:
        self._pad = await self._start()
        return self._pad

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pad is not None:
            await self._pad.aclose()


class _EventStream:
    """An async iterator over a pad's events from the moment it was made."""

    def __init__(self, pad: Pad) -> None:
        self._pad = pad
        self._queue: asyncio.Queue[PadEvent | None] = asyncio.Queue()
        pad._streams.append(self._queue)

    def __aiter__(self) -> _EventStream:
        return self

    async def __anext__(self) -> PadEvent:
        item = await self._queue.get()
        if item is None:
            self.close()
            raise StopAsyncIteration
        return item

    def close(self) -> None:
        """Stop receiving events."""
        if self._queue in self._pad._streams:
            self._pad._streams.remove(self._queue)


#: A place in a JSON pad: ``str`` keys into objects, ``int`` indices into lists.
JsonPath = list[str | int] | tuple[str | int, ...]


class Pad:
    """An open pad.  Build with :meth:`Pad.open` (or :meth:`Pad.create` for a new one).

    Example:
        >>> async with Pad.open(link) as pad:  # doctest: +SKIP
        ...     await pad.insert(len(pad.text), "hello")
        ...     await pad.synced()
    """

    def __init__(
        self,
        link: crypto.PadLink,
        session: PadSession,
        *,
        state: PadState | None,
        connector: Connector,
        backoff: Backoff,
        draw: Callable[[], float],
        retry_first_connect: bool = True,
    ) -> None:
        self.link = link
        self._core = session
        self._typing: _Typing | None = None  # keystrokes typed ahead (see the module docstring)
        self._waiters = 0  # tasks in :meth:`changed`
        self._state = state
        self._head_written = -HEAD_EVERY_S  # monotonic seconds of the last head.json write
        self._connector = connector
        self._reconnect = Reconnect(backoff, draw)
        self._url = websocket_url(link.base_url)
        self._streams: list[asyncio.Queue[PadEvent | None]] = []
        self._wake = asyncio.Event()
        # The ticker (:meth:`_tick`) sleeps until this (session clock, ms);
        # :meth:`_pump` wakes it through ``_tick_wake`` if something falls due sooner.
        self._tick_until = 0
        self._tick_wake = asyncio.Event()
        self._unlanded = 0  # edits typed since one of our patches last landed
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._transport: Transport | None = None
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._retry_first_connect = retry_first_connect
        self._connections = 0  # transports opened so far
        self._unreachable = False  # the first connection failed and retrying was off
        self._failed_attempts = 0  # connection attempts that never opened
        self._copy_written = -COPY_EVERY_S  # monotonic seconds of the last local copy written
        # offline was asked for, and there was no local copy ("none") or the
        # write-ahead log was made on a later head than the copy's ("stale")
        self._no_copy: str | None = None
        #: True when the pad opened from its local copy (``offline=True``), not the relay.
        self.opened_offline = False
        self.last_error = ""
        self.alarms: list[Alarm] = []  # every alarm since opening (the last 1000)

    # --- opening and closing ----------------------------------------------

    @classmethod
    def open(
        cls,
        link: str | crypto.PadLink,
        *,
        name: str | None = None,
        author: crypto.Author | None = None,
        state_dir: Path | str | _Default | None = DEFAULT_STATE,
        connector: Connector | None = None,
        backoff: Backoff | None = None,
        presence_timeout: float = DEFAULT_PRESENCE_TIMEOUT_MS / 1000,
        pipeline: int = 4,
        token: bytes = b"",
        open_timeout: float = 30.0,
        clock: Callable[[], int] = wall_clock_ms,
        seed: int | None = None,
        create: bool = False,
        retry_first_connect: bool = True,
        verify: str = "snapshot",
        compact: bool = True,
        retention_pct: int | None = DEFAULT_RETENTION_PCT,
        offline: bool = False,
    ) -> _Opening:
        """Open a pad: ``async with Pad.open(link) as pad`` or ``pad = await Pad.open(link)``.

        Args:
            link: an edit link (read and write) or a view link (read only).
            name: your display name (stored with your identity).
            author: the identity to sign with (default: the state dir's, or a fresh one).
            state_dir: where the identity, write-ahead log and last head live;
                ``None`` keeps nothing on disk (a crash may lose unsent edits).
            connector: opens transports (default: websockets).
            backoff: reconnection delays.
            presence_timeout: seconds after which a silent peer expires.
            pipeline: patches in flight at once.
            token: the relay's channel-creation token, if it has one.
            open_timeout: seconds to wait for the history before giving up.
            clock: milliseconds since the epoch (injected for tests).
            seed: seeds the backoff jitter (tests).
            create: make the pad on the relay if it does not have it (what
                :meth:`create` does); by default a pad the relay does not
                know raises :class:`~client.errors.PadNotFound`.
            retry_first_connect: if false, fail at once when the very first
                connection cannot be made (refused, no such host) instead of
                retrying until ``open_timeout``.  Once a connection was made,
                the pad always reconnects.
            verify: ``"snapshot"`` (the default) opens from the latest
                snapshot the relay holds (:attr:`vouched` says whose it is);
                ``"history"`` opens from the earliest point the relay still
                holds and replays, checking, every patch after it.
            compact: keep the relay's copy small (the default): after each
                snapshot this session stores, trim the history at the
                previous snapshot it verified (editors only), but never past
                the head a peer announced in the last 10 minutes, so a peer
                that drops away for a while catches up patch by patch.
                ``False`` keeps every patch (until someone else trims).
            retention_pct: how many older snapshots (checkpoints, for history
                and ``cat --at``) such a trim keeps: thinned, within this
                percentage of the newest snapshot's bytes; 0 keeps none.
                ``None`` (the default): those that fit, with the newest, in
                the document's size (uncompressed), so the stored history
                stays a few times the text.  The pad's own setting
                (:meth:`set_retention`), once an editor made one, takes
                precedence.
            offline: open without the relay when the state directory holds
                this pad's local copy (its last verified text and head,
                :mod:`client.offline`) and the write-ahead log fits it: the
                pad opens from it (:attr:`opened_offline`), waits for the
                relay at most until the first connection attempt fails (or
                ``open_timeout``), and if it is not reached stays
                ``offline``, takes edits (written ahead) and syncs them once
                the relay answers (reconnecting as always).  Without a usable
                copy it opens as usual.  Off by default: a dead relay then
                fails fast.

        Returns:
            An awaitable async context manager giving the open :class:`Pad`.

        Raises:
            BadLink: the link is damaged.
            StateLocked: all slots of this pad's state are in use (64 processes).
            ConnectionFailed: the history could not be loaded in ``open_timeout``,
                or the first connection failed and ``retry_first_connect`` is false
                (with ``offline``: and there was no local copy to open from).
            PadNotFound: the relay does not have this pad (and ``create`` is false).
            RelayRefused: the relay refused to serve the pad (token, limits).
        """

        if verify not in ("snapshot", "history"):
            raise ValueError(f"verify must be 'snapshot' or 'history', not {verify!r}")
        if retention_pct is not None and not 0 <= retention_pct <= MAX_KEEP_PCT:
            raise ValueError(f"retention_pct must be 0..65535, not {retention_pct!r}")

        async def start() -> Pad:
            parsed = parse(link)
            state, who = _open_state(parsed, state_dir, name, author)
            doctype: DocType[Any, Any] = jsondoc.JSON if parsed.doctype == "json" else TEXT
            session = PadSession(
                parsed.keys,
                who,
                clock=clock,
                presence_timeout_ms=int(presence_timeout * 1000),
                pipeline=pipeline,
                pace_ms=PACE_MS,
                last_head=state.last_head() if state else None,
                last_peaks=state.last_peaks() if state else None,
                recovered=state.recovered() if state else (),
                recovered_bases=state.recovered_bases() if state else (),
                token=token,
                create=create,
                from_history=verify == "history",
                compact=compact,
                retention_pct=retention_pct,
                doctype=doctype,
            )
            if connector is None:
                from client.transport import WebsocketsConnector

                conn: Connector = WebsocketsConnector()
            else:
                conn = connector
            restored = False
            if offline and state is not None:
                copy = state.read_copy(doctype)
                restored = copy is not None and session.restore(copy)
            draw = _random.Random(seed).random
            delays = backoff or Backoff()
            pad = cls(
                parsed,
                session,
                state=state,
                connector=conn,
                backoff=delays,
                draw=draw,
                retry_first_connect=retry_first_connect,
            )
            pad.opened_offline = restored
            if offline and not restored and state is not None:
                pad._no_copy = "stale" if copy is not None else "none"
            await pad._start(open_timeout)
            return pad

        return _Opening(start)

    @classmethod
    async def create(
        cls,
        relay_url: str,
        *,
        connector: Connector | None = None,
        token: bytes = b"",
        open_timeout: float = 30.0,
        retry_first_connect: bool = True,
        kind: str = "text",
    ) -> PadLinks:
        """Make a new pad on a relay (the secret is made here, never sent).

        Args:
            relay_url: the relay's base URL, e.g. ``"https://pads.example.org"``.
            kind: ``"text"`` (the default) or ``"json"``: a JSON pad holds a
                JSON value (``{}`` at first) that merges by structure
                (:mod:`client.jsondoc`).  The links name the kind, so every
                client opens the pad as what it is.
            connector: opens transports (default: websockets).
            token: the relay's channel-creation token, if it has one.
            open_timeout: seconds to wait for the relay.
            retry_first_connect: as for :meth:`open`.

        Returns:
            The edit link and the view link.

        Raises:
            BadLink: ``relay_url`` is not an http(s) URL.
            ConnectionFailed: the relay could not be reached.
            RelayRefused: the relay refused to create the pad.
        """
        if kind not in ("text", "json"):
            raise ValueError(f"kind must be 'text' or 'json', not {kind!r}")
        try:
            link = crypto.PadLink.new(relay_url.rstrip("/"), doctype=kind)
        except crypto.InvalidLink as error:
            raise BadLink(str(error)) from error
        opening = cls.open(
            link,
            state_dir=None,
            connector=connector,
            token=token,
            open_timeout=open_timeout,
            create=True,
            retry_first_connect=retry_first_connect,
        )
        async with opening:
            pass
        return PadLinks(str(link), str(link.view_link()))

    async def _start(self, open_timeout: float) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._tick())]
        if self.opened_offline:
            await self._start_offline(open_timeout)
            return
        try:
            async with asyncio.timeout(open_timeout):
                while not self._session.ready:
                    self._raise_failure()
                    if self._unreachable or self._tasks[0].done():
                        break
                    await self._changed()
        except TimeoutError:
            await self.aclose()
            raise ConnectionFailed(
                f"could not load the pad from {self.link.base_url} in {open_timeout:g} s"
                + (f" ({self.last_error})" if self.last_error else "")
                + self._no_copy_note()
            ) from None
        except BaseException:
            await self.aclose()
            raise
        if not self._session.ready:
            await self.aclose()
            self._raise_failure()
            raise ConnectionFailed(
                f"cannot reach the relay at {self.link.base_url} ({self.last_error})"
                + self._no_copy_note()
            )

    def _no_copy_note(self) -> str:
        if self._no_copy == "stale":
            return (
                "; this device's copy of the pad is older than its unsent edits, "
                "so it cannot open offline (the edits stay in the state directory)"
            )
        if self._no_copy == "none":
            return (
                "; no local copy of this pad to open offline (open it once with the "
                "relay reachable; unsent edits stay in the state directory)"
            )
        return ""

    async def _start_offline(self, open_timeout: float) -> None:
        """Opened from the local copy: give the relay until the first attempt fails
        (or ``open_timeout``) to answer, and stay offline if it does not."""
        try:
            async with asyncio.timeout(open_timeout):
                while self._session.phase is not Phase.LIVE and not self._failed_attempts:
                    self._raise_failure()
                    if self._tasks[0].done():
                        break
                    await self._changed()
                self._raise_failure()
        except TimeoutError:
            pass  # offline: the connection loop goes on trying
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Close the pad: say goodbye, stop reconnecting, release the state directory."""
        if self._closed:
            return
        resting = self._session.rest()  # the next to open it replays a short tail
        if resting is not None:
            self._pump()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REST_WAIT_S):
                    while not resting.done and not self._closed:
                        await self._changed()
        if self._closed:
            return
        self._closed = True
        self._session.close()
        self._pump()
        if self._transport is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), 1.0)  # the goodbye
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._state is not None:
            # The log as it is: acknowledged patches an append left in it go.
            pending, base = self._session.write_ahead(), self._session.pending_base()
            self._state.write_pending(pending, base, exact=True)
            self._state.write_head(self._session.last_head, self._session.last_peaks)
            self._keep_copy()
            self._state.close()
        for stream in list(self._streams):
            stream.put_nowait(None)
        self._wake.set()

    async def __aenter__(self) -> Pad:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- reading ------------------------------------------------------------

    @property
    def kind(self) -> str:
        """``"text"`` or ``"json"``: the document type the link names."""
        return self.link.doctype

    @property
    def text(self) -> str:
        """The text as this user sees it (including edits not yet acknowledged).

        Raises:
            WrongDocType: a JSON pad (read :attr:`value`).
        """
        self._text_pad()
        text: str = self._session.text
        return text

    def _text_pad(self) -> None:
        if self.kind != "text":
            raise WrongDocType(f"this is a {self.kind.upper()} pad: read pad.value, not pad.text")

    def _length(self) -> int:
        """``len(self.text)`` without building the text (a long one is a rope)."""
        self._text_pad()
        typing = self._typing
        return self._core.text_length if typing is None else typing.length

    @property
    def value(self) -> Any:
        """A JSON pad's value as this user sees it (a copy: edit through
        :meth:`set` and the other JSON methods).

        Raises:
            WrongDocType: a text pad (read :attr:`text`).
        """
        self._need_json()
        return copy.deepcopy(self._session.text)

    @property
    def status(self) -> Status:
        """``offline``, ``syncing`` or ``saved`` (saved only once the relay acked every edit)."""
        return self._session.status

    @property
    def peers(self) -> tuple[Peer, ...]:
        """Everyone else present on the pad."""
        return self._session.peers

    @property
    def vouched(self) -> tuple[str, str] | None:
        """``(name, author key hex)`` of whoever made the snapshot this pad opened
        from: the text before it rests on their word (``None``: opened from
        the start of the history, ``verify="history"`` on an untrimmed pad).
        """
        vouched = self._session.vouched
        return None if vouched is None else (vouched[1], vouched[0].hex())

    @property
    def distrust(self) -> Alarm | None:
        """The alarm that makes this pad suspect (``rollback``, ``fork``,
        ``withheld``), or ``None``: while set, nothing reads "saved"."""
        return self._session.distrust

    @property
    def read_only(self) -> bool:
        """True for a pad opened with a view link."""
        return not self.link.keys.can_write

    @property
    def session(self) -> PadSession:
        """The sans-I/O session underneath (for tools and tests), with every edit made so far."""
        return self._session

    @property
    def _session(self) -> PadSession:
        """The session, once the keystrokes typed ahead are handed to it."""
        if self._typing is not None:
            self._settle()
        return self._core

    def _settle(self) -> None:
        """Hand the keystrokes typed ahead to the session, as one edit."""
        typing, self._typing = self._typing, None
        if typing is not None and (typing.delete or typing.text):
            self._core.edit((Op(typing.pos, typing.delete, typing.text),))
            self._pump(typed=True)

    def events(self) -> _EventStream:
        """Events from now on: ``async for event in pad.events()``; ends when the pad closes.

        Alarms raised while opening are also kept in :attr:`alarms`.
        """
        return _EventStream(self)

    async def synced(self, timeout: float | None = None) -> None:
        """Wait until the relay has acknowledged every local edit.

        Args:
            timeout: seconds; ``None`` waits as long as it takes (reconnecting).

        Raises:
            TimeoutError: not synced within ``timeout``.
            RelayRefused: the relay refused an edit for good.
            Distrusted: the relay's history does not continue the one this
                device verified (a ``rollback`` or ``fork`` alarm): nothing
                will read "saved" from it (:mod:`client.trust`).
            PadClosed: the pad was closed.
        """
        async with asyncio.timeout(timeout):
            while True:
                self._check_open()
                self._raise_failure()
                distrust = self._session.distrust
                if distrust is not None:
                    raise Distrusted(distrust.kind.value, distrust.detail)
                if self._session.status is Status.SAVED:
                    return
                await self._changed()

    # --- writing ------------------------------------------------------------

    async def insert(self, pos: int, text: str) -> None:
        """Insert ``text`` at code point ``pos`` (returns at once; see :meth:`synced`).

        Every write returns at once, unless the pad is live, others are
        writing too, and :data:`BACKLOG` edits were typed since one of ours
        last landed: then it waits (its edit already made) until one lands,
        the pad goes offline, fails or is closed.  A person never gets near
        that; a program writing as fast as it can beside others is held to
        what the relay takes.

        Raises:
            PadClosed: the pad was closed.
            InvalidEdit: ``pos`` is not an ``int`` (``bool`` is refused) or is
                outside ``0..len(text)``; ``text`` is not a ``str`` or has a
                lone surrogate.  The message names the argument.
            ReadOnly: a view link.
        """
        self._check_open()
        check_edit(self._length(), pos=pos, text=text)
        if text and self._type_ahead(pos, 0, text):
            if self._unlanded > BACKLOG:
                await self._hold_back()
            return
        await self._edit((Op(pos, 0, text),) if text else ())  # checked: canonical as it is

    async def delete(self, pos: int, count: int) -> None:
        """Delete ``count`` code points at ``pos``.

        Raises:
            PadClosed: the pad was closed.
            InvalidEdit: ``pos`` or ``count`` is not an ``int`` (``bool`` is
                refused), ``count`` is negative, or the range is outside the
                text.  The message names the argument.
            ReadOnly: a view link.
        """
        self._check_open()
        check_edit(self._length(), pos=pos, count=count)
        if count and self._type_ahead(pos, count, ""):
            if self._unlanded > BACKLOG:
                await self._hold_back()
            return
        await self._edit((Op(pos, count, ""),) if count else ())  # checked: canonical as it is

    async def replace(self, text: str) -> None:
        """Make the text ``text`` with a minimal diff (large changes are split).

        The diff costs O(len(old) + len(new)) plus a capped search
        (:func:`client.textdiff.diff`).

        Raises:
            PadClosed: the pad was closed.
            InvalidEdit: ``text`` is not a ``str`` or has a lone surrogate.
            ReadOnly: a view link.
        """
        self._check_open()
        check_edit(self._length(), text=text)
        await self._edit(diff(self._session.text, text))

    async def apply(self, patch: Patch) -> None:
        """Apply a canonical patch (:mod:`client.textops`) to the current text.

        Raises:
            PadClosed: the pad was closed.
            InvalidEdit: ``patch`` is not a tuple of ``Op``, an op has a bad
                ``pos``, ``delete`` or ``insert`` (as for :meth:`insert` and
                :meth:`delete`), or the ops are not canonical (sorted,
                separated, non-empty); the ``InvalidPatch`` is the cause.
            ReadOnly: a view link.
        """
        self._check_open()
        await self._edit(check_patch(self._length(), patch))

    # --- writing a JSON pad --------------------------------------------------

    async def set(self, path: JsonPath, value: Any) -> None:
        """Set the value at ``path`` (a list of ``str`` keys and ``int`` indices):
        create or replace an object's key or a list's item; ``[]`` is the root.

        Concurrent edits merge by structure (:mod:`client.jsondoc`): edits at
        other keys or items survive; a concurrent delete of the place wins.

        Raises:
            WrongDocType: a text pad.
            InvalidEdit: a bad path (no such container, wrong index type), or
                a value that is not JSON (NaN, a lone surrogate, a non-str key...).
            PadClosed, ReadOnly: as for :meth:`insert`.
        """
        await self._json_edit("set", path, value)

    async def delete_at(self, path: JsonPath) -> None:
        """Delete the key or list item at ``path`` (raises as :meth:`set`)."""
        await self._json_edit("delete_at", path)

    async def insert_item(self, list_path: JsonPath, index: int, value: Any) -> None:
        """Insert ``value`` into the list at ``list_path`` so it lands at ``index``
        (``0..len``); raises as :meth:`set`."""
        await self._json_edit("insert_item", list_path, index, value)

    async def move_item(self, list_path: JsonPath, from_index: int, to_index: int) -> None:
        """Move the item at ``from_index`` of the list at ``list_path`` so it lands
        at ``to_index``; concurrent edits inside the item follow it.  Moving an
        item to where it is does nothing.  Raises as :meth:`set`."""
        await self._json_edit("move_item", list_path, from_index, to_index)

    async def add(self, path: JsonPath, number: int) -> None:
        """Add the integer ``number`` to the integer at ``path`` (concurrent adds
        sum up; floats are refused: their sums depend on order).  Raises as
        :meth:`set`."""
        await self._json_edit("add", path, number)

    async def edit_text(self, path: JsonPath, pos: int, delete: int = 0, insert: str = "") -> None:
        """Edit the string at ``path``: delete ``delete`` code points at ``pos``
        and insert ``insert`` there.  Concurrent edits of the same string merge
        as text edits do (:mod:`client.textops`).  Raises as :meth:`set`, and
        :class:`InvalidEdit` for a range outside the string."""
        await self._json_edit("edit_text", path, pos, delete, insert)

    async def _json_edit(self, method: str, path: JsonPath, *args: Any) -> None:
        """One edit by path (:func:`client.jsondoc.path_edit`, shared with the embed API)."""
        self._need_json()
        self._check_open()
        try:
            op = jsondoc.path_edit(self._session.text, method, path, *args)
        except jsondoc.InvalidPatch as error:
            raise InvalidEdit(str(error)) from error
        if op is not None:
            await self._edit((op,))

    def _need_json(self) -> None:
        if self.kind != "json":
            raise WrongDocType(f"this is a {self.kind} pad: the path methods are for JSON pads")

    async def trim(self, timeout: float | None = None) -> int:
        """Owner trim: keep the pad as a snapshot at the relay's head and remove
        the history before it (the relay's storage shrinks to about the text).

        Our edits not yet acknowledged stay ours and are sent as usual.  After
        a trim, `blindpad history` and older revisions show only what remains.

        Args:
            timeout: seconds; ``None`` waits as long as it takes.

        Returns:
            The number of the patch the history now starts after (0 for an
            empty pad).

        Raises:
            ReadOnly: a view link.
            RelayRefused: the relay refused the snapshot or the trim, or the
                connection dropped before it was done (try again).
            TimeoutError: not done within ``timeout``.
            PadClosed: the pad was closed.
        """
        async with asyncio.timeout(timeout):
            await self._until_live()
            job = self._session.trim()
            self._pump()
            while not job.done:
                self._check_open()
                await self._changed()
        if job.refused is not None:
            raise RelayRefused(job.refused, "the relay did not trim the pad")
        assert job.floor is not None
        return job.floor

    async def set_retention(self, keep_pct: int, timeout: float | None = None) -> None:
        """Set how much older history this pad keeps, for every editor's compaction.

        Compactions keep older snapshots (checkpoints: ``blindpad history``
        lists them, ``cat --at`` reads them) whose bytes total at most
        ``keep_pct`` % of the newest snapshot's; 0 keeps none.  The setting
        is a record signed by you, carried in a snapshot of the pad (the
        relay cannot read or change it); the latest one set is in force.
        Returns once the relay stored that snapshot.

        Raises:
            ValueError: ``keep_pct`` outside 0..65535.
            ReadOnly: a view link.
            RelayRefused: the relay refused the snapshot, or the connection
                dropped before it was stored (try again).
            TimeoutError: not done within ``timeout``.
            PadClosed: the pad was closed.
        """
        if type(keep_pct) is not int or not 0 <= keep_pct <= MAX_KEEP_PCT:
            raise ValueError(f"keep_pct must be an integer 0..{MAX_KEEP_PCT}, not {keep_pct!r}")
        async with asyncio.timeout(timeout):
            await self._until_live()
            job = self._session.set_retention(keep_pct)
            self._pump()
            while not job.done:
                self._check_open()
                await self._changed()
        if job.refused is not None:
            raise RelayRefused(job.refused, "the relay did not store the retention setting")

    @property
    def retention(self) -> int | None:
        """The pad's retention setting (``keep_pct``), or ``None`` if it has none
        (then each editor's ``retention_pct`` applies)."""
        record = self._session.retention
        return None if record is None else record[0]

    async def _until_live(self) -> None:
        """Wait until the history is loaded and the connection live."""
        while True:
            self._check_open()
            self._raise_failure()
            if self._session.ready and self._session.phase is Phase.LIVE:
                return
            await self._changed()

    async def set_presence(
        self,
        *,
        name: str | None = None,
        color: str | None = None,
        cursor: tuple[int, int] | None = None,
    ) -> None:
        """Tell peers who you are and where your cursor is (view links may too).

        Raises:
            PadClosed: the pad was closed.
        """
        self._check_open()
        self._session.set_presence(name=name, color=color, cursor=cursor)
        self._pump()

    def _type_ahead(self, pos: int, delete: int, text: str) -> bool:
        """Keep a checked keystroke (an insert or a delete) pending while an edit
        made now would not be sent at once; False: edit now (see the module
        docstring)."""
        typing = self._typing
        if typing is None or not typing.join(pos, delete, text):
            if self._state is not None or not self._core.edits_wait:
                return False  # with a log every edit is in it when it returns
            if typing is not None:
                self._settle()
            due = self._core.clock() + PACE_MS
            self._typing = _Typing(pos, delete, text, self._core.text_length, due)
            if due < self._tick_until:
                self._tick_wake.set()  # it leaves with the pace, at the latest
        self._unlanded += 1
        self._wake_all()
        return True

    async def _edit(self, patch: Any) -> None:
        self._check_open()
        if patch:
            self._session.edit(patch)
            if self._session.phase is not Phase.LIVE:
                self._session.flush()  # sealed offline too, so the log holds it
            self._pump(typed=True)
            self._unlanded += 1
            await self._hold_back()

    async def _hold_back(self) -> None:
        """Backpressure: live, others writing too, and BACKLOG edits typed
        since one of ours last landed: wait for one to land (or for the pad to
        go offline, fail or close).  Every other writer rebases all our
        unlanded work over each of its patches and we all of theirs:
        unbounded, that cost outgrows the typing (bench `fair`)."""
        core = self._core  # what it asks does not depend on keystrokes typed ahead
        while (
            self._unlanded > BACKLOG
            and core.others_writing
            and core.phase is Phase.LIVE
            and core.failure is None
            and not self._closed
        ):
            await self._changed()

    # --- the machinery --------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PadClosed("the pad is closed")

    def _raise_failure(self) -> None:
        failure = self._session.failure
        if failure is not None and failure.code == "NO_VERIFY_KEY":
            raise PadNotFound(self.link.base_url)
        if failure is not None:
            raise RelayRefused(failure.code, failure.message, failure.retry_after_ms)

    async def changed(self) -> None:
        """Wait until anything happens: a frame, an edit, an event, a state change.

        A building block for ``while not condition: await pad.changed()``.
        """
        await self._changed()

    async def _changed(self) -> None:
        self._waiters += 1
        try:
            await self._wake.wait()
        finally:
            self._waiters -= 1

    def _wake_all(self) -> None:
        """Wake every task in :meth:`changed` (if any waits)."""
        if self._waiters:
            self._wake.set()
            self._wake = asyncio.Event()

    def _pump(self, *, typed: bool = False) -> None:
        """Log, send and tell what the session has for us.

        ``typed``: after a local edit, which can bring a deadline forward only
        by sending something (the watchdog starts waiting for its answer).
        """
        if self._state is not None:
            self._state.write_pending(
                self._session.write_ahead(),
                self._session.pending_base(),
                before_base=lambda: self._keep_copy(durable=True),
            )
            now = time.monotonic()
            if now - self._head_written >= HEAD_EVERY_S:
                self._head_written = now
                self._state.write_head(self._session.last_head, self._session.last_peaks)
            if now - self._copy_written >= COPY_EVERY_S:
                self._copy_written = now
                self._keep_copy()
        frames = self._session.frames_to_send()
        for frame in frames:
            if self._transport is not None:
                self._outbox.put_nowait(frame)
        for event in self._session.events():
            if isinstance(event, Acked):
                self._unlanded = 0
            if isinstance(event, Alarm):
                self.alarms = [*self.alarms[-999:], event]
            for stream in self._streams:
                stream.put_nowait(event)
        self._wake_all()
        if (frames or not typed) and self._session.next_deadline_ms() < self._tick_until:
            self._tick_wake.set()  # something is due before the ticker would wake
        elif (
            typed
            and (paced := self._session.pace_deadline_ms()) is not None
            and (paced < self._tick_until)
        ):
            self._tick_wake.set()  # an edit waits for the pace: it leaves then

    def _keep_copy(self, *, durable: bool = False) -> None:
        """Write the local copy (:mod:`client.offline`) if the session has a clean one.

        ``durable``: the log is about to move to a new base (its first patch
        made on a later head): the copy is written at that head first, so a
        crash right after still leaves a copy the log fits (an open without
        the relay needs both).
        """
        copy = self._session.local_copy()
        if self._state is not None and copy is not None:
            self._state.write_copy(self._session.doctype, copy, durable=durable)

    async def _run(self) -> None:
        while not self._closed:
            live = await self._connect_once()
            if self.opened_offline:
                pass  # opened from the local copy: keep trying, whatever happened
            elif not self._connections and not self._retry_first_connect:
                self._unreachable = True
                self._pump()
                return
            delay = self._reconnect.ended(live=live)
            if self._fatal():
                self._pump()
                return
            await asyncio.sleep(delay)

    def _fatal(self) -> bool:
        failure = self._session.failure
        return failure is not None and (
            not self._session.ready or failure.code == "VERSION_MISMATCH"
        )

    async def _connect_once(self) -> bool:
        """One connection, from opening to its end; True if it reached the live phase."""
        try:
            transport = await self._connector.connect(self._url)
        except TransportClosed as error:
            self.last_error = str(error)
            self._failed_attempts += 1
            self._pump()
            return False
        self._connections += 1
        self._transport = transport
        self._outbox = asyncio.Queue()
        self._session.connected()
        self._pump()
        writer = asyncio.create_task(self._write(transport, self._outbox))
        reached = False
        try:
            reason = "connection closed"
            while True:
                data = await transport.recv()
                self._session.receive_frame(data)
                reached = reached or self._session.status is not Status.OFFLINE
                self._pump()
        except (TransportClosed, ProtocolError) as error:
            reason = str(error)
            self.last_error = reason
        finally:
            self._transport = None
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            with contextlib.suppress(Exception):
                await transport.close()
        self._session.disconnected(reason)
        self._keep_copy()  # going offline: the next open without the relay starts here
        self._pump()
        return reached

    async def _write(self, transport: Transport, outbox: asyncio.Queue[bytes]) -> None:
        with contextlib.suppress(TransportClosed):
            while True:
                await transport.send(await outbox.get())
                outbox.task_done()

    async def _tick(self) -> None:
        while not self._closed:
            due = self._core.next_deadline_ms()  # the core's: typing ahead waits on
            if self._typing is not None:
                due = min(due, self._typing.due)
            wait = (due - self._core.clock()) / 1000
            if wait > 0:
                # Sleep until the next deadline, unless a change brings it
                # forward (REFUSE YIELD asks for the push again in 20 ms; a
                # sleep already under way could last a second): :meth:`_pump`
                # wakes us then, and only then (not on every keystroke).
                sleep = min(1.0, wait)
                self._tick_until = self._core.clock() + int(sleep * 1000)
                self._tick_wake.clear()
                try:
                    await asyncio.wait_for(self._tick_wake.wait(), sleep)
                    continue
                except TimeoutError:
                    pass
                finally:
                    self._tick_until = 0
            self._session.tick()
            self._pump()
            if self._core.next_deadline_ms() <= self._core.clock():
                await asyncio.sleep(0.02)  # still due: tick again, but not at once


#: A writer that types while a patch of ours is at the relay sends at most one
#: patch per this many milliseconds, each carrying all it typed meanwhile
#: (:meth:`client.outbox.Outbox.paced`): a program typing as fast as it can
#: pays the fixed cost of a patch (sealing, signature checks, a write at the
#: relay, an acknowledgement) 100 times a second, not once per round trip.  A
#: person, whose keys each leave before the next, never waits for it.
PACE_MS = 10

#: A live pad's write waits (backpressure) once this many edits were typed
#: since one of its patches last landed while others' patches land among its
#: own, until one lands: a person never gets near it; a program typing as fast
#: as it can beside other writers is held to what the relay takes.
BACKLOG = 1024

#: The local copy (the whole document, :mod:`client.offline`) is written at most
#: this often while the head moves, when the connection drops, and at close.
COPY_EVERY_S = 10.0

#: The remembered head (head.json, client.trust) is written at most this often
#: while typing, and at close: a crash forgets at most this much of it, which
#: only makes the next rollback check start a little lower.
HEAD_EVERY_S = 1.0
#: Closing waits this long at most for the snapshot it makes of a pad left
#: at rest (PadSession.rest) to be stored, so its compaction goes out too.
REST_WAIT_S = 2.0


def _open_state(
    link: crypto.PadLink,
    state_dir: Path | str | _Default | None,
    name: str | None,
    author: crypto.Author | None,
) -> tuple[PadState | None, crypto.Author]:
    if state_dir is None:
        return None, author or crypto.Author.generate(name or default_name())
    root = StateDir(default_state_dir() if isinstance(state_dir, _Default) else state_dir)
    who = author or root.author(name)
    return root.open_pad(link.keys.channel_id), who


__all__ = ["DEFAULT_STATE", "Backoff", "Pad", "PadLinks", "parse"]


#: Keystrokes typed ahead are handed over once they insert this many code points
#: (joining copies what was typed; this keeps it short).
TYPED_AHEAD = 1024


class _Typing:
    """Keystrokes typed ahead (:meth:`Pad._type_ahead`): one op on the session's
    text, ``delete`` code points at ``pos`` replaced by ``text``."""

    __slots__ = ("delete", "due", "length", "pos", "text")

    def __init__(self, pos: int, delete: int, text: str, length: int, due: int) -> None:
        """The first keystroke, on the session's text of ``length`` code points;
        ``due``: when it leaves with the pace at the latest (session clock, ms)."""
        self.pos, self.delete, self.text = pos, delete, text
        self.length = length + len(text) - delete  # of the text as typed
        self.due = due

    def join(self, pos: int, delete: int, text: str) -> bool:
        """Take one more keystroke (checked, on the text as typed) if it is
        adjacent: typing on, backspacing from the end of what was typed
        (through it and before it), deleting forward from there."""
        end = self.pos + len(self.text)
        if not delete:
            if pos != end or end - self.pos > TYPED_AHEAD:
                return False  # not adjacent, or long enough: each join copies the text
            self.text += text
        elif pos + delete == end:
            kept = max(0, len(self.text) - delete)
            before = delete - (len(self.text) - kept)  # deleted before what was typed
            self.text = self.text[:kept]
            self.pos -= before
            self.delete += before
        elif pos == end:
            self.delete += delete
        else:
            return False
        self.length += len(text) - delete
        return True

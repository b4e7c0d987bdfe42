"""Reading a pad over the relay's HTTP endpoints (docs/PROTOCOL.md §4), no websocket.

Theory of operation
-------------------
``GET /v1/channels/{hex}/history?from=snapshot`` returns the latest
snapshot and the patches after it; :func:`read_text` feeds them (:func:`replay`) to a fresh
:class:`~client.engine.Engine` (which verifies every envelope, exactly as a
live session would) and returns its text plus any alarms.  A 404 with the
code ``UNKNOWN_CHANNEL`` means the relay does not have the pad (``blindpad
new`` creates the channel at once, so even an empty pad exists): it is
refused with exit code 3, never shown as an empty pad, so a mistyped port
cannot pass for one.  ``httpx`` is imported here only, so the rest of the
client never loads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import crypto
from client import payload, snapshots
from client.codec import CryptoCodec
from client.commands._common import NOT_FOUND, REACH_HINT, CommandError, RelayUnreachable
from client.doctype import TEXT, DocType, named
from client.engine import Alarm, AlarmKind, Engine, Opened
from client.errors import Distrusted
from client.rope import plain
from client.textops import InvalidPatch
from client.trust import SUSPECT, Trust, Verdict
from wire import mmr
from wire.errors import WireError as ProtocolViolation
from wire.history import HistoryBody, HistoryCut, parse_history

if TYPE_CHECKING:
    import httpx


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """What a history read produced."""

    text: Any  # the text, or a JSON pad's value
    alarms: list[Alarm]
    body: HistoryBody


class HistoryTrimmed(CommandError):
    """The history asked for was trimmed: it starts after patch ``floor`` now."""

    def __init__(self, floor: int) -> None:
        super().__init__(f"the history up to patch {floor} was trimmed")
        self.floor = floor


#: Reads again after a body cut short (a trim landed while it was sent) this many times.
CUT_RETRIES = 3


def fetch(
    link: crypto.PadLink,
    query: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> HistoryBody:
    """GET a history body.

    A relay busy with other history reads (503 ``BUSY``) is asked again after
    its ``Retry-After`` while ``timeout`` allows; a body cut short (a trim
    landed while it was sent) is read again, up to :data:`CUT_RETRIES` times.

    Raises:
        CommandError: the relay is unreachable (1), does not have the pad (3),
            stays busy past ``timeout`` (1), or answered something else than a
            blindpad history (1).
    """
    url = f"{link.base_url}/v1/channels/{link.keys.channel_id.hex()}/history?{query}"
    deadline = clock() + timeout
    cuts = 0
    while True:
        response = _get(link, url, timeout)
        code = _error_code(response)
        if response.status_code == 503 and code == "BUSY":
            wait = _retry_after(response)
            if clock() + wait > deadline:
                raise CommandError(
                    f"the relay at {link.base_url} stayed busy with other history reads "
                    "(503 BUSY): try again shortly (a longer --timeout may help)"
                )
            sleep(wait)
            continue
        if response.status_code == 410 and code == "HISTORY_TRIMMED":
            floor = response.json().get("floor")
            raise HistoryTrimmed(floor if type(floor) is int else 0)
        if response.status_code == 404 and code == "UNKNOWN_CHANNEL":
            raise _no_such_pad(link)
        if response.status_code != 200 or code is not None:
            said = f"{code}" if code else response.text.strip()[:80]
            raise CommandError(
                f"the server at {link.base_url} answered {response.status_code} ({said}): "
                "is it a blindpad relay?"
            )
        try:
            return parse_history(response.content)
        except HistoryCut as error:
            cuts += 1
            if cuts > CUT_RETRIES:
                raise CommandError(
                    f"the relay at {link.base_url} cut its answer short {cuts} times ({error}): "
                    "try again"
                ) from error
        except ProtocolViolation as error:
            raise CommandError(
                f"the server at {link.base_url} sent an invalid history ({error}): "
                "is it a blindpad relay?"
            ) from error


def _no_such_pad(link: crypto.PadLink) -> CommandError:
    """What a 404 ``UNKNOWN_CHANNEL`` means to the user (exit code 3)."""
    return CommandError(
        f"no such pad on this relay ({link.base_url}): check the link's address; "
        "only `blindpad new` creates pads",
        NOT_FOUND,
    )


def _get(link: crypto.PadLink, url: str, timeout: float) -> httpx.Response:
    import httpx

    try:
        # The read token proves a link is held: the relay serves nothing without it.
        token = link.keys.read_token.hex()
        return httpx.get(url, timeout=timeout, headers={"Authorization": f"Blindpad-Read {token}"})
    except httpx.HTTPError as error:
        raise RelayUnreachable(
            f"cannot reach the relay at {link.base_url} ({error}): {REACH_HINT}"
        ) from error


def _retry_after(response: httpx.Response) -> float:
    """Seconds from a ``Retry-After`` header (1 when absent or not a number of seconds)."""
    raw = response.headers.get("retry-after", "1")
    return float(raw) if raw.isascii() and raw.isdigit() else 1.0


def _error_code(response: httpx.Response) -> str | None:
    """The ``code`` of a JSON error body (PROTOCOL.md §4.1), if it is one."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def read_text(
    link: crypto.PadLink,
    timeout: float,
    remembered: tuple[tuple[int, bytes], mmr.Peaks | None] | None = None,
) -> Read:
    """The pad's text, verified, from the latest snapshot and the patches after it.

    ``remembered``: the point this device verified (the state directory's),
    which the history must extend where it reaches back to it
    (:mod:`client.trust`; the proof across a snapshot above it needs the
    websocket, so it is not made here).

    Raises:
        CommandError: the relay is unreachable, does not have the pad, served
            something unusable, or served a history that rolls back or forks
            the one this device verified (then nothing is printed).
    """
    body = fetch(link, "from=snapshot", timeout)
    engine, _ = replay(link, body, "the pad's snapshot")
    alarms = [e for e in engine.events() if isinstance(e, Alarm)]
    trust = Trust(*remembered) if remembered is not None else Trust(None)
    verdict = trust.caught_up(engine.chain, body.head_seq)
    if engine.chain.strays:
        verdict = Verdict(AlarmKind.FORK, "the relay serves two branches of this pad")
    if verdict.kind in SUSPECT:
        distrusted = Distrusted(verdict.kind.value if verdict.kind else "", verdict.detail)
        raise CommandError(str(distrusted))
    return Read(plain(engine.view), alarms, body)


def reader(link: crypto.PadLink, *bodies: HistoryBody) -> CryptoCodec:
    """A codec that opens what ``bodies`` carry: the pad's keys and the session
    records the bodies sent (one the relay should not have sent is left out:
    the envelopes of that session then do not open)."""
    codec = CryptoCodec(link.keys, crypto.Author.generate("reader"))
    for body in bodies:
        for record in body.sessions:
            with contextlib.suppress(ValueError):
                codec.learn(record)
    return codec


def replay(
    link: crypto.PadLink, body: HistoryBody, what: str, upto: int | None = None
) -> tuple[Engine[Any, Any], int]:
    """A reader's engine fed ``body``: its snapshot (``what``, for the error)
    and its patches (those numbered up to ``upto``), each verified as a live
    session would.  Returns the engine and the number of the last patch fed.
    Sans-I/O: the page's history view (:mod:`client.browser`) uses it too.

    Raises:
        CommandError: the snapshot does not verify.
    """
    doctype = named(link.doctype)
    engine: Engine[Any, Any] = Engine(doctype, reader(link, body), writer=False)
    engine.chain.fast_forward = True
    last = 0
    if body.snapshot is not None:
        last, sealed = body.snapshot
        try:
            engine.load_snapshot(sealed, last)
        except (InvalidPatch, ValueError) as error:
            raise CommandError(f"{what} does not verify: {error}") from error
    for seq, sealed in body.patches:
        if upto is not None and seq > upto:
            break
        engine.receive(sealed, seq)
        last = seq
    return engine, last


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    """What the relay keeps of a pad (``GET .../snapshots``): its floor, head and snapshots."""

    floor: int
    head: int
    snapshots: tuple[int, ...]  # the patch numbers (X) of the kept snapshots, oldest first


def kept(link: crypto.PadLink, timeout: float) -> Kept:
    """The relay's list of a pad's snapshots (checkpoints and the newer ones).

    Raises:
        CommandError: as :func:`fetch`.
    """
    url = f"{link.base_url}/v1/channels/{link.keys.channel_id.hex()}/snapshots"
    response = _get(link, url, timeout)
    code = _error_code(response)
    if response.status_code == 404 and code == "UNKNOWN_CHANNEL":
        raise _no_such_pad(link)
    numbers: tuple[object, ...] = ()
    try:
        body = response.json()
        floor, head = body["floor"], body["head"]
        seqs = tuple(item["seq"] for item in body["snapshots"])
        numbers = (floor, head, *seqs)
    except (ValueError, TypeError, KeyError):
        pass
    if response.status_code != 200 or not numbers or not all(type(x) is int for x in numbers):
        raise CommandError(
            f"the server at {link.base_url} answered {response.status_code} to a snapshot "
            "listing: is it a blindpad relay, and as new as this client?"
        )
    return Kept(int(floor), int(head), tuple(sorted(int(x) for x in seqs)))


@dataclasses.dataclass(frozen=True, slots=True)
class Revision:
    """The text after patch ``seq`` and what it was read from."""

    seq: int
    text: Any  # the text, or a JSON pad's value
    alarms: list[Alarm]
    exact: bool  # False: ``seq`` is the nearest kept revision before the one asked for


def read_revision(link: crypto.PadLink, timeout: float, at: int) -> Revision:
    """The pad's text after patch ``at``, verified: from the newest kept snapshot
    at or before it and the stored patches after that snapshot up to ``at``.

    Before the trimmed floor only snapshots (checkpoints) are kept: the text
    there is that of the nearest checkpoint at or before ``at`` (``exact``
    False when it is not ``at`` itself).

    Raises:
        CommandError: ``at`` is past the head, or nothing at or before it is
            kept (exit code 3); or as :func:`fetch`.
    """
    listing = kept(link, timeout)
    if at > listing.head:
        raise CommandError(
            f"the pad has {listing.head} patches: there is no patch {at}", NOT_FOUND
        )
    before = [x for x in listing.snapshots if x <= at]
    if at < listing.floor and not before:
        oldest = min((*listing.snapshots, listing.floor))
        raise CommandError(
            f"patch {at} was trimmed and no checkpoint before it is kept; "
            f"the oldest revision kept is after patch {oldest}",
            NOT_FOUND,
        )
    start = before[-1] if before else None
    body = fetch(link, f"from=snapshot&at={start}" if start is not None else "since=0", timeout)
    engine, shown = replay(link, body, f"the snapshot at patch {start}", upto=at)
    alarms = [e for e in engine.events() if isinstance(e, Alarm)]
    return Revision(shown, plain(engine.view), alarms, shown == at)


def body_times(link: crypto.PadLink, body: HistoryBody) -> list[tuple[int, int | None]]:
    """``(seq, the author's clock when sealing)`` of the snapshot and the patches
    ``body`` carries, in order; None where it does not open (see :func:`time_ms`)."""
    codec, doctype = reader(link, body), named(link.doctype)

    def sealed_at(sealed: bytes) -> int | None:
        try:
            return time_ms(codec.open(sealed), doctype)
        except ValueError:
            return None

    snapshot = [] if body.snapshot is None else [body.snapshot]
    return [(seq, sealed_at(sealed)) for seq, sealed in [*snapshot, *body.patches]]


def time_ms(opened: Opened, doctype: DocType[Any, Any] = TEXT) -> int | None:
    """The author's clock when sealing an opened patch or snapshot (``t``), or None.

    A claim, never checked: history shows it, ``cat --at TIME`` goes by it.
    """
    if opened.content is None:
        return None
    if opened.kind == payload.SNAPSHOT:
        try:
            return snapshots.read(doctype, opened.content).time
        except InvalidPatch:
            return None
    try:
        return payload.decode(doctype, opened.content).time
    except ValueError:  # InvalidPatch, and JSON content that is not JSON
        return None


def seq_at_time(link: crypto.PadLink, timeout: float, when_ms: int) -> int:
    """The last revision kept whose author's clock said ``when_ms`` or earlier.

    Candidates: the checkpoints before the trimmed floor and every patch
    from it (history in seq order; clocks of several authors may disagree:
    the last in order wins).

    Raises:
        CommandError: nothing kept is that old (exit code 3); or as :func:`fetch`.
    """
    listing = kept(link, timeout)
    times: list[tuple[int, int | None]] = []
    for x in listing.snapshots:
        if x < listing.floor:
            old = fetch(link, f"from=snapshot&at={x}", timeout)
            times += body_times(link, HistoryBody(old.snapshot, [], 0, bytes(32), old.sessions))
    query = f"from=snapshot&at={listing.floor}" if listing.floor else "since=0"
    times += body_times(link, fetch(link, query, timeout))
    found = [seq for seq, ms in times if ms is not None and ms <= when_ms]
    if not found:
        raise CommandError(
            "nothing kept of this pad is that old (times are the authors' clocks)", NOT_FOUND
        )
    return found[-1]

"""Reading a pad over the relay's HTTP endpoints (docs/PROTOCOL.md §4), no websocket.

Theory of operation
-------------------
``GET /v1/channels/{hex}/history?from=snapshot`` returns the latest
snapshot and the patches after it; :func:`read_text` feeds them to a fresh
:class:`~client.engine.Engine` (which verifies every envelope, exactly as a
live session would) and returns its text plus any alarms.  An unknown
channel is a pad nobody wrote yet: empty text.  ``httpx`` is imported here
only, so the rest of the client never loads it.
"""

from __future__ import annotations

import dataclasses

import crypto
from client.codec import CryptoCodec
from client.commands._common import CommandError
from client.doctype import TEXT
from client.engine import Alarm, Engine
from client.protocol import HistoryBody, ProtocolViolation, parse_history
from client.textops import InvalidPatch, Patch


@dataclasses.dataclass(frozen=True, slots=True)
class Read:
    """What a history read produced."""

    text: str
    alarms: list[Alarm]
    body: HistoryBody


def fetch(link: crypto.PadLink, query: str, timeout: float) -> HistoryBody | None:
    """GET a history body; None for a channel the relay does not know.

    Raises:
        CommandError: the relay is unreachable or answered an error.
    """
    import httpx

    url = f"{link.base_url}/v1/channels/{link.keys.channel_id.hex()}/history?{query}"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        raise CommandError(f"cannot reach the relay at {link.base_url}: {error}") from error
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise CommandError(f"the relay answered {response.status_code}: {response.text.strip()}")
    try:
        return parse_history(response.content)
    except ProtocolViolation as error:
        raise CommandError(f"the relay sent an invalid history: {error}") from error


def read_text(link: crypto.PadLink, timeout: float) -> Read:
    """The pad's text, verified, from the latest snapshot and the patches after it.

    Raises:
        CommandError: the relay is unreachable or served something unusable.
    """
    body = fetch(link, "from=snapshot", timeout)
    if body is None:
        return Read("", [], HistoryBody(None, [], 0, bytes(32)))
    author = crypto.Author.generate("reader")
    engine: Engine[str, Patch] = Engine(TEXT, CryptoCodec(link.keys, author), writer=False)
    if body.snapshot is not None:
        x_seq, sealed = body.snapshot
        try:
            engine.load_snapshot(sealed, x_seq)
        except (InvalidPatch, ValueError) as error:
            raise CommandError(f"the pad's snapshot does not verify: {error}") from error
    for seq, sealed in body.patches:
        engine.receive(sealed, seq)
    alarms = [e for e in engine.events() if isinstance(e, Alarm)]
    return Read(engine.view, alarms, body)

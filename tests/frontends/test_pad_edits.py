"""Bad arguments to the SDK edit methods raise InvalidEdit, a PadError, naming the argument.

The pad is built offline: a real :class:`client.session.PadSession` fed a
scripted relay's welcome and an empty history, behind a :class:`client.Pad`
that is never started (no relay, no socket; its connector refuses to run).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import crypto
from client import Pad
from client.errors import InvalidEdit, PadClosed, PadError
from client.pad import Backoff
from client.session import PadSession
from client.textops import InvalidPatch, Op
from client.transport import Transport
from wire import frames as f

TEXT = "a😀b"  # three code points


class NoConnector:
    """A connector the offline pad must never use."""

    async def connect(self, url: str) -> Transport:
        raise AssertionError(f"the offline pad tried to connect to {url}")


def offline_pad() -> Pad:
    """A writable pad whose history is loaded (empty), holding ``TEXT``."""
    link = crypto.PadLink.new("http://127.0.0.1:9")
    session = PadSession(link.keys, crypto.Author.generate("tester"), clock=lambda: 1_700_000_000)
    session.connected()
    subscribe = [f.decode_client(frame) for frame in session.frames_to_send()][1]
    assert isinstance(subscribe, f.Subscribe)
    session.receive_frame(f.encode(f.Welcome(1, 7, 4096, 65536, 1 << 24, 4096, 64, 200, 400)))
    end = f.HistoryEnd(subscribe.request_id, subscribe.channel_id, 0, f.ZERO_ID)
    session.receive_frame(f.encode(end))
    return Pad(
        link,
        session,
        state=None,
        connector=NoConnector(),
        backoff=Backoff(),
        draw=random.Random(0).random,
    )


def run(action: Callable[[Pad], Awaitable[None]]) -> Pad:
    """Run ``action`` on a fresh offline pad holding ``TEXT``; return the pad."""

    async def main() -> Pad:
        pad = offline_pad()
        await pad.insert(0, TEXT)
        assert pad.text == TEXT
        await action(pad)
        return pad

    return asyncio.run(main())


BAD: list[tuple[str, tuple[Any, ...], str]] = [
    # insert(pos, text)
    ("insert", (-1, "x"), r"^pos -1 is outside the text \(0\.\.3\)$"),
    ("insert", (4, "x"), r"^pos 4 is outside the text \(0\.\.3\)$"),
    ("insert", (True, "x"), r"^pos must be an int, got bool$"),
    ("insert", (1.0, "x"), r"^pos must be an int, got float$"),
    ("insert", (b"\x00", "x"), r"^pos must be an int, got bytes$"),
    ("insert", (None, "x"), r"^pos must be an int, got NoneType$"),
    ("insert", (0, b"x"), r"^text must be a str, got bytes$"),
    ("insert", (0, True), r"^text must be a str, got bool$"),
    ("insert", (0, 1.0), r"^text must be a str, got float$"),
    ("insert", (0, "\ud800"), r"^text has a lone surrogate U\+D800 at index 0 "),
    ("insert", (0, "x\udfffy"), r"^text has a lone surrogate U\+DFFF at index 1 "),
    ("insert", (0, "😀\ud83d"), r"^text has a lone surrogate U\+D83D at index 1 "),
    # delete(pos, count)
    ("delete", (0, -1), r"^count -1 is negative$"),
    ("delete", (-1, 1), r"^pos -1 is outside the text \(0\.\.3\)$"),
    ("delete", (4, 0), r"^pos 4 is outside the text \(0\.\.3\)$"),
    ("delete", (2, 5), r"^count 5 at pos 2 reaches past the end of the text \(3\)$"),
    ("delete", (True, 1), r"^pos must be an int, got bool$"),
    ("delete", (0, True), r"^count must be an int, got bool$"),
    ("delete", (1.0, 1), r"^pos must be an int, got float$"),
    ("delete", (0, 1.0), r"^count must be an int, got float$"),
    ("delete", (0, b"\x01"), r"^count must be an int, got bytes$"),
    # replace(text)
    ("replace", ("\ud800",), r"^text has a lone surrogate U\+D800 at index 0 "),
    ("replace", ("x\udfffy",), r"^text has a lone surrogate U\+DFFF at index 1 "),
    ("replace", (b"x",), r"^text must be a str, got bytes$"),
    ("replace", (True,), r"^text must be a str, got bool$"),
    ("replace", (1.0,), r"^text must be a str, got float$"),
    ("replace", (None,), r"^text must be a str, got NoneType$"),
    # apply(patch)
    ("apply", ((Op(-1, 0, "x"),),), r"^op 0 pos -1 is outside the text \(0\.\.3\)$"),
    ("apply", ((Op(0, -1, ""),),), r"^op 0 delete -1 is negative$"),
    ("apply", ((Op(2, 5, ""),),), r"^op 0 delete 5 at op 0 pos 2 reaches past the end"),
    ("apply", ((Op(True, 0, "x"),),), r"^op 0 pos must be an int, got bool$"),
    ("apply", ((Op(0, 1.0, "x"),),), r"^op 0 delete must be an int, got float$"),  # type: ignore[arg-type]
    ("apply", ((Op(0, 0, b"x"),),), r"^op 0 insert must be a str, got bytes$"),  # type: ignore[arg-type]
    ("apply", ((Op(0, 0, "\ud800"),),), r"^op 0 insert has a lone surrogate U\+D800 "),
    ("apply", ([Op(0, 0, "x")],), r"^patch must be a tuple of Op, got list$"),
    ("apply", (None,), r"^patch must be a tuple of Op, got NoneType$"),
    ("apply", (((0, 0, "x"),),), r"^patch op 0 must be an Op, got tuple$"),
    ("apply", ((Op(0, 0, "x"), Op(3, 1, "y")),), r"^op 1 delete 1 at op 1 pos 3 reaches past"),
]


@pytest.mark.parametrize(("method", "args", "message"), BAD, ids=[f"{m}{a!r}" for m, a, _ in BAD])
def test_a_bad_argument_raises_invalid_edit_naming_it(
    method: str, args: tuple[Any, ...], message: str
) -> None:
    async def edit(pad: Pad) -> None:
        with pytest.raises(InvalidEdit, match=message) as caught:
            await getattr(pad, method)(*args)
        assert type(caught.value) is InvalidEdit
        assert isinstance(caught.value, PadError)
        assert "\n" not in str(caught.value)
        assert pad.text == TEXT  # nothing was applied

    run(edit)


NOT_CANONICAL = [
    (Op(0, 0, ""),),  # an empty op
    (Op(1, 0, "x"), Op(0, 0, "y")),  # not sorted
    (Op(0, 1, "x"), Op(1, 0, "y")),  # touching ops must be one op
]


@pytest.mark.parametrize("patch", NOT_CANONICAL)
def test_a_malformed_patch_raises_invalid_edit_from_invalid_patch(patch: tuple[Op, ...]) -> None:
    async def edit(pad: Pad) -> None:
        with pytest.raises(InvalidEdit, match=r"^patch is not canonical: op ") as caught:
            await pad.apply(patch)
        assert isinstance(caught.value.__cause__, InvalidPatch)
        assert pad.text == TEXT

    run(edit)


def test_good_arguments_at_the_edges_are_applied() -> None:
    async def edit(pad: Pad) -> None:
        await pad.insert(3, "🎉")  # at the very end
        await pad.delete(0, 0)  # an empty delete is allowed and does nothing
        await pad.delete(3, 1)  # the last code point
        assert pad.text == TEXT
        await pad.apply((Op(1, 1, "中"),))
        assert pad.text == "a中b"
        await pad.apply(())
        await pad.replace("x😀\U0001f9d1")
        assert pad.text == "x😀\U0001f9d1"

    run(edit)


def test_a_closed_pad_says_closed_before_judging_arguments() -> None:
    async def edit(pad: Pad) -> None:
        await pad.aclose()
        with pytest.raises(PadClosed):
            await pad.insert(-1, "\ud800")

    run(edit)

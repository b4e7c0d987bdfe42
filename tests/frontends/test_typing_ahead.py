"""Typing ahead: keystrokes made while a patch of ours is at the relay join into one edit.

:class:`client.pad.Pad` keeps adjacent keystrokes pending (``_Typing``)
while nothing typed could leave anyway, and hands them to the session as one
edit before anything else touches it.  The join is proved against a plain
``str`` here; then a real relay shows that a fast typist's every keystroke
arrives, in order, exactly once, that every read sees every keystroke, and
that with a state directory (every edit in the write-ahead log when it
returns) nothing is typed ahead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from relay_support import running_relay

from client import Pad, Status
from client.pad import _Typing
from client.session import PadSession

TIMEOUT = 300.0  # a hang guard, not a speed limit


def keystrokes(rng: random.Random, start: str, count: int) -> Iterator[tuple[int, int, str]]:
    """``(pos, delete, insert)`` like a person at a keyboard: runs of typing at a
    cursor, backspaces, forward deletes, now and then a jump elsewhere; each on
    the text the ones before made (exactly one of ``delete``, ``insert`` set)."""
    text, cursor = start, len(start)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.1:
            cursor = rng.randrange(len(text) + 1)  # a click somewhere else
        if roll < 0.6 or not text:
            letter = rng.choice("abcdef 😀中\n")
            yield cursor, 0, letter
            text = text[:cursor] + letter + text[cursor:]
            cursor += 1
        elif roll < 0.85 and cursor > 0:
            width = min(cursor, rng.choice((1, 1, 1, 3)))
            yield cursor - width, width, ""
            text = text[: cursor - width] + text[cursor:]
            cursor -= width
        elif cursor < len(text):
            width = min(len(text) - cursor, rng.choice((1, 2)))
            yield cursor, width, ""
            text = text[:cursor] + text[cursor + width :]


def spliced(text: str, pos: int, delete: int, insert: str) -> str:
    return text[:pos] + insert + text[pos + delete :]


@given(st.integers(0, 2**32), st.text(max_size=12), st.integers(1, 120))
def test_joined_keystrokes_make_the_text_the_keystrokes_make(
    seed: int, start: str, count: int
) -> None:
    """Pending or not, the text and its length are what the keystrokes made."""
    rng = random.Random(seed)
    model = handed = start  # handed: the session's text (what was handed over)
    typing: _Typing | None = None
    for pos, delete, insert in keystrokes(rng, start, count):
        model = spliced(model, pos, delete, insert)
        if typing is None or not typing.join(pos, delete, insert):
            if typing is not None:
                handed = spliced(handed, typing.pos, typing.delete, typing.text)
            typing = _Typing(pos, delete, insert, len(handed), 0)
        assert typing.length == len(model)
        assert spliced(handed, typing.pos, typing.delete, typing.text) == model
        assert typing.pos >= 0
        assert typing.pos + typing.delete <= len(handed)


def test_join_takes_only_adjacent_keystrokes() -> None:
    typing = _Typing(5, 0, "ab", 10, 0)  # "ab" typed at 5: the cursor is at 7
    assert not typing.join(6, 0, "x")  # typing inside it: not the end
    assert not typing.join(3, 1, "")  # a delete that does not reach the end
    assert typing.join(7, 0, "c")  # typing on
    assert typing.join(4, 4, "")  # backspacing 4 from 8: "abc" and one before it
    assert (typing.pos, typing.delete, typing.text) == (4, 1, "")
    assert typing.join(4, 2, "")  # deleting forward from the cursor
    assert (typing.pos, typing.delete, typing.text) == (4, 3, "")


def test_a_fast_typist_types_ahead_and_every_keystroke_arrives_once_in_order() -> None:
    keys = list(keystrokes(random.Random(7), "", 3000))
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with (
                Pad.open(links.edit_link, state_dir=None) as writer,
                Pad.open(links.view_link, state_dir=None) as reader,
            ):
                handed = count_edits(writer.session)
                model = ""
                for index, (pos, delete, insert) in enumerate(keys):
                    if delete:
                        await writer.delete(pos, delete)
                    else:
                        await writer.insert(pos, insert)
                    model = spliced(model, pos, delete, insert)
                    if index % 97 == 0:  # every read sees every keystroke, pending or not
                        assert writer.text == model
                    await asyncio.sleep(0)
                await writer.synced(TIMEOUT)
                assert writer.text == model
                assert writer.status is Status.SAVED
                async with asyncio.timeout(TIMEOUT):
                    while reader.text != model:
                        await reader.changed()
                # Typed ahead: the session was handed fewer edits than keystrokes.
                assert handed[0] < len(keys), handed
            async with Pad.open(links.view_link, state_dir=None) as fresh:
                assert fresh.text == model

        asyncio.run(main())


def test_with_a_state_directory_every_keystroke_is_handed_over_at_once(tmp_path: Path) -> None:
    keys = list(keystrokes(random.Random(8), "", 300))
    with running_relay() as relay:

        async def main() -> None:
            links = await Pad.create(relay.url)
            async with Pad.open(links.edit_link, state_dir=tmp_path) as writer:
                handed = count_edits(writer.session)
                for pos, delete, insert in keys:
                    if delete:
                        await writer.delete(pos, delete)
                    else:
                        await writer.insert(pos, insert)
                    await asyncio.sleep(0)
                assert handed[0] == len(keys)  # each in the write-ahead log when it returned
                await writer.synced(TIMEOUT)

        asyncio.run(main())


def count_edits(session: PadSession) -> list[int]:
    """Count the edits handed to ``session`` from now on (``[count]``, kept current)."""
    handed = [0]
    edit = session.edit

    def counted(patch: object) -> None:
        handed[0] += 1
        edit(patch)

    session.edit = counted  # type: ignore[method-assign]
    return handed

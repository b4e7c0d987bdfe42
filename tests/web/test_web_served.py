"""The relay's start-up snapshot, restored by the page (relay/edge/snapshot.py).

A relay built from a checkout makes, once per build, a snapshot of Python's
memory with the client imported, and the page names it; a first visit in a
browser that holds no snapshot of its own restores from it
(``<html data-boot="served">``) instead of starting CPython. These tests drive
Chromium (``tests/web/trust.mjs``) against a real ``python -m relay`` and check
what a user would see:

* a first visit and a second tab restore from it, are editable and converge
  with the SDK, and no snapshot of the browser's own is taken;
* a served snapshot that does not restore gives a cold boot with one console
  line and no message to the user; that boot takes the browser's own
  snapshot, which the next tab restores from.

Skips, saying why, as ``test_web.py`` does. No timing assertions; hang guards only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_support import free_port
from test_startup_snapshot import runtime_only, stand_in_node
from test_web_snapshot import TEXT, assert_holds_no_secret, new_pad
from test_web_trust import Browser, Relay, browser, relay, sdk_pad

from relay.edge import snapshot
from relay.edge.bundle import NODE_MODULES_ENV

__all__ = ["browser", "relay"]  # the fixtures, shared with test_web_trust


def test_a_first_visit_restores_from_the_relays_snapshot_and_converges(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    async def main() -> str:
        link = await new_pad(relay.url)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad: a first visit", url=link)
        first = await browser.step("saved", "the first tab shows the text", text=TEXT)
        assert first["boot"] == "served", first["boot"]
        assert first["message"] == "", first["message"]
        await browser.step("type", "type in the first tab", text="A")
        await browser.step("tab", "open the pad in a second tab", url=link)
        second = await browser.step("saved", "the second tab shows it", text=TEXT + "A")
        assert second["boot"] == "served", second["boot"]
        assert (await browser.step("peek", "no snapshot of its own"))["size"] is None
        await browser.step("type", "type in the second tab", text="B😀")
        await browser.step("use", "back to the first tab", index=0)
        await browser.step("saved", "the first tab shows it", text=TEXT + "AB😀")
        lines = (await browser.step("console", "the first tab's console"))["lines"]
        assert not any("snapshot" in line for line in lines), lines
        await browser.step("close", "close Chromium")
        async with sdk_pad(link) as reader:
            return reader.text

    assert asyncio.run(main()) == TEXT + "AB😀"


@pytest.fixture
def junk_relay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Relay]:
    """A relay whose start-up snapshot is bytes that are none (a stand-in
    ``node`` made it), its runtime the checkout's."""
    modules = runtime_only(tmp_path / "node_modules")
    # Bytes that are no snapshot, made by a stand-in for node.
    folder = stand_in_node(tmp_path / "bin", 'head -c 1048576 /dev/zero | tr "\\0" "\\7" > "$5"')
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv(NODE_MODULES_ENV, str(modules))
    monkeypatch.delenv(snapshot.ENV, raising=False)
    junk = Relay(tmp_path, free_port())
    junk.start()
    try:
        yield junk
    finally:
        junk.close()


def test_a_relay_snapshot_that_does_not_restore_gives_a_cold_boot(
    junk_relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    async def main() -> None:
        link = await new_pad(junk_relay.url)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad: a first visit", url=link)
        seen = await browser.step("saved", "the page shows the text", text=TEXT)
        assert seen["boot"] == "cold", seen["boot"]
        assert seen["message"] == "", seen["message"]
        lines = (await browser.step("console", "the page's console"))["lines"]
        said = [line for line in lines if "snapshot" in line]
        assert len(said) == 1, lines
        assert "the relay's start-up snapshot did not restore" in said[0], lines
        await browser.step("type", "the page is editable", text="!")
        await browser.step("snapshotted", "the cold boot kept its own snapshot")
        assert_holds_no_secret(await browser.step("peek", "what it holds"))
        await browser.step("tab", "open the pad in a second tab", url=link)
        again = await browser.step("saved", "the second tab shows it", text=TEXT + "!")
        assert again["boot"] == "snapshot", again["boot"]
        await browser.step("close", "close Chromium")

    asyncio.run(main())

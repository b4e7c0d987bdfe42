"""The page's start-up snapshot of Python (issue 19, item 5).

A cold boot of the page imports the client, then takes a snapshot of
Python's memory (before any pad reaches Python) and keeps it in the
browser's Cache Storage, keyed by the build id the relay gives the page
(``data-build``, the service worker's cache name); a later visit in the same
browser restores Python from it (``<html data-boot="snapshot">``) instead of
starting CPython again. These tests drive Chromium with a persistent profile
(``tests/web/trust.mjs``) against a real ``python -m relay`` and check what a
user would see:

* a second tab restores from the snapshot, is editable, and converges with
  the first tab (and with the SDK);
* the snapshot holds none of the pad's secrets (the link's fragment, the
  text, every ``blindpad.*`` value in localStorage), even one taken when
  this browser already had them (docs/SECURITY.md, "The start-up snapshot");
* a snapshot that does not restore (damaged) gives a cold boot, one
  console line, no message to the user, and a new snapshot;
* a snapshot made under another build id (the relay upgraded: another page)
  is ignored: a cold boot.

These are the tests of the browser's own snapshot, so their relays serve none
of their own (``BLINDPAD_STARTUP_SNAPSHOT=off``); the relay's is tested in
``test_web_served.py``.

Skips, saying why, as ``test_web.py`` does when Chromium or the npm packages
are missing. No timing assertions; hang guards only.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, RelayProcess
from test_web_trust import SDK_GUARD_S, Browser, Relay, browser, relay, sdk_pad

from client import Pad
from relay.edge import snapshot
from relay.edge.bundle import NODE_MODULES_ENV

__all__ = ["browser", "relay"]  # the fixtures, shared with test_web_trust

TEXT = "zebra quartz 7f3a9c "  # found nowhere in Python's memory by chance


@pytest.fixture(autouse=True)
def _no_served_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relays these tests start serve no start-up snapshot (before ``relay``)."""
    monkeypatch.setenv(snapshot.ENV, "off")


def build_of(url: str) -> str:
    """The build id the relay at ``url`` gives its page."""
    page = httpx.get(url + "p/", timeout=SDK_GUARD_S).text
    found = re.search(r'data-build="(blindpad-[\w-]+)"', page)
    assert found, "the page has no data-build"
    return found.group(1)


async def new_pad(url: str) -> str:
    """A pad holding :data:`TEXT`; its edit link."""
    links = await Pad.create(url, open_timeout=SDK_GUARD_S)
    async with sdk_pad(links.edit_link) as pad:
        await pad.insert(0, TEXT)
        await pad.synced(SDK_GUARD_S)
    return links.edit_link


def assert_holds_no_secret(peeked: dict[str, object]) -> None:
    size = peeked["size"]
    assert isinstance(size, int), peeked
    assert size > 1 << 20, peeked
    searched = peeked["searched"]
    assert isinstance(searched, list)
    assert {"fragment", "text"} <= set(searched), searched
    assert any(str(name).startswith("blindpad.author") for name in searched), searched
    assert peeked["holds"] == [], f"the snapshot holds {peeked['holds']}"


def test_a_second_visit_restores_from_the_snapshot_and_converges(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    async def main() -> str:
        link = await new_pad(relay.url)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad (no snapshot yet)", url=link)
        first = await browser.step("saved", "the first tab shows the text", text=TEXT)
        assert first["boot"] == "cold", first["boot"]
        await browser.step("type", "type in the first tab", text="A")
        kept = await browser.step("snapshotted", "the first tab kept its snapshot")
        assert kept["snapshot"] == "stored"
        assert_holds_no_secret(await browser.step("peek", "what the snapshot holds"))

        await browser.step("tab", "open the pad in a second tab", url=link)
        second = await browser.step("saved", "the second tab shows the text", text=TEXT + "A")
        assert second["boot"] == "snapshot", second["boot"]
        assert second["message"] == "", second["message"]
        await browser.step("type", "type in the second tab", text="B😀")
        await browser.step("use", "back to the first tab", index=0)
        await browser.step("saved", "the first tab shows it", text=TEXT + "AB😀")
        await browser.step("type", "type in the first tab again", text="C")
        await browser.step("use", "to the second tab", index=1)
        await browser.step("saved", "the second tab shows it", text=TEXT + "AB😀C")
        lines = await browser.step("console", "the second tab's console")
        assert not any("snapshot" in line for line in lines["lines"]), lines
        await browser.step("close", "close Chromium")
        async with sdk_pad(link) as reader:
            return reader.text

    assert asyncio.run(main()) == TEXT + "AB😀C"


def test_a_snapshot_that_does_not_restore_gives_a_cold_boot_and_a_new_snapshot(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    async def main() -> None:
        link = await new_pad(relay.url)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad", url=link)
        await browser.step("saved", "the first tab shows the text", text=TEXT)
        await browser.step("snapshotted", "the first tab kept its snapshot")
        await browser.step("spoil", "damage the kept snapshot")

        await browser.step("tab", "open the pad in a second tab", url=link)
        seen = await browser.step("saved", "the second tab shows the text", text=TEXT)
        assert seen["boot"] == "cold", seen["boot"]
        assert seen["message"] == "", seen["message"]
        lines = (await browser.step("console", "the second tab's console"))["lines"]
        said = [line for line in lines if "snapshot" in line]
        assert len(said) == 1, lines
        assert "did not restore" in said[0], lines
        await browser.step("type", "the second tab is editable", text="!")
        # Taken again, by a boot whose browser already held this pad's keys,
        # author and text: the snapshot still holds none of them.
        await browser.step("snapshotted", "the second tab kept a new snapshot")
        assert_holds_no_secret(await browser.step("peek", "what the new snapshot holds"))

        await browser.step("tab", "open the pad in a third tab", url=link)
        third = await browser.step("saved", "the third tab shows the text", text=TEXT + "!")
        assert third["boot"] == "snapshot", third["boot"]
        await browser.step("close", "close Chromium")

    asyncio.run(main())


class OtherBuild(Relay):
    """The same relay (database, port) serving another build of the page."""

    def __init__(self, folder: Path, port: int, web_dir: Path) -> None:
        super().__init__(folder, port)
        self.web_dir = web_dir

    def start(self, port: int | None = None) -> str:
        assert self.proc is None
        self.proc = RelayProcess(
            "--store",
            f"sqlite:///{self.db}",
            "--port",
            str(self.port),
            "--web-dir",
            str(self.web_dir),
            stderr=self.log,
        )
        return self.proc.handle.url


def test_a_snapshot_of_another_build_is_ignored(
    relay: Relay, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = tmp_path / "web"
    shutil.copytree(ROOT / "web", web)
    with (web / "app.js").open("a", encoding="utf-8") as f:
        f.write("// another build of the page\n")
    monkeypatch.setenv(NODE_MODULES_ENV, str(ROOT / "node_modules"))
    other = OtherBuild(tmp_path, relay.port, web)

    async def main() -> None:
        link = await new_pad(relay.url)
        old_build = build_of(relay.url)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad", url=link)
        await browser.step("saved", "the page shows the text", text=TEXT)
        await browser.step("snapshotted", "the page kept its snapshot")

        relay.stop()  # the operator upgrades: the same relay serves another page
        other.start()
        try:
            assert build_of(other.url) != old_build
            await browser.step("tab", "open the pad on the upgraded relay", url=link)
            seen = await browser.step("saved", "the new page shows the text", text=TEXT)
            assert seen["boot"] == "cold", seen["boot"]
            assert seen["message"] == "", seen["message"]
            await browser.step("type", "the new page is editable", text="+")
            await browser.step("snapshotted", "the new page kept its own snapshot")
            await browser.step("tab", "open the pad once more", url=link)
            again = await browser.step("saved", "it shows the text", text=TEXT + "+")
            assert again["boot"] == "snapshot", again["boot"]
            await browser.step("close", "close Chromium")
        finally:
            other.close()

    asyncio.run(main())

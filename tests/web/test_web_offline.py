"""The page opens a pad with the relay stopped (issue 19, item 4).

A real ``python -m relay`` on a SQLite file and a fixed port, and Chromium
(playwright-core, driven step by step by ``tests/web/trust.mjs``).  The page
opens the pad once with the relay up: the service worker (``/sw.js``)
caches the page and its runtime, and IndexedDB gets the pad's write-ahead
log and local copy.  The relay stops; the page reloads (from the service
worker's cache), opens the pad from its local copy ("offline", editable),
takes edits; another writer changed the pad meanwhile; the relay restarts:
the page syncs by itself, and a fresh SDK client reads exactly the text
with both writers' edits, each once.  Skips, saying why, as ``test_web.py``
does when Chromium or the npm packages are missing.  Hang guards only.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
from test_web_trust import SDK_GUARD_S, Browser, Relay, browser, relay, sdk_pad, type_patches

from client import Pad

__all__ = ["browser", "relay"]  # the fixtures, shared with test_web_trust

ROOT = Path(__file__).resolve().parents[2]


def test_the_service_worker_is_served_with_its_cache_and_precache(
    relay: Relay, tmp_path: Path
) -> None:
    script = httpx.get(relay.url + "sw.js", timeout=SDK_GUARD_S)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == "no-cache"
    assert "{{" not in script.text
    assert 'const CACHE = "blindpad-p2-' in script.text
    page = httpx.get(relay.url + "p/", timeout=SDK_GUARD_S).text
    for url in ("/assets/", '"/p/"'):
        assert url in script.text
    for asset in {a for a in page.split('"') if a.startswith("/assets/")}:
        assert f'"{asset}' in script.text, asset
    # The page keys its start-up snapshot by the same build id (web/app.js).
    cache = script.text.split('const CACHE = "')[1].split('"')[0]
    assert f'data-build="{cache}"' in page
    source = tmp_path / "sw.js"
    source.write_text(script.text, "utf-8")
    checked = subprocess.run(
        ["node", "--check", str(source)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr  # what the browser will evaluate


def test_a_pad_opened_once_opens_with_the_relay_stopped_and_syncs_after(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    async def main() -> str:
        links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
        async with sdk_pad(links.edit_link) as pad:
            await pad.insert(0, "shared ")
            await pad.synced(SDK_GUARD_S)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad", url=links.edit_link)
        await browser.step("saved", "the page shows the text, saved", text="shared ")
        await browser.step("type", "type in the page", text="page 😀")
        cached = await browser.step("cached", "the page cached and its copy stored")
        assert cached["offline"]["opened"] is False, cached["offline"]

        relay.stop()
        await browser.step("reload", "reload with the relay stopped")
        seen = await browser.step(
            "offline", "the pad open from its local copy", text="shared page 😀"
        )
        assert seen["offline"]["opened"] is True, seen["offline"]
        assert seen["status"].startswith("Offline"), seen["status"]
        await browser.step("append", "type while offline", text=" offline ✈")
        await browser.step("reload", "reload again, still offline (the log is kept)")
        await browser.step(
            "offline", "the offline edit is still there", text="shared page 😀 offline ✈"
        )
        await browser.step("append", "type more while offline", text="!")

        relay.start()
        async with sdk_pad(links.edit_link) as other:  # meanwhile, someone else
            await other.insert(0, "[other] ")
            await other.synced(SDK_GUARD_S)
        final = "[other] shared page 😀 offline ✈!"
        await browser.step("saved", "the page synced after the relay restarted", text=final)
        await browser.step("close", "close Chromium")
        async with sdk_pad(links.view_link) as reader:
            return reader.text

    assert asyncio.run(main()) == "[other] shared page 😀 offline ✈!"


def test_a_page_left_open_across_a_relay_upgrade_reloads_once_into_the_new_build(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    """§15.3: the relay comes back serving another build (here: one changed
    stylesheet, so new asset URLs and a new service worker); the open page
    asks its worker to update when it reconnects, the new worker takes over,
    and the page reloads itself once into the new build, keeping the pad."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "web", site / "web")
    (site / "node_modules").symlink_to(ROOT / "node_modules")
    with (site / "web" / "style.css").open("a", encoding="utf-8") as css:
        css.write("\n/* the next build */\n")

    async def main() -> str:
        links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
        await browser.step("launch", "start Chromium", profile=str(tmp_path / "profile"))
        await browser.step("open", "open the pad", url=links.edit_link)
        await browser.step("type", "type in the page", text="before ")
        old = (await browser.step("cached", "the page under its service worker"))["build"]
        relay.stop()
        relay.start(None, "--web-dir", str(site / "web"))
        seen = await browser.step(
            "upgraded", "the page reloaded into the new build", text="before ", **{"from": old}
        )
        assert seen["loads"] == 2, seen  # exactly one reload, no loop
        assert not seen["message"], seen["message"]
        await browser.step("type", "type in the new build", text="after")
        await browser.step("close", "close Chromium")
        async with sdk_pad(links.view_link) as reader:
            return reader.text

    assert asyncio.run(main()) == "before after"


async def visit_and_leave(browser: Browser, profile: str, link: str, text: str) -> None:
    """A first visit: open ``link``, type ``text``, wait until the page is cached
    and its copy stored, and close the browser."""
    await browser.step("launch", "start Chromium", profile=profile)
    await browser.step("open", "open the pad", url=link)
    await browser.step("type", "type in the page", text=text)
    await browser.step("cached", "the page cached and its copy stored")
    await browser.step("close", "close Chromium")


async def come_back_offline(browser: Browser, profile: str, link: str, shown: str) -> None:
    """The relay is down: the same profile opens ``link`` from its copy, showing ``shown``."""
    await browser.step("launch", "start Chromium again, same profile", profile=profile)
    await browser.step("open", "open the pad with the relay stopped", url=link)
    await browser.step("offline", "the pad open from its local copy", text=shown)


def test_a_relay_trimmed_past_the_copy_while_the_page_was_away_keeps_its_offline_work(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    """The page opens from its copy with the relay down; meanwhile someone
    else wrote and trimmed past that copy.  Back online, the page rejoins
    from the relay's snapshot and merges its offline work onto it."""
    profile = str(tmp_path / "profile")

    async def main() -> str:
        links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
        await visit_and_leave(browser, profile, links.edit_link, "kept ")
        async with sdk_pad(links.edit_link) as other:  # while the page is away
            await other.insert(0, "theirs ")
            await other.synced(SDK_GUARD_S)
            await other.trim(SDK_GUARD_S)
        relay.stop()
        await come_back_offline(browser, profile, links.edit_link, "kept ")
        await browser.step("append", "type while offline", text="mine")
        relay.start()
        seen = await browser.step("saved", "synced after the restart", text="theirs kept mine")
        assert not seen["banner"], seen["banner"]  # a trim is no rollback
        await browser.step("close", "close Chromium")
        async with sdk_pad(links.view_link) as reader:
            return reader.text

    assert asyncio.run(main()) == "theirs kept mine"


def test_a_relay_back_from_an_old_backup_after_an_offline_open_raises_rollback(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    """The page's copy is at height 6; the relay returns from a backup at 3.
    The page opened offline says rollback, never "saved", and keeps the
    offline work on screen."""
    profile = str(tmp_path / "profile")

    async def main() -> dict[str, Any]:
        links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
        async with sdk_pad(links.edit_link) as pad:
            await type_patches(pad, "abc")
        relay.stop()
        relay.backup()  # 3 patches
        relay.start()
        await visit_and_leave(browser, profile, links.edit_link, "def")
        relay.stop()
        relay.restore()  # back to 3 patches
        await come_back_offline(browser, profile, links.edit_link, "abcdef")
        await browser.step("append", "type while offline", text="!")
        await browser.step("mark", "watch the status from here")
        relay.start()
        seen = await browser.step("alarm", "the rollback banner")
        await browser.step("close", "close Chromium")
        return seen

    seen = asyncio.run(main())
    assert seen["banner"]["kind"] == "rollback", seen["banner"]
    assert "saved" not in seen["statuses"], seen["statuses"]
    assert seen["text"] == "abcdef!", seen["text"]  # the offline work is still shown

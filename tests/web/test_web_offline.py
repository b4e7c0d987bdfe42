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
import subprocess
from pathlib import Path

import httpx
from test_web_trust import SDK_GUARD_S, Browser, Relay, browser, relay, sdk_pad

from client import Pad

__all__ = ["browser", "relay"]  # the fixtures, shared with test_web_trust


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

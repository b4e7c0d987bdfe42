"""The page against a real relay made to lie: its SQLite database swapped for an older copy.

No scripted fake relay here (``tests/frontends/test_lying_relay.py`` has
those, for the SDK): a real ``python -m relay`` on a SQLite file, stopped,
its database files replaced by a backup taken earlier, and started again on
the same port, which is what an operator restoring an old backup (or a
malicious one) does. The page keeps the highest ``(height, id)`` it verified
in ``localStorage`` (``blindpad.head.<channel>``); Chromium runs with a
persistent profile so it survives closing the browser.

* rollback: the page saw 6 patches, the relay comes back with 3: the page
  shows the alarm banner (``#alarm``, ``data-kind="rollback"``), never
  "Saved", and the 3 patches' text (a reload keeps no copy of the text).
* fork: the page is open on 4 patches when the relay is restored to 2 and
  another writer adds 2 different ones (heights 3-4) and stays on the pad:
  the page reconnects by itself, shows the banner (``data-kind="fork"``),
  keeps its own text and never reads "Saved".

``tests/web/trust.mjs`` drives Chromium (playwright-core) one step at a
time, answering one JSON line per step; this file restarts the relays in
between. Skips, saying why, as ``test_web.py`` does when Chromium or the npm
packages are missing. No wall-clock limit a slow machine trips: hang guards
only, which say what hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from relay_support import ROOT, RelayProcess, free_port
from test_web import ARTIFACTS, _missing

from client import Pad

#: Hang guards, not speed limits: a step of the browser script (its own
#: guards, 20 min for a page to boot and 5 min for anything else, say first
#: what hung), and one SDK step.
STEP_GUARD_S = float(os.environ.get("BLINDPAD_TRUST_STEP_GUARD_S", 1500))
SDK_GUARD_S = 300.0
SUSPECT_KINDS = ("rollback", "fork", "withheld")
BANNER_WORDS = {
    "rollback": "This relay is serving an older version of this pad than this browser saw.",
    "fork": "This relay is showing you a different version of this pad than it showed "
    "before (or than it shows others).",
    "withheld": "This relay is holding back changes it has.",
}
ADVICE = (
    "Your text stays here. Keep working if you like, copy your text somewhere safe, "
    "and try another relay."
)


@pytest.fixture(autouse=True)
def _browser_needed() -> None:
    reason = _missing()
    if reason is not None:
        pytest.skip(reason)


# --- the relay and its database ----------------------------------------------------


class Relay:
    """``python -m relay`` on one SQLite file, restartable on a fixed port.

    Args:
        folder: holds the database, its backup and the relay's log.
        port: the page's origin (and so its localStorage) stays the same across restarts.
    """

    SUFFIXES = ("", "-wal", "-shm")

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.db = folder / "relay.sqlite3"
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.log: IO[str] = (folder / "relay.log").open("a")
        self.proc: RelayProcess | None = None

    def start(self, port: int | None = None, *args: str) -> str:
        """Start (on ``port``, default the fixed one; ``args``: more options); return its URL."""
        assert self.proc is None
        port = self.port if port is None else port
        self.proc = RelayProcess(
            "--store", f"sqlite:///{self.db}", "--port", str(port), *args, stderr=self.log
        )
        assert self.proc.handle.url == f"http://127.0.0.1:{port}/", self.proc.handle.url
        return self.proc.handle.url

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: the store closes, the WAL is checkpointed)."""
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def files(self, base: Path) -> list[Path]:
        return [base.with_name(base.name + s) for s in self.SUFFIXES]

    def backup(self) -> None:
        """Copy the stopped relay's database files (what an operator's backup holds)."""
        assert self.proc is None
        for source, copy in zip(
            self.files(self.db), self.files(self.folder / "backup.sqlite3"), strict=True
        ):
            copy.unlink(missing_ok=True)
            if source.exists():
                shutil.copy2(source, copy)

    def restore(self) -> None:
        """Put the backup back in place of the stopped relay's database."""
        assert self.proc is None
        for target, copy in zip(
            self.files(self.db), self.files(self.folder / "backup.sqlite3"), strict=True
        ):
            target.unlink(missing_ok=True)
            if copy.exists():
                shutil.copy2(copy, target)

    def close(self) -> None:
        self.stop()
        self.log.close()


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = Relay(tmp_path, free_port())
    relay.start()
    try:
        yield relay
    finally:
        relay.close()


# --- the browser ------------------------------------------------------------------


class Browser:
    """``node tests/web/trust.mjs``: one command a line in, one JSON answer a line out."""

    def __init__(self, folder: Path) -> None:
        self.errors = (folder / "trust-mjs.log").open("w+")
        self.proc = subprocess.Popen(
            ["node", "tests/web/trust.mjs"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.answers.put(line)
        self.answers.put(None)

    def _log_tail(self) -> str:
        self.errors.flush()
        self.errors.seek(0)
        return self.errors.read()[-4000:]

    def ask(self, cmd: str, what: str, **args: Any) -> dict[str, Any]:
        """Run one step; fail the test, saying which step, if it fails or hangs."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.answers.get(timeout=STEP_GUARD_S)
        except queue.Empty:
            pytest.fail(
                f"hung: the browser step {what!r} ({cmd}) gave no answer after "
                f"{STEP_GUARD_S:g} s (BLINDPAD_TRUST_STEP_GUARD_S)\n{self._log_tail()}"
            )
        if line is None:
            pytest.fail(f"trust.mjs exited during {what!r} ({cmd}):\n{self._log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            seen = json.dumps(answer.get("seen"), indent=1)
            pytest.fail(f"{what} ({cmd}) failed: {answer['error']}\npage: {seen}")
        return answer

    async def step(self, cmd: str, what: str, **args: Any) -> dict[str, Any]:
        """:meth:`ask` off the event loop (the SDK's pads keep running meanwhile)."""
        return await asyncio.to_thread(self.ask, cmd, what, **args)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    browser = Browser(tmp_path)
    try:
        yield browser
    finally:
        browser.close()


# --- helpers ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sdk_pad(link: str) -> AsyncIterator[Pad]:
    """The SDK on ``link``, keeping nothing on disk (a fresh session)."""
    async with Pad.open(link, state_dir=None, open_timeout=SDK_GUARD_S) as pad:
        yield pad


async def type_patches(pad: Pad, letters: str) -> None:
    """One acknowledged patch per letter, at the end."""
    for letter in letters:
        await pad.insert(len(pad.text), letter)
        await pad.synced(SDK_GUARD_S)


def on_port(link: str, port: int) -> str:
    """The same pad's link on a relay at another port of loopback."""
    base, fragment = link.split("#", 1)
    assert base.startswith("http://127.0.0.1:"), base
    return f"http://127.0.0.1:{port}/p/#{fragment}"


def remembered(seen: dict[str, Any]) -> list[int]:
    """The heights the page keeps in localStorage (blindpad.head.<channel>)."""
    return [int(head[0]) for head in seen["stored"].values()]


def assert_alarmed(seen: dict[str, Any], kind: str, text: str) -> None:
    """The banner of ``kind``, in plain words; the text; never "Saved" meanwhile."""
    banner = seen["banner"]
    assert banner is not None, seen
    assert banner["kind"] == kind, f"banner {banner}, status trace {seen['statuses']}"
    assert banner["role"] == "alert"
    assert banner["visible"], banner
    assert BANNER_WORDS[kind] in banner["text"], banner["text"]
    assert ADVICE in banner["text"], banner["text"]
    assert f"{kind}: " in banner["text"], banner["text"]  # the alarm's detail
    # From the first status that is not "saved" (the relay went down) on, never "saved".
    shown = list(itertools.dropwhile(lambda state: state == "saved", seen["statuses"]))
    assert shown, seen["statuses"]
    assert "saved" not in shown, seen["statuses"]
    assert "saved" not in [s.split(":")[0] for s in seen["statusesAfterAlarm"]]
    assert len(seen["statusesAfterAlarm"]) >= 5, seen["statusesAfterAlarm"]
    assert seen["state"] != "saved", seen
    assert seen["status"] != "Saved", seen
    assert (seen["text"], seen["client"]) == (text, text), seen


# --- the cases --------------------------------------------------------------------


def test_a_relay_restored_from_an_old_backup_raises_rollback_in_the_page(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    profile = tmp_path / "profile"

    async def main() -> dict[str, Any]:
        links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
        async with sdk_pad(links.edit_link) as pad:
            await type_patches(pad, "abc")
        relay.stop()
        relay.backup()  # 3 patches
        relay.start()
        await browser.step("launch", "start Chromium", profile=str(profile))
        await browser.step("open", "open the pad", url=links.edit_link)
        await browser.step("saved", "the page shows abc, saved", text="abc")
        typed = await browser.step("type", "type def in the page", text="def")
        assert typed["debug"]["height"] == 6, typed["debug"]
        assert remembered(typed) == [6], typed["stored"]
        await browser.step("close", "close Chromium")

        relay.stop()
        relay.restore()  # back to 3 patches
        relay.start()
        await browser.step("launch", "start Chromium again, same profile", profile=str(profile))
        await browser.step("open", "open the pad again", url=links.edit_link)
        seen = await browser.step("alarm", "the rollback banner")
        ARTIFACTS.mkdir(exist_ok=True)
        await browser.step("shot", "a screenshot", path=str(ARTIFACTS / "web-alarm.png"))
        await browser.step("close", "close Chromium")
        return seen

    seen = asyncio.run(main())
    assert_alarmed(seen, "rollback", "abc")
    assert "saved" not in seen["statuses"], seen["statuses"]  # not once since it loaded
    assert seen["banner"]["kinds"] == "rollback", seen["banner"]
    assert remembered(seen) == [6], seen["stored"]  # the remembered point did not move back


async def fork_under_an_open_page(
    relay: Relay, browser: Browser, profile: Path, *, peer: bool
) -> tuple[dict[str, Any], list[str]]:
    """The page holds "abcd" (4 patches) and stays open; the relay comes back from a
    backup at 2 patches plus another writer's "XY" (heights 3-4).  With ``peer``,
    that writer stays on the pad while the page reconnects.

    Returns:
        What the page showed once its banner was up, and the alarms of the
        writer on the pad meanwhile (none without ``peer``).
    """
    links = await Pad.create(relay.url, open_timeout=SDK_GUARD_S)
    async with sdk_pad(links.edit_link) as pad:
        await type_patches(pad, "ab")
    relay.stop()
    relay.backup()  # 2 patches
    relay.start()
    await browser.step("launch", "start Chromium", profile=str(profile))
    await browser.step("open", "open the pad", url=links.edit_link)
    await browser.step("saved", "the page shows ab, saved", text="ab")
    typed = await browser.step("type", "type cd in the page", text="cd")
    assert typed["debug"]["height"] == 4, typed["debug"]
    assert remembered(typed) == [4], typed["stored"]
    await browser.step("mark", "watch the status from here")

    # The page stays open (and retries) while the relay is down. The other
    # branch is written on another port first, so the page cannot reconnect
    # to the restored relay before it holds that branch.
    relay.stop()
    relay.restore()  # back to 2 patches
    elsewhere = free_port()
    relay.start(elsewhere)
    async with sdk_pad(on_port(links.edit_link, elsewhere)) as other:
        assert other.text == "ab"
        await type_patches(other, "XY")  # heights 3-4, beside the page's "cd"
    relay.stop()
    relay.start()
    theirs: list[str] = []
    if not peer:
        seen = await browser.step("alarm", "the banner (the page reconnects by itself)")
    else:
        # The writer of that branch is on the pad: the relay shows it one pad
        # and the page another.
        async with sdk_pad(links.edit_link) as other:
            assert other.text == "abXY"
            seen = await browser.step("alarm", "the fork banner (the page reconnects by itself)")
            try:
                async with asyncio.timeout(SDK_GUARD_S):  # a hang guard
                    while "fork" not in (theirs := [a.kind.value for a in other.alarms]):
                        await other.changed()
            except TimeoutError:
                pytest.fail(f"hung: the SDK writer raised no fork alarm (alarms: {theirs})")
    await browser.step("close", "close Chromium")
    return seen, theirs


def test_a_relay_restored_and_forked_while_the_page_is_open_raises_fork(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    seen, theirs = asyncio.run(fork_under_an_open_page(relay, browser, tmp_path, peer=True))
    assert_alarmed(seen, "fork", "abcd")
    assert "offline" in seen["statuses"], seen["statuses"]  # it did see the relay go
    assert "fork" in theirs, theirs  # the other writer is told too
    assert remembered(seen) == [4], seen["stored"]  # the remembered point did not move


def test_a_fork_with_no_other_writer_on_the_pad_is_still_alarmed(
    relay: Relay, browser: Browser, tmp_path: Path
) -> None:
    """Nobody on the other branch beacons its head: the relay names a head at
    number 4 where the page verified another patch: ``fork`` at once, the text
    kept, never "Saved"."""
    seen, _ = asyncio.run(fork_under_an_open_page(relay, browser, tmp_path, peer=False))
    assert_alarmed(seen, "fork", "abcd")
    assert "offline" in seen["statuses"], seen["statuses"]
    assert remembered(seen) == [4], seen["stored"]

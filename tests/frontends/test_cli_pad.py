"""The ``blindpad`` pad commands, end to end: a ``blindpad relay`` subprocess and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from relay_support import RelayProcess, free_port

import crypto
from client import Pad
from client.commands import _common
from client.errors import RelayRefused

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 300  # a hang guard (one CLI run that takes this long has hung), not a speed limit


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("relay") / "relay.sqlite3"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "blindpad",
            "relay",
            "--port",
            "0",
            "--store",
            f"sqlite:///{store}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        assert "listening on" in line, line
        yield line.split("listening on ")[1].split(" ")[0]
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _cli_env(state: Path, env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(state), **(env or {})}


def blindpad(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, state: Path
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, text in and out."""
    return subprocess.run(
        [sys.executable, "-m", "blindpad", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_cli_env(state, env),
        timeout=TIMEOUT,
        check=False,
    )


def new_pad(relay: str, state: Path) -> tuple[str, str]:
    made = blindpad("new", "--relay", relay, state=state)
    assert made.returncode == 0, made.stderr
    edit, view = made.stdout.splitlines()
    return edit, view


def test_round_trip(relay: str, tmp_path: Path) -> None:
    edit, view = new_pad(relay, tmp_path)
    assert "#1.e." in edit
    assert "#1.v." in view
    text = "first line ünïcode 😀\nsecond line\n"
    source = tmp_path / "in.txt"
    source.write_text(text, "utf-8")
    assert blindpad("write", edit, str(source), state=tmp_path).returncode == 0
    assert blindpad("append", edit, "tail", state=tmp_path).returncode == 0
    shown = blindpad("cat", view, state=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == text + "tail"
    assert blindpad("write", edit, stdin="replaced", state=tmp_path).returncode == 0
    assert blindpad("cat", edit, state=tmp_path).stdout == "replaced"
    derived = blindpad("view-link", edit, state=tmp_path)
    assert derived.stdout.strip() == view
    history = blindpad("history", view, state=tmp_path)
    assert history.returncode == 0, history.stderr
    rows = history.stdout.splitlines()[1:]
    assert len(rows) >= 3
    assert rows[0].split()[0] == "1"
    year = str(datetime.now(UTC).year)
    assert all(row.split()[1].startswith(year) for row in rows)  # the author's clock, UTC


def test_trim_keeps_the_text_and_removes_the_history_before_it(tmp_path: Path) -> None:
    """No client ever trimmed: every patch and snapshot ever made stayed on the relay."""
    store = tmp_path / "relay.sqlite3"
    relay = RelayProcess("--store", f"sqlite:///{store}")
    try:
        url = relay.handle.url
        edit, view = new_pad(url, tmp_path)
        empty = blindpad("trim", edit, state=tmp_path)
        assert (empty.returncode, empty.stdout) == (0, "nothing to trim: the pad is empty\n")
        for word in ("one ", "two ", "three ", "four"):
            assert blindpad("append", edit, word, state=tmp_path).returncode == 0
        before = sqlite3.connect(store).execute("SELECT count(*) FROM patches").fetchone()[0]
        assert before == 4
        trimmed = blindpad("trim", edit, state=tmp_path)
        assert trimmed.returncode == 0, trimmed.stderr
        assert trimmed.stdout == "trimmed: the pad now starts from a snapshot at patch 4\n"
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT count(*) FROM patches").fetchone()[0] == 0
            assert db.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 1
        assert blindpad("cat", view, state=tmp_path).stdout == "one two three four"
        listed = blindpad("history", view, state=tmp_path)
        assert listed.returncode == 0, listed.stderr
        notice, header, row = listed.stdout.splitlines()
        assert notice.startswith("(patches 1 to 4 were trimmed: the pad starts from its snapshot")
        assert header.split()[:3] == ["seq", "time", "(UTC)"]
        assert (row.split()[0], row.split()[-1]) == ("4", "snapshot")
        assert blindpad("append", edit, "!", state=tmp_path).returncode == 0  # writes go on
        assert blindpad("cat", view, state=tmp_path).stdout == "one two three four!"
        # opening from the earliest point held (here the snapshot at the floor) and
        # replaying every patch after it, checked
        checked = blindpad("append", edit, "?", "--verify", "history", state=tmp_path)
        assert checked.returncode == 0, checked.stderr
        assert blindpad("cat", view, state=tmp_path).stdout == "one two three four!?"
        refused = blindpad("trim", view, state=tmp_path)
        assert refused.returncode == 2
        assert "view link" in refused.stderr
    finally:
        relay.stop()


def _copy_store(source: Path, target: Path) -> None:
    """Copy a stopped relay's SQLite store (and its WAL, if one was left)."""
    for suffix in ("", "-wal", "-shm"):
        origin = source.with_name(source.name + suffix)
        copy = target.with_name(target.name + suffix)
        copy.unlink(missing_ok=True)
        if origin.exists():
            shutil.copy(origin, copy)


def test_cat_refuses_a_rolled_back_pad_and_prints_nothing(tmp_path: Path) -> None:
    """A relay restored from an old backup (or lying) serves an older history:
    the state directory remembers more, so `cat` says so and prints no text."""
    store, backup = tmp_path / "relay.sqlite3", tmp_path / "backup.sqlite3"
    args = ("--store", f"sqlite:///{store}", "--port", str(free_port()))
    relay = RelayProcess(*args)
    try:
        edit, view = new_pad(relay.handle.url, tmp_path)
        assert blindpad("append", edit, "a", state=tmp_path).returncode == 0
    finally:
        relay.stop()
    _copy_store(store, backup)
    relay = RelayProcess(*args)
    try:
        for letter in "bc":
            assert blindpad("append", edit, letter, state=tmp_path).returncode == 0
        assert blindpad("cat", view, state=tmp_path).stdout == "abc"
    finally:
        relay.stop()
    _copy_store(backup, store)
    relay = RelayProcess(*args)
    try:
        rolled = blindpad("cat", view, state=tmp_path)
        assert (rolled.returncode, rolled.stdout) == (1, "")
        assert "rollback" in rolled.stderr
        assert "cannot be trusted" in rolled.stderr
        assert len(rolled.stderr.splitlines()) == 1
    finally:
        relay.stop()


def test_a_view_link_cannot_write_and_nothing_is_sent(relay: str, tmp_path: Path) -> None:
    edit, view = new_pad(relay, tmp_path)
    for args in (("write", view), ("append", view, "x"), ("edit", view)):
        result = blindpad(*args, stdin="x", state=tmp_path)
        assert result.returncode == 2
        assert "view link" in result.stderr
    assert blindpad("cat", edit, state=tmp_path).stdout == ""


def test_bad_links_and_unreachable_relays_are_clear_errors(tmp_path: Path) -> None:
    bad = blindpad("cat", "https://x.example/p/#1.e.nope.00000000", state=tmp_path)
    assert bad.returncode == 2
    assert "bad link" in bad.stderr
    edit = "http://127.0.0.1:9/p/#1.e.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.f051a1d2"
    down = blindpad("cat", edit, state=tmp_path)
    assert down.returncode == 1
    assert "cannot reach the relay" in down.stderr
    offline = blindpad("append", edit, "x", "--timeout", "1", state=tmp_path)
    assert offline.returncode == 1
    assert "cannot reach the relay" in offline.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for name in COMMANDS:
        result = blindpad(name, "--help", state=tmp_path)
        assert result.returncode == 0, name
        assert f"blindpad {name}" in result.stdout
    assert "view-link" in blindpad("--help", state=tmp_path).stdout


def test_edit_applies_the_editor_diff(relay: str, tmp_path: Path) -> None:
    edit, _ = new_pad(relay, tmp_path)
    assert blindpad("append", edit, "one\n", state=tmp_path).returncode == 0
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('two\\n')\n")
    command = f"{sys.executable} {editor}"
    result = blindpad("edit", edit, env={"EDITOR": command, "VISUAL": ""}, state=tmp_path)
    assert result.returncode == 0, result.stderr
    assert blindpad("cat", edit, state=tmp_path).stdout == "one\ntwo\n"


def test_watch_prints_the_text_then_changes_and_presence(relay: str, tmp_path: Path) -> None:
    edit, view = new_pad(relay, tmp_path)
    assert blindpad("append", edit, "hi", state=tmp_path).returncode == 0
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(tmp_path)}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "blindpad", "watch", view, "--count", "1", "--no-state"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first.strip() == "text (2 code points): 'hi'"
        assert blindpad("append", edit, "!", state=tmp_path).returncode == 0
        news = watcher.stdout.readline()
        assert news.strip() == "change @2 +'!'"
        assert watcher.wait(TIMEOUT) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        for pipe in (watcher.stdout, watcher.stderr):
            if pipe is not None:
                pipe.close()


# --- the first hour of a new user (issue 13) --------------------------------------------

COMMANDS = (
    "new",
    "cat",
    "write",
    "append",
    "watch",
    "edit",
    "history",
    "view-link",
    "trim",
    "retention",
)


def raw(
    *args: str | bytes, stdin: bytes = b"", env: dict[str, str] | None = None, state: Path
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with bytes in and out (for text that is not UTF-8)."""
    return subprocess.run(
        [sys.executable, "-m", "blindpad", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=_cli_env(state, env),
        timeout=TIMEOUT,
        check=False,
    )


def one_line(stderr: str | bytes) -> str:
    """The single line a failure prints; fails on tracebacks and chatter."""
    text = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, text
    return lines[0]


def nowhere() -> str:
    """An edit link to a loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return str(crypto.PadLink.new(f"http://127.0.0.1:{port}"))


def test_a_running_watch_does_not_block_writes_by_the_same_user(
    relay: str, tmp_path: Path
) -> None:
    edit, _ = new_pad(relay, tmp_path)
    assert blindpad("append", edit, "a", "--name", "alice", state=tmp_path).returncode == 0
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(tmp_path)}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "blindpad", "watch", edit, "--count", "2", "--name", "watcher"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environ,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "text (1 code points): 'a'"
        appended = blindpad("append", edit, "b", state=tmp_path)  # same user, same state dir
        assert appended.returncode == 0, appended.stderr
        assert watcher.stdout.readline().strip() == "change @1 +'b'"
        written = blindpad("write", edit, stdin="abc", state=tmp_path)
        assert written.returncode == 0, written.stderr
        assert watcher.stdout.readline().strip() == "change @2 +'c'"
        assert watcher.wait(TIMEOUT) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        for pipe in (watcher.stdout, watcher.stderr):
            if pipe is not None:
                pipe.close()
    assert blindpad("cat", edit, state=tmp_path).stdout == "abc"
    # watch --name is shown while watching, never remembered: writes stay alice's.
    identity = json.loads((tmp_path / "author.json").read_text())
    assert identity["name"] == "alice"
    rows = blindpad("history", edit, state=tmp_path).stdout.splitlines()[1:]
    assert [row.split()[3] for row in rows] == ["alice"] * len(rows)


def test_text_that_is_not_utf8_is_refused_before_connecting(tmp_path: Path) -> None:
    link = nowhere()  # nothing listens: exit 2 (not 1) proves nothing was tried
    # PYTHONUTF8=1 is what a C.UTF-8 locale gives: stdin decodes with surrogateescape.
    utf8_mode = {"PYTHONUTF8": "1"}
    cases: list[tuple[tuple[str | bytes, ...], bytes]] = [
        (("write", link, "--timeout", "3600"), b"caf\xe9"),
        (("append", link, "--timeout", "3600"), b"\xff\xfe"),
        (("append", link, b"caf\xe9", "--timeout", "3600"), b""),
    ]
    for args, stdin in cases:
        result = raw(*args, stdin=stdin, env=utf8_mode, state=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        line = one_line(result.stderr)
        assert "not valid UTF-8" in line, line
        assert "nothing was sent" in line, line
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9")
    result = raw("write", link, str(bad), state=tmp_path)
    assert result.returncode == 2
    assert str(bad) in one_line(result.stderr)


def test_a_missing_editor_is_one_line_before_connecting(tmp_path: Path) -> None:
    env = {"EDITOR": "no-such-editor-blindpad", "VISUAL": ""}
    result = blindpad("edit", nowhere(), "--timeout", "3600", env=env, state=tmp_path)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "no editor" in line, line
    assert "no-such-editor-blindpad" in line, line


def test_debug_shows_the_traceback_and_only_then(tmp_path: Path) -> None:
    env = {"EDITOR": "no-such-editor-blindpad", "VISUAL": ""}
    quiet = blindpad("edit", nowhere(), env=env, state=tmp_path)
    one_line(quiet.stderr)
    loud = blindpad("edit", "--debug", nowhere(), env=env, state=tmp_path)
    by_env = blindpad("edit", nowhere(), env={**env, "BLINDPAD_DEBUG": "1"}, state=tmp_path)
    for result in (loud, by_env):
        assert result.returncode == 2
        assert "Traceback" in result.stderr
        assert result.stderr.splitlines()[-1] == quiet.stderr.strip()


def test_every_command_takes_debug_and_lists_the_exit_codes(tmp_path: Path) -> None:
    for name in COMMANDS:
        shown = blindpad(name, "--help", state=tmp_path).stdout
        assert "--debug" in shown, name
        assert "exit codes:" in shown, name
        assert "no such pad" in shown, name


def test_an_unexpected_error_is_one_line_asking_for_a_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken() -> int:
        raise ZeroDivisionError("a bug")

    assert _common.execute("cat", None, broken) == _common.INTERNAL == 70
    line = one_line(capsys.readouterr().err)
    assert line.startswith("blindpad cat: internal error (ZeroDivisionError: a bug)")
    assert "--debug" in line


def test_a_refusal_says_what_it_means() -> None:
    code, line = _common.describe(RelayRefused("CREATE_TOKEN_REQUIRED", "refused a subscribe"))
    assert code == 1
    assert "creation token" in line


def test_a_pad_creation_flood_is_told_when_to_try_again(tmp_path: Path) -> None:
    """CREATE_RATE_LIMITED: one line that says what the limit is and when to retry."""
    store = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    relay = RelayProcess("--store", store, "--create-burst", "1", "--create-per-minute", "2")
    try:
        new_pad(relay.handle.url, tmp_path / "state")
        refused = blindpad("new", "--relay", relay.handle.url, state=tmp_path / "state")
    finally:
        relay.stop()
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.splitlines() == [
        "blindpad new: the relay refused (CREATE_RATE_LIMITED): this relay limits how many "
        "pads one address may create a minute (try again in 30 s)"
    ]


def test_output_closed_early_is_quiet(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that already exited
    try:
        result = subprocess.run(
            [sys.executable, "-m", "blindpad", "view-link", nowhere()],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(tmp_path)},
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == b""


def test_nothing_listening_fails_at_once_with_one_line(tmp_path: Path) -> None:
    # --timeout 3600: a command that retried would hang here (the subprocess
    # timeout fails the test); the SDK tests count the attempts.
    link = nowhere()
    base = link.split("/p/")[0]
    runs = [
        ("new", "--relay", base, "--timeout", "3600"),
        ("append", link, "x", "--timeout", "3600"),
        ("write", link, "--timeout", "3600"),
        ("watch", link, "--timeout", "3600"),
        ("edit", link, "--timeout", "3600"),
        ("cat", link),
        ("history", link),
    ]
    env = {"EDITOR": sys.executable, "VISUAL": ""}
    for args in runs:
        result = blindpad(*args, stdin="x", env=env, state=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        line = one_line(result.stderr)
        assert "cannot reach the relay" in line, line
        assert "is the relay running" in line, line


def test_a_link_to_a_relay_without_the_pad_is_refused_not_shown_empty(
    relay: str, tmp_path: Path
) -> None:
    stranger = str(crypto.PadLink.new(relay))  # a well-formed link this relay never saw
    env = {"EDITOR": sys.executable, "VISUAL": ""}
    for args in (
        ("cat", stranger),
        ("history", stranger),
        ("append", stranger, "x"),
        ("write", stranger),
        ("watch", stranger),
        ("edit", stranger),
    ):
        result = blindpad(*args, stdin="x", env=env, state=tmp_path)
        assert result.returncode == 3, (args, result.stderr)
        assert "no such pad on this relay" in one_line(result.stderr)
    assert blindpad("cat", stranger, state=tmp_path).returncode == 3  # nothing was created
    edit, _ = new_pad(relay, tmp_path)
    empty = blindpad("cat", edit, state=tmp_path)
    assert (empty.returncode, empty.stdout) == (0, "")  # a new pad exists, and is empty


async def settled(pad: Pad) -> None:
    """Wait until what the pad's ticker has to send is sent and answered: the
    snapshots found due and the compactions after them.

    A snapshot found due goes at a tick once saved (or 2 s on), and a loop that
    awaits ``synced`` after each key gives the ticker no turn while saved: with
    a fast relay, such a loop could type a thousand keys and send no snapshot.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        state = pad.session.debug_state()
        done = state["compacted"]
        answered = done["sent"] == done["stored"] + done["refused"]
        if answered and not state["due"] and not state["uploading"]:
            return
        assert time.monotonic() < deadline, f"hung: snapshots or compactions unanswered {state!r}"
        await asyncio.sleep(0.02)


def test_compaction_keeps_the_pad_small_and_cat_at_reads_what_is_kept(tmp_path: Path) -> None:
    """An editor's client compacts by default: the relay keeps the newest snapshots, a
    short tail and thinned checkpoints; history lists them; cat --at prints any kept
    revision exactly, and the nearest checkpoint before a trimmed one (saying so)."""
    store = tmp_path / "relay.sqlite3"
    relay = RelayProcess("--store", f"sqlite:///{store}")
    try:
        url = relay.handle.url
        edit, view = new_pad(url, tmp_path)
        typed = "".join(chr(0x4E00 + i) for i in range(320))  # patch k makes typed[:k]

        async def type_one_by_one() -> None:
            async with Pad.open(edit, state_dir=tmp_path / "sdk") as pad:
                await pad.synced(TIMEOUT)
                for char in typed:
                    await pad.insert(len(pad.text), char)
                    await pad.synced(TIMEOUT)
                await settled(pad)
                compacted = pad.session.debug_state()["compacted"]
                assert compacted["sent"] >= 1
                assert compacted["stored"] >= 1

        asyncio.run(type_one_by_one())
        keys = crypto.parse_link(view).keys
        answer = httpx.get(
            f"{url.rstrip('/')}/v1/channels/{keys.channel_id.hex()}/snapshots",
            headers={"Authorization": f"Blindpad-Read {keys.read_token.hex()}"},
            timeout=TIMEOUT,
        )
        assert answer.status_code == 200, answer.text
        listing = answer.json()
        floor, kept = listing["floor"], [s["seq"] for s in listing["snapshots"]]
        assert floor > 0
        assert floor in kept
        with sqlite3.connect(store) as db:
            stored = db.execute("SELECT count(*) FROM patches").fetchone()[0]
        assert stored == len(typed) - floor  # only the tail after the floor
        exact = blindpad("cat", view, "--at", str(floor + 3), state=tmp_path)
        assert (exact.returncode, exact.stdout, exact.stderr) == (0, typed[: floor + 3], "")
        below = [x for x in kept if x < floor]
        if below:  # a checkpoint: cat before the floor prints the nearest one, saying so
            asked = below[-1] + 1
            near = blindpad("cat", view, "--at", str(asked), state=tmp_path)
            assert near.returncode == 0, near.stderr
            assert near.stdout == typed[: below[-1]]
            assert f"after patch {below[-1]}" in near.stderr
        gone = blindpad("cat", view, "--at", "1", state=tmp_path)
        if not below or below[0] > 1:
            assert gone.returncode == _common.NOT_FOUND
            assert "trimmed" in gone.stderr
        past = blindpad("cat", view, "--at", str(len(typed) + 1), state=tmp_path)
        assert past.returncode == _common.NOT_FOUND
        bad = blindpad("cat", view, "--at", "yesterday", state=tmp_path)
        assert bad.returncode == _common.USAGE
        now = blindpad("cat", view, "--at", datetime.now(UTC).isoformat(), state=tmp_path)
        assert (now.returncode, now.stdout) == (0, typed)
        listed = blindpad("history", view, state=tmp_path).stdout.splitlines()
        marks = [
            row.split()[-1] for row in listed[2:] if row.split()[-1] in ("snapshot", "checkpoint")
        ]
        assert marks.count("snapshot") >= 1
        assert marks.count("checkpoint") == len(below)

        # The pad's retention setting: set by one editor, followed by every editor's
        # compaction (here 0: no checkpoints), shown to a reader.
        unset = blindpad("retention", view, state=tmp_path)
        assert (unset.returncode, unset.stdout.split(":")[0]) == (0, "no retention setting")
        setting = blindpad("retention", edit, "0", state=tmp_path)
        assert setting.returncode == 0, setting.stderr
        shown = blindpad("retention", view, state=tmp_path)
        assert "within 0%" in shown.stdout
        refused = blindpad("retention", view, "0", state=tmp_path)
        assert refused.returncode == _common.USAGE  # a view link cannot set it

        async def type_until_compacted() -> str:
            async with Pad.open(edit, state_dir=tmp_path / "sdk2") as pad:
                await pad.synced(TIMEOUT)
                assert pad.retention == 0
                for char in typed * 4:
                    await pad.insert(len(pad.text), char)
                    await pad.synced(TIMEOUT)
                    await settled(pad)
                    if pad.session.debug_state()["compacted"]["stored"] >= 1:
                        return pad.text
                raise AssertionError("no compaction after 1,280 more patches")

        text = asyncio.run(type_until_compacted())
        after = httpx.get(
            f"{url.rstrip('/')}/v1/channels/{keys.channel_id.hex()}/snapshots",
            headers={"Authorization": f"Blindpad-Read {keys.read_token.hex()}"},
            timeout=TIMEOUT,
        ).json()
        assert after["floor"] > floor
        assert [s["seq"] for s in after["snapshots"] if s["seq"] < after["floor"]] == []
        assert blindpad("cat", view, state=tmp_path).stdout == text
    finally:
        relay.stop()


def test_a_json_pad_from_the_command_line(relay: str, tmp_path: Path) -> None:
    made = blindpad("new", "--json", "--relay", relay, state=tmp_path)
    assert made.returncode == 0, made.stderr
    edit, view = made.stdout.splitlines()
    assert ".json." in edit
    assert ".json." in view
    assert blindpad("cat", view, state=tmp_path).stdout == "{}\n"
    steps = [
        ("[]", '{"items": [1, 2], "title": "plan"}'),
        ('["items", 1]', '{"done": true}'),
        ('["owner"]', '"ü😀"'),
    ]
    for path, value in steps:
        result = blindpad("set", edit, path, value, state=tmp_path)
        assert result.returncode == 0, result.stderr
    shown = blindpad("cat", view, state=tmp_path)
    assert shown.returncode == 0, shown.stderr
    want = {"items": [1, {"done": True}], "owner": "ü😀", "title": "plan"}
    assert json.loads(shown.stdout) == want
    assert shown.stdout == json.dumps(want, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert blindpad("history", view, state=tmp_path).returncode == 0


def test_bad_json_input_is_one_line_and_exit_code_2(relay: str, tmp_path: Path) -> None:
    made = blindpad("new", "--json", "--relay", relay, state=tmp_path)
    edit, view = made.stdout.splitlines()
    text_edit, _ = new_pad(relay, tmp_path)
    cases = [
        (("set", edit, "items", "1"), "PATH is not JSON"),
        (("set", edit, '{"a": 1}', "1"), "PATH must be a JSON array"),
        (("set", edit, '["a", -1]', "1"), "PATH must be a JSON array"),
        (("set", edit, '["a"]', "{nope"), "VALUE is not JSON"),
        (("set", edit, '["a"]', "NaN"), "cannot set"),
        (("set", edit, '["missing", "b"]', "1"), "cannot set"),
        (("set", view, '["a"]', "1"), "view link"),
        (("set", text_edit, '["a"]', "1"), "text pad"),
        (("append", edit, "x"), "JSON pad"),
    ]
    for args, said in cases:
        result = blindpad(*args, state=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert said in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert blindpad("cat", view, state=tmp_path).stdout == "{}\n"

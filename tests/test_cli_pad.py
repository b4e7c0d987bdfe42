"""The ``blindpad`` pad commands, end to end: a ``blindpad relay`` subprocess and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


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


def blindpad(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, state: Path
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "BLINDPAD_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "blindpad", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environ, **(env or {})},
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
    assert "could not load the pad" in offline.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    for name in ("new", "cat", "write", "append", "watch", "edit", "history", "view-link"):
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

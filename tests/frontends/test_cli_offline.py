"""``--offline`` on the pad commands (issue 19, item 4): a ``blindpad relay``
subprocess over a SQLite file, stopped and restarted on the same port, and
the CLI as a user runs it.  Exit code 4 means "done offline, kept here"."""

from __future__ import annotations

from pathlib import Path

from relay_support import RelayProcess, free_port
from test_cli_pad import blindpad, new_pad

from client.commands import _common


def _relay(store: Path, port: int) -> RelayProcess:
    return RelayProcess("--store", f"sqlite:///{store}", "--no-web", "--port", str(port))


def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_offline_commands_work_on_the_local_copy_and_sync_when_the_relay_returns(
    tmp_path: Path,
) -> None:
    store, port, state = tmp_path / "relay.sqlite3", free_port(), tmp_path / "state"
    relay = _relay(store, port)
    try:
        edit, view = new_pad(relay.handle.url, state)
        assert blindpad("append", edit, "hello 😀", state=state).returncode == 0
    finally:
        relay.stop()

    # The relay is down: without --offline, one line and exit 1, as before.
    refused = blindpad("append", edit, "!", state=state)
    assert refused.returncode == _common.FAILED
    assert "cannot reach the relay" in _one_line(refused.stderr)

    kept = blindpad("append", "--offline", edit, " world", state=state)
    assert kept.returncode == _common.OFFLINE, kept.stderr
    assert "offline" in _one_line(kept.stderr)
    shown = blindpad("cat", "--offline", edit, state=state)
    assert shown.returncode == _common.OFFLINE, shown.stderr
    assert shown.stdout == "hello 😀 world"
    assert "offline" in _one_line(shown.stderr)
    plain = blindpad("cat", view, state=state)  # without --offline: unreachable
    assert plain.returncode == _common.FAILED
    _one_line(plain.stderr)

    relay = _relay(store, port)
    try:
        synced = blindpad("append", "--offline", edit, "!", state=state)
        assert synced.returncode == _common.OK, synced.stderr
        read = blindpad("cat", view, state=tmp_path / "someone-else")
        assert (read.returncode, read.stdout) == (0, "hello 😀 world!")
    finally:
        relay.stop()


def test_offline_without_a_local_copy_says_so_in_one_line(tmp_path: Path) -> None:
    store, port = tmp_path / "relay.sqlite3", free_port()
    relay = _relay(store, port)
    try:
        edit, _ = new_pad(relay.handle.url, tmp_path / "maker")
    finally:
        relay.stop()
    result = blindpad("append", "--offline", edit, "x", state=tmp_path / "state")
    assert result.returncode == _common.FAILED
    assert "no local copy of this pad" in _one_line(result.stderr)

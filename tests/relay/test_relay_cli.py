"""The ``blindpad relay`` command line: help, start line, backup, seed, web files."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from relay_support import ROOT, RelayProcess, running_relay
from services import fresh_postgres

from relay.app import RelayConfig
from relay.cli import main
from relay.store.postgresql import parse_url


def test_help_lists_every_limit() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in ("--host", "--port", "--store", "--public-url", "--create-token"):
        assert option in result.stdout
    assert "--max-pad-bytes" in result.stdout
    assert "--channel-quota-bytes" in result.stdout


def test_start_seed_backup(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite3"
    store = f"sqlite:///{db}"
    assert main(["seed", "50", "--store", store]) == 0
    proc = RelayProcess("--store", store)
    try:
        assert proc.handle.url.startswith("http://127.0.0.1:")
        copy = tmp_path / "copy.sqlite3"
        assert main(["backup", str(copy), "--store", store]) == 0
        assert copy.stat().st_size > 0
    finally:
        proc.stop()
    assert main(["backup", str(tmp_path / "x"), "--store", "memory:"]) == 2


def test_web_files_and_mime_types(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>the editor</p>")
    (tmp_path / "app.wasm").write_bytes(b"\0asm")
    (tmp_path / "boot.mjs").write_text("export {}")
    config = RelayConfig(store_url="memory:", web_dir=tmp_path)

    async def fetch(url: str) -> None:
        async with httpx.AsyncClient(base_url=url) as http:
            assert "the editor" in (await http.get("/p/")).text
            wasm = await http.get("/app.wasm")
            assert wasm.headers["content-type"] == "application/wasm"
            mjs = await http.get("/boot.mjs")
            assert mjs.headers["content-type"].startswith("text/javascript")

    with running_relay(config) as relay:
        asyncio.run(fetch(relay.url))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subcommands_have_their_own_help() -> None:
    for command, option in [
        ("serve", "--no-web"),
        ("backup", "path"),
        ("seed", "--base-url"),
        ("check", "--url"),
    ]:
        result = _run(command, "--help")
        assert result.returncode == 0, command
        assert f"blindpad relay {command}" in result.stdout or command == "serve"
        assert option in result.stdout, command
    assert "blindpad relay [serve]" in _run("--help").stdout
    bad = _run("seed")
    assert bad.returncode == 2
    assert "patches" in bad.stderr


def test_check_a_configuration_and_a_running_relay(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    assert main(["seed", "3", "--store", store]) == 0
    result = _run("check", "--store", store, "--no-web")
    assert result.returncode == 0, result.stderr
    assert "1 pads" in result.stdout
    assert "--no-web" in result.stdout
    assert _run("check", "--store", "nosuch://x", "--no-web").returncode == 1
    proc = RelayProcess("--store", "memory:", "--no-web")
    try:
        alive = _run("check", "--url", proc.handle.url)
        assert alive.returncode == 0, alive.stderr
        assert alive.stdout.strip().endswith("ok")
        page = httpx.get(proc.handle.url)
        assert "web editor is not installed" in page.text
        assert httpx.get(proc.handle.url + "assets/app.js").status_code == 404
    finally:
        proc.stop()
    dead = _run("check", "--url", proc.handle.url, "--timeout", "2")
    assert dead.returncode == 1
    assert dead.stderr.startswith("blindpad relay check: ")
    assert len(dead.stderr.strip().splitlines()) == 1


def test_a_bus_for_a_store_of_one_process_is_one_line_and_exit_1(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'one.sqlite3'}"
    result = _run("serve", "--port", "0", "--store", store, "--bus", "redis://127.0.0.1:6379/0")
    assert result.returncode == 1
    assert result.stderr.startswith("blindpad relay: --bus redis://127.0.0.1:6379/0: a bus joins")
    assert len(result.stderr.strip().splitlines()) == 1
    unknown = _run("serve", "--port", "0", "--store", "memory:", "--bus", "carrier-pigeon")
    assert unknown.returncode == 1
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr


def test_a_database_that_does_not_answer_is_one_line_without_its_password() -> None:
    gone = _run("serve", "--port", "0", "--store", "postgresql://blindpad:s3cret@127.0.0.1:1/x")
    assert gone.returncode == 1
    assert gone.stderr.startswith("blindpad relay: PostgreSQL at 127.0.0.1:1/x: ")
    assert len(gone.stderr.strip().splitlines()) == 1, gone.stderr
    assert "s3cret" not in gone.stderr


def test_the_startup_line_masks_a_store_password() -> None:
    from relay.cli import redacted

    url = "postgresql://blindpad:s3cret@db.internal:5432/pads?schema=a"
    assert redacted(url) == "postgresql://blindpad:***@db.internal:5432/pads?schema=a"
    assert redacted("sqlite:///./blindpad.sqlite3") == "sqlite:///./blindpad.sqlite3"


def test_a_serving_relay_collects_young_garbage_less_often_and_skips_what_startup_made() -> None:
    """The relay's collector setting (relay.cli.tune_gc; its effect on throughput is
    in bench/RESULTS.md), in a process of its own: it changes the interpreter's state."""
    script = (
        "import gc; from relay.cli import GC_YOUNG_THRESHOLD, tune_gc\n"
        "before = gc.get_threshold(); tune_gc(); after = gc.get_threshold()\n"
        "print(before[1:] == after[1:], after[0] == GC_YOUNG_THRESHOLD > before[0],"
        " gc.get_freeze_count() > 1000)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (shown.returncode, shown.stdout.split()) == (0, ["True", "True", "True"]), shown.stderr


def _to_schema_1(store: str) -> None:
    """Turn a store that ``seed`` wrote into one that says it holds protocol-1 pads
    (schema 1): a channel and schema version 1 are what the relay refuses it by."""
    if store.startswith("sqlite:///"):
        with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
            conn.execute("DROP TABLE disputes")
            conn.execute("DROP TABLE block_roots")
            conn.execute("DROP TABLE partial_ids")
            conn.execute("PRAGMA user_version = 1")
        return

    async def downgrade() -> None:
        import asyncpg  # type: ignore[import-untyped]

        from relay.store.postgresql import parse_url

        url = parse_url(store)
        conn = await asyncpg.connect(url.dsn)
        try:
            await conn.execute(f"SET search_path = {url.schema}")
            await conn.execute("DROP TABLE disputes")
            await conn.execute("DROP TABLE block_roots")
            await conn.execute("DROP TABLE partial_ids")
            await conn.execute("ALTER TABLE channels DROP COLUMN read_hash")
            await conn.execute("UPDATE blindpad_meta SET value = '1' WHERE key = 'schema_version'")
        finally:
            await conn.close()

    asyncio.run(downgrade())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_store_of_protocol_1_pads_is_one_line_and_exit_2(kind: str, tmp_path: Path) -> None:
    """PROTOCOL.md §15.2: no migration; the store is named, kept, and the line says what
    to do.  ``check`` says the same."""
    with contextlib.ExitStack() as stack:
        if kind == "sqlite":
            store = f"sqlite:///{tmp_path / 'v1.sqlite3'}"
            named = str(tmp_path / "v1.sqlite3")
        else:
            store = stack.enter_context(fresh_postgres())
            named = f"PostgreSQL schema {parse_url(store).schema} at "
        assert main(["seed", "3", "--store", store]) == 0
        _to_schema_1(store)
        for command in ("serve", "check"):
            port = ["--port", "0"] if command == "serve" else []
            result = _run(command, *port, "--store", store, "--no-web")
            assert result.returncode == 2, (command, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
            prefix = "blindpad relay: " if command == "serve" else "blindpad relay check: "
            assert result.stderr.startswith(prefix + named), result.stderr
            assert result.stderr.rstrip().endswith(
                " holds protocol-1 pads, which this relay cannot serve;"
                " keep it for a 0.1 relay or start a new store"
            )
        assert main(["seed", "1", "--store", store]) == 2  # still refused, still there


def test_ctrl_c_stops_the_relay_with_exit_0_and_no_traceback() -> None:
    """SIGINT (Ctrl-C in a terminal) with Python's default handler in place:
    uvicorn stops gracefully and raises the signal again, which asyncio.run
    turned into a KeyboardInterrupt traceback and exit -2."""
    command = [sys.executable, "-m", "relay", "--port", "0", "--store", "memory:", "--no-web"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest, rest

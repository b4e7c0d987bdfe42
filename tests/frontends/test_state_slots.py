"""The state directory's slots: several processes of one user on one pad (issue 13).

A slot is held with ``flock``, which conflicts between two open files even
inside one process, so one test process can play several processes; the
cross-process cases (a live ``watch`` beside writes, a killed writer's slot
adopted) run real processes in tests/frontends/test_cli_pad.py and tests/frontends/test_sdk_e2e.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import crypto
from client.errors import StateLocked
from client.state import MAX_SLOTS, StateDir
from client.state import _create_once as create_once

CHANNEL = bytes(range(32))


def test_a_second_opener_takes_the_next_slot_instead_of_failing(tmp_path: Path) -> None:
    root = StateDir(tmp_path)
    first = root.open_pad(CHANNEL)
    second = root.open_pad(CHANNEL)
    try:
        assert (first.slot, second.slot) == (0, 1)
        first.write_pending([b"mine"])
        second.write_pending([b"theirs"])
        assert (first.folder / "pending").read_bytes() != (second.folder / "pending").read_bytes()
    finally:
        first.close()
        second.close()


def test_a_slot_left_with_a_log_is_adopted_before_a_free_empty_one(tmp_path: Path) -> None:
    root = StateDir(tmp_path)
    live = root.open_pad(CHANNEL)
    dead = root.open_pad(CHANNEL)
    dead.write_pending([b"unacknowledged one", b"two"])
    dead.close()  # the process died: its lock is free, its log is not empty
    live.close()  # slot 0 is free too, and empty
    reopened = root.open_pad(CHANNEL)
    try:
        assert reopened.slot == 1
        assert reopened.recovered() == [b"unacknowledged one", b"two"]
    finally:
        reopened.close()


def test_slot_zero_is_where_earlier_versions_kept_their_only_log(tmp_path: Path) -> None:
    folder = tmp_path / "pads" / CHANNEL.hex()
    folder.mkdir(parents=True)
    (folder / "pending").write_bytes(len(b"old").to_bytes(4, "big") + b"old")
    (folder / "head.json").write_text(json.dumps({"seq": 7, "id": "ab" * 32}))
    state = StateDir(tmp_path).open_pad(CHANNEL)
    try:
        assert state.slot == 0
        assert state.recovered() == [b"old"]
        assert state.last_head() == (7, bytes.fromhex("ab" * 32))
    finally:
        state.close()


def test_the_last_head_is_shared_by_the_slots(tmp_path: Path) -> None:
    root = StateDir(tmp_path)
    first = root.open_pad(CHANNEL)
    second = root.open_pad(CHANNEL)
    try:
        first.write_head((3, b"\x01" * 32))
        assert second.last_head() == (3, b"\x01" * 32)
        second.write_head((5, b"\x02" * 32))
        first.write_head((4, b"\x03" * 32))  # lower than what the other slot verified
        assert first.last_head() == (5, b"\x02" * 32)
        assert json.loads((first.pad_folder / "head.json").read_text()) == {
            "height": 5,
            "id": "02" * 32,
        }
    finally:
        first.close()
        second.close()


def test_only_when_every_slot_is_taken_is_the_pad_locked(tmp_path: Path) -> None:
    root = StateDir(tmp_path)
    held = [root.open_pad(CHANNEL) for _ in range(MAX_SLOTS)]
    try:
        with pytest.raises(StateLocked, match="processes have this pad open"):
            root.open_pad(CHANNEL)
    finally:
        for state in held:
            state.close()


def test_a_new_identity_never_replaces_one_written_first(tmp_path: Path) -> None:
    # Two processes that both found no identity race to write one: the
    # first write wins and the loser reads it, so both sign with one key.
    path = tmp_path / "author.json"
    winner, loser = crypto.Author.generate("one"), crypto.Author.generate("two")
    create_once(path, winner)
    create_once(path, loser)
    assert StateDir(tmp_path).author().public_key == winner.public_key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["author.json"]

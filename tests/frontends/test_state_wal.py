"""The SDK's write-ahead log on disk: the base text beside the sealed patches (client/state.py)."""

from __future__ import annotations

import stat
from pathlib import Path

from client.recovery import Base
from client.state import StateDir

CHANNEL = b"\x05" * 32


def bases(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("base-*"))


def test_the_base_is_written_only_when_the_first_parent_changes(tmp_path: Path) -> None:
    state = StateDir(tmp_path).open_pad(CHANNEL)
    first = Base(b"\x01" * 32, 7, "text at patch 1 ✓")
    state.write_pending([b"p2"], first)
    (path,) = state.folder.glob("base-*")
    inode = path.stat().st_ino
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # plaintext
    state.write_pending([b"p2", b"p3"], first)  # same parent: only the patches
    assert path.stat().st_ino == inode
    second = Base(b"\x02" * 32, 8, "text at patch 2")
    state.write_pending([b"p3"], second)  # p2 acknowledged: a new base, the old one goes
    assert bases(state.folder) == [f"base-{'02' * 32}"]
    state.close()
    again = StateDir(tmp_path).open_pad(CHANNEL)
    assert again.recovered() == [b"p3"]
    assert again.recovered_bases() == [second]
    again.write_pending([])  # everything acknowledged: no base left behind
    assert bases(again.folder) == []
    again.close()


def test_a_log_from_before_bases_still_reads_and_damaged_bases_are_skipped(
    tmp_path: Path,
) -> None:
    state = StateDir(tmp_path).open_pad(CHANNEL)
    state.write_pending([b"old", b"log"])  # what earlier versions wrote: no base
    (state.folder / f"base-{'03' * 32}").write_bytes(b"not a base file")
    state.close()
    again = StateDir(tmp_path).open_pad(CHANNEL)
    assert again.recovered() == [b"old", b"log"]
    assert again.recovered_bases() == []
    again.close()

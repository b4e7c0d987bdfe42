"""The SDK's write-ahead log on disk: the base text beside the sealed patches (client/state.py)."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import crypto
from client.recovery import Base
from client.state import MAX_LOG, StateDir

CHANNEL = b"\x05" * 32


def bases(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("base-*"))


def sealed_chain(keys: crypto.PadKeys, parent: bytes, count: int) -> list[bytes]:
    """``count`` sealed patches, each on the one before, the first on ``parent``."""
    author, out = crypto.Author.generate("t"), []
    for n in range(count):
        data = crypto.seal(keys, author, crypto.Kind.PATCH, parent, b"patch %d" % n)
        out.append(data)
        parent = hashlib.sha256(data).digest()
    return out


def test_the_typing_path_appends_and_an_ack_alone_writes_nothing(tmp_path: Path) -> None:
    keys = crypto.PadKeys.generate()
    p1, p2, p3 = sealed_chain(keys, b"\x01" * 32, 3)
    (q,) = sealed_chain(keys, b"\x09" * 32, 1)  # made on someone else's patch
    state = StateDir(tmp_path).open_pad(CHANNEL)
    first = Base(b"\x01" * 32, 7, "text at patch 1 ✓")
    state.write_pending([p1], first)
    (path,) = state.folder.glob("base-*")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # plaintext
    log = state.folder / "pending"
    inode = log.stat().st_ino
    state.write_pending([p1, p2], first)  # p2 continues p1: appended, same file
    assert log.stat().st_ino == inode
    size = log.stat().st_size
    state.write_pending([p2], Base(hashlib.sha256(p1).digest(), 8, "after p1"))
    assert log.stat().st_size == size  # p1 acknowledged: nothing written
    state.write_pending([p2, p3])
    assert log.stat().st_ino == inode
    assert bases(state.folder) == [f"base-{'01' * 32}"]
    state.close()
    again = StateDir(tmp_path).open_pad(CHANNEL)
    assert again.recovered() == [p1, p2, p3]  # recovery finds p1 (and p2) landed
    assert again.recovered_bases() == [first]
    second = Base(b"\x09" * 32, 9, "text at someone else's patch")
    again.write_pending([q], second)  # starts elsewhere: the log and a base anew
    assert bases(again.folder) == [f"base-{'09' * 32}"]
    assert again.recovered() == [q]
    with open(again.folder / "pending", "ab") as file:  # a crash cut an append short
        file.write(len(p1).to_bytes(4, "big") + p1[:10])
    assert again.recovered() == [q]
    again.write_pending([], exact=True)  # a clean close: the log exactly as it is
    assert bases(again.folder) == []
    assert again.recovered() == []
    again.close()


def test_the_log_is_written_whole_every_max_log_patches(tmp_path: Path) -> None:
    keys = crypto.PadKeys.generate()
    chain = sealed_chain(keys, b"\x01" * 32, MAX_LOG + 2)
    state = StateDir(tmp_path).open_pad(CHANNEL)
    state.write_pending(chain[:1], Base(b"\x01" * 32, 1, "t"))
    inode = (state.folder / "pending").stat().st_ino
    for n in range(2, MAX_LOG + 1):
        state.write_pending(chain[n - 1 : n], None)  # the ones before acknowledged
    assert (state.folder / "pending").stat().st_ino == inode
    assert state.recovered() == chain[:MAX_LOG]
    base = Base(hashlib.sha256(chain[MAX_LOG - 1]).digest(), MAX_LOG, "t" * MAX_LOG)
    state.write_pending(chain[MAX_LOG : MAX_LOG + 1], base)
    assert (state.folder / "pending").stat().st_ino != inode  # written whole, shorter
    assert state.recovered() == chain[MAX_LOG : MAX_LOG + 1]
    assert bases(state.folder) == [f"base-{base.parent.hex()}"]
    state.close()


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

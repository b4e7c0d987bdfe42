"""Write the golden vectors of the frame codec: ``tests/vectors/frames.jsonl``.

Run ``python tests/vectors/make_frames.py`` after a deliberate change of the
wire layout (docs/PROTOCOL.md §3) and review the diff.  Each line is one JSON
object ``{"suite", "case", "input", "expect"}``:

- ``frames.encode``: input ``{"type": FrameType name, "fields": {...}}`` (bytes
  fields as hex); expect the message as hex.  The checker encodes the fields
  and decodes the hex back to the same frame.
- ``frames.reject``: input ``{"hex"}``; expect ``{"error": "FrameError"}``.

``check_frames.py`` beside this file checks one record.  Output is
deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wire import frames as f

OUT = Path(__file__).with_name("frames.jsonl")
ID = bytes(range(32))
HEAD = bytes(range(32, 64))

Record = dict[str, Any]


def _encode(case: str, frame: f.Frame) -> Record:
    fields = {
        field.name: (value.hex() if isinstance(value, bytes) else value)
        for field in dataclasses.fields(frame)
        for value in [getattr(frame, field.name)]
    }
    kind = f.frame_type(frame).name
    return {
        "suite": "frames.encode",
        "case": case,
        "input": {"type": kind, "fields": fields},
        "expect": f.encode(frame).hex(),
    }


def _reject(case: str, data: bytes) -> Record:
    return {
        "suite": "frames.reject",
        "case": case,
        "input": {"hex": data.hex()},
        "expect": {"error": "FrameError"},
    }


def _snapshot_flag(flags: int) -> bytes:
    data = bytearray(f.encode(f.Snapshot(ID, 3, 0, 10, 4, b"chunk")))
    data[1 + 32 + 8] = flags
    return bytes(data)


def records() -> list[Record]:
    """Every vector, in file order."""
    ack = f.encode(f.Ack(7, 9, ID))
    return [
        _encode("ACK", f.Ack(7, 9, ID)),
        _encode("REFUSE STALE with the head", f.Refuse(8, 9, 0, 10, HEAD)),
        _encode("REFUSE YIELD with retry_after_ms", f.Refuse(8, 31, 20, 0, bytes(32))),
        _encode("BROADCAST", f.Broadcast(ID, 11, b"sealed")),
        _encode("HISTORY_END", f.HistoryEnd(1, ID, 11, HEAD)),
        _encode("PUSH of a version-1 envelope (no channel)", f.Push(12, b"sealed")),
        _encode("PUSH of a version-2 envelope", f.Push(12, b"sealed", channel_id=HEAD)),
        _encode("SESSION", f.Session(13, HEAD, b"record")),
        _encode("RECORD of a session", f.Record(HEAD, 5, b"record")),
        _encode(
            "SNAPSHOT, LIVE and DISPUTED",
            f.Snapshot(ID, 3, f.SNAPSHOT_LIVE | f.SNAPSHOT_DISPUTED, 10, 4, b"chunk"),
        ),
        _reject("ACK one byte short", ack[:-1]),
        _reject("ACK with a trailing byte", ack + b"\x00"),
        _reject("SNAPSHOT with an unknown flag", _snapshot_flag(0x04)),
    ]


def render() -> str:
    """The whole vector file, deterministically."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in records())


def main() -> None:
    OUT.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()

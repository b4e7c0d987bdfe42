"""Check one golden vector of the frame codec (``frames*.jsonl``).

Standard library plus ``wire.frames`` only: this runs under CPython and under
Pyodide.  ``check(record)`` raises ``AssertionError`` naming the suite, the
case and the mismatch; the record format is described in ``make_frames.py``.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from wire import frames as f


def _fail(record: dict[str, Any], what: str, got: object, want: object) -> AssertionError:
    where = f"{record.get('suite')} / {record.get('case')!r}"
    return AssertionError(f"{where}: {what}\n  got:  {got!r}\n  want: {want!r}")


def _frame(spec: dict[str, Any]) -> f.Frame:
    """The frame ``spec`` names: its class is the FrameType name without underscores."""
    name = spec["type"].replace("_", "").lower()
    (frame_cls,) = [cls for cls in typing.get_args(f.Frame) if cls.__name__.lower() == name]
    values = {}
    for field in dataclasses.fields(frame_cls):
        value = spec["fields"][field.name]
        values[field.name] = bytes.fromhex(value) if field.type == "bytes" else value
    frame: f.Frame = frame_cls(**values)
    return frame


def check(record: dict[str, Any]) -> None:
    """Check one record (see ``make_frames.py``)."""
    suite, inp, expect = record["suite"], record["input"], record["expect"]
    if suite == "frames.encode":
        frame = _frame(inp)
        got = f.encode(frame).hex()
        if got != expect:
            raise _fail(record, "encode", got, expect)
        back = f.decode(bytes.fromhex(expect))
        if back != frame:
            raise _fail(record, "decode", back, frame)
    elif suite == "frames.reject":
        try:
            frame = f.decode(bytes.fromhex(inp["hex"]))
        except f.FrameError:
            return
        raise _fail(record, "expected FrameError", frame, expect)
    else:
        raise _fail(record, "unknown suite", suite, "frames.encode or frames.reject")

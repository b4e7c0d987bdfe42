"""The golden vectors of crypto/: every record checks, and regenerating changes nothing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, VECTORS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records() -> list[dict[str, Any]]:
    lines = (VECTORS / "crypto.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("record", _records(), ids=lambda r: f"{r['suite']}:{r['case']}")
def test_vector(record: dict[str, Any]) -> None:
    _load("check_crypto").check(record)


def test_regenerating_gives_identical_bytes() -> None:
    rendered = _load("make_crypto").render()
    assert rendered == (VECTORS / "crypto.jsonl").read_text(encoding="utf-8")


def test_vectors_cover_the_required_messages_and_errors() -> None:
    records = _records()
    contents = {len(r["content"]) // 2 for r in records if r["suite"] == "seal"}
    assert {0, 65536} <= contents
    errors = {r["error"] for r in records if "error" in r}
    assert {
        "MalformedEnvelope",
        "WrongChannel",
        "BadChannelSignature",
        "DecryptionFailed",
        "BadAuthorSignature",
        "ReadOnlyKeys",
        "InvalidLink",
    } <= errors


def test_checker_rejects_a_wrong_record() -> None:
    record = next(r for r in _records() if r["suite"] == "seal")
    record = {**record, "sealed": record["sealed"][:-2] + "00"}
    with pytest.raises(AssertionError, match="sealed bytes differ"):
        _load("check_crypto").check(record)

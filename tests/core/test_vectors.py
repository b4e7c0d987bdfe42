"""Every golden vector file, checked under CPython by the same runner Pyodide uses."""

from __future__ import annotations

from pathlib import Path

from vectors import make_chain, make_frames, make_integrity, make_json, runner

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def test_every_vector_passes_under_cpython() -> None:
    counts = runner.run(VECTORS)
    assert set(counts) == {"chain", "crypto", "frames", "integrity", "json", "text"}
    assert all(count > 0 for count in counts.values())


def test_chain_vectors_are_what_the_generator_writes() -> None:
    assert (VECTORS / "chain.jsonl").read_text(encoding="utf-8") == make_chain.render()


def test_json_vectors_are_what_the_generator_writes() -> None:
    assert (VECTORS / "json.jsonl").read_text(encoding="utf-8") == make_json.render()


def test_frame_vectors_are_what_the_generator_writes() -> None:
    assert (VECTORS / "frames.jsonl").read_text(encoding="utf-8") == make_frames.render()


def test_integrity_vectors_are_what_the_generator_writes() -> None:
    assert (VECTORS / "integrity.jsonl").read_text(encoding="utf-8") == make_integrity.render()

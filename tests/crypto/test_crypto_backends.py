"""The backend seam, lazy loading, identities and the wheel the browser gets."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from crypto import Author, InvalidIdentity
from crypto.backend import get_backend
from crypto.errors import DecryptionFailed
from relay.edge.wheel import build_wheel, main

ROOT = Path(__file__).resolve().parents[2]


def test_import_crypto_loads_no_backend() -> None:
    code = "import sys, crypto; print(sorted(m for m in sys.modules if 'nacl' in m))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_backend_contract() -> None:
    backend = get_backend()
    seed = bytes(32)
    public = backend.public_key(seed)
    signature = backend.sign(seed, b"message")
    assert (len(public), len(signature)) == (32, 64)
    assert backend.verify(public, b"message", signature)
    assert not backend.verify(public, b"messagE", signature)
    assert not backend.verify(b"\xff" * 32, b"message", signature)
    boxed = backend.secretbox_seal(b"k" * 32, b"n" * 24, b"secret")
    assert len(boxed) == 16 + 6
    assert backend.secretbox_open(b"k" * 32, b"n" * 24, boxed) == b"secret"
    with pytest.raises(DecryptionFailed):
        backend.secretbox_open(b"K" * 32, b"n" * 24, boxed)
    assert len(backend.random_bytes(24)) == 24


def test_rfc8032_test_vector_1() -> None:
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = get_backend().public_key(seed)
    assert public.hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    signature = get_backend().sign(seed, b"")
    assert signature.hex().startswith(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    )


def test_identity_serialises_and_loads() -> None:
    author = Author.generate("Zoë 🦊", random=lambda n: bytes(range(n)))
    stored = author.to_json()
    assert json.loads(stored)["name"] == "Zoë 🦊"
    assert Author.from_json(stored) == author
    assert author.renamed("Z").public_key == author.public_key
    assert author.seed.hex() not in repr(author)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "not in format"),
        ('{"format": "blindpad-author-v1", "seed": 1, "name": "x"}', "string 'seed'"),
        ('{"format": "blindpad-author-v1", "seed": "!!", "name": "x"}', "base64url"),
        ('{"format": "blindpad-author-v1", "seed": "AAAA", "name": "x"}', "32 bytes"),
    ],
)
def test_damaged_identity_is_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        Author.from_json(text)


def test_display_name_is_bounded() -> None:
    Author.from_seed(bytes(32), "é" * 32)
    with pytest.raises(InvalidIdentity, match="65 bytes"):
        Author.from_seed(bytes(32), "é" * 32 + "x")
    with pytest.raises(InvalidIdentity, match="UTF-8"):
        Author.from_seed(bytes(32), "\ud800")


def test_wheel_is_deterministic_and_complete(tmp_path: Path) -> None:
    first = build_wheel(tmp_path / "a")
    second = build_wheel(tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert first.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(first) as wheel:
        names = wheel.namelist()
        record_name = next(n for n in names if n.endswith(".dist-info/RECORD"))
        record = wheel.read(record_name).decode()
        for name in names:
            assert name in record
            assert wheel.getinfo(name).date_time == (1980, 1, 1, 0, 0, 0)
        assert {"crypto/__init__.py", "crypto/py.typed", "client/__init__.py"} <= set(names)
        assert not any(n.startswith("relay/") or "__pycache__" in n for n in names)
        data = wheel.read("crypto/envelope.py")
    assert data == (ROOT / "crypto" / "envelope.py").read_bytes()
    assert hashlib.sha256(data).digest()


def test_wheel_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert Path(capsys.readouterr().out.strip()).exists()
    assert main([]) == 2

"""Write the golden vectors of :mod:`crypto` to ``tests/vectors/crypto.jsonl``.

Usage: ``python tests/vectors/make_crypto.py [OUT]`` (default: beside this file).

Every input is fixed (edit secrets, author seeds, nonces, session ids, clock
values), so the output is byte-identical on every run and on both backends;
``tests/crypto/test_crypto_vectors.py`` checks that regenerating changes nothing.
Each line is one JSON record with a ``suite`` (what ``check_crypto.check``
checks) and a ``case`` (its name); bytes are lowercase hex. Negative records carry the exact
error class name the operation must raise.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crypto import (  # noqa: E402 - needs the path above when run as a script
    ZERO_ID,
    Author,
    Kind,
    PadKeys,
    PadLink,
    Session,
    envelope2,
    envelope_id,
    seal,
    seal_ephemeral,
)
from crypto.envelope import assemble, signed_inner  # noqa: E402

Record = dict[str, Any]

SECRET_A = bytes(range(32))
SECRET_B = hashlib.sha256(b"blindpad vector secret B").digest()
SEED_ALICE = hashlib.sha256(b"blindpad vector author alice").digest()
SEED_BOB = hashlib.sha256(b"blindpad vector author bob").digest()
SESSION_1 = bytes.fromhex("00112233445566778899aabbccddeeff")
SESSION_2 = bytes.fromhex("ffeeddccbbaa99887766554433221100")
T0 = 1_700_000_000_000
MESSAGES = {
    "empty": b"",
    "emoji": "h\u00e9llo \U0001f44b\U0001f3fd \u4e16\u754c\n".encode(),
    "64k": bytes((i * 7 + 3) % 256 for i in range(65536)),
}


def nonce(label: str) -> bytes:
    """Return the fixed 24-byte nonce named ``label``."""
    return hashlib.sha256(b"blindpad vector nonce " + label.encode()).digest()[:24]


def fixed(label: str) -> Callable[[int], bytes]:
    """Return a ``random`` that yields the nonce named ``label``."""

    def random(n: int) -> bytes:
        assert n == 24, n
        return nonce(label)

    return random


def _keys_records() -> Iterator[Record]:
    for name, secret in (("A", SECRET_A), ("B", SECRET_B)):
        keys = PadKeys.from_edit_secret(secret)
        assert keys.sign_seed is not None
        yield {
            "suite": "keys",
            "case": f"keys {name}",
            "edit_secret": secret.hex(),
            "sign_seed": keys.sign_seed.hex(),
            "sym_key": keys.sym_key.hex(),
            "verify_key": keys.verify_key.hex(),
            "channel_id": keys.channel_id.hex(),
            "read_token": keys.read_token.hex(),
        }


def _link_records() -> Iterator[Record]:
    for base, secret in (
        ("https://relay.example", SECRET_A),
        ("http://127.0.0.1:8765/sub", SECRET_B),
    ):
        link = PadLink(base, PadKeys.from_edit_secret(secret))
        yield {
            "suite": "link",
            "case": f"link {base}",
            "base_url": base,
            "edit_secret": secret.hex(),
            "edit_link": str(link),
            "view_link": str(link.view_link()),
        }


def _link_error_records() -> Iterator[Record]:
    good = str(PadLink("https://relay.example", PadKeys.from_edit_secret(SECRET_A)))
    view = str(PadLink("https://relay.example", PadKeys.from_edit_secret(SECRET_A)).view_link())
    base, fragment = good.split("#")
    version, kind, payload, checksum = fragment.split(".")
    typo = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    cases = [
        ("empty", "", "link is empty"),
        ("no fragment", base, "no '#' fragment"),
        ("wrong path", good.replace("/p/#", "/x/#"), "must end in '/p/'"),
        ("bad scheme", "ftp://relay.example/p/#" + fragment, "http:// or https://"),
        ("secret in query", "https://relay.example/p/?" + fragment, "no '#' fragment"),
        ("truncated fields", f"{base}#{version}.{kind}.{payload}", "4 fields"),
        ("extra field", good + ".x", "4 fields"),
        ("version 2", f"{base}#2.{kind}.{payload}.{checksum}", "unsupported link version"),
        ("type x", f"{base}#{version}.x.{payload}.{checksum}", "'e' (edit) or 'v' (view)"),
        ("bad char", f"{base}#{version}.{kind}.{payload[:-1]}+.{checksum}", "not base64url"),
        ("truncated payload", f"{base}#1.e.{payload[:-5]}.{checksum}", "expected 43 (truncated?)"),
        ("view payload cut", view[:-20] + view[-9:], "expected 86 (truncated?)"),
        ("typo in payload", f"{base}#1.e.{typo}.{checksum}", "checksum does not match"),
        ("typo in checksum", good[:-1] + ("0" if good[-1] != "0" else "1"), "checksum"),
        ("edit as view", f"{base}#1.v.{payload}.{checksum}", "expected 86"),
    ]
    for name, text, message in cases:
        yield {
            "suite": "link_error",
            "case": f"link error: {name}",
            "link": text,
            "error": "InvalidLink",
            "message": message,
        }


def _author_records() -> Iterator[Record]:
    for seed, name in ((SEED_ALICE, "Alice"), (SEED_BOB, "B\u00f3b \U0001f41d"), (SEED_BOB, "")):
        yield {
            "suite": "author",
            "case": f"author {name!r}",
            "seed": seed.hex(),
            "author_name": name,
            "public_key": Author.from_seed(seed, name).public_key.hex(),
        }


def _seal_record(
    name: str, secret: bytes, author: Author, kind: Kind, ref: bytes, content: bytes
) -> Record:
    keys = PadKeys.from_edit_secret(secret)
    sealed = seal(keys, author, kind, ref, content, random=fixed(name))
    return {
        "suite": "seal",
        "case": name,
        "edit_secret": secret.hex(),
        "author_seed": author.seed.hex(),
        "author_name": author.name,
        "kind": kind.name.lower(),
        "ref": ref.hex(),
        "nonce": nonce(name).hex(),
        "content": content.hex(),
        "sealed": sealed.hex(),
        "id": envelope_id(sealed).hex(),
    }


def _seal_records() -> list[Record]:
    alice = Author.from_seed(SEED_ALICE, "Alice")
    bob = Author.from_seed(SEED_BOB, "B\u00f3b \U0001f41d")
    out = [_seal_record("patch genesis empty", SECRET_A, alice, Kind.PATCH, ZERO_ID, b"")]
    first = bytes.fromhex(out[0]["id"])
    out.append(_seal_record("patch emoji", SECRET_A, bob, Kind.PATCH, first, MESSAGES["emoji"]))
    out.append(_seal_record("patch 64k", SECRET_A, alice, Kind.PATCH, first, MESSAGES["64k"]))
    out.append(_seal_record("snapshot", SECRET_A, alice, Kind.SNAPSHOT, first, b"snapshot text"))
    out.append(_seal_record("trim", SECRET_A, bob, Kind.TRIM, first, b""))
    out.append(_seal_record("dispute", SECRET_A, bob, Kind.DISPUTE, first, b'{"height":1}'))
    out.append(_seal_record("patch channel B", SECRET_B, alice, Kind.PATCH, ZERO_ID, b"x"))
    return out


def _ephemeral_record(
    name: str, view: bool, author: Author, counter: int, payload: bytes
) -> Record:
    keys = PadKeys.from_edit_secret(SECRET_A)
    keys = keys.view() if view else keys
    session = Session(SESSION_1, counter - 1)
    sealed = seal_ephemeral(keys, author, session, payload, now_ms=T0, random=fixed(name))
    return {
        "suite": "ephemeral",
        "case": name,
        "edit_secret": SECRET_A.hex(),
        "view": view,
        "author_seed": author.seed.hex(),
        "author_name": author.name,
        "session_id": SESSION_1.hex(),
        "counter": counter,
        "sender_time_ms": T0,
        "nonce": nonce(name).hex(),
        "payload": payload.hex(),
        "sealed": sealed.hex(),
        "id": envelope_id(sealed).hex(),
    }


def _flip(data: bytes, byte: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


def _reject(name: str, sealed: bytes, error: str, op: str = "open", keys: str = "A") -> Record:
    return {
        "suite": "reject",
        "case": f"reject: {name}",
        "op": op,
        "edit_secret": (SECRET_A if keys == "A" else SECRET_B).hex(),
        "sealed": sealed.hex(),
        "error": error,
    }


def _reject_records(patch: bytes, ephemeral: bytes) -> Iterator[Record]:
    end = len(patch) - 64
    for name, data, error in (
        ("flipped version bit", _flip(patch, 0), "MalformedEnvelope"),
        ("flipped kind bit (patch -> 0x05)", _flip(patch, 1, 2), "MalformedEnvelope"),
        ("flipped kind bit (patch -> ephemeral)", _flip(patch, 1, 1), "MalformedEnvelope"),
        ("flipped channel id bit", _flip(patch, 2), "WrongChannel"),
        ("flipped ref bit", _flip(patch, 40, 7), "BadChannelSignature"),
        ("flipped body_len bit", _flip(patch, 69), "MalformedEnvelope"),
        ("flipped nonce bit", _flip(patch, 75, 3), "BadChannelSignature"),
        ("flipped ciphertext bit", _flip(patch, end - 1, 5), "BadChannelSignature"),
        ("flipped signature bit", _flip(patch, len(patch) - 1, 6), "BadChannelSignature"),
        ("truncated by one byte", patch[:-1], "MalformedEnvelope"),
        ("one byte appended", patch + b"\0", "MalformedEnvelope"),
        ("empty", b"", "MalformedEnvelope"),
        ("header only", patch[:70], "MalformedEnvelope"),
        ("ephemeral flipped ciphertext bit", _flip(ephemeral, 100), "DecryptionFailed"),
        ("ephemeral flipped ref bit", _flip(ephemeral, 34), "MalformedEnvelope"),
    ):
        yield _reject(name, data, error)
    yield _reject("opened with another pad's keys", patch, "WrongChannel", keys="B")
    yield _reject("ephemeral has no channel signature", ephemeral, "MalformedEnvelope", "verify")
    yield _reject("patch is not an ephemeral", patch, "MalformedEnvelope", "open_ephemeral")
    yield _reject("ciphertext moved under another header", _moved(patch), "BadChannelSignature")
    yield from _editor_forgeries(patch)


def _moved(patch: bytes) -> bytes:
    # A relay swaps the parent in the clear header and keeps the signature.
    return patch[:34] + hashlib.sha256(b"another parent").digest() + patch[66:]


def _editor_forgeries(patch: bytes) -> Iterator[Record]:
    keys_a, keys_b = PadKeys.from_edit_secret(SECRET_A), PadKeys.from_edit_secret(SECRET_B)
    alice = Author.from_seed(SEED_ALICE, "Alice")
    bob = Author.from_seed(SEED_BOB, "Bob")
    victim = bytes.fromhex(_seal_records()[1]["sealed"])
    inner = _inner_of(keys_a, victim)
    parent = hashlib.sha256(b"another parent").digest()
    rewrapped = assemble(keys_a, Kind.PATCH, parent, inner, random=fixed("rewrap"))
    yield _reject("editor re-wraps a signed inner under another parent", rewrapped, _BAD_AUTHOR)
    on_b = assemble(keys_b, Kind.PATCH, victim[34:66], inner, random=fixed("rewrap B"))
    yield _reject("editor re-wraps a signed inner on another channel", on_b, _BAD_AUTHOR, keys="B")
    as_snapshot = assemble(keys_a, Kind.SNAPSHOT, victim[34:66], inner, random=fixed("snap"))
    yield _reject("editor re-wraps a patch's inner as a snapshot", as_snapshot, _BAD_AUTHOR)
    forged = _impersonate(keys_a, bob, alice)
    yield _reject("editor signs as another author", forged, _BAD_AUTHOR)
    long_name = bytes(32) + bytes(64) + b"\x41" + b"x" * 65
    bad = assemble(keys_a, Kind.PATCH, ZERO_ID, long_name, random=fixed("long"))
    yield _reject("inner name length above 64", bad, "MalformedEnvelope")
    snap0 = assemble(keys_a, Kind.SNAPSHOT, ZERO_ID, inner, random=fixed("snap0"))
    yield _reject("snapshot of genesis", snap0, "MalformedEnvelope")
    short = signed_inner(alice, Kind.EPHEMERAL, keys_a.channel_id, ZERO_ID, b"short")
    eph = assemble(keys_a, Kind.EPHEMERAL, ZERO_ID, short, random=fixed("short"))
    yield _reject("ephemeral without session prefix", eph, "MalformedEnvelope", "open_ephemeral")


_BAD_AUTHOR = "BadAuthorSignature"


def _inner_of(keys: PadKeys, sealed: bytes) -> bytes:
    from crypto.backend import get_backend

    body = sealed[70 : len(sealed) - 64]
    return get_backend().secretbox_open(keys.sym_key, body[:24], body[24:])


def _impersonate(keys: PadKeys, signer: Author, victim: Author) -> bytes:
    real = signed_inner(signer, Kind.PATCH, keys.channel_id, ZERO_ID, b"I am Alice")
    name = victim.name.encode()
    inner = victim.public_key + real[32:96] + bytes((len(name),)) + name + b"I am Alice"
    return assemble(keys, Kind.PATCH, ZERO_ID, inner, random=fixed("impersonate"))


def _seal_error_records() -> Iterator[Record]:
    for kind in ("patch", "snapshot", "trim"):
        yield {
            "suite": "seal_error",
            "case": f"view link cannot seal a {kind}",
            "edit_secret": SECRET_A.hex(),
            "kind": kind,
            "error": "ReadOnlyKeys",
        }


def _guard_record() -> Record:
    alice, bob = Author.from_seed(SEED_ALICE, "A"), Author.from_seed(SEED_BOB, "B")
    a, b = alice.public_key.hex(), bob.public_key.hex()
    s1, s2 = SESSION_1.hex(), SESSION_2.hex()
    events = [
        (a, s1, 1, T0, T0, "ok"),
        (a, s2, 1, T0, T0 + 10, "ok"),
        (a, s1, 1, T0, T0 + 20, "ReplayedEphemeral"),
        (b, s1, 1, T0, T0 + 30, "ok"),
        (a, s1, 2, T0 + 100, T0 + 100, "ok"),
        (a, s1, 2, T0 + 100, T0 + 200, "ReplayedEphemeral"),
        (a, s2, 5, T0 + 300, T0 + 300, "ok"),
        (a, s2, 3, T0 + 300, T0 + 400, "ReplayedEphemeral"),
        (a, s1, 3, T0, T0 + 30_001, "StaleEphemeral"),
        (a, s1, 9, T0 + 100_000, T0 + 40_000, "StaleEphemeral"),
        (a, s1, 1, T0 + 100_000, T0 + 100_000, "ok"),
    ]
    keys = ("author", "session", "counter", "sender_time_ms", "now_ms", "result")
    return {
        "suite": "guard",
        "case": "replay guard: sessions, replays, staleness, forgetting",
        "timeout_ms": 30_000,
        "events": [dict(zip(keys, event, strict=True)) for event in events],
    }


SEED_SESSION = hashlib.sha256(b"blindpad vector session 1").digest()


def _v2_records() -> list[Record]:
    """Version 2 (PROTOCOL.md §9.1, §9.3): a session record, envelopes it
    signs, and what each check refuses."""
    keys = PadKeys.from_edit_secret(SECRET_A)
    bob = Author.from_seed(SEED_BOB, "B\u00f3b \U0001f41d")
    session = envelope2.SessionKeys.from_seed(SEED_SESSION)
    record = envelope2.seal_session_record(keys, bob, session, T0, random=fixed("session"))
    out: list[Record] = [
        {
            "suite": "session",
            "case": "session record",
            "edit_secret": SECRET_A.hex(),
            "author_seed": bob.seed.hex(),
            "author_name": bob.name,
            "session_seed": session.seed.hex(),
            "started_ms": T0,
            "nonce": nonce("session").hex(),
            "sealed": record.hex(),
            "tag": session.tag.hex(),
        }
    ]
    pad = envelope2.seal_pad_record(keys, 1, T0, 80, ((3600, 2592000),), random=fixed("pad"))
    out.append(
        {
            "suite": "pad",
            "case": "pad record",
            "edit_secret": SECRET_A.hex(),
            "doctype": 1,
            "created_ms": T0,
            "keep_pct": 80,
            "every_keep": [[3600, 2592000]],
            "nonce": nonce("pad").hex(),
            "sealed": pad.hex(),
        }
    )
    genesis = bytes(32)
    cases = [
        ("v2 patch genesis keystroke", Kind.PATCH, genesis, 1, 1, b"\x00\x01\x01\x00\x00\x01a"),
        (
            "v2 patch 64k",
            Kind.PATCH,
            hashlib.sha256(b"p").digest(),
            2**20 + 3,
            300,
            MESSAGES["64k"],
        ),
        ("v2 snapshot", Kind.SNAPSHOT, hashlib.sha256(b"x").digest(), 64, 2**14, b"snapshot"),
        ("v2 trim", Kind.TRIM, hashlib.sha256(b"x").digest(), 64, 2**14 + 1, b""),
        ("v2 settings", 0x07, hashlib.sha256(b"h").digest(), 65, 2**40, b"\x64\x00"),
        ("v2 dispute", Kind.DISPUTE, hashlib.sha256(b"s").digest(), 65, 2**63, b"{}"),
    ]
    for case, kind, ref, height, counter, content in cases:
        sealed = envelope2.seal(keys, session, kind, ref, height, counter, content)
        out.append(
            {
                "suite": "seal2",
                "case": case,
                "edit_secret": SECRET_A.hex(),
                "session_record": record.hex(),
                "session_seed": session.seed.hex(),
                "kind": int(kind),
                "ref": ref.hex(),
                "height": height,
                "counter": counter,
                "content": content.hex(),
                "sealed": sealed.hex(),
                "id": envelope_id(sealed).hex(),
            }
        )
    return out


def records() -> list[Record]:
    """Return every vector record, in file order."""
    out: list[Record] = [*_keys_records(), *_link_records(), *_link_error_records()]
    out += _author_records()
    seals = _seal_records()
    out += seals
    alice = Author.from_seed(SEED_ALICE, "Alice")
    ephemerals = [
        _ephemeral_record("ephemeral from editor", False, alice, 1, MESSAGES["emoji"]),
        _ephemeral_record("ephemeral from viewer", True, alice, 7, b""),
    ]
    out += ephemerals
    out += _reject_records(
        bytes.fromhex(seals[1]["sealed"]), bytes.fromhex(ephemerals[0]["sealed"])
    )
    out += _seal_error_records()
    out.append(_guard_record())
    out += _v2_records()
    _self_check(out)
    return out


def _self_check(out: list[Record]) -> None:
    assert len({record["case"] for record in out}) == len(out), "duplicate record names"


def render() -> str:
    """Return the file's text: one compact JSON object per line."""
    lines = [json.dumps(record, ensure_ascii=False, separators=(",", ":")) for record in records()]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Write the vectors; ``argv[0]``, if given, is the output path."""
    target = Path(argv[0]) if argv else Path(__file__).with_name("crypto.jsonl")
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {len(records())} records to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

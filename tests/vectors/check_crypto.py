"""Check one record of ``tests/vectors/crypto*.jsonl`` against :mod:`crypto`.

Stdlib and ``crypto`` only, so it runs unchanged under CPython (PyNaCl) and
under Pyodide (libsodium through the JS bridge): the generic vector runner
calls :func:`check` for every line and counts an ``AssertionError`` (or any
other exception) as a failure. Records are written by ``make_crypto.py``;
their ``suite`` selects the check and ``case`` names them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import crypto
from crypto import (
    Author,
    EphemeralGuard,
    Kind,
    PadKeys,
    PadLink,
    Session,
    envelope2,
    envelope_id,
    open_ephemeral,
    parse_header,
    parse_link,
    seal,
    seal_ephemeral,
    verify_channel_signature,
)

Record = dict[str, Any]


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


def _fixed(nonce_hex: str) -> Callable[[int], bytes]:
    def random(n: int) -> bytes:
        assert n == 24, f"asked for {n} random bytes, expected a 24-byte nonce"
        return _h(nonce_hex)

    return random


def _expect_error(name: str, action: Callable[[], object], message: str = "") -> None:
    raised = _raised(action)
    assert raised is not None, f"no error raised; expected {name}"
    got = type(raised).__name__
    assert got == name, f"raised {got}: {raised}; expected {name}"
    assert message in str(raised), f"message {str(raised)!r} lacks {message!r}"


def _raised(action: Callable[[], object]) -> crypto.CryptoError | None:
    try:
        action()
    except crypto.CryptoError as exc:
        return exc
    return None


def _check_keys(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    assert keys.sign_seed == _h(r["sign_seed"]), "sign_seed differs"
    assert keys.sym_key == _h(r["sym_key"]), "sym_key differs"
    assert keys.verify_key == _h(r["verify_key"]), "verify_key differs"
    assert keys.channel_id == _h(r["channel_id"]), "channel_id differs"
    assert keys.read_token == _h(r["read_token"]), "read_token differs"
    assert keys.view().read_token == keys.read_token, "a view link proves the same"
    assert crypto.channel_id_for(keys.verify_key) == keys.channel_id


def _check_link(r: Record) -> None:
    link = PadLink(r["base_url"], PadKeys.from_edit_secret(_h(r["edit_secret"])))
    assert str(link) == r["edit_link"], f"edit link {link} differs"
    assert str(link.view_link()) == r["view_link"], "view link differs"
    assert parse_link(r["edit_link"]) == link, "edit link does not round-trip"
    parsed_view = parse_link(r["view_link"])
    assert parsed_view == link.view_link(), "view link does not round-trip"
    assert not parsed_view.is_edit, "a view link parsed as an edit link"


def _check_link_error(r: Record) -> None:
    _expect_error(r["error"], lambda: parse_link(r["link"]), r["message"])


def _check_author(r: Record) -> None:
    author = Author.from_seed(_h(r["seed"]), r["author_name"])
    assert author.public_key == _h(r["public_key"]), "author public key differs"
    assert Author.from_json(author.to_json()) == author, "identity does not round-trip"


def _check_seal(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    author = Author.from_seed(_h(r["author_seed"]), r["author_name"])
    kind, ref, content = Kind[r["kind"].upper()], _h(r["ref"]), _h(r["content"])
    sealed = seal(keys, author, kind, ref, content, random=_fixed(r["nonce"]))
    assert sealed.hex() == r["sealed"], "sealed bytes differ"
    assert envelope_id(sealed).hex() == r["id"], "id differs"
    header = parse_header(sealed)
    assert (header.kind, header.ref, header.channel_id) == (kind, ref, keys.channel_id)
    verify_channel_signature(sealed, keys.verify_key)
    for opener in (keys, keys.view()):
        opened = crypto.open_envelope(opener, sealed)
        assert opened.content == content, "opened content differs"
        assert (opened.author_key, opened.author_name) == (author.public_key, author.name)
        assert opened.id.hex() == r["id"]


def _check_ephemeral(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    sender = keys.view() if r["view"] else keys
    author = Author.from_seed(_h(r["author_seed"]), r["author_name"])
    session = Session(_h(r["session_id"]), r["counter"] - 1)
    sealed = seal_ephemeral(
        sender,
        author,
        session,
        _h(r["payload"]),
        now_ms=r["sender_time_ms"],
        random=_fixed(r["nonce"]),
    )
    assert sealed.hex() == r["sealed"], "sealed ephemeral differs"
    assert envelope_id(sealed).hex() == r["id"], "id differs"
    got = open_ephemeral(keys.view(), sealed)
    assert (got.session_id, got.counter) == (session.session_id, r["counter"])
    assert (got.sender_time_ms, got.payload) == (r["sender_time_ms"], _h(r["payload"]))
    assert (got.author_key, got.author_name) == (author.public_key, author.name)


def _check_reject(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    data = _h(r["sealed"])
    actions: dict[str, Callable[[], object]] = {
        "open": lambda: crypto.open_envelope(keys.view(), data),
        "open_ephemeral": lambda: open_ephemeral(keys.view(), data),
        "verify": lambda: verify_channel_signature(data, keys.verify_key),
    }
    _expect_error(r["error"], actions[r["op"]])


def _check_seal_error(r: Record) -> None:
    view = PadKeys.from_edit_secret(_h(r["edit_secret"])).view()
    author = Author.from_seed(bytes(32), "")
    kind = Kind[r["kind"].upper()]
    _expect_error(r["error"], lambda: seal(view, author, kind, b"\1" * 32, b"x"))


def _check_guard(r: Record) -> None:
    guard = EphemeralGuard(timeout_ms=r["timeout_ms"])
    for index, e in enumerate(r["events"]):

        def step(e: Record = e) -> None:
            guard.check(
                _h(e["author"]), _h(e["session"]), e["counter"], e["sender_time_ms"], e["now_ms"]
            )

        if e["result"] == "ok":
            step()
        else:
            try:
                _expect_error(e["result"], step)
            except AssertionError as exc:
                raise AssertionError(f"event {index}: {exc}") from exc


def _check_session(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    author = Author.from_seed(_h(r["author_seed"]), r["author_name"])
    session = envelope2.SessionKeys.from_seed(_h(r["session_seed"]))
    sealed = envelope2.seal_session_record(
        keys, author, session, r["started_ms"], random=_fixed(r["nonce"])
    )
    assert sealed.hex() == r["sealed"], "session record bytes differ"
    assert session.tag.hex() == r["tag"], "session tag differs"
    relay = envelope2.verify_session_record(sealed, keys.verify_key, keys.channel_id)
    assert relay == session.public_key, "the relay reads another session key"
    opened = envelope2.open_session_record(keys.view(), sealed)
    assert (opened.author_key, opened.name) == (author.public_key, author.name)
    assert (opened.session_key, opened.started_ms) == (session.public_key, r["started_ms"])
    tampered = bytearray(sealed)
    tampered[40] ^= 1  # inside the nonce: the channel signature no longer holds
    _expect_error(
        "BadChannelSignature", lambda: envelope2.open_session_record(keys, bytes(tampered))
    )


def _check_pad(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    rules = tuple((every, keep) for every, keep in r["every_keep"])
    sealed = envelope2.seal_pad_record(
        keys, r["doctype"], r["created_ms"], r["keep_pct"], rules, random=_fixed(r["nonce"])
    )
    assert sealed.hex() == r["sealed"], "pad record bytes differ"
    relay = envelope2.verify_pad_record(sealed, keys.channel_id)
    assert relay == (keys.verify_key, keys.read_token_hash), "the relay reads other keys"
    opened = envelope2.open_pad_record(keys.view(), sealed)
    assert opened == envelope2.PadRecord(r["doctype"], r["created_ms"], r["keep_pct"], rules)


def _check_seal2(r: Record) -> None:
    keys = PadKeys.from_edit_secret(_h(r["edit_secret"]))
    session = envelope2.SessionKeys.from_seed(_h(r["session_seed"]))
    kind, ref, content = r["kind"], _h(r["ref"]), _h(r["content"])
    sealed = envelope2.seal(keys, session, kind, ref, r["height"], r["counter"], content)
    assert sealed.hex() == r["sealed"], "sealed bytes differ"
    assert envelope_id(sealed).hex() == r["id"], "id differs"
    header = envelope2.verify(sealed, session.public_key, keys.channel_id)
    assert (header.kind, header.ref, header.tag) == (kind, ref, session.tag)
    assert (header.height, header.counter) == (r["height"], r["counter"])
    record = envelope2.open_session_record(keys.view(), _h(r["session_record"]))
    opened = envelope2.open_envelope(keys.view(), sealed, record)
    assert opened.content == content, "opened content differs"
    for at in (1, 2, len(sealed) - 70, len(sealed) - 1):  # kind, ref, box, signature
        tampered = bytearray(sealed)
        tampered[at] ^= 1
        assert _raised(lambda t=bytes(tampered): envelope2.open_envelope(keys, t, record)), at


_CHECKS: dict[str, Callable[[Record], None]] = {
    "keys": _check_keys,
    "link": _check_link,
    "link_error": _check_link_error,
    "author": _check_author,
    "seal": _check_seal,
    "ephemeral": _check_ephemeral,
    "reject": _check_reject,
    "seal_error": _check_seal_error,
    "guard": _check_guard,
    "session": _check_session,
    "pad": _check_pad,
    "seal2": _check_seal2,
}


def check(record: dict[str, Any]) -> None:
    """Check one vector record.

    Args:
        record: one parsed line of a ``crypto*.jsonl`` file.

    Raises:
        AssertionError: the implementation disagrees with the record.
    """
    kind = record.get("suite")
    assert kind in _CHECKS, f"unknown crypto suite {kind!r}"
    _CHECKS[kind](record)

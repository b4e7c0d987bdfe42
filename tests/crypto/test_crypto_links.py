"""Pad links: round trips, and a clear error for every kind of damage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crypto import InvalidLink, PadKeys, PadLink, parse_link
from crypto.keys import channel_id_for, derive_sign_seed, derive_sym_key

BASE = "https://relay.example"


@pytest.fixture
def edit() -> PadLink:
    return PadLink(BASE, PadKeys.from_edit_secret(bytes(range(32))))


@given(secret=st.binary(min_size=32, max_size=32))
def test_edit_and_view_links_round_trip(secret: bytes) -> None:
    link = PadLink(BASE, PadKeys.from_edit_secret(secret))
    assert parse_link(str(link)) == link
    view = link.view_link()
    assert parse_link(str(view)) == view
    assert view.keys.channel_id == link.keys.channel_id
    assert not view.is_edit
    assert not view.keys.can_write


def test_link_shape_keeps_the_secret_in_the_fragment(edit: PadLink) -> None:
    text = str(edit)
    before, fragment = text.split("#")
    assert before == f"{BASE}/p/"
    version, kind, payload, checksum = fragment.split(".")
    assert (version, kind, len(payload), len(checksum)) == ("1", "e", 43, 8)
    view = str(edit.view_link()).split("#")[1].split(".")
    assert (view[1], len(view[2])) == ("v", 86)


def test_view_link_carries_no_edit_secret(edit: PadLink) -> None:
    view = parse_link(str(edit.view_link()))
    assert view.keys.edit_secret is None
    assert view.keys.sign_seed is None
    assert view.keys.sym_key == edit.keys.sym_key
    assert view.keys.verify_key == edit.keys.verify_key


def test_whitespace_and_trailing_slash_are_tolerated(edit: PadLink) -> None:
    assert parse_link(f"  {edit}\n") == edit
    assert PadLink.new(BASE + "/").base_url == BASE


def test_derivation_is_domain_separated() -> None:
    secret = bytes(range(32))
    keys = PadKeys.from_edit_secret(secret)
    assert derive_sign_seed(secret) != derive_sym_key(secret)
    assert keys.channel_id == channel_id_for(keys.verify_key)
    assert keys.channel_id not in (keys.verify_key, keys.sym_key)


def test_derivation_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="edit_secret must be 32 bytes, got 31"):
        PadKeys.from_edit_secret(bytes(31))
    with pytest.raises(ValueError, match="verify_key must be 32 bytes"):
        channel_id_for(bytes(33))
    with pytest.raises(ValueError, match="sym_key must be 32 bytes"):
        PadKeys.from_view(bytes(3), bytes(32))


def _damage(link: str) -> dict[str, tuple[str, str]]:
    base, fragment = link.split("#")
    version, kind, payload, checksum = fragment.split(".")
    typo = payload[:5] + ("A" if payload[5] != "A" else "B") + payload[6:]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(payload[-1]) ^ 1]  # only the 2 unused low bits differ
    return {
        "empty": ("   ", "link is empty"),
        "cut at the hash": (base, "no '#' fragment"),
        "wrong path": (link.replace("/p/#", "/pad/#"), "must end in '/p/'"),
        "no scheme": ("relay.example/p/#" + fragment, "http:// or https://"),
        "no host": ("https:///p/#" + fragment, "no host"),
        "query in base": ("https://relay.example/?x=1/p/#" + fragment, "must not contain"),
        "three fields": (f"{base}#{version}.{kind}.{payload}", "found 3 (truncated?)"),
        "five fields": (f"{link}.0", "found 5 (extra '.'?)"),
        "version": (f"{base}#9.{kind}.{payload}.{checksum}", "unsupported link version '9'"),
        "type": (f"{base}#{version}.E.{payload}.{checksum}", "got 'E'"),
        "padding": (f"{base}#1.e.{payload}=.{checksum}", "'=' at position 43"),
        "standard base64": (f"{base}#1.e.{payload[:-1]}/.{checksum}", "not base64url"),
        "truncated": (f"{base}#1.e.{payload[:30]}.{checksum}", "30 characters, expected 43"),
        "too long": (f"{base}#1.e.{payload}AA.{checksum}", "45 characters, expected 43"),
        "non-canonical": (f"{base}#1.e.{payload[:-1]}{last}.{checksum}", "not canonical"),
        "typo": (f"{base}#1.e.{typo}.{checksum}", "checksum does not match"),
        "checksum typo": (f"{base}#1.e.{payload}.{checksum[:-1]}x", "checksum does not match"),
        "checksum cut": (f"{base}#1.e.{payload}.{checksum[:4]}", "checksum does not match"),
    }


@pytest.mark.parametrize(
    "case", list(_damage(str(PadLink(BASE, PadKeys.from_edit_secret(bytes(32))))))
)
def test_damaged_links_name_the_problem(case: str) -> None:
    link = str(PadLink(BASE, PadKeys.from_edit_secret(bytes(32))))
    text, message = _damage(link)[case]
    with pytest.raises(InvalidLink) as caught:
        parse_link(text)
    assert message in str(caught.value)


def test_every_single_character_change_is_caught(edit: PadLink) -> None:
    text = str(edit)
    start = text.index("#") + 1
    for index in range(start, len(text)):
        for replacement in "0aZ_-.":
            if text[index] == replacement:
                continue
            damaged = text[:index] + replacement + text[index + 1 :]
            with pytest.raises(InvalidLink):
                parse_link(damaged)


def test_invalid_link_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="link is empty"):
        parse_link("")


def test_a_json_link_names_its_document_type_and_round_trips() -> None:
    link = PadLink(BASE, PadKeys.from_edit_secret(bytes(range(32))), "json")
    text = str(link)
    assert text.split("#")[1].split(".")[3] == "json"
    assert parse_link(text) == link
    assert parse_link(str(link.view_link())).doctype == "json"
    plain = PadLink(BASE, PadKeys.from_edit_secret(bytes(range(32))))
    assert str(plain).count(".") == str(link).count(".") - 1  # text links are unchanged
    assert parse_link(str(plain)).doctype == "text"


def test_the_checksum_covers_the_document_type() -> None:
    link = str(PadLink(BASE, PadKeys.from_edit_secret(bytes(range(32))), "json"))
    plain = str(PadLink(BASE, PadKeys.from_edit_secret(bytes(range(32)))))
    body, checksum = plain.rsplit(".", 1)
    with pytest.raises(InvalidLink, match="checksum"):
        parse_link(f"{body}.json.{checksum}")  # a text link's checksum, with a type added
    with pytest.raises(InvalidLink, match="5"):
        parse_link(link.replace(".json.", ".yaml."))

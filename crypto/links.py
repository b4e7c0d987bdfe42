"""Pad links: the only way keys travel between people.

Theory of operation
-------------------
A link is ``<relay base URL>/p/#1.<type>.<payload>.<checksum>``, or
``1.<type>.<payload>.<doctype>.<checksum>`` for a pad that is not plain text:

- everything secret is in the **fragment** (after ``#``), which browsers
  never send to a server, so the relay that serves ``/p/`` never sees it;
- ``1`` is the link format version;
- ``type`` is ``e`` (edit: payload is the 32-byte edit secret) or ``v``
  (view: payload is ``sym_key || verify_key``, 64 bytes);
- ``payload`` is unpadded base64url (43 characters for ``e``, 86 for ``v``);
- ``doctype`` (absent for text) names the document type: ``json``;
- ``checksum`` is 8 lowercase hex digits: the first 4 bytes of
  ``SHA-256(b"blindpad/v1/link/" || "1.<type>.<payload>[.<doctype>]")``. It exists only
  to catch typos and truncation with a clear message; it is no security
  measure (the payload is right beside it).

A view link is derived from an edit link (:meth:`PadLink.view_link`), never
the reverse. :func:`parse_link` names the first thing wrong with a damaged
link in an :class:`~crypto.errors.InvalidLink`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import string
from dataclasses import dataclass

from .backend import RandomFn, default_random
from .errors import InvalidLink
from .keys import PadKeys

LINK_VERSION = "1"
PATH = "/p/"
_EDIT, _VIEW = "e", "v"
_PAYLOAD_CHARS = {_EDIT: 43, _VIEW: 86}
_B64URL = frozenset(string.ascii_letters + string.digits + "-_")
_CHECKSUM_LABEL = b"blindpad/v1/link/"
#: The document types a link can name besides plain text (the default).
TEXT = "text"
DOCTYPES = frozenset({"json"})


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _checksum(body: str) -> str:
    return hashlib.sha256(_CHECKSUM_LABEL + body.encode("ascii")).digest()[:4].hex()


def _check_base_url(base_url: str) -> str:
    base = base_url.strip()
    scheme = next((s for s in ("https://", "http://") if base.startswith(s)), None)
    if scheme is None:
        raise InvalidLink(f"relay base URL must start with http:// or https://, got {base!r}")
    rest = base[len(scheme) :].rstrip("/")
    if not rest or rest.startswith("/"):
        raise InvalidLink(f"relay base URL has no host: {base!r}")
    if "#" in rest or "?" in rest:
        raise InvalidLink(f"relay base URL must not contain '#' or '?', got {base!r}")
    return scheme + rest


@dataclass(frozen=True)
class PadLink:
    """A relay base URL and the pad keys a link carries (edit or view form)."""

    base_url: str
    keys: PadKeys
    doctype: str = TEXT

    @classmethod
    def new(
        cls, base_url: str, *, random: RandomFn = default_random, doctype: str = TEXT
    ) -> PadLink:
        """Return the edit link of a brand-new pad on a relay.

        Args:
            base_url: the relay's base URL, e.g. ``"https://relay.example"``.
            random: source of the 32-byte edit secret.
            doctype: ``"text"`` or a member of :data:`DOCTYPES`.

        Returns:
            An edit link.

        Raises:
            InvalidLink: ``base_url`` is not an http(s) URL without ``#`` or ``?``.
        """
        if doctype != TEXT and doctype not in DOCTYPES:
            raise InvalidLink(f"unknown document type {doctype!r}")
        return cls(_check_base_url(base_url), PadKeys.generate(random=random), doctype)

    @property
    def is_edit(self) -> bool:
        """Whether this link can write (carries the edit secret)."""
        return self.keys.edit_secret is not None

    def view_link(self) -> PadLink:
        """Return the view link of the same pad (drops everything that signs).

        Returns:
            A view link on the same relay.
        """
        return PadLink(self.base_url, self.keys.view(), self.doctype)

    def fragment(self) -> str:
        """Return the part after ``#``: ``1.<e|v>.<payload>[.<doctype>].<checksum>``."""
        if self.keys.edit_secret is not None:
            body = f"{LINK_VERSION}.{_EDIT}.{_b64encode(self.keys.edit_secret)}"
        else:
            body = f"{LINK_VERSION}.{_VIEW}.{_b64encode(self.keys.sym_key + self.keys.verify_key)}"
        if self.doctype != TEXT:
            body = f"{body}.{self.doctype}"
        return f"{body}.{_checksum(body)}"

    def __str__(self) -> str:
        """Return the whole link."""
        return f"{_check_base_url(self.base_url)}{PATH}#{self.fragment()}"


def parse_link(text: str) -> PadLink:
    """Parse a pad link.

    Args:
        text: the link, e.g. ``"https://relay.example/p/#1.e.<43 chars>.<8 hex>"``;
            surrounding whitespace is ignored.

    Returns:
        The link's relay base URL and keys (edit form for ``e``, view for ``v``).

    Raises:
        InvalidLink: the link is damaged, truncated or mistyped; the message
            names the first problem found.

    Example:
        >>> link = parse_link(str(PadLink.new("https://relay.example")))  # doctest: +SKIP
    """
    text = text.strip()
    if not text:
        raise InvalidLink("link is empty")
    if "#" not in text:
        raise InvalidLink("link has no '#' fragment: the secret part is missing (cut at '#'?)")
    before, fragment = text.split("#", 1)
    if not before.endswith(PATH):
        raise InvalidLink(f"link path must end in {PATH!r} before the '#', got {before!r}")
    base = _check_base_url(before[: -len(PATH)])
    keys, doctype = _parse_fragment(fragment)
    return PadLink(base, keys, doctype)


def _parse_fragment(fragment: str) -> tuple[PadKeys, str]:
    fields = fragment.split(".")
    doctype = TEXT
    if len(fields) == 5 and fields[3] in DOCTYPES:
        doctype = fields.pop(3)
    if len(fields) != 4:
        hint = "truncated?" if len(fields) < 4 else "extra '.'?"
        raise InvalidLink(
            f"link fragment must be version.type.payload.checksum (4 fields, or 5 with "
            f"a document type before the checksum), found {len(fields)} ({hint})"
        )
    version, kind, payload, checksum = fields
    if version != LINK_VERSION:
        raise InvalidLink(f"unsupported link version {version!r} (this client reads '1')")
    if kind not in _PAYLOAD_CHARS:
        raise InvalidLink(f"link type must be 'e' (edit) or 'v' (view), got {kind!r}")
    raw = _decode_payload(kind, payload)
    body = f"{version}.{kind}.{payload}" + (f".{doctype}" if doctype != TEXT else "")
    if checksum != _checksum(body):
        raise InvalidLink("link checksum does not match: the link was mistyped or damaged")
    if kind == _EDIT:
        return PadKeys.from_edit_secret(raw), doctype
    return PadKeys.from_view(raw[:32], raw[32:]), doctype


def _decode_payload(kind: str, payload: str) -> bytes:
    for position, char in enumerate(payload):
        if char not in _B64URL:
            raise InvalidLink(
                f"link payload has {char!r} at position {position}, which is not base64url"
            )
    want = _PAYLOAD_CHARS[kind]
    if len(payload) != want:
        what = "edit" if kind == _EDIT else "view"
        cut = " (truncated?)" if len(payload) < want else ""
        raise InvalidLink(
            f"{what} link payload is {len(payload)} characters, expected {want}{cut}"
        )
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked above
        raise InvalidLink("link payload is not valid base64url") from exc
    if _b64encode(raw) != payload:
        raise InvalidLink("link payload's last character is not canonical base64url (mistyped?)")
    return raw

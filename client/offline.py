"""The local copy: a pad's last verified text, kept so it opens without the relay.

Theory of operation
-------------------
A session that has verified the pad's history up to some head can write
down *where it stands*: the document after that head, the head's ``(height,
id)``, the relay sequence number it has seen every patch up to, the Merkle
mountain range there (:mod:`wire.mmr`), the high-water table of writer
sessions (:mod:`client.snapshots`) and the pad's retention record.  That is
everything a catch-up from a snapshot would give a fresh session, so a front
end can later start from it instead (:meth:`client.session.PadSession.restore`):
the pad is ``ready`` at once, offline, takes edits (sealed into the
write-ahead log as usual), and when the relay is reached the session
resumes *since* that sequence number, exactly like a reconnect.  The chain
must continue from the stored head: a history that does not contain it is
the ``rollback`` or ``fork`` alarm (:mod:`client.trust`), and a relay that
trimmed past it answers HISTORY_TRIMMED, so the session rejoins from the
relay's snapshot and merges its unsent work (:meth:`RelaySide._rejoin`).

Trust: the copy holds only what this device verified (a front end writes it
only from a session whose history is loaded, with no gap below its head, and
not while it rejoins); a digest of the document is stored with it and checked
when it is read, so a damaged copy is not used (it is ignored: the pad then
needs the relay to open).  It is plaintext on the device, like the
write-ahead log's base (docs/SECURITY.md).

Format (version 1), the same bytes in the SDK's state directory (the file
``copy`` of the pad's folder) and in the page's IndexedDB record::

    blindpad-copy 1\\n
    {"height": n, "id": hex, "seq": n, "h": hex, "peaks": [hex, ...],
     "hw": {session hex: [counter, height]}, "r": [keep_pct, set_ms],
     "doctype": "json"}\\n
    the document: a text as UTF-8, a JSON pad's wire form ``{"json": value}`` as canonical JSON

``peaks``, ``hw`` (empty), ``r`` and ``doctype`` (text) may be absent; ``h``
is the document type's digest of the document (:meth:`DocType.digest`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import crypto
from client.doctype import DocType, InvalidPatch
from client.jsondoc import canonical
from client.rope import plain
from client.snapshots import HighWater, Retention, hw_from_wire, retention_from_wire
from crypto import envelope2
from wire import mmr

MAGIC = b"blindpad-copy 1\n"


@dataclass(frozen=True, slots=True)
class LocalCopy:
    """The document ``doc`` after patch ``id`` at ``height``, as this device verified it.

    Attributes:
        height: the head's height (patches from genesis).
        id: the head's id (32 zero bytes for an empty pad).
        seq: every relay sequence number up to this one was seen.
        doc: the document (a text, or a JSON pad's value).
        peaks: the Merkle mountain range at the head, if known.
        hw: the high-water table of writer sessions at the head.
        retention: the pad's retention record in force, if any.
    """

    height: int
    id: bytes
    seq: int
    doc: Any
    peaks: mmr.Peaks | None = None
    hw: HighWater = field(default_factory=dict)
    retention: Retention | None = None


def encode(doctype: DocType[Any, Any], copy: LocalCopy) -> bytes:
    """The bytes of ``copy`` (see the module docstring)."""
    fields: dict[str, object] = {
        "height": copy.height,
        "id": copy.id.hex(),
        "seq": copy.seq,
        "h": doctype.digest(copy.doc).hex(),
    }
    if copy.peaks is not None:
        fields["peaks"] = mmr.to_hex(copy.peaks)
    if copy.hw:
        fields["hw"] = {s.hex(): [c, h] for s, (c, h) in sorted(copy.hw.items())}
    if copy.retention is not None:
        fields["r"] = list(copy.retention)
    if isinstance(text := plain(copy.doc), str):
        body = text.encode("utf-8")
    else:
        fields["doctype"] = "json"
        body = canonical(doctype.doc_to_wire(copy.doc)).encode("utf-8")
    return MAGIC + json.dumps(fields, sort_keys=True).encode() + b"\n" + body


def height_of(data: bytes) -> int | None:
    """The height a copy's header names (``None``: not a copy), without reading the document."""
    if not data.startswith(MAGIC):
        return None
    line = data[len(MAGIC) :].partition(b"\n")[0]
    try:
        height = json.loads(line)["height"]
    except (ValueError, KeyError, TypeError):
        return None
    return height if type(height) is int else None


def decode(doctype: DocType[Any, Any], data: bytes) -> LocalCopy:
    """Read a copy and check its digest.

    Raises:
        InvalidPatch: not a copy of this format, of another document type,
            or damaged (the digest does not match).
    """
    if not data.startswith(MAGIC):
        raise InvalidPatch("not a blindpad local copy (format 1)")
    line, _, body = data[len(MAGIC) :].partition(b"\n")
    try:
        fields = json.loads(line)
        height, seq = fields["height"], fields["seq"]
        head_id, digest = bytes.fromhex(fields["id"]), bytes.fromhex(fields["h"])
        kind = fields.get("doctype", "text")
        text = body.decode("utf-8")
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidPatch(f"local copy header unreadable: {error}") from error
    if type(height) is not int or type(seq) is not int or height < 0 or seq < 0:
        raise InvalidPatch("local copy height and seq must be non-negative integers")
    if len(head_id) != 32 or (kind == "json") != (doctype.name == "json"):
        raise InvalidPatch("local copy of another kind of pad, or a bad head id")
    try:
        doc = doctype.doc_from_wire(text if kind != "json" else json.loads(text))
        peaks = mmr.from_hex(fields["peaks"], height) if "peaks" in fields else None
    except ValueError as error:
        raise InvalidPatch(f"local copy unreadable: {error}") from error
    if doctype.digest(doc) != digest:
        raise InvalidPatch("local copy damaged: its document does not match its digest")
    hw = hw_from_wire(fields.get("hw", {}))
    retention = retention_from_wire(fields["r"]) if "r" in fields else None
    return LocalCopy(height, head_id, seq, doc, peaks, hw, retention)


def fits(logged: list[bytes], head_id: bytes) -> bool:
    """Whether a write-ahead log can be taken back on a copy at ``head_id``
    without the relay: empty, holding that head (the patches before it
    landed), or its first patch made on it.  Any other log was made on a
    later head, which only the relay can say is stored or not."""
    if not logged:
        return True
    if any(hashlib.sha256(data).digest() == head_id for data in logged):
        return True
    first = next((data for data in logged if not envelope2.is_session_record(data)), None)
    try:
        return first is None or envelope2.ref_of(first) == head_id
    except (ValueError, crypto.CryptoError):
        return False


__all__ = ["MAGIC", "LocalCopy", "decode", "encode", "fits", "height_of"]

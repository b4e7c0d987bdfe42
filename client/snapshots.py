"""Snapshots: the document after a patch, sealed beside the chain.

Theory of operation
-------------------
A snapshot is the document after an existing patch X, sealed beside the chain
(kind :data:`~client.payload.SNAPSHOT`, ref X).  Its content is compact JSON,
compressed (docs/PROTOCOL.md §6.2)::

    0x01 || json_len u32 || zlib(JSON, level 6)
    JSON = {"height": n, "doc": document, "h": "SHA-256 of doc, hex",
            "peaks": ["hex", ...], "hw": {"session hex": [counter, height], ...},
            "t": ms, "r": [keep_pct, set_ms]}

A reader inflates at most ``json_len`` bytes (at most :data:`MAX_JSON_BYTES`)
and requires exactly that many, so a small snapshot cannot expand into a
large one; content that starts with ``{`` is the plain JSON of before.
``t`` is the author's clock when sealing (history shows it).

**The retention record** ``r`` is the pad's retention setting: compactions
keep older snapshots (checkpoints) within ``keep_pct`` % of the newest
snapshot's bytes (docs/PROTOCOL.md §6.4, §10.5).  An editor sets it
(``Pad.set_retention``) with the time ``set_ms`` of its own clock, and every
snapshot carries the record its maker knows: the one with the latest
``set_ms`` (ties: the smaller ``keep_pct``) of those it made, loaded or
checked.  So the record is signed by an editor and stored beside the chain
in the snapshots the relay keeps anyway; the relay can neither read nor
forge it.  A pad without one compacts with each session's own default.

``peaks`` is the Merkle mountain range of the patch ids up to X
(:mod:`wire.mmr`): a joiner continues it, and a client that verified an
older point proves from it that the snapshot descends from that point even
after the patches between were trimmed (:mod:`client.trust`).

**The high-water table** ``hw`` maps every writer session of the chain up to
X to its highest counter and the height of that patch (:mod:`client.payload`:
every patch carries its session and counter; the replica keeps the table of
its best chain).  A client that finds the history before its unacknowledged
patch trimmed decides from it whether the patch landed
(:mod:`client.recovery`).  A snapshot keeps only the sessions whose last patch
is within :data:`HW_WINDOW` heights of X, so the table stays small.

**When to make one.**  :class:`Snapshots` counts the sealed bytes of the best
chain's patches since the latest snapshot, each with :data:`STORED_ROW_BYTES`
more for the row that stores it (applying a patch adds its cost, reverting
it takes it back).  The author of X makes one when they reach
:data:`CADENCE` times the sealed size of the latest snapshot made or loaded
(at least ``min_bytes``); any writer makes one at twice that, in case the
author is gone.  Nobody makes one while its own patches still in flight
exceed a snapshot's worth: they land next (a large edit), and the last
of them is snapshotted instead.  Seeing someone else's matching snapshot restarts the count
from its patch.  Tied to the snapshot's own size, the history between two
snapshots costs about what a snapshot costs, which is what keeps a compacted
pad (:mod:`client.relayside`: trim at the previous snapshot) a few snapshots
in size.

**Joining.**  A joining client starts from the latest snapshot
(:meth:`client.engine.Engine.load_snapshot`): it checks ``h`` against ``doc``
and continues from X at ``height``.

**Checking.**  A client already holding X compares the snapshot with its own
document at X and raises an :class:`~client.events.Alarm` on any difference;
a snapshot never changes anyone's text.  The relay sends every snapshot it
stores to the live subscribers (docs/PROTOCOL.md §10.3), so somebody who can
check it does; the session then publishes a signed dispute
(:mod:`client.relayside`), and joiners do not open from a disputed snapshot.

**Who vouched.**  A joiner remembers whose snapshot it opened from
(:attr:`Snapshots.vouched`: the author's key and name): that author's word
is what its text before X rests on.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from client.chain import Chain, Node
from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind
from client.payload import SESSION_LEN, SNAPSHOT, TRIM, Codec, Opened, Payload, Sealed, dumps
from wire import mmr

D = TypeVar("D")
P = TypeVar("P")


#: A snapshot's table keeps the sessions whose last patch is this close to X.
HW_WINDOW = 65_536
#: A writer snapshots after this many times the latest snapshot's sealed bytes of patches.
CADENCE = 1
#: A pad at rest (its writers quiet, or gone) opens from a snapshot followed by
#: fewer than this many patches: opening replays each patch after the
#: snapshot (an Ed25519 verification and an apply apiece), so a writer
#: snapshots the head of a quiet pad whose tail is this long
#: (:meth:`Snapshots.at_rest`).
REST_TAIL = 8
#: What a stored patch costs a relay beside its envelope (rows and indexes:
#: about 96 bytes on SQLite), counted with each patch toward the cadence, so
#: that the history between two snapshots costs on disk about one snapshot.
STORED_ROW_BYTES = 96
#: The largest snapshot JSON a reader inflates (a text of about 64 MiB).
MAX_JSON_BYTES = 1 << 28
#: The format byte of a compressed snapshot.
ZLIB_JSON = 0x01
_LENGTH = struct.Struct(">I")

#: The high-water table: writer session -> (highest counter, height of that patch).
HighWater = dict[bytes, tuple[int, int]]

#: A retention record: (keep_pct, set_ms), see the module docstring.
Retention = tuple[int, int]
#: The largest ``keep_pct`` (TRIM carries it as u16).
MAX_KEEP_PCT = 65_535


def fitting_keep_pct(sealed: int, plain: int) -> int:
    """The default retention after a snapshot of ``sealed`` bytes (``plain``
    before compression): the ``keep_pct`` whose checkpoints fit, with that
    snapshot, in the document's uncompressed size (0 when it does not
    compress; at most :data:`MAX_KEEP_PCT`)."""
    return min(MAX_KEEP_PCT, max(0, plain - sealed) * 100 // max(1, sealed))


def retention_from_wire(value: object) -> Retention:
    """A retention record from a snapshot's JSON ``[keep_pct, set_ms]``.

    Raises:
        InvalidPatch: not two integers in range.
    """
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidPatch("snapshot r must be [keep_pct, set_ms]")
    pct, when = value
    if type(pct) is not int or not 0 <= pct <= MAX_KEEP_PCT:
        raise InvalidPatch(f"snapshot r keep_pct must be 0..{MAX_KEEP_PCT}")
    if type(when) is not int or not 0 <= when < 2**63:
        raise InvalidPatch("snapshot r set_ms must be a non-negative integer")
    return pct, when


def newer_retention(a: Retention | None, b: Retention | None) -> Retention | None:
    """The record in force of two: the later ``set_ms``; on a tie the smaller ``keep_pct``."""
    if a is None or b is None:
        return a if b is None else b
    return max(a, b, key=lambda r: (r[1], -r[0]))


@dataclass(frozen=True, slots=True)
class Contents(Generic[D]):
    """What a snapshot's content says (its ``doc`` hash already checked)."""

    height: int
    doc: D
    peaks: mmr.Peaks | None
    hw: HighWater = field(default_factory=dict)
    time: int | None = None  # the author's clock when sealing, ms (a claim)
    retention: Retention | None = None  # the pad's retention record, if any


def pack(body: dict[str, object]) -> bytes:
    """A snapshot's content from its JSON object: compressed, with its length."""
    raw = dumps(body)
    return bytes([ZLIB_JSON]) + _LENGTH.pack(len(raw)) + zlib.compress(raw, 6)


def unpack(content: bytes) -> object:
    """The JSON object in a snapshot's content (compressed, or the plain JSON of before).

    Raises:
        InvalidPatch: not a snapshot's content, or it inflates to another length.
    """
    if content[:1] == b"{":
        raw = content
    elif content[:1] == bytes([ZLIB_JSON]) and len(content) >= 1 + _LENGTH.size:
        (length,) = _LENGTH.unpack_from(content, 1)
        if length > MAX_JSON_BYTES:
            raise InvalidPatch(f"snapshot says it holds {length} bytes, over the limit")
        inflate = zlib.decompressobj()
        try:
            raw = inflate.decompress(content[1 + _LENGTH.size :], length + 1)
        except zlib.error as error:
            raise InvalidPatch(f"snapshot does not inflate: {error}") from error
        if len(raw) != length or not inflate.eof or inflate.unused_data:
            raise InvalidPatch("snapshot does not inflate to the length it says")
    else:
        raise InvalidPatch("snapshot content is in an unknown format")
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as error:
        raise InvalidPatch(f"snapshot is not JSON: {error}") from error


def hw_to_wire(hw: HighWater, height: int) -> dict[str, list[int]]:
    """The table a snapshot at ``height`` carries (sessions within :data:`HW_WINDOW`)."""
    return {s.hex(): [c, h] for s, (c, h) in sorted(hw.items()) if h > height - HW_WINDOW}


def hw_from_wire(items: object) -> HighWater:
    """A high-water table from a snapshot's JSON.

    Raises:
        InvalidPatch: not an object of 16-hex-digit sessions to [counter, height].
    """
    if not isinstance(items, dict):
        raise InvalidPatch("snapshot hw must be an object")
    table: HighWater = {}
    for key, value in items.items():
        ok = isinstance(key, str) and len(key) == 2 * SESSION_LEN and key == key.lower()
        if not ok or not isinstance(value, list) or len(value) != 2:
            raise InvalidPatch("snapshot hw entries are session hex: [counter, height]")
        if not all(type(v) is int and 0 < v < 2**63 for v in value):
            raise InvalidPatch("snapshot hw counters and heights are positive integers")
        try:
            table[bytes.fromhex(key)] = (value[0], value[1])
        except ValueError as error:
            raise InvalidPatch(f"snapshot hw session is not hex: {error}") from error
    return table


def read(doctype: DocType[D, P], content: bytes) -> Contents[D]:
    """A snapshot's content, decoded and its document hash verified.

    Raises:
        InvalidPatch: the content is malformed or its hash does not match.
    """
    body = unpack(content)
    keys = {"height", "doc", "h"}
    if not isinstance(body, dict) or not keys <= set(body) or set(body) - keys - _OPTIONAL:
        raise InvalidPatch(
            "snapshot must be an object with keys height, doc, h (and peaks, hw, t, r)"
        )
    height, digest, when = body["height"], body["h"], body.get("t")
    if type(height) is not int or height < 0 or not isinstance(digest, str):
        raise InvalidPatch("snapshot height or hash has the wrong type")
    if when is not None and (type(when) is not int or when < 0):
        raise InvalidPatch("snapshot time t must be a non-negative integer")
    try:
        peaks = mmr.from_hex(body["peaks"], height) if "peaks" in body else None
    except ValueError as error:
        raise InvalidPatch(f"snapshot peaks: {error}") from error
    hw = hw_from_wire(body.get("hw", {}))
    retention = retention_from_wire(body["r"]) if "r" in body else None
    doc = doctype.doc_from_wire(body["doc"])
    if doctype.digest(doc).hex() != digest:
        raise InvalidPatch("snapshot hash does not match its document")
    return Contents(height, doc, peaks, hw, when, retention)


_OPTIONAL = frozenset({"peaks", "hw", "t", "r"})


class SendSnapshot:
    """Send the snapshot of the document after patch ``of``.

    It is sealed when first asked for (:attr:`sealed`): sealing a large
    document takes long (its wire form, digest and compression: about a
    second at 10 MB), so a session seals it once idle, not on the path of
    the acknowledgement that made it due.
    """

    __slots__ = ("_seal", "_sealed", "of", "size")

    def __init__(self, of: bytes, seal: Callable[[], Sealed], size: int) -> None:
        self.of = of
        self.size = size  # the document's size (DocType.size): what sealing costs
        self._seal: Callable[[], Sealed] | None = seal
        self._sealed: Sealed | None = None

    @property
    def sealed(self) -> Sealed:
        """The sealed snapshot (sealed now, the first time)."""
        if self._sealed is None:
            assert self._seal is not None
            self._sealed, self._seal = self._seal(), None
        return self._sealed


class Snapshots(Generic[D, P]):
    """When to make a snapshot, and how to read and check one.

    Args:
        doctype: the document type.
        codec: seals and opens envelopes.
        emit: where :class:`SendSnapshot` and alarms go (the engine's events).
        writer: False for a view-only session: it never makes a snapshot.
        min_bytes: never make a snapshot before this many bytes of patches.
    """

    def __init__(
        self,
        doctype: DocType[D, P],
        codec: Codec,
        emit: Callable[[SendSnapshot | Alarm], None],
        *,
        writer: bool,
        min_bytes: int,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.doctype = doctype
        self.codec = codec
        self.emit = emit
        self.writer = writer
        self.min_bytes = min_bytes
        self.clock = clock
        self.hw: Callable[[], HighWater] = dict  # the replica's table (set by the engine)
        self.last_size = 0  # sealed bytes of the latest snapshot made or loaded
        self.last_plain = 0  # bytes of the latest snapshot sealed, before compression
        # Snapshots this session checked equal to its own text, or sealed: (height, X id).
        self.verified: list[tuple[int, bytes]] = []
        self.height = 0  # the height of the latest snapshot made, loaded or matched
        self.bytes_since = 0  # what the best chain's patches after it cost stored
        self.vouched: tuple[bytes, str] | None = None  # (author key, name) of the one loaded
        self.retention: Retention | None = None  # the pad's record in force, as we know it

    def load(self, data: bytes) -> tuple[bytes, Contents[D]]:
        """Open a snapshot to start from; return its patch and contents.

        Raises:
            InvalidPatch: the snapshot does not open, decode or verify.
        """
        opened = self.codec.open(data)
        if opened.kind != SNAPSHOT or opened.content is None:
            raise InvalidPatch(f"not a valid snapshot: {opened.error or 'wrong kind'}")
        contents = read(self.doctype, opened.content)
        _signed_at(opened, contents.height)
        self.height = contents.height
        self.bytes_since = 0
        self.last_size = len(data)
        self.vouched = (opened.author or b"", opened.author_name or "")
        self.retention = newer_retention(self.retention, contents.retention)
        return opened.ref, contents

    def check(
        self,
        opened: Opened,
        chain: Chain[Payload[P]],
        head: Node[Payload[P]],
        auth: D,
        size: int = 0,
    ) -> str | None:
        """Compare someone's snapshot with our document (``auth``, after ``head``).

        A snapshot of a patch not on our best chain is ignored: we have
        nothing to compare it with.  ``size``: its sealed bytes (the cadence
        counts from a matching snapshot as from our own).  Its high-water
        table is not compared: ours is the head's, not X's.

        Returns:
            What is wrong with it (an alarm was raised), or ``None``.
        """
        node = chain.nodes.get(opened.ref)
        if node is None or not node.on_chain:
            return None
        if opened.content is None:
            problem = f"bad snapshot: {opened.error}"
            self.emit(Alarm(AlarmKind.SNAPSHOT_MISMATCH, problem, opened.id))
            return problem
        try:
            contents = read(self.doctype, opened.content)
            height, doc, peaks = contents.height, contents.doc, contents.peaks
            _signed_at(opened, height)
        except InvalidPatch as error:
            self.emit(Alarm(AlarmKind.SNAPSHOT_MISMATCH, f"bad snapshot: {error}", opened.id))
            return f"bad snapshot: {error}"
        ours = auth  # walked back to right after node
        for step in reversed(chain.path_after(head, node)):
            if step.inverse is not None:
                ours = self.doctype.apply(ours, step.inverse.patch)
        differs = height != node.height or self.doctype.digest(doc) != self.doctype.digest(ours)
        if not differs and peaks is not None and node.peaks is not None and peaks != node.peaks:
            problem = f"snapshot of {node.id.hex()[:16]} names another history (its peaks)"
            self.emit(Alarm(AlarmKind.SNAPSHOT_MISMATCH, problem, opened.id))
            return problem
        if differs:
            problem = f"snapshot of {node.id.hex()[:16]} differs from our document"
            self.emit(Alarm(AlarmKind.SNAPSHOT_MISMATCH, problem, opened.id))
            return problem
        self._verified(node)
        self.retention = newer_retention(self.retention, contents.retention)
        if node.height > self.height:
            self.bytes_since = sum(n.content_size for n in chain.path_after(head, node))
            self.height = node.height
            self.last_size = size or self.last_size
        return None

    def _verified(self, node: Node[Payload[P]]) -> None:
        """Remember a snapshot of ``node`` we made or checked (the newest few)."""
        if (node.height, node.id) not in self.verified:
            self.verified = sorted([*self.verified, (node.height, node.id)])[-8:]

    def maybe_make(
        self,
        node: Node[Payload[P]],
        doc: Callable[[], D],
        *,
        own: bool,
        ahead: Callable[[int], bool] = lambda _: False,
    ) -> None:
        """``node`` was just applied, producing ``doc()``: snapshot it if it is time
        (``doc`` is asked only then).

        ``own``: the node is one of ours (its author snapshots first).
        ``ahead(n)``: whether our own patches in flight behind it exceed ``n``
        sealed bytes; while they alone exceed a snapshot's worth, a snapshot now would be
        outgrown before it served anyone: the author waits for them (the last
        of a large edit is snapshotted, not each step of its growth).
        """
        threshold = max(self.min_bytes, CADENCE * self.last_size)
        if not self.writer or self.bytes_since < threshold * (1 if own else 2):
            return
        if ahead(threshold):
            return
        self._make(node, doc())

    def at_rest(self, node: Node[Payload[P]], doc: Callable[[], D]) -> bool:
        """The pad went quiet at ``node`` (the head; ``doc()`` is the document
        after it): snapshot it if :data:`REST_TAIL` patches or more follow the
        latest snapshot.  Returns whether one was made (:class:`SendSnapshot`)."""
        if not self.writer or node.height - self.height < REST_TAIL:
            return False
        self._make(node, doc())
        return True

    def _make(self, node: Node[Payload[P]], doc: D) -> None:
        """Make the snapshot of ``doc``, the document after ``node``: counted now,
        sealed when first asked for (:class:`SendSnapshot`)."""
        self.emit(SendSnapshot(node.id, self._prepare(node, doc), self.doctype.size(doc)))

    def seal(self, node: Node[Payload[P]], doc: D) -> Sealed:
        """Seal the snapshot of ``doc``, the document after ``node`` (it restarts the count)."""
        return self._prepare(node, doc)()

    def _prepare(self, node: Node[Payload[P]], doc: D) -> Callable[[], Sealed]:
        """Count a snapshot of ``doc``, the document after ``node``, as made (it
        restarts the count) and return what seals it: the costly part, which
        may come later (documents are values: ``doc`` stays as it is)."""
        hw = hw_to_wire(self.hw(), node.height)
        when = self.clock() if self.clock is not None else None
        retention = self.retention
        self.height = node.height
        self.bytes_since = 0

        def seal() -> Sealed:
            body: dict[str, object] = {
                "height": node.height,
                "doc": self.doctype.doc_to_wire(doc),
                "h": self.doctype.digest(doc).hex(),
                "hw": hw,
            }
            if node.peaks is not None:
                body["peaks"] = mmr.to_hex(node.peaks)
            if when is not None:
                body["t"] = when
            if retention is not None:
                body["r"] = list(retention)
            content = pack(body)
            sealed = self.codec.seal(SNAPSHOT, node.id, content, height=node.height)
            self.last_size = len(sealed.data)
            self.last_plain = _LENGTH.unpack_from(content, 1)[0]
            self._verified(node)  # one superseded before it was sealed is never stored
            return sealed

        return seal

    def seal_trim(self, node: Node[Payload[P]]) -> Sealed:
        """Seal a trim at ``node`` (kind 4, content ``{"height": n}``, PROTOCOL.md §6.4)."""
        return self.seal_trim_at(node.id, node.height)

    def seal_trim_at(self, x_id: bytes, height: int) -> Sealed:
        """Seal a trim at patch ``x_id`` of ``height`` (the chain may no longer hold it)."""
        return self.codec.seal(TRIM, x_id, dumps({"height": height}), height=height)


def _signed_at(opened: Opened, height: int) -> None:
    """Check a version-2 snapshot's signed height against its content's.

    Raises:
        InvalidPatch: they differ.
    """
    if opened.height is not None and opened.height != height:
        raise InvalidPatch(f"signed at height {opened.height}, made at {height}")


__all__ = [
    "CADENCE",
    "HW_WINDOW",
    "MAX_KEEP_PCT",
    "REST_TAIL",
    "STORED_ROW_BYTES",
    "Contents",
    "HighWater",
    "Retention",
    "SendSnapshot",
    "Snapshots",
    "fitting_keep_pct",
    "hw_from_wire",
    "hw_to_wire",
    "newer_retention",
    "pack",
    "read",
    "retention_from_wire",
    "unpack",
]

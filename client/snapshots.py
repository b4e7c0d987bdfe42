"""Snapshots: the document after a patch, sealed beside the chain.

Theory of operation
-------------------
A snapshot is the document after an existing patch X, sealed beside the chain
(kind :data:`~client.payload.SNAPSHOT`, ref X).  Its content is compact JSON
(docs/PROTOCOL.md §6.2)::

    {"height": n, "doc": document, "h": "SHA-256 of doc, hex", "peaks": ["hex", ...]}

``peaks`` is the Merkle mountain range of the patch ids up to X
(:mod:`wire.mmr`): a joiner continues it, and a client that verified an
older point proves from it that the snapshot descends from that point even
after the patches between were trimmed (:mod:`client.trust`).

**When to make one.**  :class:`Snapshots` counts the sealed bytes of the best
chain's patches since the latest snapshot (applying a patch adds its size,
reverting it takes it back).  The author of X makes one when they reach the
document's size (at least ``min_bytes``); any writer makes one at twice that,
in case the author is gone.  Seeing someone else's matching snapshot restarts
the count from its patch.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from client.chain import Chain, Node
from client.doctype import DocType, InvalidPatch
from client.events import Alarm, AlarmKind
from client.payload import SNAPSHOT, TRIM, Codec, Opened, Payload, Sealed, dumps
from wire import mmr

D = TypeVar("D")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class SendSnapshot:
    """Send this sealed snapshot of the document after patch ``of``."""

    sealed: Sealed
    of: bytes


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
    ) -> None:
        self.doctype = doctype
        self.codec = codec
        self.emit = emit
        self.writer = writer
        self.min_bytes = min_bytes
        self.height = 0  # the height of the latest snapshot made, loaded or matched
        self.bytes_since = 0  # sealed bytes of the best chain's patches after it
        self.vouched: tuple[bytes, str] | None = None  # (author key, name) of the one loaded

    def load(self, data: bytes) -> tuple[bytes, int, D, mmr.Peaks | None]:
        """Open a snapshot to start from; return (its patch, height, document, peaks).

        Raises:
            InvalidPatch: the snapshot does not open, decode or verify.
        """
        opened = self.codec.open(data)
        if opened.kind != SNAPSHOT or opened.content is None:
            raise InvalidPatch(f"not a valid snapshot: {opened.error or 'wrong kind'}")
        height, doc, peaks = self.decode(opened.content)
        self.height = height
        self.bytes_since = 0
        self.vouched = (opened.author or b"", opened.author_name or "")
        return opened.ref, height, doc, peaks

    def decode(self, content: bytes) -> tuple[int, D, mmr.Peaks | None]:
        """The height, document and peaks (if given) in a snapshot's content, its hash verified.

        Raises:
            InvalidPatch: the content is malformed or its hash does not match.
        """
        try:
            body = json.loads(content.decode("utf-8"))
        except ValueError as error:
            raise InvalidPatch(f"snapshot is not JSON: {error}") from error
        keys = {"height", "doc", "h"}
        if not isinstance(body, dict) or set(body) - {"peaks"} != keys:
            raise InvalidPatch("snapshot must be an object with keys height, doc, h (and peaks)")
        height, digest = body["height"], body["h"]
        if type(height) is not int or height < 0 or not isinstance(digest, str):
            raise InvalidPatch("snapshot height or hash has the wrong type")
        try:
            peaks = mmr.from_hex(body["peaks"], height) if "peaks" in body else None
        except ValueError as error:
            raise InvalidPatch(f"snapshot peaks: {error}") from error
        doc = self.doctype.doc_from_wire(body["doc"])
        if self.doctype.digest(doc).hex() != digest:
            raise InvalidPatch("snapshot hash does not match its document")
        return height, doc, peaks

    def check(
        self, opened: Opened, chain: Chain[Payload[P]], head: Node[Payload[P]], auth: D
    ) -> str | None:
        """Compare someone's snapshot with our document (``auth``, after ``head``).

        A snapshot of a patch not on our best chain is ignored: we have
        nothing to compare it with.

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
            height, doc, peaks = self.decode(opened.content)
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
        if node.height > self.height:
            self.bytes_since = sum(n.content_size for n in chain.path_after(head, node))
            self.height = node.height
        return None

    def maybe_make(self, node: Node[Payload[P]], doc: D, *, own: bool) -> None:
        """``node`` was just applied, producing ``doc``: snapshot it if it is time.

        ``own``: the node is one of ours (its author snapshots first).
        """
        threshold = max(self.min_bytes, self.doctype.size(doc))
        if not self.writer or self.bytes_since < threshold * (1 if own else 2):
            return
        self.emit(SendSnapshot(self.seal(node, doc), node.id))

    def seal(self, node: Node[Payload[P]], doc: D) -> Sealed:
        """Seal the snapshot of ``doc``, the document after ``node`` (it restarts the count)."""
        body: dict[str, object] = {
            "height": node.height,
            "doc": self.doctype.doc_to_wire(doc),
            "h": self.doctype.digest(doc).hex(),
        }
        if node.peaks is not None:
            body["peaks"] = mmr.to_hex(node.peaks)
        sealed = self.codec.seal(SNAPSHOT, node.id, dumps(body))
        self.height = node.height
        self.bytes_since = 0
        return sealed

    def seal_trim(self, node: Node[Payload[P]]) -> Sealed:
        """Seal a trim at ``node`` (kind 4, content ``{"height": n}``, PROTOCOL.md §6.4)."""
        return self.codec.seal(TRIM, node.id, dumps({"height": node.height}))


__all__ = ["SendSnapshot", "Snapshots"]

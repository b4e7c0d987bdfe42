"""Snapshots: the document after a patch, sealed beside the chain.

Theory of operation
-------------------
A snapshot is the document after an existing patch X, sealed beside the chain
(kind :data:`~client.payload.SNAPSHOT`, ref X).  Its content is compact JSON
(docs/PROTOCOL.md §6.2)::

    {"height": n, "doc": document, "h": "SHA-256 of doc, hex"}

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
a snapshot never changes anyone's text.
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

    def load(self, data: bytes) -> tuple[bytes, int, D]:
        """Open a snapshot to start from; return (its patch, height, document).

        Raises:
            InvalidPatch: the snapshot does not open, decode or verify.
        """
        opened = self.codec.open(data)
        if opened.kind != SNAPSHOT or opened.content is None:
            raise InvalidPatch(f"not a valid snapshot: {opened.error or 'wrong kind'}")
        height, doc = self.decode(opened.content)
        self.height = height
        self.bytes_since = 0
        return opened.ref, height, doc

    def decode(self, content: bytes) -> tuple[int, D]:
        """The height and document in a snapshot's content, its hash verified.

        Raises:
            InvalidPatch: the content is malformed or its hash does not match.
        """
        try:
            body = json.loads(content.decode("utf-8"))
        except ValueError as error:
            raise InvalidPatch(f"snapshot is not JSON: {error}") from error
        if not isinstance(body, dict) or set(body) != {"height", "doc", "h"}:
            raise InvalidPatch("snapshot must be an object with keys height, doc and h")
        height, digest = body["height"], body["h"]
        if type(height) is not int or height < 0 or not isinstance(digest, str):
            raise InvalidPatch("snapshot height or hash has the wrong type")
        doc = self.doctype.doc_from_wire(body["doc"])
        if self.doctype.digest(doc).hex() != digest:
            raise InvalidPatch("snapshot hash does not match its document")
        return height, doc

    def check(
        self, opened: Opened, chain: Chain[Payload[P]], head: Node[Payload[P]], auth: D
    ) -> None:
        """Compare someone's snapshot with our document (``auth``, after ``head``).

        A snapshot of a patch not on our best chain is ignored: we have
        nothing to compare it with.
        """
        node = chain.nodes.get(opened.ref)
        if node is None or not node.on_chain or opened.content is None:
            return
        try:
            height, doc = self.decode(opened.content)
        except InvalidPatch as error:
            self.emit(Alarm(AlarmKind.SNAPSHOT_MISMATCH, f"bad snapshot: {error}", opened.id))
            return
        ours = auth  # walked back to right after node
        for step in reversed(chain.path_after(head, node)):
            if step.inverse is not None:
                ours = self.doctype.apply(ours, step.inverse.patch)
        if height != node.height or self.doctype.digest(doc) != self.doctype.digest(ours):
            self.emit(
                Alarm(
                    AlarmKind.SNAPSHOT_MISMATCH,
                    f"snapshot of {node.id.hex()[:16]} differs from our document",
                    opened.id,
                )
            )
            return
        if node.height > self.height:
            self.bytes_since = sum(n.content_size for n in chain.path_after(head, node))
            self.height = node.height

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
        body = {
            "height": node.height,
            "doc": self.doctype.doc_to_wire(doc),
            "h": self.doctype.digest(doc).hex(),
        }
        sealed = self.codec.seal(SNAPSHOT, node.id, dumps(body))
        self.height = node.height
        self.bytes_since = 0
        return sealed

    def seal_trim(self, node: Node[Payload[P]]) -> Sealed:
        """Seal a trim at ``node`` (kind 4, content ``{"height": n}``, PROTOCOL.md §6.4)."""
        return self.codec.seal(TRIM, node.id, dumps({"height": node.height}))


__all__ = ["SendSnapshot", "Snapshots"]

"""JSON documents: structured data that merges by structure, on the same chain.

Theory of operation
===================

A document is a JSON value built of ``None``, ``bool``, ``int``, finite
``float``, ``str``, ``list`` and ``dict`` with ``str`` keys; a new pad holds
``{}``.  A **path** names a place in it: a tuple of ``str`` keys (into
objects) and ``int`` indices (into lists).  A ``Patch`` is a tuple of
:class:`JOp`, applied in order, each in the coordinates the previous ones
left.  The six operations:

=====  ===============================  =========================================
kind   path                             effect
=====  ===============================  =========================================
``s``  the place (``()`` is the root)   set: create or replace the key or item
``d``  a key or a list item             delete it
``i``  ``list path + (index,)``         insert ``value`` so it lands at ``index``
``m``  ``list path + (from,)``          move the item so it lands at ``to``
``a``  an ``int``                       add ``n`` (integers only: float sums
                                        depend on order, so they would not converge)
``t``  a ``str``                        a text patch of :mod:`client.textops`
=====  ===============================  =========================================

``apply`` never mutates its input: it copies the containers along the path
(so an edit costs O(depth x size of the containers on the path)) and shares
the rest.  A document holds values taken from patches as they are: nobody
mutates either.

Transform
---------
``transform(a, b)`` rebases ``a`` onto the document after the concurrent
``b``.  Patches are sequences, so it runs the usual grid over their
operations; for one operation ``x`` over one ``y``:

1. **Different keys, different items: both survive.**  An ``x`` under a list
   that ``y`` changes has its index there mapped: past an insert at or before
   it (+1), past a deleted item before it (-1), through a move (where the
   item went).  Edits at different keys never interact.
2. **A delete of a subtree beats edits inside it**: ``x`` strictly inside a
   place ``y`` deletes is dropped; so is an insert or move into a list ``y``
   deletes.  A ``set`` replaces a subtree the same way: edits strictly inside
   the old value are dropped (they were made to a value that is gone).
3. **The same place**: delete beats set (and a set concurrent with a delete
   is dropped); two deletes delete once; of two sets the one whose value's
   canonical JSON is greater wins, equal values are both no-ops; a set beats
   an add or a text edit there; adds commute; text edits transform as text
   (:func:`client.textops.transform`).  A move of a list item that ``y``
   replaced still moves it.
4. **Inserts at one index** (two inserts, or an insert and an item a move
   lands there): the inserted value with the smaller canonical JSON goes
   first (equal values give the same list either way); a plain insert goes
   before an item a move lands at the same index.
5. **Moves neither duplicate nor lose items.**  A move is one operation
   (never delete-and-insert), so a moved item keeps the edits made inside it
   concurrently (rule 1 maps their index).  A move of an item deleted
   concurrently is dropped.  Two moves of the same item: the larger target
   index wins, the other is dropped.  Two moves of different items in one
   list: take R, the list without either item; each move names a place in R
   (before the item its target index names, skipping the other moved item);
   each item lands at its place, and two items at one place keep their
   original order.  Each side's transformed move is then one move.

Every tie-break compares the operations' content, never which side is
local or arrived first, so both sides agree (TP1)::

    apply(apply(doc, a), transform(b, a)) == apply(apply(doc, b), transform(a, b))

Laws that do **not** hold (do not build on them):

- TP2 (a third patch transformed over ``a`` then ``b'`` or over ``b`` then
  ``a'`` may differ): inserts at one index order by content, which cannot
  see the inserts a third party put between them.  The engine needs only TP1.
- ``compose(a, invert(a, doc))`` applies as the identity but is not the empty
  patch; ``simplify`` of it is.
- ``transform`` cannot see the document: it trusts that both patches fit
  the same one (``apply`` catches a misfit later).
- The set-vs-set tie-break is by value, not by time: a later set can lose to
  an earlier concurrent one.

Operations, their checks and their wire form are in :mod:`client.jsonpatch`
(re-exported here); PROTOCOL.md §6.6 gives the wire form exactly.  The
document goes on the wire as ``{"json": value}``, so a text snapshot or
patch never reads as JSON or the reverse.  ``digest`` is SHA-256 of the
canonical JSON (sorted keys, no spaces, UTF-8); ``size`` counts the values in
the tree: a full count once, then kept up to date by ``apply`` from each
operation (O(patch)) for the last few documents it made.
"""

from __future__ import annotations

import hashlib
import json

from client import textdiff, textops
from client.doctype import compose_all
from client.jsonpatch import (
    ADD,
    DELETE,
    INSERT,
    KINDS,
    MAX_DEPTH,
    MAX_DOC_INT,
    MAX_INT,
    MOVE,
    SET,
    TEXT,
    InvalidPatch,
    JOp,
    Key,
    Patch,
    Path,
    canonical,
    check_op,
    check_value,
    effective,
    from_wire,
    op_to_wire,
    same,
    to_wire,
)

__all__ = [
    "ADD",
    "DELETE",
    "EDITS",
    "INSERT",
    "JSON",
    "KINDS",
    "MAX_DEPTH",
    "MAX_INT",
    "MOVE",
    "SET",
    "TEXT",
    "InvalidPatch",
    "JOp",
    "JsonType",
    "Key",
    "Patch",
    "Path",
    "apply",
    "canonical",
    "check_op",
    "check_value",
    "compose",
    "diff",
    "effective",
    "from_wire",
    "get",
    "invert",
    "op_to_wire",
    "path_edit",
    "same",
    "simplify",
    "size_of",
    "to_wire",
    "transform",
]


# --- apply -------------------------------------------------------------------


def get(doc: object, path: Path) -> object:
    """The value at ``path``; raises :class:`InvalidPatch` if there is none."""
    node = doc
    for key in path:
        node = _child(node, key)
    return node


def _child(node: object, key: Key) -> object:
    if type(node) is dict and type(key) is str:
        if key not in node:
            raise InvalidPatch(f"no key {key!r}")
        return node[key]
    if type(node) is list and type(key) is int:
        if not 0 <= key < len(node):
            raise InvalidPatch(f"no item {key} in a list of {len(node)}")
        return node[key]
    raise InvalidPatch(f"cannot index {type(node).__name__} with {key!r}")


def _leaf(value: object, op: JOp) -> object:
    if op.kind == SET:
        return op.arg
    if op.kind == ADD:
        if type(value) is not int:
            raise InvalidPatch(f"add needs an integer, found {type(value).__name__}")
        return value + op.arg  # type: ignore[operator]
    if op.kind == TEXT:
        if type(value) is not str:
            raise InvalidPatch(f"a text edit needs a string, found {type(value).__name__}")
        return textops.apply(value, op.arg)  # type: ignore[arg-type]
    raise InvalidPatch(f"{op.kind!r} needs a container")


def _in_container(node: object, key: Key, op: JOp) -> object:
    """``node`` (a fresh copy) with ``op`` done at its ``key``."""
    if type(node) is dict and type(key) is str:
        copy = dict(node)
        if op.kind == SET:
            copy[key] = op.arg
        elif op.kind == DELETE:
            if key not in copy:
                raise InvalidPatch(f"no key {key!r} to delete")
            del copy[key]
        elif op.kind in (ADD, TEXT):
            copy[key] = _leaf(_child(node, key), op)
        else:
            raise InvalidPatch(f"{op.kind!r} needs a list")
        return copy
    if type(node) is list and type(key) is int:
        items = list(node)
        if op.kind == INSERT:
            if key > len(items):
                raise InvalidPatch(f"insert at {key} past the end of a list of {len(items)}")
            items.insert(key, op.arg)
            return items
        if key >= len(items):
            raise InvalidPatch(f"no item {key} in a list of {len(items)}")
        if op.kind == DELETE:
            del items[key]
        elif op.kind == MOVE:
            if not 0 <= op.arg < len(items):  # type: ignore[operator]
                raise InvalidPatch(f"move to {op.arg} outside a list of {len(items)}")
            items.insert(op.arg, items.pop(key))  # type: ignore[arg-type]
        else:
            items[key] = _leaf(items[key], op)
        return items
    raise InvalidPatch(f"cannot index {type(node).__name__} with {key!r}")


def _apply_op(doc: object, op: JOp) -> object:
    if not op.path:
        return _leaf(doc, op)
    nodes = [doc]
    for key in op.path[:-1]:
        nodes.append(_child(nodes[-1], key))
    value = _in_container(nodes[-1], op.path[-1], op)
    for node, key in zip(reversed(nodes[:-1]), reversed(op.path[:-1]), strict=True):
        if isinstance(node, dict):
            held = dict(node)
            held[key] = value
            value = held
        else:
            assert isinstance(node, list)
            items = list(node)
            items[key] = value  # type: ignore[index]
            value = items
    return value


def apply(doc: object, patch: Patch) -> object:
    """The document after ``patch``; raises :class:`InvalidPatch` if it does not apply.

    The result's node count (:meth:`JsonType.size`) is kept beside it, worked
    out from the operations, so the size check on every patch costs O(patch),
    not O(document)."""
    size = size_of(doc)
    for op in patch:
        size += _size_change(doc, op)
        doc = _apply_op(doc, op)
    _remember(doc, size)
    return doc


#: Node counts of recent documents, by id (the entry holds the document, so
#: the id cannot be reused while it is there); the least recently used go first.
_SIZES: dict[int, tuple[object, int]] = {}
_SIZES_KEPT = 16


def _remember(doc: object, size: int) -> None:
    if type(doc) is dict or type(doc) is list:
        _SIZES.pop(id(doc), None)
        _SIZES[id(doc)] = (doc, size)
        if len(_SIZES) > _SIZES_KEPT:
            del _SIZES[next(iter(_SIZES))]


def size_of(doc: object) -> int:
    """The number of values in ``doc`` (containers included): remembered for
    documents :func:`apply` made, else counted (and remembered)."""
    known = _SIZES.get(id(doc))
    if known is not None and known[0] is doc:
        _remember(doc, known[1])  # recently used: kept longer
        return known[1]
    size = _count(doc)
    _remember(doc, size)
    return size


def _size_change(doc: object, op: JOp) -> int:
    if op.kind == SET:
        old = 0
        if not op.path:
            old = size_of(doc)
        else:
            parent = get(doc, op.path[:-1])
            key = op.path[-1]
            if (type(parent) is dict and key in parent) or type(parent) is list:
                old = _count(_child(parent, key))
        return _count(op.arg) - old
    if op.kind == DELETE:
        return -_count(get(doc, op.path))
    if op.kind == INSERT:
        return _count(op.arg)
    return 0


# --- invert, compose, simplify -------------------------------------------------


def _inverse_op(doc: object, op: JOp) -> JOp:
    path = op.path
    if op.kind == SET:
        parent = get(doc, path[:-1]) if path else None
        if path and type(parent) is dict and path[-1] not in parent:
            return JOp(DELETE, path)
        return JOp(SET, path, get(doc, path))
    if op.kind == DELETE:
        old = get(doc, path)
        return JOp(INSERT if type(path[-1]) is int else SET, path, old)
    if op.kind == INSERT:
        return JOp(DELETE, path)
    if op.kind == MOVE:
        return JOp(MOVE, (*path[:-1], op.arg), path[-1])  # type: ignore[arg-type]
    if op.kind == ADD:
        return JOp(ADD, path, -op.arg)  # type: ignore[operator]
    old = get(doc, path)
    assert isinstance(old, str)
    return JOp(TEXT, path, textops.invert(op.arg, old))  # type: ignore[arg-type]


def invert(patch: Patch, doc: object) -> Patch:
    """The patch undoing ``patch``, which was applied to ``doc``."""
    inverse: list[JOp] = []
    for op in patch:
        inverse.append(_inverse_op(doc, op))
        doc = _apply_op(doc, op)
    return tuple(reversed(inverse))


def compose(first: Patch, then: Patch) -> Patch:
    """``first`` then ``then``: operations are sequential, so this concatenates
    (merging a trailing text edit or add with one at the same path)."""
    if not first or not then:
        return first or then
    last, head = first[-1], then[0]
    if last.path == head.path and last.kind == head.kind and head.kind in (TEXT, ADD):
        merged = (
            textops.compose(last.arg, head.arg)  # type: ignore[arg-type]
            if head.kind == TEXT
            else last.arg + head.arg  # type: ignore[operator]
        )
        middle = JOp(head.kind, head.path, merged)
        return first[:-1] + ((middle,) if effective(middle) else ()) + then[1:]
    return first + then


def simplify(patch: Patch, doc: object) -> Patch:
    """``patch`` without no-op operations, and empty if it changes nothing."""
    kept = tuple(op for op in patch if effective(op))
    return () if same(apply(doc, kept), doc) else kept


# --- transform -----------------------------------------------------------------


def _prefix(short: Path, long: Path) -> bool:
    return len(short) <= len(long) and long[: len(short)] == short


def _dropped(x: JOp, y: JOp) -> bool | None:
    """Rules 2 and 3 for ``x`` over a set or delete ``y``: True if ``x`` goes,
    False if it stays, None if it stays and only index mapping applies."""
    if x.kind in (INSERT, MOVE) and _prefix(y.path, x.path[:-1]):
        return True  # the list itself is gone or replaced
    if len(y.path) < len(x.path) and _prefix(y.path, x.path):
        return True
    if x.path != y.path or x.kind == INSERT:
        return None
    if x.kind == MOVE:
        return y.kind == DELETE
    if x.kind == SET and y.kind == SET:
        return not canonical(x.arg) > canonical(y.arg)
    if x.kind == DELETE:
        return y.kind == DELETE
    return True  # a set, add or text edit under a concurrent delete or set


def _map_item(k: int, y: JOp) -> int | None:
    """Where item ``k`` of ``y``'s list is after ``y`` (None: deleted)."""
    i = y.path[-1]
    assert type(i) is int
    if y.kind == DELETE:
        return None if k == i else k - (i < k)
    if y.kind == INSERT:
        return k + (i <= k)
    if y.kind == MOVE:
        t = y.arg
        assert type(t) is int
        if k == i:
            return t
        k1 = k - (i < k)
        return k1 + (t <= k1)
    return k


def _map_gap(p: int, x: JOp, y: JOp) -> int:
    """Rule 4: where insert ``x`` at gap ``p`` goes after list op ``y``."""
    i = y.path[-1]
    assert type(i) is int
    if y.kind == DELETE:
        return p - (i < p)
    if y.kind == INSERT:
        if p != i:
            return p + (i < p)
        return p + (canonical(y.arg) < canonical(x.arg))
    t = y.arg
    assert type(t) is int
    p1 = p - (i < p)
    return p1 + (t < p1)


def _move_over(x: JOp, y: JOp) -> list[JOp]:
    """Move ``x`` over a list op ``y`` on the same list (rules 4 and 5)."""
    f, to, i = x.path[-1], x.arg, y.path[-1]
    assert type(f) is int
    assert type(to) is int
    assert type(i) is int
    base = x.path[:-1]
    if y.kind == DELETE:
        i1 = i - (f < i)
        return _move(base, f - (i < f), to - (i1 < to))
    if y.kind == INSERT:
        p1 = i - (f < i)
        return _move(base, f + (i <= f), to + (p1 <= to))
    t = y.arg
    assert type(t) is int
    if f == i:  # the same item: the larger target wins
        return _move(base, t, to) if to > t else []
    # Different items (rule 5): place both in R, the list without either.
    own, other = f - (i < f), i - (f < i)  # each item's place in R
    goal, theirs = to - (other < to), t - (own < t)  # each target, as a place in R
    first = goal < theirs or (goal == theirs and f < i)  # a tie keeps the original order
    before = theirs < own or (theirs == own and t == own)  # the other item is before ours now
    return _move(base, own + before, goal + (not first))


def _move(base: Path, f: int, to: int) -> list[JOp]:
    return [] if f == to else [JOp(MOVE, (*base, f), to)]


def _over(x: JOp, y: JOp) -> list[JOp]:
    """``x`` rebased over the concurrent ``y`` (both single operations)."""
    if y.kind in (SET, DELETE):
        verdict = _dropped(x, y)
        if verdict is not None:
            return [] if verdict else [x]
    if y.kind == TEXT and x.kind == TEXT and x.path == y.path:
        moved = textops.transform(x.arg, y.arg)  # type: ignore[arg-type]
        return [JOp(TEXT, x.path, moved)] if moved else []
    if y.kind not in (INSERT, DELETE, MOVE) or not y.path or type(y.path[-1]) is not int:
        return [x]
    base = y.path[:-1]
    d = len(base)
    if len(x.path) <= d or x.path[:d] != base or type(x.path[d]) is not int:
        return [x]
    k = x.path[d]
    assert type(k) is int
    here = len(x.path) == d + 1
    if here and x.kind == MOVE:
        return _move_over(x, y)
    if here and x.kind == INSERT:
        mapped: int | None = _map_gap(k, x, y)
    else:
        mapped = _map_item(k, y)
    if mapped is None:  # pragma: no cover - rule 2 dropped it above
        return []
    return [JOp(x.kind, (*base, mapped, *x.path[d + 1 :]), x.arg)]


def _grid(a: list[JOp], b: list[JOp]) -> tuple[list[JOp], list[JOp]]:
    """``(a over b, b over a)`` for sequences of operations."""
    if not a or not b:
        return a, b
    if len(a) == 1 and len(b) == 1:
        return _over(a[0], b[0]), _over(b[0], a[0])
    if len(a) == 1:
        done: list[JOp] = []
        for y in b:
            a, rest = _grid(a, [y])
            done += rest
        return a, done
    out: list[JOp] = []
    for x in a:
        moved, b = _grid([x], b)
        out += moved
    return out, b


def transform(patch: Patch, over: Patch) -> Patch:
    """``patch`` rebased onto the document after the concurrent ``over``."""
    return tuple(_grid(list(patch), list(over))[0])


# --- diff ------------------------------------------------------------------------


def _diff(old: object, new: object, path: Path, out: list[JOp], words: bool) -> None:
    if same(old, new):
        return
    if type(old) is dict and type(new) is dict:
        for key in old:
            if key not in new:
                out.append(JOp(DELETE, (*path, key)))
        for key, value in new.items():
            if key in old:
                _diff(old[key], value, (*path, key), out, words)
            else:
                out.append(JOp(SET, (*path, key), value))
    elif type(old) is list and type(new) is list:
        _diff_list(old, new, path, out, words)
    elif type(old) is str and type(new) is str:
        text = textdiff.diff_words(old, new) if words else textdiff.diff(old, new)
        out.append(JOp(TEXT, path, text))
    elif type(old) is int and type(new) is int and not words:
        out.append(JOp(ADD, path, new - old))
    else:
        out.append(JOp(SET, path, new))


def _diff_list(
    old: list[object], new: list[object], path: Path, out: list[JOp], words: bool
) -> None:
    start = 0
    while start < min(len(old), len(new)) and same(old[start], new[start]):
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and same(old[-1 - end], new[-1 - end]):
        end += 1
    gone, came = old[start : len(old) - end], new[start : len(new) - end]
    if len(gone) == len(came):
        for offset, (a, b) in enumerate(zip(gone, came, strict=True)):
            _diff(a, b, (*path, start + offset), out, words)
        return
    out.extend(JOp(DELETE, (*path, start)) for _ in gone)
    out.extend(JOp(INSERT, (*path, start + n), value) for n, value in enumerate(came))


def diff(old: object, new: object, *, words: bool = False) -> Patch:
    """A patch turning ``old`` into ``new``: per key, per item, text diffs in strings."""
    out: list[JOp] = []
    _diff(old, new, (), out, words)
    return tuple(op for op in out if effective(op))


# --- path edits ------------------------------------------------------------------

#: The edits a program makes by path, as the SDK (``Pad.set``...) and the
#: embed API (``set``...) name them, with the arguments after the path.
EDITS: dict[str, tuple[str, ...]] = {
    "set": ("value",),
    "delete_at": (),
    "insert_item": ("index", "value"),
    "move_item": ("from_index", "to_index"),
    "add": ("number",),
    "edit_text": ("pos", "delete", "insert"),
}


def path_edit(doc: object, method: str, path: object, *args: object) -> JOp | None:
    """The checked operation for one edit by path on ``doc`` (see :data:`EDITS`),
    or ``None`` for an edit that changes nothing (a move to where the item is,
    an add of 0, an empty text edit: the place must still be right for a move).

    ``path`` is a list or tuple of ``str`` keys and ``int`` indices; for
    ``insert_item`` and ``move_item`` it names the list.  ``edit_text`` takes
    ``pos`` and optionally ``delete`` (default 0) and ``insert`` (default "").

    Raises:
        InvalidPatch: an unknown method, wrong arguments, a bad path or value,
            or an edit that does not fit ``doc`` (one line saying why).
    """
    if method not in EDITS:
        raise InvalidPatch(f"unknown edit {method!r}: one of {', '.join(EDITS)}")
    if not isinstance(path, list | tuple):
        raise InvalidPatch(
            f"a path is a list of str keys and int indices, not {type(path).__name__}"
        )
    place: Path = tuple(path)
    if method == "edit_text" and 1 <= len(args) < 3:
        args = (*args, *(0, "")[len(args) - 1 :])  # delete=0, insert="" by default
    if len(args) != len(EDITS[method]):
        names = ", ".join(("path", *EDITS[method]))
        raise InvalidPatch(f"{method} takes ({names}), not {len(args) + 1} arguments")
    op: JOp
    if method == "set":
        op = JOp(SET, place, args[0])
    elif method == "delete_at":
        op = JOp(DELETE, place, None)
    elif method == "insert_item":
        op = JOp(INSERT, (*place, args[0]), args[1])  # type: ignore[arg-type]
    elif method == "move_item":
        op = JOp(MOVE, (*place, args[0]), args[1])  # type: ignore[arg-type]
        if args[0] == args[1] and type(args[0]) is int:
            get(doc, op.path)  # nothing to do, but the item must be there
            return None
    elif method == "add":
        if args[0] == 0 and type(args[0]) is int:
            return None
        op = JOp(ADD, place, args[0])
    else:
        pos, delete, insert = args
        if not delete and not insert:
            return None
        try:
            op = JOp(TEXT, place, textops.normalize([textops.Op(pos, delete, insert)]))  # type: ignore[arg-type]
        except InvalidPatch as error:
            raise InvalidPatch(f"edit_text: {error}") from error
    op = check_op(op)
    apply(doc, (op,))
    return op


def _count(value: object) -> int:
    if type(value) is dict:
        return 1 + sum(_count(v) for v in value.values())
    if type(value) is list:
        return 1 + sum(_count(v) for v in value)
    return 1


class JsonType:
    """JSON documents (see the module docstring); implements :class:`client.doctype.DocType`."""

    name = "json"

    def empty(self) -> object:
        return {}

    def size_change(self, patch: Patch) -> None:
        return None  # a delete's change is the size of what it deletes

    def size(self, doc: object) -> int:
        return size_of(doc)

    def digest(self, doc: object) -> bytes:
        return hashlib.sha256(canonical(doc).encode("utf-8")).digest()

    def integrity(self, doc: object, alg: int) -> bytes | None:
        return self.digest(doc) if alg == 1 else None

    def claim_integrity(self, doc: object) -> tuple[int, bytes]:
        return 1, self.digest(doc)

    def identity(self) -> Patch:
        return ()

    def is_identity(self, patch: Patch) -> bool:
        return not patch

    def apply(self, doc: object, patch: Patch) -> object:
        return apply(doc, patch)

    def apply_all(self, doc: object, patches: list[Patch]) -> object:
        # Composed first: each apply copies the containers on its paths.
        return apply(doc, compose_all(self, patches)) if patches else doc

    def compose(self, first: Patch, then: Patch) -> Patch:
        return compose(first, then)

    def invert(self, patch: Patch, doc: object) -> Patch:
        return invert(patch, doc)

    def transform(self, patch: Patch, over: Patch) -> Patch:
        return transform(patch, over)

    def simplify(self, patch: Patch, doc: object) -> Patch:
        return simplify(patch, doc)

    def diff(self, old: object, new: object) -> Patch:
        return diff(old, new)

    def rediff(self, old: object, patch: Patch) -> Patch:
        return self.diff(old, self.apply(old, patch))

    def merge_diff(self, old: object, new: object) -> Patch:
        return diff(old, new, words=True)

    def separate(self, patch: Patch) -> tuple[Patch, Patch]:
        """Structural operations do not split into removals and additions:
        everything counts as an addition (``compose((), patch) == patch``)."""
        return (), patch

    def split(self, patch: Patch, budget: int, count: int) -> tuple[list[Patch], Patch]:
        """Consecutive runs of whole operations of about ``budget`` characters of
        wire form each (an operation larger than that is a piece alone)."""
        if budget < 1 or count < 1:
            raise ValueError("split budget and count must be at least 1")
        pieces: list[Patch] = []
        start, used = 0, 0
        for index, op in enumerate(patch):
            cost = len(canonical(op_to_wire(op))) + 2
            if index > start and used + cost > budget:
                pieces.append(patch[start:index])
                start, used = index, 0
                if len(pieces) == count:
                    return pieces, patch[start:]
            used += cost
        if start < len(patch):
            pieces.append(patch[start:])
        return pieces, ()

    def patch_to_wire(self, patch: Patch) -> object:
        return to_wire(patch)

    def patch_from_wire(self, data: object) -> Patch:
        return from_wire(data)

    def patch_to_bytes(self, patch: Patch) -> bytes:
        wire = to_wire(patch)
        return json.dumps(wire, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def patch_from_bytes(self, data: bytes) -> Patch:
        try:
            wire = json.loads(data.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
            raise InvalidPatch(f"a JSON patch's operations are not UTF-8 JSON: {exc}") from None
        return from_wire(wire)

    def doc_to_wire(self, doc: object) -> object:
        return {"json": doc}

    def doc_from_wire(self, data: object) -> object:
        if type(data) is not dict or list(data) != ["json"]:
            raise InvalidPatch('a JSON document travels as {"json": value}')
        value = data["json"]
        check_value(value, limit=MAX_DOC_INT)
        return value


#: The JSON document type.
JSON = JsonType()

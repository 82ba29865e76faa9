"""Dot stores and the causal join (Almeida, Shoker, Baquero: "Delta state replicated data types").

A causal CRDT is a pair (dot store, causal context). Two kinds of dot store are enough for every
type here:

* :class:`DotFun` maps dot -> payload (a dot set is a DotFun whose payloads are ``True``);
* :class:`DotMap` maps key -> non-empty nested dot store.

The join keeps an entry when both sides have it, or when one side has it and the other side has
not seen its dot. So an entry disappears exactly when a context that saw it no longer holds it:
removals need no tombstones, only the (compact) causal context.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator, Mapping
from functools import partial
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from typing import Any, TypeAlias

from .causal import CausalContext, Dot


class DotFun:
    """Immutable mapping dot -> payload. Payloads are immutable; one dot always has one payload."""

    __slots__ = ("_d",)

    def __init__(self, entries: Mapping[Dot, Any] | None = None) -> None:
        self._d: dict[Dot, Any] = dict(entries or {})

    @classmethod
    def _wrap(cls, d: dict[Dot, Any]) -> DotFun:
        f = cls.__new__(cls)
        f._d = d
        return f

    def __getitem__(self, dot: Dot) -> Any:
        return self._d[dot]

    def __contains__(self, dot: object) -> bool:
        return dot in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[Dot]:
        return iter(self._d)

    def items(self) -> Iterable[tuple[Dot, Any]]:
        return self._d.items()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotFun) and self._d == other._d

    def __hash__(self) -> int:
        return hash(frozenset(self._d))

    def __repr__(self) -> str:
        return f"DotFun({dict(sorted(self._d.items(), key=lambda kv: kv[0]))})"


class DotMap:
    """Immutable mapping key -> non-empty dot store (all values of one map have one kind)."""

    __slots__ = ("_d",)

    def __init__(self, entries: Mapping[Hashable, DotStore] | None = None) -> None:
        self._d: dict[Hashable, DotStore] = {k: v for k, v in (entries or {}).items() if len(v)}

    @classmethod
    def _wrap(cls, d: dict[Hashable, DotStore]) -> DotMap:
        m = cls.__new__(cls)
        m._d = d
        return m

    def get(self, key: Hashable) -> DotStore | None:
        return self._d.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __len__(self) -> int:
        return len(self._d)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._d)

    def items(self) -> Iterable[tuple[Hashable, DotStore]]:
        return self._d.items()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DotMap) and self._d == other._d

    def __hash__(self) -> int:
        return hash(frozenset(self._d))

    def __repr__(self) -> str:
        return f"DotMap({self._d!r})"


DotStore: TypeAlias = DotFun | DotMap

EMPTY_FUN = DotFun()
EMPTY_MAP = DotMap()


def join(a: DotStore, ca: CausalContext, b: DotStore, cb: CausalContext) -> DotStore:
    """The causal join of two dot stores of the same kind, each with its own context."""
    if isinstance(a, DotFun) and isinstance(b, DotFun):
        return join_fun(a, ca, b, cb)
    if isinstance(a, DotMap) and isinstance(b, DotMap):
        return join_map(a, ca, b, cb)
    # One side is an empty store of the other kind (a bottom built without knowing the kind).
    if not len(a):
        return _filter(b, ca)
    if not len(b):
        return _filter(a, cb)
    raise TypeError("cannot join a DotFun with a DotMap")


def join_at(
    a: DotStore, ca: CausalContext, b: DotStore, cb: CausalContext, path: tuple[Hashable, ...]
) -> DotStore:
    """``join`` for a delta confined to one key path: O(path) instead of O(size of ``a``).

    Valid when every dot of ``cb`` and every entry of ``b`` lies under ``path`` (true of every
    delta a mutator produces for that path); then it equals the full join. If ``b`` holds
    entries elsewhere it falls back to the full join.
    """
    if not path or not isinstance(a, DotMap) or not isinstance(b, DotMap):
        return join(a, ca, b, cb)
    k = path[0]
    if any(key != k for key in b._d):
        return join(a, ca, b, cb)
    sub_a, sub_b = a._d.get(k), b._d.get(k)
    if sub_a is None and sub_b is None:
        return a
    if sub_a is None:
        assert sub_b is not None
        j = _filter(sub_b, ca)
    else:
        if sub_b is None:
            sub_b = EMPTY_MAP if isinstance(sub_a, DotMap) else EMPTY_FUN
        j = join_at(sub_a, ca, sub_b, cb, path[1:])
    out = a._d.copy()
    if len(j):
        out[k] = j
    else:
        out.pop(k, None)
    return DotMap._wrap(out)


def join_fun(a: DotFun, ca: CausalContext, b: DotFun, cb: CausalContext) -> DotFun:
    ad, bd = a._d, b._d
    if not bd:
        return _filter_fun(a, cb)
    if not ad:
        return _filter_fun(b, ca)
    # ``CausalContext.contains`` inlined, plain loops: this is the hot path of every merge and
    # the stores are usually tiny (a register holds one entry).
    if len(ad) == 1 == len(bd):
        (da,) = ad
        (db,) = bd
        if da == db:  # the same entry (on a shared dot the general join keeps ``a``'s payload)
            return a
        keep_b = _unseen(db[0], db[1], ca)
        if _unseen(da[0], da[1], cb):
            return DotFun._wrap(ad | bd) if keep_b else a
        return b if keep_b else EMPTY_FUN
    if ad == bd:  # both sides hold the same entries: the join keeps exactly those
        return a
    av, acl = ca._v, ca._cloud
    bv, bcl = cb._v, cb._cloud
    out: dict[Dot, Any] = {}
    for d, v in ad.items():
        if d in bd or not (d[1] <= bv.get(d[0], 0) or d in bcl):
            out[d] = v
    for d, v in bd.items():
        if d not in ad and not (d[1] <= av.get(d[0], 0) or d in acl):
            out[d] = v
    return DotFun._wrap(out)


def _unseen(replica: str, counter: int, c: CausalContext) -> bool:
    """Whether ``c`` has not seen the dot ``(replica, counter)`` (``CausalContext.contains``
    inlined: single-entry joins, the hot path of every merge, ask it of both entries)."""
    return counter > c._v.get(replica, 0) and not (c._cloud and (replica, counter) in c._cloud)


# -- rows: register dot functions as flat tuples --------------------------------------------------

Row: TypeAlias = tuple[Any, ...]
"""A non-empty dot function of register payloads ``dot -> (wall_ms, logical, value)`` as one
flat tuple ``(replica1, counter1, wall_ms1, logical1, value1, replica2, ...)``, dots ascending
(so equal dot functions have equal rows): how a replica keeps its top-level LWW registers (one
entry each, a few while concurrent writes are unresolved) - one tuple instead of an entry
tuple, a DotFun, its dict, a dot and a payload."""
ROW_FIELDS = 5
_dot = partial(tuple.__new__, Dot)
"""``(replica, counter)`` -> its :class:`Dot`, without the named tuple's Python ``__new__``."""


def row_of(store: DotFun) -> Row:
    """The row of a non-empty dot function of register payloads."""
    d = store._d
    if len(d) == 1:
        ((replica, counter), (wall, logical, value)) = next(iter(d.items()))
        return replica, counter, wall, logical, value
    return tuple(chain.from_iterable((*dot, *p) for dot, p in sorted(d.items())))


def fun_of(row: Row) -> DotFun:
    """The dot function a row stands for."""
    if len(row) == ROW_FIELDS:
        return DotFun._wrap({_dot(row[:2]): row[2:]})
    return DotFun._wrap(
        {_dot(row[i : i + 2]): row[i + 2 : i + ROW_FIELDS] for i in range(0, len(row), ROW_FIELDS)}
    )


def row_dots(row: Row) -> list[Dot]:
    """The dots a row holds, in its (ascending) order."""
    return [_dot(row[i : i + 2]) for i in range(0, len(row), ROW_FIELDS)]


def join_rows(m: Row, cm: CausalContext, t: Row, ct: CausalContext) -> Row:
    """:func:`join_fun` of two rows: ``m`` or ``t`` itself when the join is one of them,
    ``()`` when it is empty."""
    if len(m) == ROW_FIELDS == len(t):  # one entry each: the usual case, without stores
        if m[0] == t[0] and m[1] == t[1]:
            return m
        if _unseen(m[0], m[1], ct):
            if _unseen(t[0], t[1], cm):
                return m + t if (m[0], m[1]) < (t[0], t[1]) else t + m
            return m
        return t if _unseen(t[0], t[1], cm) else ()
    # One side's single entry among the other's siblings, none of which it has seen: the join
    # is the other side (a replica receiving a state with its value and concurrent ones).
    if len(m) == ROW_FIELDS and _holds_and_unseen(t, m[0], m[1], cm):
        return t
    if len(t) == ROW_FIELDS and _holds_and_unseen(m, t[0], t[1], ct):
        return m
    fm, ft = fun_of(m), fun_of(t)
    j = join_fun(fm, cm, ft, ct)
    return m if j is fm else t if j is ft else row_of(j) if j._d else ()


def _holds_and_unseen(row: Row, replica: str, counter: int, c: CausalContext) -> bool:
    """Whether ``row`` holds the dot ``(replica, counter)`` and ``c`` has seen none of its
    other dots."""
    if len(row) == 2 * ROW_FIELDS:  # two siblings: the usual case
        second = ROW_FIELDS
        if replica == row[0] and counter == row[1]:
            return _unseen(row[second], row[second + 1], c)
        if replica == row[second] and counter == row[second + 1]:
            return _unseen(row[0], row[1], c)
        return False
    held = row_dots(row)
    return (replica, counter) in held and unseen_dots(
        [d for d in held if d != (replica, counter)], c
    )


def filter_row(row: Row, c: CausalContext) -> Row:
    """The row's entries ``c`` has not seen (:func:`_filter` of its dot function)."""
    if len(row) == ROW_FIELDS:
        return row if _unseen(row[0], row[1], c) else ()
    f = fun_of(row)
    j = _filter_fun(f, c)
    return row if j is f else row_of(j) if j._d else ()


def unseen_rows(rows: list[Row], c: CausalContext) -> bool:
    """:func:`unseen_dots` of every dot the rows hold (decided at C speed for single-entry
    rows, conservatively: ``False`` may only mean "check each row")."""
    if set(map(len, rows)) <= {ROW_FIELDS}:
        held = list(zip(map(itemgetter(0), rows), map(itemgetter(1), rows), strict=True))
        return unseen_dots(held, c)
    return unseen_dots([d for row in rows for d in row_dots(row)], c)


def join_map(a: DotMap, ca: CausalContext, b: DotMap, cb: CausalContext) -> DotMap:
    out: dict[Hashable, DotStore] = {}
    for k, av in a._d.items():
        bv = b._d.get(k)
        j = _filter(av, cb) if bv is None else join(av, ca, bv, cb)
        if len(j):
            out[k] = j
    for k, bv in b._d.items():
        if k not in a._d:
            j = _filter(bv, ca)
            if len(j):
                out[k] = j
    return DotMap._wrap(out)


def _filter_fun(a: DotFun, c: CausalContext) -> DotFun:
    cv, cl = c._v, c._cloud
    if not cv and not cl:
        return a
    ad = a._d
    for d in ad:
        if d[1] <= cv.get(d[0], 0) or d in cl:
            break
    else:
        return a  # nothing seen by ``c``: the same store
    return DotFun._wrap({d: v for d, v in ad.items() if not (d[1] <= cv.get(d[0], 0) or d in cl)})


def _filter(a: DotStore, c: CausalContext) -> DotStore:
    """Join with the bottom store of context ``c``: drop every entry ``c`` has seen."""
    if isinstance(a, DotFun):
        return _filter_fun(a, c)
    out: dict[Hashable, DotStore] = {}
    for k, v in a._d.items():
        j = _filter(v, c)
        if len(j):
            out[k] = j
    return DotMap._wrap(out)


def unseen(stores: list[DotStore], c: CausalContext) -> bool:
    """Whether the stores are non-empty dot functions none of whose dots ``c`` has seen (so
    each is its own join with any state of context ``c`` lacking it).

    Decided at C speed for many stores at once, conservatively: ``False`` may only mean
    "check each store"."""
    if set(map(type, stores)) - {DotFun}:
        return False
    stores_d: list[dict[Dot, Any]] = list(map(attrgetter("_d"), stores))
    return all(stores_d) and unseen_dots(list(chain.from_iterable(stores_d)), c)


def unseen_dots(held: Collection[tuple[str, int]], c: CausalContext) -> bool:
    """Whether ``c`` has seen none of the dots, decided at C speed and conservatively: the
    smallest counter must exceed what ``c``'s vector covers of any replica among them."""
    if not held:
        return True
    if c._cloud and not c._cloud.isdisjoint(held):
        return False
    v = c._v
    covered = max(map(v.get, set(map(itemgetter(0), held)), repeat(0)))
    return covered == 0 or min(map(itemgetter(1), held)) > covered


def dots(store: DotStore) -> Iterator[Dot]:
    """Every dot held in ``store`` (recursively)."""
    if isinstance(store, DotFun):
        yield from store._d
    else:
        for v in store._d.values():
            yield from dots(v)


def flatten(store: DotStore, path: tuple[Hashable, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Entries as ``(*path, dot, payload)`` tuples: the structural view used by ``leq``."""
    if isinstance(store, DotFun):
        for d, v in store._d.items():
            yield (*path, d, v)
    else:
        for k, v in store._d.items():
            yield from flatten(v, (*path, k))


def causal_leq(a: DotStore, ca: CausalContext, b: DotStore, cb: CausalContext) -> bool:
    """Lattice order of causal states, defined without using ``join``.

    ``(a, ca) <= (b, cb)`` iff ``cb`` has seen every dot of ``ca`` and every entry of ``b`` whose
    dot ``ca`` has seen is also an entry of ``a`` (``b`` dropped entries, it never revived one).
    """
    if not ca.leq(cb):
        return False
    fa = set(flatten(a))
    return all(e in fa for e in flatten(b) if ca.contains(e[-2]))


def observed(store: DotStore | None, context: CausalContext | None) -> list[Dot]:
    """The dots of ``store`` a write supersedes: all of them, or those ``context`` covers."""
    if store is None:
        return []
    if context is None:
        return list(dots(store))
    return [d for d in dots(store) if context.contains(d)]


def write_delta(
    store: DotStore | None,
    cc: CausalContext,
    replica: str,
    payload: Any,
    context: CausalContext | None,
) -> tuple[DotFun, CausalContext]:
    """Delta of "replace what the writer observed with one new entry ``payload``"."""
    dot = cc.next_dot(replica)
    return DotFun._wrap({dot: payload}), CausalContext.from_dots([*observed(store, context), dot])


def remove_delta(
    store: DotStore | None, context: CausalContext | None
) -> tuple[DotFun, CausalContext]:
    """Delta of "drop what the remover observed": no entries, only a context."""
    return EMPTY_FUN, CausalContext.from_dots(observed(store, context))

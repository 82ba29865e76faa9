"""Observed-remove sets: add-wins (:class:`AWSet`) and remove-wins (:class:`RWSet`).

Both map element -> dots (a dot map of dot functions). ``add`` writes one fresh dot for the
element and supersedes the element's observed dots, so a sequential add/remove history keeps at
most one dot per live element and nothing for removed ones.

* AWSet: remove drops the observed dots; a concurrent add (unseen dot) survives.
* RWSet: remove writes a ``False`` token; an element is present iff it has tokens and all are
  ``True``, so a remove wins over a concurrent add. Stable remove tokens are collected by
  :meth:`RWSet.collect`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from .causal import CausalContext, VersionVector, check_replica
from .dotstore import (
    EMPTY_MAP,
    DotFun,
    DotMap,
    causal_leq,
    join_map,
    remove_delta,
    write_delta,
)
from .flags import _collectable
from .registers import ClientContext, as_context
from .values import DEFAULT_LIMITS, Limits, Scalar, check_scalar, scalar_sort_key


def _element_store(store: DotMap, element: Scalar) -> DotFun | None:
    s = store.get(element)
    assert s is None or isinstance(s, DotFun)
    return s


def _sorted(elements: list[Hashable]) -> list[Scalar]:
    out: list[Scalar] = [e for e in elements if isinstance(e, bytes | str | int)]
    return sorted(out, key=scalar_sort_key)


@dataclass(frozen=True, slots=True)
class AWSet:
    store: DotMap = EMPTY_MAP
    cc: CausalContext = field(default_factory=CausalContext)

    def __contains__(self, element: object) -> bool:
        return element in self.store

    @property
    def elements(self) -> list[Scalar]:
        return _sorted(list(self.store))

    def context(self) -> CausalContext:
        return self.cc

    def add(
        self, element: Scalar, replica: str, limits: Limits = DEFAULT_LIMITS
    ) -> tuple[AWSet, AWSet]:
        check_replica(replica)
        element = check_scalar(element, "element", limits)
        s, c = write_delta(_element_store(self.store, element), self.cc, replica, True, None)
        return self._apply(DotMap._wrap({element: s}), c)

    def remove(self, element: Scalar, context: ClientContext = None) -> tuple[AWSet, AWSet]:
        element = check_scalar(element, "element")
        _, c = remove_delta(_element_store(self.store, element), as_context(context))
        return self._apply(EMPTY_MAP, c)

    def clear(self, context: ClientContext = None) -> tuple[AWSet, AWSet]:
        _, c = remove_delta(self.store, as_context(context))
        return self._apply(EMPTY_MAP, c)

    def _apply(self, s: DotMap, c: CausalContext) -> tuple[AWSet, AWSet]:
        delta = AWSet(s, c)
        return self.merge(delta), delta

    def merge(self, other: AWSet) -> AWSet:
        return AWSet(join_map(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc))

    def leq(self, other: AWSet) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)


@dataclass(frozen=True, slots=True)
class RWSet:
    store: DotMap = EMPTY_MAP
    cc: CausalContext = field(default_factory=CausalContext)

    def __contains__(self, element: object) -> bool:
        s = self.store.get(element) if isinstance(element, Hashable) else None
        return isinstance(s, DotFun) and all(v is True for _, v in s.items())

    @property
    def elements(self) -> list[Scalar]:
        return _sorted([e for e in self.store if e in self])

    def context(self) -> CausalContext:
        return self.cc

    def add(
        self, element: Scalar, replica: str, limits: Limits = DEFAULT_LIMITS
    ) -> tuple[RWSet, RWSet]:
        return self._write(element, replica, True, None, limits)

    def remove(
        self,
        element: Scalar,
        replica: str,
        context: ClientContext = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[RWSet, RWSet]:
        return self._write(element, replica, False, context, limits)

    def _write(
        self, element: Scalar, replica: str, on: bool, context: ClientContext, limits: Limits
    ) -> tuple[RWSet, RWSet]:
        check_replica(replica)
        element = check_scalar(element, "element", limits)
        current = _element_store(self.store, element)
        s, c = write_delta(current, self.cc, replica, on, as_context(context))
        delta = RWSet(DotMap._wrap({element: s}), c)
        return self.merge(delta), delta

    def merge(self, other: RWSet) -> RWSet:
        return RWSet(join_map(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc))

    def leq(self, other: RWSet) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)

    def collect(self, stable: VersionVector) -> RWSet:
        """Drop absent elements whose tokens are all in the strongly stable cut (see DWFlag)."""
        out: dict[Hashable, DotFun | DotMap] = {}
        changed = False
        for e, s in self.store.items():
            assert isinstance(s, DotFun)
            if _collectable(s, stable):
                changed = True
            else:
                out[e] = s
        return RWSet(DotMap._wrap(out), self.cc) if changed else self

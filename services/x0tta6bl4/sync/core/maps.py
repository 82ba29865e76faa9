"""Observed-remove map with nested causal CRDT values (Almeida et al.'s ORMap).

All nested values share the map's causal context: a nested write mints its dot from it, and
``remove(key)`` is a delta holding no entries and exactly the dots of that key the remover saw.
So a removed key's old contents can never come back through a stale replica, while a write
concurrent with the removal survives (with only its own, unseen, dots). Key presence is
therefore "update wins"; each value resolves its own conflicts by its type's strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from .causal import CausalContext, VersionVector
from .dotstore import (
    EMPTY_FUN,
    EMPTY_MAP,
    DotMap,
    DotStore,
    causal_leq,
    join_at,
    join_map,
    remove_delta,
)
from .errors import InvalidOperation
from .flags import DWFlag
from .registers import ClientContext, as_context
from .sets import RWSet
from .spec import MAP_STORE_TAGS, TypeSpec, TypeTag, spec_of
from .values import DEFAULT_LIMITS, Limits, check_key

if TYPE_CHECKING:
    from .spec import CausalCRDT

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ORMap:
    value_spec: TypeSpec
    store: DotMap = EMPTY_MAP
    cc: CausalContext = field(default_factory=CausalContext)

    def __post_init__(self) -> None:
        if not isinstance(self.value_spec, TypeSpec) or not self.value_spec.causal:
            raise InvalidOperation("type.value", "OR-Map values must be dot-based CRDT types")

    def _bottom_store(self) -> DotStore:
        return EMPTY_MAP if self.value_spec.tag in MAP_STORE_TAGS else EMPTY_FUN

    def __contains__(self, key: object) -> bool:
        return key in self.store

    def __len__(self) -> int:
        return len(self.store)

    def keys(self) -> list[str]:
        return sorted(k for k in self.store if isinstance(k, str))

    def get(self, key: str) -> CausalCRDT | None:
        s = self.store.get(key)
        return None if s is None else self.value_spec.view(s, self.cc)

    def items(self) -> Iterator[tuple[str, CausalCRDT]]:
        for k in self.keys():
            s = self.store.get(k)
            assert s is not None
            yield k, self.value_spec.view(s, self.cc)

    def context(self) -> CausalContext:
        return self.cc

    def update(
        self, key: str, mutator: Callable[[T], tuple[T, T]], limits: Limits = DEFAULT_LIMITS
    ) -> tuple[ORMap, ORMap]:
        """Apply a nested mutator to the value under ``key`` (created empty if absent).

        ``mutator`` receives the nested value viewed with the map's shared context and returns
        its own ``(new_value, delta)`` pair, e.g. ``lambda s: s.add("x", "r1")``.
        """
        key = check_key(key, "key", limits)
        current = self.store.get(key)
        view = self.value_spec.view(
            current if current is not None else self._bottom_store(), self.cc
        )
        _, nested = mutator(cast(T, view))
        if spec_of(cast("CausalCRDT", nested)) != self.value_spec:
            raise InvalidOperation("op", f"mutator did not produce a {self.value_spec.name}")
        nd = cast("CausalCRDT", nested)
        return self._apply_confined(
            key, DotMap._wrap({key: nd.store}) if len(nd.store) else EMPTY_MAP, nd.cc
        )

    def remove(self, key: str, context: ClientContext = None) -> tuple[ORMap, ORMap]:
        """Remove ``key``: drop the dots of it this writer observed (all, or those in context)."""
        key = check_key(key)
        _, c = remove_delta(self.store.get(key), as_context(context))
        return self._apply_confined(key, EMPTY_MAP, c)

    def _apply_confined(
        self, key: str, delta_store: DotMap, delta_cc: CausalContext
    ) -> tuple[ORMap, ORMap]:
        # The delta's dots all belong to ``key``, so joining that one key equals the full join
        # (tests check ``new == old.merge(delta)``) without visiting every other key.
        delta = ORMap(self.value_spec, delta_store, delta_cc)
        joined = join_at(self.store, self.cc, delta_store, delta_cc, (key,))
        assert isinstance(joined, DotMap)
        return ORMap(self.value_spec, joined, self.cc.union(delta_cc)), delta

    def merge(self, other: ORMap) -> ORMap:
        if other.value_spec != self.value_spec:
            raise InvalidOperation(
                "type", f"cannot merge {other.value_spec.name} values into {self.value_spec.name}"
            )
        return ORMap(
            self.value_spec,
            join_map(self.store, self.cc, other.store, other.cc),
            self.cc.union(other.cc),
        )

    def leq(self, other: ORMap) -> bool:
        return self.value_spec == other.value_spec and causal_leq(
            self.store, self.cc, other.store, other.cc
        )

    def collect(self, stable: VersionVector) -> ORMap:
        """Collect causally stable remove tokens in nested remove-wins values."""
        if self.value_spec.tag not in {TypeTag.RW_SET, TypeTag.DW_FLAG, TypeTag.OR_MAP}:
            return self
        out: dict[Hashable, DotStore] = {}
        changed = False
        for k, s in self.store.items():
            v = self.value_spec.view(s, self.cc)
            c = v.collect(stable) if isinstance(v, RWSet | DWFlag | ORMap) else v
            if c is not v:
                changed = True
            if len(c.store):
                out[k] = c.store
        return ORMap(self.value_spec, DotMap._wrap(out), self.cc) if changed else self

"""Type tags, type specs and the conflict-strategy registry.

A :class:`TypeSpec` names a CRDT type; an OR-Map's spec also names its value type, so
``TypeSpec(OR_MAP, TypeSpec(LWW_REGISTER))`` is "a map of last-writer-wins registers".
:func:`spec_for` maps a (shape, conflict strategy) pair to the type implementing it.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from .errors import InvalidOperation

if TYPE_CHECKING:
    from .causal import CausalContext
    from .counters import GCounter, PNCounter
    from .dotstore import DotStore
    from .flags import DWFlag, EWFlag
    from .maps import ORMap
    from .registers import LWWRegister, MVRegister
    from .sets import AWSet, RWSet

    CausalCRDT: TypeAlias = LWWRegister | MVRegister | EWFlag | DWFlag | AWSet | RWSet | ORMap
    CRDT: TypeAlias = GCounter | PNCounter | CausalCRDT

MAX_NESTING = 8


class TypeTag(enum.IntEnum):
    """Wire tag of each CRDT type. Never renumber: tags are part of the encoding."""

    GCOUNTER = 1
    PNCOUNTER = 2
    LWW_REGISTER = 3
    MV_REGISTER = 4
    EW_FLAG = 5
    DW_FLAG = 6
    AW_SET = 7
    RW_SET = 8
    OR_MAP = 9


CAUSAL_TAGS = frozenset(TypeTag) - {TypeTag.GCOUNTER, TypeTag.PNCOUNTER}
MAP_STORE_TAGS = frozenset({TypeTag.AW_SET, TypeTag.RW_SET, TypeTag.OR_MAP})


class Strategy(enum.Enum):
    """How concurrent writes to one key resolve."""

    LWW = "lww"
    MULTI_VALUE = "multi_value"
    ADD_WINS = "add_wins"
    REMOVE_WINS = "remove_wins"


class Shape(enum.Enum):
    REGISTER = "register"
    FLAG = "flag"
    SET = "set"
    COUNTER = "counter"
    MAP = "map"


STRATEGIES: dict[tuple[Shape, Strategy], TypeTag] = {
    (Shape.REGISTER, Strategy.LWW): TypeTag.LWW_REGISTER,
    (Shape.REGISTER, Strategy.MULTI_VALUE): TypeTag.MV_REGISTER,
    (Shape.FLAG, Strategy.ADD_WINS): TypeTag.EW_FLAG,
    (Shape.FLAG, Strategy.REMOVE_WINS): TypeTag.DW_FLAG,
    (Shape.SET, Strategy.ADD_WINS): TypeTag.AW_SET,
    (Shape.SET, Strategy.REMOVE_WINS): TypeTag.RW_SET,
    (Shape.MAP, Strategy.ADD_WINS): TypeTag.OR_MAP,
}
"""Counters have no strategy: increments commute, so there is nothing to resolve."""


@dataclass(frozen=True, slots=True)
class TypeSpec:
    tag: TypeTag
    value: TypeSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tag, TypeTag):
            raise InvalidOperation("type", f"unknown type tag {self.tag!r}")
        if self.tag is TypeTag.OR_MAP:
            if self.value is None:
                raise InvalidOperation("type.value", "an OR-Map needs a value type")
            if not self.value.causal:
                raise InvalidOperation(
                    "type.value",
                    f"{self.value.tag.name} cannot live in an OR-Map: map values must be "
                    "dot-based so that removing a key removes what it saw",
                )
            if self.depth > MAX_NESTING:
                raise InvalidOperation("type", f"maps nested deeper than {MAX_NESTING}")
        elif self.value is not None:
            raise InvalidOperation("type.value", f"{self.tag.name} takes no value type")

    @property
    def causal(self) -> bool:
        return self.tag in CAUSAL_TAGS

    @property
    def depth(self) -> int:
        return 1 + (self.value.depth if self.value is not None else 0)

    @property
    def name(self) -> str:
        base = self.tag.name.lower()
        return f"{base}<{self.value.name}>" if self.value is not None else base

    def sort_key(self) -> tuple[int, ...]:
        """Total order used when two replicas concurrently create a key with different types."""
        return (int(self.tag), *(self.value.sort_key() if self.value is not None else ()))

    def bottom(self) -> CRDT:
        from .counters import GCounter, PNCounter

        if self.tag is TypeTag.GCOUNTER:
            return GCounter()
        if self.tag is TypeTag.PNCOUNTER:
            return PNCounter()
        from .causal import CausalContext
        from .dotstore import EMPTY_FUN, EMPTY_MAP

        empty = EMPTY_MAP if self.tag in MAP_STORE_TAGS else EMPTY_FUN
        return self.view(empty, CausalContext())

    def view(self, store: DotStore, cc: CausalContext) -> CausalCRDT:
        """The causal CRDT of this type made of ``store`` and a (possibly shared) context."""
        reg = _registry()
        if self.tag in MAP_STORE_TAGS:
            if not isinstance(store, reg.dot_map):
                raise InvalidOperation("store", f"{self.name} needs a dot map")
            if self.tag is TypeTag.OR_MAP:
                assert self.value is not None
                return reg.or_map(self.value, store, cc)  # type: ignore[no-any-return]
        elif not isinstance(store, reg.dot_fun):
            raise InvalidOperation("store", f"{self.name} needs a dot function")
        make = reg.causal.get(self.tag)
        if make is None:
            raise InvalidOperation("type", f"{self.name} is not a causal type")
        return make(store, cc)


@dataclass(frozen=True, slots=True)
class _Registry:
    """The CRDT classes by tag and back, imported once (the modules import this one)."""

    causal: dict[TypeTag, Callable[[Any, CausalContext], CausalCRDT]]
    tags: dict[type, TypeTag]
    or_map: Any
    dot_map: type
    dot_fun: type


@functools.cache
def _registry() -> _Registry:
    from .counters import GCounter, PNCounter
    from .dotstore import DotFun, DotMap
    from .flags import DWFlag, EWFlag
    from .maps import ORMap
    from .registers import LWWRegister, MVRegister
    from .sets import AWSet, RWSet

    causal: dict[TypeTag, Callable[[Any, CausalContext], CausalCRDT]] = {
        TypeTag.AW_SET: AWSet,
        TypeTag.RW_SET: RWSet,
        TypeTag.LWW_REGISTER: LWWRegister,
        TypeTag.MV_REGISTER: MVRegister,
        TypeTag.EW_FLAG: EWFlag,
        TypeTag.DW_FLAG: DWFlag,
    }
    tags: dict[type, TypeTag] = {
        GCounter: TypeTag.GCOUNTER,
        PNCounter: TypeTag.PNCOUNTER,
        LWWRegister: TypeTag.LWW_REGISTER,
        MVRegister: TypeTag.MV_REGISTER,
        EWFlag: TypeTag.EW_FLAG,
        DWFlag: TypeTag.DW_FLAG,
        AWSet: TypeTag.AW_SET,
        RWSet: TypeTag.RW_SET,
    }
    return _Registry(causal, tags, ORMap, DotMap, DotFun)


_SIMPLE: dict[TypeTag, TypeSpec] = {}


def spec_for(shape: Shape, strategy: Strategy | None, value: TypeSpec | None = None) -> TypeSpec:
    """The type implementing ``shape`` under conflict ``strategy`` (the registry lookup)."""
    if shape is Shape.COUNTER:
        if strategy is not None:
            raise InvalidOperation("strategy", "counters take no conflict strategy")
        return TypeSpec(TypeTag.PNCOUNTER)
    if strategy is None:
        raise InvalidOperation("strategy", f"a {shape.value} needs a conflict strategy")
    tag = STRATEGIES.get((shape, strategy))
    if tag is None:
        raise InvalidOperation("strategy", f"{strategy.value} is not available for a {shape.value}")
    return TypeSpec(tag, value)


def spec_of(crdt: CRDT) -> TypeSpec:
    """The spec of a CRDT value."""
    reg = _registry()
    if isinstance(crdt, reg.or_map):
        return TypeSpec(TypeTag.OR_MAP, crdt.value_spec)
    tag = reg.tags.get(type(crdt))
    if tag is None:
        raise InvalidOperation("type", f"{type(crdt).__name__} is not a CRDT")
    spec = _SIMPLE.get(tag)
    if spec is None:
        spec = _SIMPLE[tag] = TypeSpec(tag)
    return spec


def canonical(spec: TypeSpec) -> TypeSpec:
    """One shared instance per type without a value type (what :func:`spec_of` returns), so
    that the values of a replica compare their types by identity on hot paths."""
    if spec.value is not None:
        return spec
    return _SIMPLE.setdefault(spec.tag, spec)


LWW_SPEC = canonical(TypeSpec(TypeTag.LWW_REGISTER))
"""The last-writer-wins register type (the shared instance)."""

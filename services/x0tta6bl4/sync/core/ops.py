"""Typed operations, as a client sends them in ``Update(key, op)``, and their validation.

:func:`apply_op` maps an operation onto the mutator of the target type or raises
:class:`InvalidOperation` naming the field; it never returns a partially applied state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeAlias

from .causal import CausalContext, VersionVector
from .counters import GCounter, PNCounter
from .errors import InvalidOperation
from .flags import DWFlag, EWFlag
from .hlc import HLC
from .maps import ORMap
from .registers import LWWRegister, MVRegister
from .sets import AWSet, RWSet
from .spec import spec_of
from .values import DEFAULT_LIMITS, Limits, Scalar

if TYPE_CHECKING:
    from .spec import CRDT

Context: TypeAlias = CausalContext | VersionVector | None


@dataclass(frozen=True, slots=True)
class Increment:
    amount: int = 1


@dataclass(frozen=True, slots=True)
class Decrement:
    amount: int = 1


@dataclass(frozen=True, slots=True)
class Assign:
    value: Scalar
    context: Context = None


@dataclass(frozen=True, slots=True)
class Clear:
    """Remove what the client saw (all siblings / elements / dots, or those in ``context``)."""

    context: Context = None


@dataclass(frozen=True, slots=True)
class Enable:
    context: Context = None


@dataclass(frozen=True, slots=True)
class Disable:
    context: Context = None


@dataclass(frozen=True, slots=True)
class Add:
    element: Scalar


@dataclass(frozen=True, slots=True)
class Remove:
    element: Scalar
    context: Context = None


@dataclass(frozen=True, slots=True)
class MapUpdate:
    key: str
    op: Op


@dataclass(frozen=True, slots=True)
class MapRemove:
    key: str
    context: Context = None


Op: TypeAlias = (
    Increment | Decrement | Assign | Clear | Enable | Disable | Add | Remove | MapUpdate | MapRemove
)


def map_contexts(op: Op, f: Callable[[CausalContext], CausalContext]) -> Op:
    """``op`` with ``f`` applied to every client context it carries (nested ones too)."""
    if isinstance(op, MapUpdate):
        inner = map_contexts(op.op, f)
        return op if inner is op else MapUpdate(op.key, inner)
    with_context = Assign | Clear | Enable | Disable | Remove | MapRemove
    if isinstance(op, with_context) and op.context is not None:
        return replace(op, context=f(CausalContext.of(op.context)))
    return op


def _reject(op: Op, crdt: CRDT) -> InvalidOperation:
    return InvalidOperation(
        "op", f"{type(op).__name__.lower()} does not apply to a {spec_of(crdt).name}"
    )


def apply_op(
    crdt: CRDT, op: Op, replica: str, hlc: HLC, limits: Limits = DEFAULT_LIMITS
) -> tuple[CRDT, CRDT]:
    """Run ``op`` on ``crdt`` as ``replica`` at clock ``hlc``; return ``(new_state, delta)``."""
    if isinstance(crdt, GCounter):
        if isinstance(op, Increment):
            return crdt.increment(replica, op.amount)
        raise _reject(op, crdt)
    if isinstance(crdt, PNCounter):
        if isinstance(op, Increment):
            return crdt.increment(replica, op.amount)
        if isinstance(op, Decrement):
            return crdt.decrement(replica, op.amount)
        raise _reject(op, crdt)
    if isinstance(crdt, LWWRegister):
        if isinstance(op, Assign):
            return crdt.assign(op.value, hlc, op.context, limits)
        if isinstance(op, Clear):
            return crdt.clear(op.context)
        raise _reject(op, crdt)
    if isinstance(crdt, MVRegister):
        if isinstance(op, Assign):
            return crdt.assign(op.value, replica, op.context, limits)
        if isinstance(op, Clear):
            return crdt.clear(op.context)
        raise _reject(op, crdt)
    if isinstance(crdt, EWFlag):
        if isinstance(op, Enable):
            return crdt.enable(replica, op.context)
        if isinstance(op, Disable):
            return crdt.disable(op.context)
        raise _reject(op, crdt)
    if isinstance(crdt, DWFlag):
        if isinstance(op, Enable):
            return crdt.enable(replica, op.context)
        if isinstance(op, Disable):
            return crdt.disable(replica, op.context)
        raise _reject(op, crdt)
    if isinstance(crdt, AWSet):
        if isinstance(op, Add):
            return crdt.add(op.element, replica, limits)
        if isinstance(op, Remove):
            return crdt.remove(op.element, op.context)
        if isinstance(op, Clear):
            return crdt.clear(op.context)
        raise _reject(op, crdt)
    if isinstance(crdt, RWSet):
        if isinstance(op, Add):
            return crdt.add(op.element, replica, limits)
        if isinstance(op, Remove):
            return crdt.remove(op.element, replica, op.context, limits)
        raise _reject(op, crdt)
    if isinstance(crdt, ORMap):
        if isinstance(op, MapUpdate):
            inner = op.op

            def nested(v: CRDT) -> tuple[CRDT, CRDT]:
                return apply_op(v, inner, replica, hlc, limits)

            try:
                return crdt.update(op.key, nested, limits)
            except InvalidOperation as e:
                raise InvalidOperation(f"map[{op.key!r}].{e.field}", e.reason) from None
        if isinstance(op, MapRemove):
            return crdt.remove(op.key, op.context)
        raise _reject(op, crdt)
    raise InvalidOperation("type", f"unknown CRDT {type(crdt).__name__}")

"""Registers: multi-value (siblings) and last-writer-wins by hybrid logical clock.

Both are dot functions with a causal context. A write supersedes exactly the entries its writer
observed: all current ones, or only those covered by a client-supplied context (the one ``Get``
returned). Entries the writer did not observe stay as concurrent siblings.

* :class:`MVRegister` exposes every sibling.
* :class:`LWWRegister` keeps the same structure (so it nests in an OR-Map and honours key
  removal) but reads the sibling with the greatest ``(HLC, replica)`` timestamp; siblings
  collapse at the next write. Its value never depends on arrival order or wall-clock alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .causal import CausalContext, Dot, VersionVector, check_replica
from .dotstore import (
    EMPTY_FUN,
    DotFun,
    causal_leq,
    join_fun,
    remove_delta,
    write_delta,
)
from .errors import InvalidOperation
from .hlc import HLC
from .values import DEFAULT_LIMITS, Limits, Scalar, check_scalar

ClientContext = CausalContext | VersionVector | None


@dataclass(frozen=True, slots=True)
class MVRegister:
    store: DotFun = EMPTY_FUN
    cc: CausalContext = field(default_factory=CausalContext)

    def siblings(self) -> list[tuple[Dot, Scalar]]:
        return sorted(self.store.items())

    @property
    def values(self) -> list[Scalar]:
        return [v for _, v in self.siblings()]

    def context(self) -> CausalContext:
        return self.cc

    def assign(
        self,
        value: Scalar,
        replica: str,
        context: ClientContext = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[MVRegister, MVRegister]:
        check_replica(replica)
        value = check_scalar(value, "value", limits)
        s, c = write_delta(self.store, self.cc, replica, value, as_context(context))
        delta = MVRegister(s, c)
        return self.merge(delta), delta

    def clear(self, context: ClientContext = None) -> tuple[MVRegister, MVRegister]:
        s, c = remove_delta(self.store, as_context(context))
        delta = MVRegister(s, c)
        return self.merge(delta), delta

    def merge(self, other: MVRegister) -> MVRegister:
        return MVRegister(
            join_fun(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc)
        )

    def leq(self, other: MVRegister) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)


@dataclass(frozen=True, slots=True)
class LWWRegister:
    """Payloads are ``(wall_ms, logical, value)``; the timestamp's replica is the dot's."""

    store: DotFun = EMPTY_FUN
    cc: CausalContext = field(default_factory=CausalContext)

    def _winner(self) -> tuple[Dot, tuple[int, int, Scalar]] | None:
        best: tuple[Dot, tuple[int, int, Scalar]] | None = None
        for dot, payload in self.store.items():
            if best is None or _rank(dot, payload) > _rank(*best):
                best = (dot, payload)
        return best

    @property
    def value(self) -> Scalar | None:
        w = self._winner()
        return None if w is None else w[1][2]

    @property
    def timestamp(self) -> HLC | None:
        w = self._winner()
        return None if w is None else HLC(w[1][0], w[1][1], w[0].replica)

    def context(self) -> CausalContext:
        return self.cc

    def assign(
        self,
        value: Scalar,
        timestamp: HLC,
        context: ClientContext = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> tuple[LWWRegister, LWWRegister]:
        """Write ``value`` stamped with ``timestamp`` (its replica is the writing replica)."""
        if not isinstance(timestamp, HLC):
            raise InvalidOperation("timestamp", "must be an HLC")
        value = check_scalar(value, "value", limits)
        payload = (timestamp.wall_ms, timestamp.logical, value)
        s, c = write_delta(self.store, self.cc, timestamp.replica, payload, as_context(context))
        delta = LWWRegister(s, c)
        return self.merge(delta), delta

    def clear(self, context: ClientContext = None) -> tuple[LWWRegister, LWWRegister]:
        s, c = remove_delta(self.store, as_context(context))
        delta = LWWRegister(s, c)
        return self.merge(delta), delta

    def merge(self, other: LWWRegister) -> LWWRegister:
        return LWWRegister(
            join_fun(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc)
        )

    def leq(self, other: LWWRegister) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)


def _rank(dot: Dot, payload: tuple[int, int, Scalar]) -> tuple[int, int, str, int]:
    return (payload[0], payload[1], dot.replica, dot.counter)


def as_context(context: ClientContext) -> CausalContext | None:
    """Validate a client-supplied context (``None`` means "everything this replica has")."""
    if context is None:
        return None
    if not isinstance(context, CausalContext | VersionVector):
        raise InvalidOperation("context", "must be a causal context or version vector")
    return CausalContext.of(context)

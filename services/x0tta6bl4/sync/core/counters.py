"""Grow-only and positive-negative counters (state-based, one entry per replica).

Mutators return ``(new_state, delta)`` where ``new_state == old.merge(delta)`` and the delta
holds just the mutated replica's entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .causal import check_replica
from .errors import InvalidOperation

MAX_ENTRY = (1 << 63) - 1


def _check_amount(amount: object, limit: int = MAX_ENTRY) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidOperation("amount", "must be an integer")
    if not 1 <= amount <= limit:
        raise InvalidOperation("amount", f"must be in [1, {limit}], got {amount}")
    return amount


@dataclass(frozen=True, slots=True)
class GCounter:
    entries: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for r, n in self.entries.items():
            check_replica(r, "gcounter.replica")
            if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_ENTRY:
                raise InvalidOperation(f"gcounter[{r}]", "entry must be in [1, 2^63)")

    @property
    def value(self) -> int:
        return sum(self.entries.values())

    def increment(self, replica: str, amount: int = 1) -> tuple[GCounter, GCounter]:
        check_replica(replica)
        amount = _check_amount(amount)
        total = self.entries.get(replica, 0) + amount
        if total > MAX_ENTRY:
            raise InvalidOperation("amount", "counter entry would exceed 2^63 - 1")
        delta = _trusted({replica: total})
        return _trusted({**self.entries, replica: total}), delta

    def merge(self, other: GCounter) -> GCounter:
        mine = self.entries
        out: dict[str, int] | None = None
        for r, n in other.entries.items():
            if n > mine.get(r, 0):
                if out is None:
                    out = dict(mine)
                out[r] = n
        # Entries of two valid counters are valid: no re-validation; nothing new -> ``self``.
        return self if out is None else _trusted(out)

    def leq(self, other: GCounter) -> bool:
        return all(n <= other.entries.get(r, 0) for r, n in self.entries.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and dict(self.entries) == dict(other.entries)

    def __hash__(self) -> int:
        return hash(frozenset(self.entries.items()))


def _trusted(entries: dict[str, int]) -> GCounter:
    """A G-Counter of entries known valid (built from valid counters), not re-checked."""
    g = object.__new__(GCounter)
    object.__setattr__(g, "entries", entries)
    return g


@dataclass(frozen=True, slots=True)
class PNCounter:
    p: GCounter = field(default_factory=GCounter)
    n: GCounter = field(default_factory=GCounter)

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def increment(self, replica: str, amount: int = 1) -> tuple[PNCounter, PNCounter]:
        p, dp = self.p.increment(replica, amount)
        return _pn(p, self.n), _pn(dp, _EMPTY)

    def decrement(self, replica: str, amount: int = 1) -> tuple[PNCounter, PNCounter]:
        n, dn = self.n.increment(replica, amount)
        return _pn(self.p, n), _pn(_EMPTY, dn)

    def merge(self, other: PNCounter) -> PNCounter:
        p, n = self.p.merge(other.p), self.n.merge(other.n)
        return self if p is self.p and n is self.n else _pn(p, n)

    def leq(self, other: PNCounter) -> bool:
        return self.p.leq(other.p) and self.n.leq(other.n)


_EMPTY = _trusted({})


def _pn(p: GCounter, n: GCounter) -> PNCounter:
    """A PN-Counter of two valid G-Counters, built without the dataclass ``__init__``."""
    c = object.__new__(PNCounter)
    object.__setattr__(c, "p", p)
    object.__setattr__(c, "n", n)
    return c

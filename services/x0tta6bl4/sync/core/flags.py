"""Flags: enable-wins and disable-wins.

* :class:`EWFlag` is a dot set: enable adds a dot (superseding the observed ones), disable drops
  the observed dots. A concurrent enable survives a disable; no tombstones at all.
* :class:`DWFlag` keeps one token per concurrent write, ``True`` for enable, ``False`` for
  disable; the flag is on iff there are tokens and all are ``True``. A disable therefore wins
  over a concurrent enable. Disable tokens are the only metadata, and :meth:`DWFlag.collect`
  drops them once they are causally stable (see :mod:`.gc`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .causal import CausalContext, VersionVector, check_replica
from .dotstore import EMPTY_FUN, DotFun, causal_leq, join_fun, remove_delta, write_delta
from .registers import ClientContext, as_context


@dataclass(frozen=True, slots=True)
class EWFlag:
    store: DotFun = EMPTY_FUN
    cc: CausalContext = field(default_factory=CausalContext)

    @property
    def value(self) -> bool:
        return len(self.store) > 0

    def context(self) -> CausalContext:
        return self.cc

    def enable(self, replica: str, context: ClientContext = None) -> tuple[EWFlag, EWFlag]:
        check_replica(replica)
        s, c = write_delta(self.store, self.cc, replica, True, as_context(context))
        delta = EWFlag(s, c)
        return self.merge(delta), delta

    def disable(self, context: ClientContext = None) -> tuple[EWFlag, EWFlag]:
        s, c = remove_delta(self.store, as_context(context))
        delta = EWFlag(s, c)
        return self.merge(delta), delta

    def merge(self, other: EWFlag) -> EWFlag:
        return EWFlag(join_fun(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc))

    def leq(self, other: EWFlag) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)


@dataclass(frozen=True, slots=True)
class DWFlag:
    store: DotFun = EMPTY_FUN
    cc: CausalContext = field(default_factory=CausalContext)

    @property
    def value(self) -> bool:
        return len(self.store) > 0 and all(v is True for _, v in self.store.items())

    def context(self) -> CausalContext:
        return self.cc

    def enable(self, replica: str, context: ClientContext = None) -> tuple[DWFlag, DWFlag]:
        return self._write(replica, True, context)

    def disable(self, replica: str, context: ClientContext = None) -> tuple[DWFlag, DWFlag]:
        return self._write(replica, False, context)

    def _write(self, replica: str, on: bool, context: ClientContext) -> tuple[DWFlag, DWFlag]:
        check_replica(replica)
        s, c = write_delta(self.store, self.cc, replica, on, as_context(context))
        delta = DWFlag(s, c)
        return self.merge(delta), delta

    def merge(self, other: DWFlag) -> DWFlag:
        return DWFlag(join_fun(self.store, self.cc, other.store, other.cc), self.cc.union(other.cc))

    def leq(self, other: DWFlag) -> bool:
        return causal_leq(self.store, self.cc, other.store, other.cc)

    def collect(self, stable: VersionVector) -> DWFlag:
        """Drop every token once all are covered by ``stable`` and one of them is a disable.

        ``stable`` must be a *strongly* stable cut (:class:`.gc.StabilityCut`): no operation
        concurrent with it can still arrive, so every later write supersedes these tokens
        anyway. The value is unchanged (off either way), and the result is an inflation of
        ``self`` (the dots stay in the context).
        """
        if _collectable(self.store, stable):
            return DWFlag(EMPTY_FUN, self.cc)
        return self


def _collectable(store: DotFun, stable: VersionVector) -> bool:
    """A remove-wins token set whose outcome (absent/off) is final until a newer write."""
    return (
        len(store) > 0
        and any(v is False for _, v in store.items())
        and all(stable.covers(d) for d in store)
    )

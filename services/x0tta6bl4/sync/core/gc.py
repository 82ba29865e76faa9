"""Causal stability, the basis of distributed garbage collection.

Every replica reports the version vector of events it has applied (in acks and digests).

* :func:`stable_vector` - the pointwise minimum over all current members: events every replica
  has applied. Delta buffers drop these: no member will ever need them resent.
* :class:`StabilityCut` - a stronger, two-phase cut for metadata whose meaning depends on
  concurrency (remove-wins tokens). An event set ``C`` is *strongly stable* once, in addition,
  every event that might be concurrent with ``C`` has been applied everywhere; after that, every
  event still to arrive anywhere is causally after ``C``, so dropping a remove token in ``C``
  cannot let a concurrent add win.

  Phase 1 records ``C = stable_vector(acks)`` and the frontier ``F[r] = acks[r][r]``, each
  replica's own counter in the ack that proved it had seen ``C``; replica ``r``'s events after
  ``F[r]`` were generated after seeing ``C``. Phase 2 waits until ``stable_vector(acks) >= F``.

A replica that joins must bootstrap from a snapshot before it writes, and a replica leaving
should drain its buffers first (see :class:`.replica.Replica`); both keep the frontier argument
valid.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from .causal import VersionVector


def stable_vector(vectors: Iterable[VersionVector]) -> VersionVector:
    """Pointwise minimum; a replica missing from any vector counts as 0 there."""
    out: VersionVector | None = None
    for v in vectors:
        out = v if out is None else out.meet(v)
    return out if out is not None else VersionVector()


@dataclass(frozen=True, slots=True)
class StabilityCut:
    stable: VersionVector = field(default_factory=VersionVector)
    candidate: VersionVector = field(default_factory=VersionVector)
    frontier: VersionVector = field(default_factory=VersionVector)
    members: frozenset[str] = frozenset()

    def advance(self, reports: Mapping[str, VersionVector]) -> StabilityCut:
        """Move the cut on, given each member's (self included) latest *self-reported*
        applied vector - what it sent in an ack or digest, never what was inferred from the
        batches it relayed (those say nothing about its own unsent events).

        A change of membership restarts phase 1: the frontier must bound every member.
        """
        s = stable_vector(reports.values())
        members = frozenset(reports)
        frontier = VersionVector({r: v.get(r) for r, v in reports.items()})
        if members != self.members:
            return StabilityCut(self.stable, s, frontier, members)
        if not self.frontier.leq(s):
            return self
        return StabilityCut(self.stable.merge(self.candidate), s, frontier, members)

    def without(self, replicas: Collection[str]) -> StabilityCut:
        """The cut with no vector entry for ``replicas`` (retired: every dot of theirs was
        in the strongly stable cut already, see :meth:`.replica.Replica.gc`)."""
        return StabilityCut(
            self.stable.without(replicas),
            self.candidate.without(replicas),
            self.frontier.without(replicas),
            self.members,
        )

"""Quorum arithmetic for majority and joint configurations.

A :class:`MajorityConfig` is a set of voters; a decision needs a strict majority of them.
A :class:`JointConfig` is the pair (C_new, C_old) used during a joint-consensus membership
change: a decision needs a majority of *both* halves. With an empty outgoing half it behaves
exactly like its incoming majority.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

INFINITE_INDEX = 2**63 - 1
"""Committed index of an empty majority config: it never constrains a joint config."""


class VoteResult(enum.Enum):
    PENDING = "pending"
    LOST = "lost"
    WON = "won"


@dataclass(frozen=True, slots=True)
class MajorityConfig:
    voters: frozenset[int] = frozenset()

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def committed_index(self, acked: Mapping[int, int]) -> int:
        """Largest index acknowledged by a majority (missing voters count as index 0).

        An empty config returns :data:`INFINITE_INDEX` so that ``min`` over a joint config
        is decided by the other half alone.
        """
        if not self.voters:
            return INFINITE_INDEX
        matched = sorted((acked.get(v, 0) for v in self.voters), reverse=True)
        return matched[self.quorum() - 1]

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        """WON once a majority granted, LOST once a majority can no longer be reached."""
        if not self.voters:
            return VoteResult.WON
        granted = missing = 0
        for v in self.voters:
            vote = votes.get(v)
            if vote is None:
                missing += 1
            elif vote:
                granted += 1
        q = self.quorum()
        if granted >= q:
            return VoteResult.WON
        if granted + missing >= q:
            return VoteResult.PENDING
        return VoteResult.LOST


@dataclass(frozen=True, slots=True)
class JointConfig:
    incoming: MajorityConfig = field(default_factory=MajorityConfig)
    outgoing: MajorityConfig = field(default_factory=MajorityConfig)

    @property
    def is_joint(self) -> bool:
        return bool(self.outgoing.voters)

    def ids(self) -> frozenset[int]:
        return self.incoming.voters | self.outgoing.voters

    def committed_index(self, acked: Mapping[int, int]) -> int:
        return min(self.incoming.committed_index(acked), self.outgoing.committed_index(acked))

    def vote_result(self, votes: Mapping[int, bool]) -> VoteResult:
        r1 = self.incoming.vote_result(votes)
        r2 = self.outgoing.vote_result(votes)
        if r1 is r2:
            return r1
        if VoteResult.LOST in (r1, r2):
            return VoteResult.LOST
        return VoteResult.PENDING

"""Membership changes with joint consensus.

Why joint consensus and not single-server changes
-------------------------------------------------
Single-server changes (Raft dissertation §4.1) are simpler but were found unsafe when a
leader change overlaps a configuration change: two leaders of adjacent terms can each commit a
different one-node change, producing configurations whose majorities do not intersect. The
known fix (a new leader must commit an entry in its own term before proposing a change) is
easy to get subtly wrong when combined with learners and demotions. Joint consensus (§4.3,
the approach etcd-raft uses for ConfChangeV2) is safe for *any* change set: while in
C_old,new every decision (election or commit) needs a majority of C_old **and** of C_new, so
no two disjoint majorities can ever act. It also lets an operator swap a voter atomically
(e.g. move a replica to another datacenter: add the new one and remove the old one in a
single change).

Protocol as implemented here:

1. The leader appends a :class:`ConfChange` entry. A change that alters the voter set enters
   the joint configuration C_old,new when the entry is *applied* (one change in flight at a
   time, enforced by the leader through its pending-conf index). Changes that only add or
   remove learners never affect a quorum and are applied directly.
2. Once the leader applies the joint entry it automatically appends an empty
   :class:`ConfChange` (``leave_joint``), which moves everybody to C_new when applied.
3. A leader that is not a voter of C_new steps down once it applies the leave-joint entry
   (handing over with TimeoutNow to a caught-up voter when one exists).

Learners receive the log but never count towards a quorum or campaign. A voter demoted to
a learner stays a voter of C_old until the joint state is left (``learners_next``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from .messages import ConfState
from .quorum import JointConfig, MajorityConfig


class ConfChangeError(ValueError):
    """A configuration change that cannot be applied to the current configuration."""


class ConfChangeType(enum.Enum):
    ADD_VOTER = "add_voter"
    ADD_LEARNER = "add_learner"
    REMOVE_NODE = "remove_node"


@dataclass(frozen=True, slots=True)
class ConfChangeSingle:
    type: ConfChangeType
    node_id: int


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A set of changes applied atomically. An empty change set means "leave joint"."""

    changes: tuple[ConfChangeSingle, ...] = ()

    @property
    def leave_joint(self) -> bool:
        return not self.changes

    def encode(self) -> bytes:
        return json.dumps([[c.type.value, c.node_id] for c in self.changes]).encode()

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        try:
            raw = json.loads(data)
            return cls(tuple(ConfChangeSingle(ConfChangeType(t), int(n)) for t, n in raw))
        except (ValueError, TypeError) as exc:
            raise ConfChangeError(f"malformed conf change entry: {data!r}") from exc


@dataclass(frozen=True, slots=True)
class Membership:
    """The configuration a node currently operates under (derived from applied entries)."""

    voters: JointConfig = field(default_factory=JointConfig)
    learners: frozenset[int] = frozenset()
    learners_next: frozenset[int] = frozenset()

    @classmethod
    def from_conf_state(cls, cs: ConfState) -> Membership:
        return cls(
            JointConfig(MajorityConfig(cs.voters), MajorityConfig(cs.voters_outgoing)),
            cs.learners,
            cs.learners_next,
        )

    def conf_state(self) -> ConfState:
        return ConfState(
            voters=self.voters.incoming.voters,
            voters_outgoing=self.voters.outgoing.voters,
            learners=self.learners,
            learners_next=self.learners_next,
        )

    @property
    def is_joint(self) -> bool:
        return self.voters.is_joint

    def ids(self) -> frozenset[int]:
        return self.voters.ids() | self.learners | self.learners_next

    def is_voter(self, node_id: int) -> bool:
        return node_id in self.voters.incoming.voters or node_id in self.voters.outgoing.voters

    def apply(self, cc: ConfChange) -> Membership:
        """Return the configuration after applying ``cc`` (raises ConfChangeError if invalid)."""
        if cc.leave_joint:
            return self._leave_joint()
        if self.is_joint:
            raise ConfChangeError("configuration is joint; leave it before the next change")
        old_voters = self.voters.incoming.voters
        voters = set(old_voters)
        learners = set(self.learners)
        learners_next: set[int] = set()
        for ch in cc.changes:
            if ch.node_id <= 0:
                raise ConfChangeError(f"invalid node id {ch.node_id}")
            if ch.type is ConfChangeType.ADD_VOTER:
                voters.add(ch.node_id)
                learners.discard(ch.node_id)
                learners_next.discard(ch.node_id)
            elif ch.type is ConfChangeType.ADD_LEARNER:
                voters.discard(ch.node_id)
                if ch.node_id in old_voters:
                    learners.discard(ch.node_id)
                    learners_next.add(ch.node_id)
                else:
                    learners.add(ch.node_id)
            else:
                voters.discard(ch.node_id)
                learners.discard(ch.node_id)
                learners_next.discard(ch.node_id)
        if not voters:
            raise ConfChangeError("removing all voters is not allowed")
        new_voters = frozenset(voters)
        if new_voters == old_voters:
            # Learner-only change: quorums are untouched, so no joint phase is needed.
            return Membership(self.voters, frozenset(learners), frozenset())
        return Membership(
            JointConfig(MajorityConfig(new_voters), MajorityConfig(old_voters)),
            frozenset(learners),
            frozenset(learners_next),
        )

    def _leave_joint(self) -> Membership:
        if not self.is_joint:
            raise ConfChangeError("configuration is not joint")
        return Membership(
            JointConfig(self.voters.incoming, MajorityConfig()),
            self.learners | self.learners_next,
            frozenset(),
        )

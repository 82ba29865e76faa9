"""The leader's view of each follower: flow control (probe / replicate / snapshot) and quorums.

- PROBE: the leader does not know where the follower's log matches; it sends at most one
  APP per heartbeat interval and waits for the answer (fast backtracking on rejection).
- REPLICATE: the follower is known to match; APPs are pipelined optimistically, bounded by an
  in-flight window of both message count and entry bytes (:class:`Inflights`).
- SNAPSHOT: the entries the follower needs were compacted; the leader sent a snapshot and
  pauses replication to it until the follower acknowledges it (or the transport reports a
  failure through ``report_snapshot``).
"""

from __future__ import annotations

import enum
from collections import deque

from .membership import Membership
from .quorum import VoteResult


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """APP messages sent but not yet acknowledged, by their last index and byte size."""

    __slots__ = ("_bytes", "_items", "max_bytes", "max_count")

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        if max_count <= 0:
            raise ValueError("max_count must be positive")
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._items: deque[tuple[int, int]] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def full(self) -> bool:
        return len(self._items) >= self.max_count or (
            self.max_bytes > 0 and self._bytes >= self.max_bytes
        )

    def add(self, last_index: int, size: int) -> None:
        if self.full():
            raise AssertionError("cannot add to a full inflights window")
        if self._items and last_index <= self._items[-1][0]:
            raise AssertionError(f"inflight index {last_index} not increasing")
        self._items.append((last_index, size))
        self._bytes += size

    def free_le(self, index: int) -> None:
        """Acknowledge every message whose last index is <= ``index``."""
        items = self._items
        while items and items[0][0] <= index:
            self._bytes -= items.popleft()[1]

    def free_first_one(self) -> None:
        if self._items:
            self._bytes -= self._items.popleft()[1]

    def reset(self) -> None:
        self._items.clear()
        self._bytes = 0


class Progress:
    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
    )

    def __init__(self, next_index: int, inflights: Inflights, *, is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = True
        self.inflights = inflights
        self.is_learner = is_learner

    def __repr__(self) -> str:
        return (
            f"Progress(state={self.state.value}, match={self.match}, next={self.next}, "
            f"inflight={len(self.inflights)}, probe_sent={self.probe_sent}, "
            f"pending_snapshot={self.pending_snapshot}, learner={self.is_learner})"
        )

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """Follower acknowledged entries up to ``index``; False if the ack is stale."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """Follower rejected an APP whose previous index was ``rejected``.

        Returns False for a stale rejection (one that does not concern the current probe).
        """
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, count: int, size: int) -> None:
        """Bookkeeping after sending an APP carrying ``count`` entries of ``size`` bytes."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next += count
                self.inflights.add(self.next - 1, size)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True


class ProgressTracker:
    """Membership plus per-member progress and the votes of the current election."""

    __slots__ = ("max_inflight_bytes", "max_inflight_msgs", "membership", "progress", "votes")

    def __init__(self, max_inflight_msgs: int, max_inflight_bytes: int) -> None:
        self.max_inflight_msgs = max_inflight_msgs
        self.max_inflight_bytes = max_inflight_bytes
        self.membership = Membership()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    def new_progress(self, next_index: int, *, is_learner: bool) -> Progress:
        return Progress(
            next_index,
            Inflights(self.max_inflight_msgs, self.max_inflight_bytes),
            is_learner=is_learner,
        )

    def set_membership(self, membership: Membership, last_index: int) -> None:
        """Switch configuration, keeping the progress of members that remain."""
        learners = membership.learners
        old = self.progress
        self.progress = {}
        for node_id in sorted(membership.ids()):
            pr = old.get(node_id)
            if pr is None:
                pr = self.new_progress(last_index + 1, is_learner=False)
            pr.is_learner = node_id in learners
            self.progress[node_id] = pr
        self.membership = membership

    def is_voter(self, node_id: int) -> bool:
        return self.membership.is_voter(node_id)

    def committed(self) -> int:
        return self.membership.voters.committed_index(
            {i: pr.match for i, pr in self.progress.items()}
        )

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def vote_result(self) -> VoteResult:
        return self.membership.voters.vote_result(self.votes)

    def quorum_active(self) -> bool:
        """Have a quorum of voters been heard from since the last reset?"""
        active = {i: pr.recent_active for i, pr in self.progress.items()}
        return self.membership.voters.vote_result(active) is VoteResult.WON

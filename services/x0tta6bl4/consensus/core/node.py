"""The Raft state machine: ticks, messages and requests in; a :class:`Ready` out.

The node does no I/O and reads no clock: time is :meth:`RaftNode.tick`, randomness is the
``random.Random`` handed in, storage is read through :class:`~.log_store.LogReader` and
written by the application. Given the same inputs it produces the same outputs.

Driving a node (the application loop)::

    node.tick()                      # every tick interval
    node.step(message)               # for every message received
    node.propose(b"...")             # on the leader
    if node.has_ready():
        rd = node.ready()
        send(rd.messages)            # may go out before the persist (leader appends)
        store.apply_snapshot(rd.snapshot)   # if any; restore the state machine from it
        store.append(rd.entries)
        store.set_hard_state(rd.hard_state) # if any; fsync if rd.must_sync
        send(rd.messages_after_persist)     # votes, acks: only once durable
        apply(rd.committed_entries)
        serve(rd.read_states)        # once applied index >= read_state.index
        node.advance(rd)

The leader appends to its own log in parallel with sending (Raft dissertation §10.2.1), but
counts itself towards a commit quorum only for entries acknowledged by ``advance``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass

from .config import RaftConfig
from .log import RaftLog
from .log_store import CompactedError, LogReader, SnapshotTemporarilyUnavailableError
from .membership import ConfChange, ConfChangeError, Membership
from .messages import (
    CAMPAIGN_TRANSFER,
    NONE,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)
from .progress import Progress, ProgressState, ProgressTracker
from .quorum import VoteResult
from .readonly import ReadOnly

MT = MessageType

_LEADER_EAGER_TYPES = frozenset({MT.APP, MT.HEARTBEAT, MT.SNAP, MT.TIMEOUT_NOW, MT.READ_INDEX_RESP})


class RaftError(Exception):
    """Base class of request errors raised by the node."""


class NotLeaderError(RaftError):
    """The request needs the leader; ``leader`` is the known leader id or 0."""

    def __init__(self, leader: int) -> None:
        super().__init__(f"not the leader (leader hint: {leader or 'unknown'})")
        self.leader = leader


class ProposalDroppedError(RaftError):
    """The leader cannot take the proposal right now (transfer or conf change pending)."""


class _Campaign(enum.Enum):
    PRE_ELECTION = "pre_election"
    ELECTION = "election"
    TRANSFER = "transfer"


@dataclass(frozen=True, slots=True)
class Ready:
    """Work handed to the application; acknowledge it with :meth:`RaftNode.advance`."""

    soft_state: SoftState | None
    """Changed leader/role, or None."""
    hard_state: HardState | None
    """Term/vote/commit to persist (None if unchanged)."""
    entries: tuple[Entry, ...]
    """Entries to append to stable storage (truncating any conflicting suffix)."""
    snapshot: Snapshot | None
    """A snapshot from the leader to persist and restore the state machine from."""
    committed_entries: tuple[Entry, ...]
    """Entries to apply, in order, after ``entries``/``hard_state`` are persisted."""
    messages: tuple[Message, ...]
    """Messages that may be sent immediately, in parallel with persisting."""
    messages_after_persist: tuple[Message, ...]
    """Messages that may only be sent once ``entries``, ``hard_state`` and ``snapshot`` are
    durable (votes, append acknowledgements, anything sent under a new term)."""
    read_states: tuple[ReadState, ...]
    """Released reads: serve each once the applied index reaches its ``index``."""
    must_sync: bool
    """Whether the persist must be fsynced before the after-persist messages go out (false
    when only the commit index changed: it can be recovered from the leader)."""


class RaftNode:
    def __init__(self, config: RaftConfig, storage: LogReader, rng: random.Random) -> None:
        self.config = config
        self.id = config.node_id
        self._rng = rng
        hs, cs = storage.initial_state()
        self.log = RaftLog(storage, hs.commit, config.applied)
        self.term = hs.term
        self.vote = hs.vote
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.trk = ProgressTracker(config.max_inflight_msgs, config.max_inflight_bytes)
        self.trk.set_membership(Membership.from_conf_state(cs), self.log.last_index())
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.preferred_leader = config.preferred_leader
        self._preferred_backoff = 0
        self._read_only = ReadOnly()
        self._pending_reads: list[tuple[bytes, int]] = []
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._bcast_pending = False
        self._step_down_pending = False
        self._prev_hard = hs
        self._prev_soft = SoftState(NONE, Role.FOLLOWER)
        self._outstanding: Ready | None = None
        self._become_follower(self.term, NONE)

    # ------------------------------------------------------------------ inspection

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    @property
    def membership(self) -> Membership:
        return self.trk.membership

    @property
    def conf_state(self) -> ConfState:
        """The configuration as of the applied index (what a snapshot must record)."""
        return self.trk.membership.conf_state()

    @property
    def progress(self) -> Mapping[int, Progress]:
        """Per-member replication progress (meaningful on the leader only)."""
        return self.trk.progress

    @property
    def randomized_election_timeout(self) -> int:
        return self._randomized_timeout

    def promotable(self) -> bool:
        return self.trk.is_voter(self.id) and self.log.unstable.snapshot is None

    # ------------------------------------------------------------------ inputs

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if configured), as on election timeout."""
        self._hup(_Campaign.PRE_ELECTION if self.config.pre_vote else _Campaign.ELECTION)

    def propose(self, data: bytes) -> int:
        """Append ``data`` to the leader's log; returns its index (no commit guarantee)."""
        return self._propose(Entry(0, 0, data, EntryType.NORMAL))

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a membership change; see :mod:`.membership` for the protocol."""
        self._check_can_propose()
        if change.leave_joint:
            raise ConfChangeError("leaving a joint configuration is automatic")
        if self.pending_conf_index > self.log.applied:
            raise ProposalDroppedError(
                f"configuration change at index {self.pending_conf_index} not yet applied"
            )
        self.trk.membership.apply(change)  # validate against the current configuration
        index = self._propose(Entry(0, 0, change.encode(), EntryType.CONF_CHANGE))
        self.pending_conf_index = index
        return index

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point; the result arrives as a ReadState in a Ready."""
        if not context:
            raise ValueError("read_index context must be non-empty")
        if self.role is Role.LEADER:
            self._leader_read_index(context, self.id)
        elif self.lead != NONE:
            self._send(Message(MT.READ_INDEX, self.lead, self.id, self.term, context=context))
        else:
            raise NotLeaderError(NONE)

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to voter ``to`` (TimeoutNow once it has caught up). Proposals are
        refused during the transfer, which aborts after one election timeout."""
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if to == self.id:
            self._abort_transfer()
            return
        if not self.trk.is_voter(to):
            raise ValueError(f"transfer target {to} is not a voter")
        if self.lead_transferee == to:
            return
        self._abort_transfer()
        self._election_elapsed = 0  # the transfer must complete within one election timeout
        self.lead_transferee = to
        if self.trk.progress[to].match == self.log.last_index():
            self._send_timeout_now(to)
        else:
            self._send_append(to)

    def set_preferred_leader(self, node_id: int) -> None:
        self.preferred_leader = node_id
        self._preferred_backoff = 0

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to deliver to ``node_id``: stop pipelining, probe instead."""
        pr = self.trk.progress.get(node_id)
        if self.role is Role.LEADER and pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, node_id: int, success: bool) -> None:
        """The transport finished (or failed) streaming a snapshot to ``node_id``."""
        pr = self.trk.progress.get(node_id)
        if self.role is not Role.LEADER or pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not success:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat response before probing again

    def step(self, m: Message) -> None:
        """Process one message from a peer."""
        if m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.config.check_quorum
                    and self.lead != NONE
                    and self._election_elapsed < self.config.election_ticks
                )
                if in_lease and not force:
                    return  # leader lease: a live leader exists, ignore the disruption
            if m.type is MT.PRE_VOTE or (m.type is MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.config.check_quorum or self.config.pre_vote) and m.type in (
                MT.HEARTBEAT,
                MT.APP,
            ):
                # A stale leader (e.g. back from a partition): tell it our term so it steps
                # down instead of waiting forever for acks that will never come.
                self._send(Message(MT.APP_RESP, m.frm, self.id, self.term))
            elif m.type is MT.PRE_VOTE:
                self._send(Message(MT.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        if m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    # ------------------------------------------------------------------ ready / advance

    def has_ready(self) -> bool:
        return bool(
            self._bcast_pending
            or self._msgs
            or self._read_states
            or self.log.unstable.entries
            or self.log.unstable.snapshot is not None
            or self.soft_state != self._prev_soft
            or self.hard_state != self._prev_hard
            or self.log.has_next_committed()
        )

    def ready(self) -> Ready:
        if self._outstanding is not None:
            raise RuntimeError("advance() the previous Ready before asking for the next")
        self._flush_appends()
        soft = self.soft_state
        hard = self.hard_state
        eager_ok = hard.term == self._prev_hard.term and hard.vote == self._prev_hard.vote
        now: list[Message] = []
        later: list[Message] = []
        is_leader = self.role is Role.LEADER
        for m in self._msgs:
            if eager_ok and is_leader and m.type in _LEADER_EAGER_TYPES:
                now.append(m)
            else:
                later.append(m)
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._prev_hard else None,
            entries=tuple(self.log.unstable.entries),
            snapshot=self.log.unstable.snapshot,
            committed_entries=tuple(self.log.next_committed(2**62)),
            messages=tuple(now),
            messages_after_persist=tuple(later),
            read_states=tuple(self._read_states),
            must_sync=bool(self.log.unstable.entries)
            or self.log.unstable.snapshot is not None
            or not eager_ok,
        )
        self._prev_soft = soft
        self._msgs = []
        self._read_states = []
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that ``rd`` was persisted, sent and applied."""
        if rd is not self._outstanding:
            raise RuntimeError("advance() called with a Ready that is not outstanding")
        self._outstanding = None
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            self.log.stable_snap_to(rd.snapshot.index)
            self.log.applied = max(self.log.applied, rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        for e in rd.committed_entries:
            if e.index <= self.log.applied:
                continue
            self.log.applied_to(e.index)
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(e)
        if self.role is Role.LEADER:
            pr = self.trk.progress.get(self.id)
            if pr is not None and pr.maybe_update(self.log.persisted):
                self._maybe_commit_and_bcast()
            self._maybe_leave_joint()
            if self._step_down_pending:
                self._step_down_after_removal()

    # ------------------------------------------------------------------ state changes

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._reset_randomized_timeout()
        self._abort_transfer()
        self.trk.reset_votes()
        last = self.log.last_index()
        for node_id, pr in list(self.trk.progress.items()):
            fresh = self.trk.new_progress(last + 1, is_learner=pr.is_learner)
            # Check-quorum counts only peers heard from during this term.
            fresh.recent_active = node_id == self.id
            if node_id == self.id:
                fresh.match = self.log.persisted
            self.trk.progress[node_id] = fresh
        self.pending_conf_index = 0
        self._read_only.reset()
        self._pending_reads = []
        self._bcast_pending = False
        self._step_down_pending = False

    def _reset_randomized_timeout(self) -> None:
        """Draw the next election timeout from [election_ticks, 2 * election_ticks)."""
        self._randomized_timeout = self.config.election_ticks + self._rng.randrange(
            self.config.election_ticks
        )

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise AssertionError("leader cannot become pre-candidate")
        # Term and vote stay untouched: that is the point of pre-vote.
        self.trk.reset_votes()
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE
        self._reset_randomized_timeout()

    def _become_candidate(self) -> None:
        if self.role is Role.LEADER:
            raise AssertionError("leader cannot become candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.trk.progress[self.id].become_replicate()
        self.trk.progress[self.id].match = self.log.persisted
        # No conf change until everything in the log (possibly a pending one) is applied.
        self.pending_conf_index = self.log.last_index()
        # The no-op entry of the new term: once committed, every earlier entry is committed
        # too (§5.4.2), and ReadIndex may be served.
        self.log.append([Entry(self.term, self.log.last_index() + 1)])
        self._bcast_pending = True

    def _hup(self, kind: _Campaign) -> None:
        if self.role is Role.LEADER or not self.promotable():
            return
        if self._has_unapplied_conf_change():
            return  # our configuration may be stale; campaign once it is applied
        self._campaign(kind)

    def _has_unapplied_conf_change(self) -> bool:
        return any(e.type is EntryType.CONF_CHANGE for e in self.log.next_committed(2**62))

    def _campaign(self, kind: _Campaign) -> None:
        if kind is _Campaign.PRE_ELECTION:
            self._become_pre_candidate()
            msg_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            msg_type, term = MT.VOTE, self.term
        self.trk.record_vote(self.id, True)
        if self._poll_won(kind):
            return
        ctx = CAMPAIGN_TRANSFER if kind is _Campaign.TRANSFER else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for node_id in sorted(self.trk.membership.voters.ids()):
            if node_id != self.id:
                self._send(
                    Message(
                        msg_type,
                        node_id,
                        self.id,
                        term,
                        log_term=last_term,
                        index=last_index,
                        context=ctx,
                    )
                )

    def _poll_won(self, kind: _Campaign) -> bool:
        result = self.trk.vote_result()
        if result is VoteResult.WON:
            if kind is _Campaign.PRE_ELECTION:
                self._campaign(_Campaign.ELECTION)
            else:
                self._become_leader()
            return True
        if result is VoteResult.LOST:
            self._become_follower(self.term, NONE)
        return False

    # ------------------------------------------------------------------ ticks

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self.promotable() and self._election_elapsed >= self._randomized_timeout:
            self._election_elapsed = 0
            self.campaign()

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        if self._preferred_backoff > 0:
            self._preferred_backoff -= 1
        if self._election_elapsed >= self.config.election_ticks:
            self._election_elapsed = 0
            if self.config.check_quorum:
                if not self.trk.quorum_active():
                    self._become_follower(self.term, NONE)
                    return
                for node_id, pr in self.trk.progress.items():
                    pr.recent_active = node_id == self.id
            if self.lead_transferee != NONE:
                if self.lead_transferee == self.preferred_leader:
                    self._preferred_backoff = 4 * self.config.election_ticks
                self._abort_transfer()
        if self._heartbeat_elapsed >= self.config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat(self._read_only.last_pending_context())
            self._maybe_transfer_to_preferred()

    def _maybe_transfer_to_preferred(self) -> None:
        p = self.preferred_leader
        if (
            p in (NONE, self.id)
            or self.lead_transferee != NONE
            or self._preferred_backoff > 0
            or self.trk.membership.is_joint
            or p not in self.trk.membership.voters.incoming.voters
            or self.log.term(self.log.committed) != self.term
        ):
            return
        pr = self.trk.progress[p]
        if (
            pr.recent_active
            and pr.state is ProgressState.REPLICATE
            and (pr.match >= self.log.committed)
        ):
            self.transfer_leadership(p)

    # ------------------------------------------------------------------ message handling

    def _send(self, m: Message) -> None:
        self._msgs.append(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type is MT.PRE_VOTE and m.term > self.term)
        )
        resp = MT.VOTE_RESP if m.type is MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # A grant carries the candidate's term (for a pre-vote, the future term).
            self._send(Message(resp, m.frm, self.id, m.term))
            if m.type is MT.VOTE:
                self._election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, m.frm, self.id, self.term, reject=True))

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self._election_elapsed = 0
            self.lead = m.frm
            if t is MT.APP:
                self._handle_append(m)
            elif t is MT.HEARTBEAT:
                self._handle_heartbeat(m)
            else:
                self._handle_snapshot(m)
        elif t is MT.TIMEOUT_NOW:
            self._hup(_Campaign.TRANSFER)
        elif t is MT.READ_INDEX:
            if self.lead != NONE:
                self._send(Message(MT.READ_INDEX, self.lead, m.frm, self.term, context=m.context))
        elif t is MT.READ_INDEX_RESP:
            self._read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self._become_follower(m.term, m.frm)
            self._step_follower(m)
            return
        pre = self.role is Role.PRE_CANDIDATE
        if (pre and t is MT.PRE_VOTE_RESP) or (not pre and t is MT.VOTE_RESP):
            self.trk.record_vote(m.frm, not m.reject)
            self._poll_won(_Campaign.PRE_ELECTION if pre else _Campaign.ELECTION)

    def _step_leader(self, m: Message) -> None:
        pr = self.trk.progress.get(m.frm)
        t = m.type
        if t is MT.READ_INDEX:
            self._leader_read_index(m.context, m.frm)
            return
        if pr is None:
            return
        if t is MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t is MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state is ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context:
                self._handle_read_ack(m)

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(Message(MT.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(Message(MT.APP_RESP, m.frm, self.id, self.term, index=last_new))
            return
        # Fast backtracking: point the leader at the largest index whose term is <= the
        # term of the probe, so a whole diverging term is skipped in one round trip.
        hint_index = min(m.index, self.log.last_index())
        hint_index, hint_term = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            Message(
                MT.APP_RESP,
                m.frm,
                self.id,
                self.term,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(Message(MT.HEARTBEAT_RESP, m.frm, self.id, self.term, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        index = self.log.last_index() if self._restore(m.snapshot) else self.log.committed
        self._send(Message(MT.APP_RESP, m.frm, self.id, self.term, index=index))

    def _restore(self, snap: Snapshot) -> bool:
        if snap.index <= self.log.committed:
            return False
        if self.log.match_term(snap.index, snap.term):
            self.log.commit_to(snap.index)  # we already have it: fast-forward the commit
            return False
        self.log.restore(snap)
        self.trk.set_membership(
            Membership.from_conf_state(snap.metadata.conf_state), self.log.last_index()
        )
        return True

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decrease_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        if pr.maybe_update(m.index) or (pr.match == m.index and pr.state is ProgressState.PROBE):
            if pr.state is ProgressState.PROBE:
                pr.become_replicate()
            elif pr.state is ProgressState.SNAPSHOT:
                if pr.match + 1 >= self.log.first_index():
                    pr.become_probe()
                    pr.become_replicate()
                elif pr.match >= pr.pending_snapshot:
                    # The snapshot landed but we compacted past it meanwhile: probe again
                    # (which sends a newer snapshot).
                    pr.become_probe()
            else:
                pr.inflights.free_le(m.index)
            self._maybe_commit_and_bcast()
            while self._send_append(m.frm, send_if_empty=False):
                pass
            if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                self._send_timeout_now(m.frm)

    # ------------------------------------------------------------------ leader helpers

    def _check_can_propose(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeaderError(self.lead)
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership transfer to {self.lead_transferee} in progress")
        if self.id not in self.trk.progress:
            raise ProposalDroppedError("this node was removed from the configuration")

    def _propose(self, entry: Entry) -> int:
        self._check_can_propose()
        index = self.log.last_index() + 1
        self.log.append([Entry(self.term, index, entry.data, entry.type)])
        self._bcast_pending = True
        return index

    def _flush_appends(self) -> None:
        if not self._bcast_pending or self.role is not Role.LEADER:
            self._bcast_pending = False
            return
        self._bcast_pending = False
        for node_id, pr in self.trk.progress.items():
            if node_id == self.id:
                continue
            self._send_append(node_id)
            if pr.state is ProgressState.REPLICATE:
                while self._send_append(node_id, send_if_empty=False):
                    pass

    def _maybe_commit_and_bcast(self) -> None:
        if not self.log.maybe_commit(self.trk.committed(), self.term):
            return
        self._bcast_pending = True  # propagate the new commit index (coalesced per Ready)
        if self._pending_reads and self.log.term(self.log.committed) == self.term:
            reads, self._pending_reads = self._pending_reads, []
            for context, requester in reads:
                self._start_read(context, requester)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.trk.progress[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        try:
            entries = self.log.entries(pr.next, self.config.max_size_per_msg)
        except CompactedError:
            return self._send_snapshot(to, pr)
        if not entries and not send_if_empty:
            return False
        self._send(
            Message(
                MT.APP,
                to,
                self.id,
                self.term,
                log_term=prev_term,
                index=prev_index,
                entries=tuple(entries),
                commit=self.log.committed,
            )
        )
        pr.sent_entries(len(entries), sum(e.size() for e in entries))
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snap = self.log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            return False
        if snap.index < pr.next - 1 and snap.index < self.log.first_index() - 1:
            raise AssertionError("storage snapshot does not cover the compacted prefix")
        pr.become_snapshot(snap.index)
        self._send(Message(MT.SNAP, to, self.id, self.term, snapshot=snap))
        return True

    def _bcast_heartbeat(self, context: bytes) -> None:
        for node_id, pr in self.trk.progress.items():
            if node_id != self.id:
                self._send(
                    Message(
                        MT.HEARTBEAT,
                        node_id,
                        self.id,
                        self.term,
                        commit=min(pr.match, self.log.committed),
                        context=context,
                    )
                )

    def _send_timeout_now(self, to: int) -> None:
        self._send(Message(MT.TIMEOUT_NOW, to, self.id, self.term))

    def _abort_transfer(self) -> None:
        self.lead_transferee = NONE

    def _leader_read_index(self, context: bytes, requester: int) -> None:
        if self.log.term(self.log.committed) != self.term:
            # Our commit index may lag the true one until our no-op commits (§6.4 step 1).
            self._pending_reads.append((context, requester))
            return
        self._start_read(context, requester)

    def _start_read(self, context: bytes, requester: int) -> None:
        voters = self.trk.membership.voters
        if voters.ids() == {self.id}:
            self._release_read(self.log.committed, context, requester)
            return
        if self._read_only.add_request(self.log.committed, context, requester, self.id):
            self._bcast_heartbeat(context)

    def _handle_read_ack(self, m: Message) -> None:
        acks = self._read_only.recv_ack(m.frm, m.context)
        if acks is None:
            return
        if self.trk.membership.voters.vote_result(dict.fromkeys(acks, True)) is not (
            VoteResult.WON
        ):
            return
        for status in self._read_only.advance(m.context):
            self._release_read(status.index, status.context, status.requester)

    def _release_read(self, index: int, context: bytes, requester: int) -> None:
        if requester == self.id:
            self._read_states.append(ReadState(index, context))
        else:
            self._send(
                Message(
                    MT.READ_INDEX_RESP, requester, self.id, self.term, index=index, context=context
                )
            )

    # ------------------------------------------------------------------ membership

    def _apply_conf_change(self, e: Entry) -> None:
        try:
            new = self.trk.membership.apply(ConfChange.decode(e.data))
        except ConfChangeError:
            return  # every replica rejects the same committed entry: it is a no-op
        self.trk.set_membership(new, self.log.last_index())
        if self.role is not Role.LEADER:
            return
        self._bcast_pending = True  # new members learn about us right away
        if not new.is_joint and not new.is_voter(self.id):
            self._step_down_pending = True
        else:
            self._maybe_commit_and_bcast()  # quorums changed

    def _maybe_leave_joint(self) -> None:
        if (
            self.role is Role.LEADER
            and self.trk.membership.is_joint
            and self.log.applied >= self.pending_conf_index
            and self.lead_transferee == NONE
        ):
            index = self.log.last_index() + 1
            self.log.append([Entry(self.term, index, ConfChange().encode(), EntryType.CONF_CHANGE)])
            self.pending_conf_index = index
            self._bcast_pending = True

    def _step_down_after_removal(self) -> None:
        """We led the change that removed us: hand over to the most caught-up voter."""
        self._step_down_pending = False
        last = self.log.last_index()
        self._flush_appends()  # followers learn the final commit index first
        for node_id in sorted(self.trk.membership.voters.incoming.voters):
            pr = self.trk.progress.get(node_id)
            if pr is not None and pr.match == last:
                self._send_timeout_now(node_id)
                break
        msgs = self._msgs
        self._become_follower(self.term, NONE)
        self._msgs = msgs


__all__ = [
    "NotLeaderError",
    "ProposalDroppedError",
    "RaftError",
    "RaftNode",
    "Ready",
]

"""Deterministic, seeded simulation of a Raft cluster under faults.

One schedule = one seed. Everything random (fault rates, which message is lost, when a node
crashes, what clients do) is drawn from ``random.Random(seed)``, so a schedule replays
exactly from its number.

Model
-----
- Time advances in *rounds*; every ``ROUNDS_PER_TICK`` rounds each live node ticks. A message
  takes 1..max_delay rounds, rarely much longer (reordering); it may be lost or duplicated,
  and is dropped if a partition separates the nodes or the receiver is down.
- Crash-restart loses everything not persisted: the node's storage holds exactly what its
  Ready batches told it to persist before the crash. A crash may also hit in the middle of
  handling a Ready (after the leader's eager sends, before the persist; or after the persist,
  before the acknowledgements go out). On restart the state machine is rebuilt from the
  stored snapshot and the committed log.
- Clients write unique values and read keys (linearizable reads through ReadIndex, served
  once the node applied up to the read index). Each completed operation goes into a
  history checked for linearizability at the end.
- Sometimes the membership changes (add a learner, promote it, remove a voter) and nodes
  snapshot + compact their logs so that lagging nodes need InstallSnapshot.

Invariants (checked while running, and at the end)
--------------------------------------------------
election safety, log matching, leader completeness, state-machine safety, every
acknowledged write durable on a quorum, liveness after heal, linearizability.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from linearizability import Op, check_kv

from x0tta6bl4.consensus.core.config import RaftConfig
from x0tta6bl4.consensus.core.log_store import MemoryLogStore
from x0tta6bl4.consensus.core.membership import (
    ConfChange,
    ConfChangeError,
    ConfChangeSingle,
    ConfChangeType,
    Membership,
)
from x0tta6bl4.consensus.core.messages import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ReadState,
    Role,
)
from x0tta6bl4.consensus.core.node import NotLeaderError, RaftError, RaftNode, Ready

ROUNDS_PER_TICK = 4
ELECTION_TICKS = 6
HEARTBEAT_TICKS = 2


class InvariantViolation(AssertionError):
    pass


@dataclass
class Stats:
    leaders_elected: int = 0
    max_term: int = 0
    writes_acked: int = 0
    reads_acked: int = 0
    crashes: int = 0
    snapshots_installed: int = 0
    conf_changes_applied: int = 0
    liveness_ticks: int = 0
    messages: int = 0


@dataclass
class PendingWrite:
    client: int
    key: str
    value: str
    call: int
    index: int


@dataclass
class PendingRead:
    client: int
    key: str
    call: int
    since: int  # round of the call
    index: int = -1  # read index once known


@dataclass
class SimNode:
    node_id: int
    store: MemoryLogStore
    node: RaftNode | None = None
    kv: dict[str, str] = field(default_factory=dict)
    writes: dict[int, PendingWrite] = field(default_factory=dict)
    reads: dict[bytes, PendingRead] = field(default_factory=dict)
    down_until: int = -1
    paused_until: int = -1
    """A paused node (GC pause, SIGSTOP) neither ticks nor handles messages; what arrives
    meanwhile waits in ``backlog``."""
    backlog: list[Message] = field(default_factory=list)
    tick_period: int = ROUNDS_PER_TICK
    unsynced: tuple[Ready, int] | None = None
    """A Ready whose persist is still in progress (slow disk), and the round it completes."""
    tick_phase: int = 0

    def running(self) -> bool:
        return self.node is not None and self.paused_until < 0


@dataclass(frozen=True)
class Faults:
    loss: float
    dup: float
    max_delay: int
    long_delay: float
    partition: float
    crash: float
    crash_in_ready: float
    pause: float
    disk_latency: int
    clock_skew: bool
    conf_change: float
    snapshot_every: int
    client_rate: float


def _draw_faults(rng: random.Random) -> Faults:
    return Faults(
        loss=rng.choice([0.0, 0.01, 0.05, 0.15]),
        dup=rng.choice([0.0, 0.02, 0.1]),
        max_delay=rng.choice([1, 2, 4, 8]),
        long_delay=rng.choice([0.0, 0.02]),
        partition=rng.choice([0.0, 0.005, 0.02]),
        crash=rng.choice([0.0, 0.003, 0.01]),
        crash_in_ready=rng.choice([0.0, 0.01, 0.04]),
        pause=rng.choice([0.0, 0.003, 0.01]),
        disk_latency=rng.choice([0, 0, 2, 6]),
        clock_skew=rng.random() < 0.5,
        conf_change=rng.choice([0.0, 0.0, 0.01]),
        snapshot_every=rng.choice([4, 8, 1000]),
        client_rate=rng.choice([0.2, 0.5]),
    )


class Simulation:
    def __init__(self, seed: int, fault_ticks: int = 40, liveness_ticks: int = 60) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        rng = self.rng
        self.faults = _draw_faults(rng)
        self.fault_ticks = fault_ticks
        self.liveness_limit = liveness_ticks
        n = rng.choice([3, 3, 5])
        self.voters = list(range(1, n + 1))
        self.spare = [n + 1, n + 2]
        self.nodes: dict[int, SimNode] = {}
        for i in self.voters:
            self._add_node(SimNode(i, MemoryLogStore.bootstrap(self.voters)))
        self.now = 0  # current round
        self.events = 0  # global order of client-visible events
        self.inflight: dict[int, list[Message]] = {}
        self.groups: dict[int, int] | None = None  # partition: node -> side
        self.history: list[Op] = []
        self.client_busy: dict[int, int] = {}  # client -> round of its outstanding call
        self.next_client = 0
        self.stats = Stats()
        # global records for invariants
        self.leader_of_term: dict[int, int] = {}
        self.committed: dict[int, Entry] = {}
        self.commit_era: dict[int, int] = {}
        self.config_history: list[tuple[int, Membership]] = [
            (1, Membership.from_conf_state(ConfState(voters=frozenset(self.voters))))
        ]
        self.acked: list[tuple[int, int]] = []  # (index, term) of acknowledged writes
        self.healthy = False

    # ------------------------------------------------------------------ nodes

    def _add_node(self, sn: SimNode) -> None:
        if self.faults.clock_skew:  # tick rates differ by up to 25%: leases are not clocks
            sn.tick_period = self.rng.choice(
                [ROUNDS_PER_TICK - 1, ROUNDS_PER_TICK, ROUNDS_PER_TICK + 1]
            )
        sn.tick_phase = self.rng.randrange(sn.tick_period)
        self.nodes[sn.node_id] = sn
        self._boot(sn)

    def _boot(self, sn: SimNode) -> None:
        snap = sn.store.snapshot()
        sn.kv = json.loads(snap.data) if snap.data else {}
        cfg = RaftConfig(
            node_id=sn.node_id,
            election_ticks=ELECTION_TICKS,
            heartbeat_ticks=HEARTBEAT_TICKS,
            max_inflight_msgs=self.rng.choice([1, 4, 64]),
            max_size_per_msg=self.rng.choice([40, 200, 1 << 20]),
            applied=snap.index,
        )
        sn.node = RaftNode(cfg, sn.store, random.Random(self.seed * 7919 + sn.node_id))
        sn.writes = {}
        sn.reads = {}

    def _crash(self, sn: SimNode) -> None:
        sn.node = None
        sn.unsynced = None
        sn.paused_until = -1
        sn.backlog = []
        sn.down_until = self.now + self.rng.randint(1, 12) * ROUNDS_PER_TICK
        self.stats.crashes += 1
        # Clients of the crashed node never learn the outcome: their writes stay
        # indeterminate in the history (ret=None), their reads are dropped.
        for w in sn.writes.values():
            self.history.append(Op(w.client, "put", w.key, w.value, w.call, None))
            self.client_busy.pop(w.client, None)
        for r in sn.reads.values():
            self.client_busy.pop(r.client, None)
        sn.writes = {}
        sn.reads = {}

    def _alive(self) -> list[SimNode]:
        return [sn for sn in self.nodes.values() if sn.running()]

    # ------------------------------------------------------------------ network

    def _send(self, msgs: tuple[Message, ...]) -> None:
        f = self.faults
        rng = self.rng
        for m in msgs:
            self.stats.messages += 1
            if not self.healthy:
                if rng.random() < f.loss:
                    self._report_loss(m)
                    continue
                copies = 2 if rng.random() < f.dup else 1
            else:
                copies = 1
            for _ in range(copies):
                delay = rng.randint(1, f.max_delay if not self.healthy else 2)
                if not self.healthy and rng.random() < f.long_delay:
                    delay += rng.randint(8, 40)
                self.inflight.setdefault(self.now + delay, []).append(m)

    def _report_loss(self, m: Message) -> None:
        # A streamed snapshot fails loudly at the transport: tell the leader.
        if m.type is MessageType.SNAP:
            sender = self.nodes[m.frm].node
            if sender is not None:
                sender.report_snapshot(m.to, success=False)

    def _deliver_due(self) -> None:
        due = self.inflight.pop(self.now, None)
        if not due:
            return
        if len(due) > 1:
            self.rng.shuffle(due)
        for m in due:
            sn = self.nodes.get(m.to)
            cut = self.groups is not None and self.groups.get(m.frm) != self.groups.get(m.to)
            if sn is None or sn.node is None or cut:
                self._report_loss(m)
                continue
            if sn.paused_until >= 0:
                sn.backlog.append(m)
                continue
            sn.node.step(m)
            if m.type is MessageType.SNAP:
                self.stats.snapshots_installed += 1
                # The stream finished: the transport reports it (as etcd's ReportSnapshot).
                sender = self.nodes[m.frm].node
                if sender is not None:
                    sender.report_snapshot(m.to, success=True)

    # ------------------------------------------------------------------ ready handling

    def _start_ready(self, sn: SimNode) -> None:
        node = sn.node
        assert node is not None
        rd = node.ready()
        if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
            self._on_new_leader(node)
        self._send(rd.messages)
        f = self.faults
        if not self.healthy and f.crash_in_ready and self.rng.random() < f.crash_in_ready:
            self._crash(sn)  # before the persist: everything in rd is lost
            return
        latency = self.rng.randint(0, f.disk_latency) if f.disk_latency and rd.must_sync else 0
        if latency and not self.healthy:
            # The fsync takes a while; the node keeps stepping messages meanwhile.
            sn.unsynced = (rd, self.now + latency)
        else:
            self._finish_ready(sn, rd)

    def _finish_ready(self, sn: SimNode, rd: Ready) -> None:
        node = sn.node
        assert node is not None
        f = self.faults
        sn.unsynced = None
        store = sn.store
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
            sn.kv = json.loads(rd.snapshot.data) if rd.snapshot.data else {}
        store.append(rd.entries)
        if rd.hard_state is not None:
            store.set_hard_state(rd.hard_state)
        if not self.healthy and f.crash_in_ready and self.rng.random() < f.crash_in_ready:
            self._crash(sn)  # persisted, but acks never sent and nothing applied
            return
        self._send(rd.messages_after_persist)
        for e in rd.committed_entries:
            self._apply(sn, e)
        for rs in rd.read_states:
            self._on_read_state(sn, rs)
        node.advance(rd)
        self._serve_reads(sn)
        if f.snapshot_every < 1000:
            self._maybe_snapshot(sn)

    def _apply(self, sn: SimNode, e: Entry) -> None:
        prev = self.committed.get(e.index)
        if prev is None:
            self.committed[e.index] = e
            # The entry was committed by a leader of a term <= the highest term now in use.
            self.commit_era[e.index] = max(
                n.node.term for n in self.nodes.values() if n.node is not None
            )
            if e.type is EntryType.CONF_CHANGE:
                last = self.config_history[-1][1]
                try:
                    self.config_history.append((e.index, last.apply(ConfChange.decode(e.data))))
                    self.stats.conf_changes_applied += 1
                except ConfChangeError:
                    pass
        elif prev != e:
            raise InvariantViolation(
                f"state machine safety: node {sn.node_id} applies {e} at index {e.index}, "
                f"another node applied {prev}"
            )
        if e.type is EntryType.NORMAL and e.data:
            key, value = e.data.decode().split("=", 1)
            sn.kv[key] = value
        w = sn.writes.pop(e.index, None)
        if w is None:
            return
        self.client_busy.pop(w.client, None)
        if e.type is EntryType.NORMAL and e.data == f"{w.key}={w.value}".encode():
            self.events += 1
            self.history.append(Op(w.client, "put", w.key, w.value, w.call, self.events))
            self.stats.writes_acked += 1
            self._check_durable_quorum(e)
            self.acked.append((e.index, e.term))
        # else: another entry took the slot, so the write definitely never happened.

    def _on_read_state(self, sn: SimNode, rs: ReadState) -> None:
        r = sn.reads.get(rs.context)
        if r is not None:
            r.index = rs.index

    def _serve_reads(self, sn: SimNode) -> None:
        node = sn.node
        assert node is not None
        for ctx, r in list(sn.reads.items()):
            if r.index >= 0 and node.log.applied >= r.index:
                del sn.reads[ctx]
                self.events += 1
                self.history.append(
                    Op(r.client, "get", r.key, sn.kv.get(r.key), r.call, self.events)
                )
                self.client_busy.pop(r.client, None)
                self.stats.reads_acked += 1

    def _maybe_snapshot(self, sn: SimNode) -> None:
        node = sn.node
        assert node is not None
        snap_index = sn.store.snapshot().index
        applied = node.log.applied
        if applied - snap_index >= self.faults.snapshot_every:
            sn.store.create_snapshot(applied, node.conf_state, json.dumps(sn.kv).encode())
            keep = self.rng.choice([0, 2])
            sn.store.compact(max(sn.store.first_index() - 1, applied - keep))

    # ------------------------------------------------------------------ invariants

    def _on_new_leader(self, node: RaftNode) -> None:
        self.stats.leaders_elected += 1
        self.stats.max_term = max(self.stats.max_term, node.term)
        other = self.leader_of_term.setdefault(node.term, node.id)
        if other != node.id:
            raise InvariantViolation(
                f"election safety: nodes {other} and {node.id} both lead term {node.term}"
            )
        # Leader completeness: an entry committed in an earlier term is in the leader's log.
        first = node.log.first_index()
        era = self.commit_era
        for index, e in self.committed.items():
            if era[index] >= node.term:
                continue
            if index >= first and node.log.term(index) != e.term:
                raise InvariantViolation(
                    f"leader completeness: leader {node.id} of term {node.term} lacks committed "
                    f"entry {index} (term {e.term}); has term {node.log.term(index)}"
                )
            if index < first - 1 and node.log.snapshot().index < index:
                raise InvariantViolation(f"leader {node.id} lost committed prefix {index}")

    def _check_durable_quorum(self, e: Entry) -> None:
        holders = {i for i, sn in self.nodes.items() if _durably_has(sn.store, e)}
        # The committing leader counted votes in the configuration as of its previous commit:
        # with one conf change in flight at a time, that is the configuration before or after
        # the last conf change preceding the entry.
        candidates = [m for idx, m in self.config_history if idx < e.index][-2:]
        for m in candidates:
            v = m.voters
            if all(
                len(holders & half) > len(half) // 2
                for half in (v.incoming.voters, v.outgoing.voters)
                if half
            ):
                return
        raise InvariantViolation(
            f"acknowledged write at index {e.index} is durable only on {sorted(holders)}, "
            f"not on a quorum of {[m.voters for m in candidates]}"
        )

    def check_log_matching(self) -> None:
        logs: dict[int, dict[int, Entry]] = {}
        for i, sn in self.nodes.items():
            if sn.node is not None:
                logs[i] = {e.index: e for e in sn.node.log.all_entries()}
        ids = sorted(logs)
        for a_pos, a in enumerate(ids):
            for b in ids[a_pos + 1 :]:
                la, lb = logs[a], logs[b]
                common = sorted(set(la) & set(lb), reverse=True)
                matched = False
                for idx in common:
                    ea, eb = la[idx], lb[idx]
                    if matched and ea != eb:
                        raise InvariantViolation(
                            f"log matching: nodes {a},{b} agree at a later index but differ "
                            f"at {idx}: {ea} vs {eb}"
                        )
                    if ea.term == eb.term:
                        if ea != eb:
                            raise InvariantViolation(
                                f"log matching: {a},{b} index {idx} same term, different data"
                            )
                        matched = True

    # ------------------------------------------------------------------ workload

    def _client_step(self) -> None:
        rng = self.rng
        if rng.random() >= self.faults.client_rate:
            return
        client = rng.randrange(4)
        if client in self.client_busy:
            return
        alive = self._alive()
        if not alive:
            return
        sn = rng.choice(alive)
        node = sn.node
        assert node is not None
        key = rng.choice(("a", "b"))
        call = self.events + 1
        if rng.random() < 0.6:
            value = f"c{client}.{call}"
            try:
                index = node.propose(f"{key}={value}".encode())
            except NotLeaderError as exc:
                # Follow the redirect once, as a real client would.
                hinted = self.nodes.get(exc.leader)
                if hinted is None or not hinted.running() or hinted.node is None:
                    return
                sn = hinted
                try:
                    index = hinted.node.propose(f"{key}={value}".encode())
                except RaftError:
                    return
            except RaftError:
                return
            self.events = call
            sn.writes[index] = PendingWrite(client, key, value, call, index)
        else:
            ctx = f"r{call}".encode()
            try:
                node.read_index(ctx)
            except RaftError:
                return
            self.events = call
            sn.reads[ctx] = PendingRead(client, key, call, self.now)
        self.client_busy[client] = self.now

    def _expire_clients(self) -> None:
        # A client gives up after a while; its op stays indeterminate (writes) or vanishes.
        limit = 30 * ROUNDS_PER_TICK
        for sn in self.nodes.values():
            for ctx, r in list(sn.reads.items()):
                if self.now - r.since > limit:
                    del sn.reads[ctx]
                    self.client_busy.pop(r.client, None)
        for client, since in list(self.client_busy.items()):
            if self.now - since > limit:
                del self.client_busy[client]

    def _conf_change_step(self) -> None:
        rng = self.rng
        leaders = [sn.node for sn in self._alive() if sn.node and sn.node.role is Role.LEADER]
        if not leaders:
            return
        leader = max(leaders, key=lambda n: n.term)
        m = leader.membership
        if m.is_joint:
            return
        voters = sorted(m.voters.incoming.voters)
        learners = sorted(m.learners)
        choice = rng.random()
        if choice < 0.4 and self.spare:
            new_id = self.spare[0]
            cc = ConfChange((ConfChangeSingle(ConfChangeType.ADD_LEARNER, new_id),))
        elif choice < 0.7 and learners:
            cc = ConfChange((ConfChangeSingle(ConfChangeType.ADD_VOTER, learners[0]),))
        elif len(voters) > 3:
            victim = rng.choice(voters)
            cc = ConfChange((ConfChangeSingle(ConfChangeType.REMOVE_NODE, victim),))
        else:
            return
        try:
            leader.propose_conf_change(cc)
        except (RaftError, ConfChangeError):
            return
        ch = cc.changes[0]
        if ch.type is ConfChangeType.ADD_LEARNER:
            self.spare.pop(0)
            self._add_node(SimNode(ch.node_id, MemoryLogStore()))

    def _fault_step(self) -> None:
        rng = self.rng
        f = self.faults
        if f.partition and rng.random() < f.partition:
            if self.groups is None:
                ids = sorted(self.nodes)
                self.groups = {i: rng.randrange(2) for i in ids}
            else:
                self.groups = None
        if f.crash and rng.random() < f.crash:
            victim = self._pick_victim()
            if victim is not None:
                self._crash(victim)
        if f.pause and rng.random() < f.pause:
            victim = self._pick_victim()
            if victim is not None:
                victim.paused_until = self.now + rng.randint(2, 15) * ROUNDS_PER_TICK
        for sn in self.nodes.values():
            if sn.node is None and self.now >= sn.down_until:
                self._boot(sn)
            elif 0 <= sn.paused_until <= self.now:
                self._resume(sn)

    def _pick_victim(self) -> SimNode | None:
        """Half of the crashes and pauses hit a leader: that is where the bugs hide."""
        alive = self._alive()
        if not alive:
            return None
        leaders = [sn for sn in alive if sn.node is not None and sn.node.role is Role.LEADER]
        if leaders and self.rng.random() < 0.5:
            return self.rng.choice(leaders)
        return self.rng.choice(alive)

    def _resume(self, sn: SimNode) -> None:
        sn.paused_until = -1
        # What queued up meanwhile trickles in over the next rounds, so the node may act on
        # its stale view (e.g. still believe it leads) before it learns the news.
        for m in sn.backlog:
            self.inflight.setdefault(self.now + self.rng.randint(1, 4), []).append(m)
        sn.backlog = []

    # ------------------------------------------------------------------ main loop

    def _round(self) -> None:
        self._deliver_due()
        now = self.now
        for sn in self.nodes.values():
            if (
                sn.node is not None
                and sn.paused_until < 0
                and ((now + sn.tick_phase) % sn.tick_period == 0)
            ):
                sn.node.tick()
        if not self.healthy:
            self._fault_step()
            if self.now % ROUNDS_PER_TICK == 0:
                self._expire_clients()
            self._client_step()
            if self.faults.conf_change and self.rng.random() < self.faults.conf_change:
                self._conf_change_step()
        for sn in list(self.nodes.values()):
            if not sn.running():
                continue
            if sn.unsynced is not None:
                if sn.unsynced[1] > self.now and not self.healthy:
                    continue
                self._finish_ready(sn, sn.unsynced[0])
            while sn.running() and sn.unsynced is None and sn.node and sn.node.has_ready():
                self._start_ready(sn)
        self.now += 1

    def run(self) -> Stats:
        for _ in range(self.fault_ticks * ROUNDS_PER_TICK):
            self._round()
        self.check_log_matching()
        self._heal_and_check_liveness()
        self.check_log_matching()
        self._check_final_state()
        for sn in self.nodes.values():  # writes still in flight: outcome unknown
            for w in sn.writes.values():
                self.history.append(Op(w.client, "put", w.key, w.value, w.call, None))
        result = check_kv(self.history)
        if not result.ok:
            raise InvariantViolation(result.detail)
        return self.stats

    def _heal_and_check_liveness(self) -> None:
        self.healthy = True
        self.groups = None
        for sn in self.nodes.values():
            if sn.node is None:
                self._boot(sn)
            elif sn.paused_until >= 0:
                self._resume(sn)
        start = self.now
        limit = self.liveness_limit * ROUNDS_PER_TICK
        probe_index = -1
        probe_term = -1
        probe = b""
        while self.now - start < limit:
            self._round()
            leaders = [sn.node for sn in self._alive() if sn.node and sn.node.role is Role.LEADER]
            if probe_index >= 0 and self._all_applied(probe_index, probe):
                self.stats.liveness_ticks = (self.now - start) // ROUNDS_PER_TICK
                return
            # (Re)propose the probe write whenever the leader that took it is gone.
            if leaders and not any(n.term == probe_term for n in leaders):
                leader = max(leaders, key=lambda n: n.term)
                probe = f"probe={self.now}".encode()
                try:
                    probe_index = leader.propose(probe)
                    probe_term = leader.term
                except RaftError:
                    pass
        raise InvariantViolation(
            f"liveness: no write committed on all members within {self.liveness_limit} ticks "
            f"of healing ({self._describe()})"
        )

    def _all_applied(self, index: int, data: bytes) -> bool:
        members = self.config_history[-1][1].ids()
        for i in members:
            sn = self.nodes.get(i)
            if sn is None or sn.node is None or sn.node.log.applied < index:
                return False
        e = self.committed.get(index)
        return e is not None and e.data == data

    def _check_final_state(self) -> None:
        members = self.config_history[-1][1].ids()
        states = {i: self.nodes[i].kv for i in members if i in self.nodes}
        first = next(iter(states.values()))
        for kv in states.values():
            if kv != first:
                raise InvariantViolation(f"replicas diverged: {states}")
        voters = self.config_history[-1][1].voters.incoming.voters
        for index, term in self.acked:
            e = self.committed[index]
            holders = {i for i in voters if _durably_has(self.nodes[i].store, e)}
            if len(holders) <= len(voters) // 2:
                raise InvariantViolation(f"acknowledged write {index}/{term} lost: {holders}")

    def _describe(self) -> str:
        parts = []
        for i, sn in sorted(self.nodes.items()):
            n = sn.node
            if n is None:
                parts.append(f"{i}:down")
            else:
                parts.append(
                    f"{i}:{n.role.value} t{n.term} lead={n.lead} commit={n.log.committed} "
                    f"last={n.log.last_index()} applied={n.log.applied} "
                    f"conf={sorted(n.membership.voters.incoming.voters)}"
                    f"/{sorted(n.membership.voters.outgoing.voters)}"
                    f"/L{sorted(n.membership.learners)}"
                )
        return "; ".join(parts)


def _durably_has(store: MemoryLogStore, e: Entry) -> bool:
    if e.index <= store.snapshot().index:
        return True  # covered by a snapshot (snapshots only contain committed state)
    try:
        return store.term(e.index) == e.term
    except Exception:
        return False

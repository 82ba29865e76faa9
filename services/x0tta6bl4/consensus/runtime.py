"""The imperative shell around the Raft core and the key-value state machine.

One asyncio task (the *Raft loop*) owns the :class:`RaftNode`, the :class:`DurableLog` and the
:class:`KvStateMachine`; everything else talks to it through an inbox, so the pure cores are
only ever touched from one place. Each iteration:

1. drains the inbox: peer messages are stepped, client proposals appended (all proposals that
   arrived meanwhile go into the same Ready: group commit), reads batched into one ReadIndex;
2. ticks the node (``X0_RAFT_TICK_MS``);
3. handles every Ready in etcd's order: send the messages that may go out early (the leader's
   appends), install a received snapshot, write entries + hard state to the WAL with **one**
   fsync, send the messages that needed that fsync (votes, acks), apply committed entries,
   resolve proposal futures, release reads whose index is applied, ``advance``.

Followers forward writes to the leader (RaftService.Forward) instead of redirecting the
client, so every member serves the whole API. Reads are linearizable through ReadIndex.

A storage failure (e.g. a full disk) fails the in-flight proposals with RESOURCE_EXHAUSTED
(full disk) or UNAVAILABLE, drops the in-memory node and re-opens the data directory every
second: the member rejoins from what was durable once the disk accepts writes again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import structlog
from grpc import aio
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from x0tta6bl4.consensus import metrics
from x0tta6bl4.consensus.codec import (
    MEMBER_RECORD_MAGIC,
    Members,
    decode_member_record,
    decode_outcome_bytes,
    decode_snapshot_meta,
    encode_member_record,
)
from x0tta6bl4.consensus.core import topology
from x0tta6bl4.consensus.core.config import RaftConfig
from x0tta6bl4.consensus.core.kv import ApplyOutcome, KvStateMachine
from x0tta6bl4.consensus.core.kv_commands import Compact, LeaseExpire, Request, encode_request
from x0tta6bl4.consensus.core.kv_leases import LeaseDeadlines
from x0tta6bl4.consensus.core.kv_results import LeaseResult, Outcome, RevisionResult
from x0tta6bl4.consensus.core.membership import ConfChange, ConfChangeError
from x0tta6bl4.consensus.core.messages import (
    NONE,
    ConfState,
    EntryType,
    Message,
    MessageType,
    Role,
    Snapshot,
    SoftState,
)
from x0tta6bl4.consensus.core.node import (
    NotLeaderError,
    ProposalDroppedError,
    RaftNode,
    Ready,
)
from x0tta6bl4.consensus.durable_log import DurableLog
from x0tta6bl4.consensus.link_rtt import LinkRtt, too_tight
from x0tta6bl4.consensus.settings import RaftSettings
from x0tta6bl4.consensus.storage.errors import StorageError, StorageFull, storage_error
from x0tta6bl4.consensus.storage.snapshot_files import read_snapshot
from x0tta6bl4.consensus.transport import Transport
from x0tta6bl4.consensus.v1 import raft_pb2, raft_pb2_grpc
from x0tta6bl4.consensus.watch_hub import WatchHub
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.durable import write_all
from x0tta6bl4.platform.errors import FailedPrecondition, InvalidArgument, ServiceError, Unavailable

log = structlog.get_logger(__name__)

LEASE_CHECK_S = 0.1
METRICS_EVERY_S = 0.5
READ_ROUND_S = 0.1
WRITE_DRAIN_TIMEOUT_S = 2.0


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotLeader(FailedPrecondition):
    """This member is not the leader; ``leader_id``/``leader_address`` say who is (0/"")."""

    def __init__(self, leader_id: int, leader_address: str) -> None:
        hint = f"{leader_id} at {leader_address}" if leader_id else "unknown"
        super().__init__(f"this member is not the leader (leader: {hint})")
        self.leader_id = leader_id
        self.leader_address = leader_address


class ProposalRefused(FailedPrecondition):
    """The leader refused to append the proposal (e.g. during a leadership transfer); nothing
    was proposed, so it is safe to retry."""


class NoLeader(Unavailable):
    def __init__(self, what: str) -> None:
        super().__init__(f"no Raft leader: {what}; retry shortly")


class OutcomeUnknown(Unavailable):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"{why}; the write may or may not have been applied (retry with the same "
            "request_id to apply it exactly once)"
        )


@dataclass(frozen=True, slots=True)
class MemberView:
    node_id: int
    address: str
    zone: str
    role: str  # leader | follower | learner | candidate
    match: int
    lag: int
    active: bool


@dataclass(frozen=True, slots=True)
class StatusView:
    node_id: int
    term: int
    leader_id: int
    leader_address: str
    commit: int
    applied: int
    revision: int
    joint: bool
    members: tuple[MemberView, ...]


def _outcome(applied: ApplyOutcome) -> Outcome:
    if applied.error is not None:
        return applied.error
    assert applied.result is not None
    return applied.result


class RaftRuntime:
    """One consensus member: the Raft loop, its storage, transport and state machine."""

    leader_heard_at = float("-inf")
    """time.monotonic() of the last batch of messages from the leader (bounded-staleness
    reads on a follower)."""

    def __init__(
        self,
        raft: RaftSettings,
        *,
        client_factory: Callable[[str], MeshClient],
        tracer: Tracer | None = None,
    ) -> None:
        self.raft = raft
        self.id = raft.node_id
        self._client_factory = client_factory
        self._tracer = tracer or trace.get_tracer(__name__)
        self.hub = WatchHub()
        self._inbox: collections.deque[tuple[Any, ...]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._ticks_due = 0
        self._persisting = False
        self.link_rtt = LinkRtt()
        self._rtt_warned: set[int] = set()
        # The WAL write running in a worker thread, if any (stop() waits for it).
        self._write: asyncio.Future[float] | None = None
        self._pending: dict[int, tuple[int, asyncio.Future[Any]]] = {}
        self._reads: dict[bytes, list[asyncio.Future[int]]] = {}
        self._read_queue: list[asyncio.Future[int]] = []
        self._read_round: bytes | None = None  # context of the round in flight
        self._read_round_started = 0.0
        self._read_round_size = 0
        self._read_timer: asyncio.TimerHandle | None = None
        self._read_seq = itertools.count(1)
        self._applied_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._waiter_seq = itertools.count()
        self._leader_waiters: list[asyncio.Future[None]] = []
        self._deadlines = LeaseDeadlines()
        self._expiring: dict[int, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._tick_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._snapshot_task: asyncio.Task[None] | None = None
        self._snapshot_ready: tuple[int, int, ConfState, int, int, float] | None = None
        self._snapshot_retry_at = 0.0
        self._last_lease_check = 0.0
        self._compact_proposed = 0
        self._last_metrics = 0.0
        self.storage_error: str | None = None
        self.storage_full = False
        self.commit_at_start = 0
        self.applied = 0
        self._members: frozenset[int] = frozenset()
        self._member_addrs: Members = {}
        # set by _install
        self.durable: DurableLog
        self.kv: KvStateMachine
        self.node: RaftNode
        self.transport: Transport

    # ------------------------------------------------------------------ lifecycle

    def _open(self) -> tuple[DurableLog, Any]:
        empty = KvStateMachine().snapshot()
        bootstrap = None if self.raft.join else ConfState(voters=frozenset(self.raft.peers))
        return DurableLog.open(self.raft.data_dir, bootstrap=bootstrap, empty_image=empty)

    def _install(self, durable: DurableLog, recovered: Any) -> None:
        self.durable = durable
        self.kv = KvStateMachine.from_snapshot(recovered.image)
        self._member_addrs = dict(recovered.members)
        self.applied = recovered.snapshot.index
        self.commit_at_start = recovered.hard_state.commit
        config = RaftConfig(
            node_id=self.id,
            election_ticks=self.raft.election_ticks,
            heartbeat_ticks=self.raft.heartbeat_ticks,
            max_inflight_msgs=self.raft.max_inflight,
            pre_vote=True,
            check_quorum=True,
            preferred_leader=self.raft.preferred_leader,
            applied=self.applied,
        )
        self.node = RaftNode(config, durable, random.Random(int.from_bytes(os.urandom(8), "big")))
        self._members = self.node.membership.ids()
        self._prev_soft = SoftState(NONE, Role.FOLLOWER)
        log.info(
            "raft.recovered",
            node_id=self.id,
            data_dir=str(self.raft.data_dir),
            snapshot_index=recovered.snapshot.index,
            entries=recovered.entries,
            term=recovered.hard_state.term,
            commit=recovered.hard_state.commit,
            torn_tail=recovered.torn_tail,
            members=sorted(self._members),
        )

    async def start(self) -> None:
        for note in self.raft.notes:
            log.warning("raft.config_warning", note=note)
        self._log_timers()
        durable, recovered = await asyncio.to_thread(self._open)
        self._install(durable, recovered)
        self.transport = Transport(
            self.id,
            resolve=self.address_of,
            client_factory=self._client_factory,
            snap_dir=durable.snap_dir,
            chunk_bytes=self.raft.snapshot_chunk_bytes,
            on_unreachable=lambda peer: self._post(("unreachable", peer)),
            on_snapshot_done=lambda peer, ok: self._post(("snap_done", peer, ok)),
            link_rtt=self.link_rtt,
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run())]
        self._start_ticker(loop)

    async def stop(self) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
            self._tick_timer = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.hub.close_all("member stopping")
        await self.transport.close()
        if self._write is not None:
            # A cancelled loop leaves its write running in the worker thread: let it finish
            # before the WAL closes under it (what it wrote was never acknowledged).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._write), WRITE_DRAIN_TIMEOUT_S)
        self.durable.close()
        log.info("raft.stopped", term=self.node.term, applied=self.applied)

    # ------------------------------------------------------------------ inbox

    def _post(self, item: tuple[Any, ...]) -> None:
        self._inbox.append(item)
        self._wakeup.set()

    def deliver(self, messages: list[Message]) -> None:
        """Messages from a peer (RaftService.Send / InstallSnapshot)."""
        for m in messages:
            self._inbox.append(("msg", m))
            if m.type is MessageType.HEARTBEAT_RESP:
                self._heartbeat_answered(m.frm)
        if messages and messages[0].frm == self.node.lead:
            self.leader_heard_at = time.monotonic()
        self._wakeup.set()

    def _heartbeat_answered(self, peer: int) -> None:
        """Update the measured round trip to ``peer``; warn (once per peer) when it makes
        the election timeout too tight for the link."""
        rtt = self.link_rtt.answered(peer, time.monotonic())
        if rtt is None:
            return
        metrics.PEER_RTT.labels(str(peer)).set(rtt)
        timeout_ms = self.raft.election_ms
        if peer not in self._rtt_warned and too_tight(rtt, timeout_ms):
            self._rtt_warned.add(peer)
            log.warning(
                "raft.link_rtt_high",
                peer=peer,
                rtt_ms=round(rtt * 1000, 1),
                election_timeout_ms=timeout_ms,
                hint=f"set X0_RAFT_LINK_RTT_MS (e.g. {peer}={round(rtt * 1000)}) to raise "
                "this member's timers for the link",
            )

    def _start_ticker(self, loop: asyncio.AbstractEventLoop) -> None:
        """Count a tick every ``tick_ms`` and wake the Raft loop: a timer callback that
        re-arms itself (no task, no future per tick: most of an idle member's CPU)."""
        interval = self.raft.tick_ms / 1000
        next_at = loop.time() + interval

        def fire() -> None:
            nonlocal next_at
            next_at += interval
            now = loop.time()
            if now - next_at > 5 * interval:  # the loop was blocked: do not burst ticks
                next_at = now + interval
            self._ticks_due += 1
            self._wakeup.set()
            self._tick_timer = loop.call_at(next_at, fire)

        self._tick_timer = loop.call_at(next_at, fire)

    # ------------------------------------------------------------------ the Raft loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            try:
                self._drain_and_tick(loop)
                while self.node.has_ready():
                    await self._handle_ready()
                    if self._inbox:  # e.g. what was deferred while persisting
                        self._drain_and_tick(loop)
                if self._snapshot_ready is not None:
                    await self._finish_snapshot()
            except StorageError as err:
                await self._storage_failed(err)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("raft.loop_error")
                await asyncio.sleep(0.05)

    def _drain_and_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drain_inbox()
        if self._ticks_due:
            for _ in range(min(self._ticks_due, 2)):
                self.node.tick()
            self._ticks_due = 0
            self._periodic(loop.time())

    def _drain_inbox(self) -> None:
        reads: list[asyncio.Future[int]] = []
        node = self.node
        inbox = self._inbox
        deferred: list[tuple[Any, ...]] = []
        persisting = self._persisting
        while inbox:
            item = inbox.popleft()
            kind = item[0]
            if persisting and kind in {"conf", "transfer"}:
                # Checked against the applied index, which moves when the Ready being
                # persisted is advanced: handle these between Readies, as before.
                deferred.append(item)
                continue
            if kind == "msg":
                m: Message = item[1]
                if m.to == self.id:
                    node.step(m)
            elif kind == "propose":
                self._do_propose(item[1], item[2])
            elif kind == "read":
                if not item[1].done():
                    reads.append(item[1])
            elif kind == "conf":
                self._do_conf_change(item[1], item[2])
            elif kind == "transfer":
                fut: asyncio.Future[None] = item[2]
                try:
                    node.transfer_leadership(item[1])
                except NotLeaderError as err:
                    fut.set_exception(self.not_leader(err.leader))
                except ValueError as err:
                    fut.set_exception(InvalidArgument("id", str(err)))
                else:
                    fut.set_result(None)
            elif kind == "unreachable":
                node.report_unreachable(item[1])
                self.link_rtt.reset(item[1])  # what was queued to it is gone
            elif kind == "snap_done":
                node.report_snapshot(item[1], item[2])
            elif kind == "snapshot_written":
                self._snapshot_ready = item[1]
        if reads:
            self._read_queue.extend(reads)
        if self._read_queue:
            self._maybe_start_read_round()
        if deferred:
            inbox.extendleft(reversed(deferred))

    def _do_propose(self, payload: bytes, fut: asyncio.Future[Any]) -> None:
        if fut.done():
            return
        try:
            index = self.node.propose(payload)
        except NotLeaderError as err:
            fut.set_exception(self.not_leader(err.leader))
        except ProposalDroppedError as err:
            metrics.PROPOSALS_FAILED.labels("dropped").inc()
            fut.set_exception(ProposalRefused(f"proposal refused: {err}"))
        else:
            self._pending[index] = (self.node.term, fut)

    def _do_conf_change(self, change: ConfChange, fut: asyncio.Future[Any]) -> None:
        try:
            index = self.node.propose_conf_change(change)
        except NotLeaderError as err:
            fut.set_exception(self.not_leader(err.leader))
        except ProposalDroppedError as err:
            fut.set_exception(Unavailable(f"membership change refused: {err}"))
        except ConfChangeError as err:
            fut.set_exception(FailedPrecondition(f"membership change refused: {err}"))
        else:
            self._pending[index] = (self.node.term, fut)

    def _maybe_start_read_round(self) -> None:
        """Batch linearizable reads: while one ReadIndex round (a heartbeat to a quorum) is in
        flight, reads queue up and all go into the next round, so one round confirms many
        reads. A round not answered within READ_ROUND_S no longer holds the queue back.

        Under concurrent reads (the last round carried more than one), rounds are also at least
        ``read_batch_ms`` apart: a round would otherwise carry a read or two and cost as much
        as the reads themselves; the reads arriving in that window share the next round (a
        timer starts it). A lone client's read never waits for the window."""
        now = time.monotonic()
        if self._read_round is not None and now - self._read_round_started < READ_ROUND_S:
            return
        wait = self._read_round_started + self.raft.read_batch_ms / 1000 - now
        if wait > 0 and self._read_round_size > 1:
            if self._read_timer is None:
                self._read_timer = asyncio.get_running_loop().call_later(wait, self._read_due)
            return
        reads = [fut for fut in self._read_queue if not fut.done()]
        self._read_queue = []
        if reads:
            self._do_read_index(reads, now)

    def _do_read_index(self, reads: list[asyncio.Future[int]], now: float) -> None:
        context = self.id.to_bytes(8, "big") + next(self._read_seq).to_bytes(8, "big")
        try:
            self.node.read_index(context)
        except NotLeaderError:
            for fut in reads:
                if not fut.done():
                    fut.set_exception(NoLeader("cannot serve a linearizable read"))
            return
        self._reads[context] = reads
        self._read_round = context
        self._read_round_started = now
        self._read_round_size = len(reads)

    def _read_due(self) -> None:
        self._read_timer = None
        self._wakeup.set()  # the loop starts the round if reads are still queued

    def not_leader(self, leader: int) -> NotLeader:
        """The error for a request only the leader can serve, naming ``leader``."""
        return NotLeader(leader, (self.address_of(leader) or "") if leader else "")

    async def _handle_ready(self) -> None:
        rd: Ready = self.node.ready()
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        conf_changed = False
        applied_early = False
        if rd.committed_entries and not rd.entries and rd.snapshot is None:
            # Only commits (their entries are durable here already): answer the clients
            # first, then tell the followers the new commit index. The messages' sender
            # tasks would otherwise run before the waiting clients' replies.
            applied_early = True
            conf_changed = self._apply(rd)
            self._release_reads(rd)
            self._release_applied_waiters()
        if rd.messages:
            self.transport.send(rd.messages)
        if rd.snapshot is not None:
            await self._install_received_snapshot(rd.snapshot)
        if rd.entries or rd.hard_state is not None:
            if rd.must_sync:
                # Group commit: the fsync runs in a worker thread while this loop keeps
                # stepping acks, appending proposals (they go into the next Ready, i.e. the
                # next fsync) and batching reads. Committed entries that were already durable
                # here (all below this Ready's entries) are applied meanwhile: they are on a
                # quorum and on this member's disk, so answering them now is safe.
                # Submitted now (run_in_executor), not from a task's first step a loop
                # iteration later, behind the sender tasks this Ready just woke.
                write = self._write = asyncio.get_running_loop().run_in_executor(
                    None, self.durable.write, rd.entries, rd.hard_state, True
                )
                write.add_done_callback(self._wake)
                if (
                    not applied_early
                    and rd.snapshot is None
                    and (
                        not rd.entries
                        or not rd.committed_entries
                        or rd.committed_entries[-1].index < rd.entries[0].index
                    )
                ):
                    applied_early = True
                    conf_changed = self._apply(rd)
                    self._release_reads(rd)
                    self._release_applied_waiters()
                loop = asyncio.get_running_loop()
                self._persisting = True
                try:
                    while not write.done():
                        await self._wakeup.wait()
                        self._wakeup.clear()
                        self._drain_and_tick(loop)
                finally:
                    # Not cancelled when the loop is: the thread would write on regardless,
                    # and stop() waits for it before closing the WAL.
                    self._persisting = False
                seconds = write.result()
                metrics.FSYNC_DURATION.observe(seconds)
                if rd.entries:
                    metrics.ENTRIES_PER_FSYNC.observe(len(rd.entries))
            else:
                self.durable.write(rd.entries, rd.hard_state, False)
            self.durable.remember(rd.entries, rd.hard_state)
        if rd.messages_after_persist:
            self.transport.send(rd.messages_after_persist)
        if not applied_early:
            conf_changed = self._apply(rd)
            self._release_reads(rd)
        self.node.advance(rd)
        if conf_changed:
            self._on_membership_change()
        self._release_applied_waiters()
        self._maybe_snapshot()

    def _wake(self, _: object) -> None:
        self._wakeup.set()

    def _release_reads(self, rd: Ready) -> None:
        for rs in rd.read_states:
            for fut in self._reads.pop(rs.context, ()):
                if not fut.done():
                    fut.set_result(rs.index)
            if self._read_round == rs.context:
                self._read_round = None
        if self._read_queue:
            self._maybe_start_read_round()

    def _apply(self, rd: Ready) -> bool:
        conf_changed = False
        leader = self.node.role is Role.LEADER
        for e in rd.committed_entries:
            if e.index <= self.applied:
                continue
            result: Any = None
            if e.type is EntryType.NORMAL:
                if e.data.startswith(MEMBER_RECORD_MAGIC):
                    record = decode_member_record(e.data)
                    if record is not None:
                        self._member_addrs[record[0]] = (record[1], record[2])
                elif e.data:
                    applied = self.kv.apply(e.data)
                    self.hub.publish(applied.events)
                    result = applied
                    if leader and isinstance(applied.result, LeaseResult):
                        self._deadlines.renew(
                            applied.result.lease_id, applied.result.ttl, _now_ms()
                        )
            else:
                conf_changed = True
            pending = self._pending.pop(e.index, None)
            if pending is not None:
                term, fut = pending
                if fut.done():
                    pass
                elif term == e.term:
                    fut.set_result(result)
                    metrics.PROPOSALS_COMMITTED.inc()
                else:
                    metrics.PROPOSALS_FAILED.labels("leader_changed").inc()
                    fut.set_exception(
                        OutcomeUnknown("leadership changed before the write committed")
                    )
            self.applied = e.index
        return conf_changed

    def _release_applied_waiters(self) -> None:
        waiters = self._applied_waiters
        while waiters and waiters[0][0] <= self.applied:
            _, _, fut = heapq.heappop(waiters)
            if not fut.done():
                fut.set_result(None)

    def _on_soft_state(self, soft: SoftState) -> None:
        prev = self._prev_soft
        self._prev_soft = soft
        if soft.leader != prev.leader:
            metrics.LEADER_CHANGES.inc()
            log.info(
                "raft.leader_changed",
                leader=soft.leader,
                previous=prev.leader,
                term=self.node.term,
                role=soft.role.value,
            )
            # Reads waiting on the old leader may never be answered: let clients retry.
            for context, futs in list(self._reads.items()):
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(NoLeader("leadership changed during a read"))
                del self._reads[context]
            self._read_round = None
            for waiter in self._leader_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._leader_waiters.clear()
        if soft.role is Role.LEADER and prev.role is not Role.LEADER:
            self._deadlines.start(self.kv.leases(), _now_ms())
            self._expiring.clear()
        elif soft.role is not Role.LEADER:
            self._deadlines = LeaseDeadlines()
        if soft.role is not prev.role:
            self.link_rtt.reset()
        metrics.IS_LEADER.set(1 if soft.role is Role.LEADER else 0)
        metrics.HAS_LEADER.set(1 if soft.leader != NONE else 0)

    def _on_membership_change(self) -> None:
        members = self.node.membership.ids()
        removed = self._members - members
        self._members = members
        log.info("raft.membership_changed", members=sorted(members), removed=sorted(removed))
        for peer in removed:
            if peer == self.id:
                continue
            for gauge in (metrics.FOLLOWER_LAG, metrics.PEER_RTT):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(peer))
            self.link_rtt.forget(peer)
            task = asyncio.get_running_loop().create_task(self.transport.remove(peer))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ snapshots

    async def _install_received_snapshot(self, snap: Snapshot) -> None:
        path = self.durable.snapshot_path(snap.index, snap.term)
        meta, image = await asyncio.to_thread(read_snapshot, path)
        _, members = decode_snapshot_meta(meta.meta)
        await asyncio.to_thread(self.durable.write_received_snapshot, snap)
        self.durable.remember_received_snapshot(snap)
        self.kv.restore(image)
        self._member_addrs = dict(members)
        self.applied = max(self.applied, snap.index)
        # Watchers cannot be given the events the snapshot skipped: end their streams so
        # they re-watch from their last revision (or learn that it was compacted).
        self.hub.close_all("state replaced by a snapshot")
        metrics.SNAPSHOTS.labels("installed").inc()
        log.info("raft.snapshot_installed", index=snap.index, term=snap.term)

    def _maybe_snapshot(self) -> None:
        if self._snapshot_task is not None or self._snapshot_ready is not None:
            return
        if self.applied - self.durable.snapshot().index < self.raft.snapshot_entries:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._snapshot_retry_at:
            return
        index = self.applied
        term = self.durable.term(index)
        conf_state = self.node.conf_state
        started = time.perf_counter()
        image = self.kv.snapshot()
        members = dict(self._member_addrs)
        self._snapshot_task = loop.create_task(
            self._write_snapshot(index, term, conf_state, members, image, started)
        )

    async def _write_snapshot(
        self,
        index: int,
        term: int,
        conf_state: ConfState,
        members: Members,
        image: bytes,
        started: float,
    ) -> None:
        try:
            meta = await asyncio.to_thread(
                self.durable.write_snapshot_file, index, term, conf_state, members, image
            )
        except StorageError as err:
            self._snapshot_retry_at = asyncio.get_running_loop().time() + 5
            metrics.STORAGE_FAILURES.labels("snapshot").inc()
            log.error("raft.snapshot_failed", index=index, error=str(err))
            return
        finally:
            self._snapshot_task = None
        metrics.SNAPSHOT_BYTES.set(meta.file_size)
        metrics.SNAPSHOT_RAW_BYTES.set(meta.raw_size)
        metrics.SNAPSHOT_RATIO.set(meta.compression_ratio)
        self._post(
            (
                "snapshot_written",
                (index, term, conf_state, meta.raw_size, meta.file_size, started),
            )
        )

    async def _finish_snapshot(self) -> None:
        assert self._snapshot_ready is not None
        index, term, conf_state, raw, size, started = self._snapshot_ready
        self._snapshot_ready = None
        if index <= self.durable.snapshot().index:
            return
        upto = max(self.durable.first_index() - 1, index - self.raft.catchup_entries)
        await asyncio.to_thread(self.durable.write_snapshot_marker, index, term, upto)
        self.durable.remember_snapshot(index, term, conf_state)
        self.durable.remember_compaction(upto)
        metrics.SNAPSHOTS.labels("taken").inc()
        log.info(
            "raft.snapshot_taken",
            index=index,
            raw_bytes=raw,
            file_bytes=size,
            seconds=round(time.perf_counter() - started, 3),
            compacted_to=upto,
        )

    # ------------------------------------------------------------------ storage failure

    async def _storage_failed(self, err: StorageError) -> None:
        full = isinstance(err, StorageFull)
        self.storage_error = str(err)
        self.storage_full = full
        metrics.STORAGE_FAILURES.labels("full" if full else "error").inc()
        metrics.IS_LEADER.set(0)
        metrics.HAS_LEADER.set(0)
        log.error("raft.storage_failed", error=str(err), disk_full=full)
        failure: ServiceError = (
            ResourceExhausted(f"disk full: {err}") if full else Unavailable(f"storage: {err}")
        )
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(failure)
        self._pending.clear()
        for futs in self._reads.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(failure)
        self._reads.clear()
        self._read_round = None
        for fut in self._read_queue:
            if not fut.done():
                fut.set_exception(failure)
        self._read_queue = []
        metrics.PROPOSALS_FAILED.labels("storage").inc()
        self.durable.close()
        while True:
            await asyncio.sleep(1.0)
            try:
                # Prove that the disk takes writes again before rejoining.
                await asyncio.to_thread(_probe_writable, self.raft.data_dir)
                durable, recovered = await asyncio.to_thread(self._open)
            except StorageError as again:
                log.warning("raft.storage_still_failing", error=str(again))
                continue
            break
        while self._inbox:
            item = self._inbox.popleft()
            for part in item[1:]:
                if isinstance(part, asyncio.Future) and not part.done():
                    part.set_exception(Unavailable("storage recovered; retry"))
        self._install(durable, recovered)
        self.storage_error = None
        self.storage_full = False
        log.info("raft.storage_recovered")

    # ------------------------------------------------------------------ periodic work

    def _periodic(self, now: float) -> None:
        if self.node.role is Role.LEADER and now - self._last_lease_check >= LEASE_CHECK_S:
            self._last_lease_check = now
            self._expire_leases(now)
            self._maybe_compact_history()
        if now - self._last_metrics >= METRICS_EVERY_S:
            self._last_metrics = now
            self._update_metrics()
            if self.raft.preferred_zone and not self.raft.preferred_leader:
                self._steer_to_preferred_zone()

    # ------------------------------------------------------------------ multi-datacenter

    def _log_timers(self) -> None:
        metrics.ELECTION_TIMEOUT_MS.set(self.raft.election_ms)
        metrics.HEARTBEAT_INTERVAL_MS.set(self.raft.heartbeat_ms)
        log.info(
            "raft.timers",
            heartbeat_ms=self.raft.heartbeat_ms,
            election_ms=self.raft.election_ms,
            link_rtt_ms={str(k): v for k, v in self.raft.link_rtt_ms.items()},
        )

    def _steer_to_preferred_zone(self) -> None:
        """Leader outside the preferred zone: name the caught-up voter of that zone the core
        should hand leadership to (it transfers once that voter is active and caught up)."""
        node = self.node
        target = NONE
        if node.role is Role.LEADER and self.zone_of(self.id) != self.raft.preferred_zone:
            members = [
                topology.Member(i, self.zone_of(i), node.membership.is_voter(i))
                for i in sorted(node.membership.ids())
            ]
            target = topology.preferred_leader(
                members,
                self.raft.preferred_zone,
                {i: pr.match for i, pr in node.progress.items()},
                node.log.last_index(),
                max_lag=max(100, self.raft.catchup_entries),
            )
        if target != node.preferred_leader:
            if target != NONE:
                log.info("raft.preferred_zone_transfer", to=target, zone=self.raft.preferred_zone)
            node.set_preferred_leader(target)

    def follower_read_allowed(self, max_staleness_ms: int) -> bool:
        """Whether a local (serializable) read is at most ``max_staleness_ms`` behind the
        leader: true on the leader, and on a follower that heard from the leader within the
        bound (its state then lags the leader's by at most that, plus its apply backlog)."""
        if self.storage_error is not None or self.node.lead == NONE:
            return False
        if self.node.role is Role.LEADER:
            return True
        return (time.monotonic() - self.leader_heard_at) * 1000 <= max_staleness_ms

    def _maybe_compact_history(self) -> None:
        """Leader: keep ``history_revisions`` of MVCC history (older revisions and watches
        from them then fail with OUT_OF_RANGE); proposed once history is twice that long, so
        compactions are rare."""
        keep = self.raft.history_revisions
        revision = self.kv.revision
        if revision - self.kv.compact_revision <= 2 * keep or self._compact_proposed >= revision:
            return
        with contextlib.suppress(NotLeaderError, ProposalDroppedError):
            self.node.propose(encode_request(Compact(revision - keep)))
            self._compact_proposed = revision
            log.info("raft.history_compacting", below_revision=revision - keep)

    def _expire_leases(self, now: float) -> None:
        for lease_id in self._deadlines.expired(_now_ms()):
            if self.kv.lease(lease_id) is None:
                self._deadlines.forget(lease_id)
                self._expiring.pop(lease_id, None)
                continue
            if now - self._expiring.get(lease_id, -1e9) < 1.0:
                continue  # proposed already; wait for it to apply
            try:
                self.node.propose(encode_request(LeaseExpire(lease_id)))
            except (NotLeaderError, ProposalDroppedError):
                return
            self._expiring[lease_id] = now
            log.info("raft.lease_expiring", lease_id=lease_id)

    def _update_metrics(self) -> None:
        node = self.node
        metrics.TERM.set(node.term)
        metrics.COMMIT_INDEX.set(node.log.committed)
        metrics.APPLIED_INDEX.set(self.applied)
        if node.role is Role.LEADER:
            last = node.log.last_index()
            for peer, pr in node.progress.items():
                if peer != self.id:
                    metrics.FOLLOWER_LAG.labels(str(peer)).set(max(0, last - pr.match))

    # ------------------------------------------------------------------ membership addresses

    def address_of(self, node_id: int) -> str | None:
        peer = self.raft.peers.get(node_id)
        if peer is not None:
            return str(peer.address)
        info = self._member_addrs.get(node_id)
        return info[0] if info else None

    def zone_of(self, node_id: int) -> str:
        peer = self.raft.peers.get(node_id)
        if peer is not None:
            return peer.zone
        info = self._member_addrs.get(node_id)
        return info[1] if info else ""

    # ------------------------------------------------------------------ API for servicers

    @property
    def leader_id(self) -> int:
        return self.node.lead

    @property
    def is_leader(self) -> bool:
        return self.node.role is Role.LEADER

    def _check_storage(self) -> None:
        if self.storage_error is not None:
            if self.storage_full:
                raise ResourceExhausted(f"disk full on member {self.id}: {self.storage_error}")
            raise Unavailable(f"storage failure on member {self.id}: {self.storage_error}")

    async def wait_for_leader(self, timeout_s: float) -> bool:
        """Wait until some leader is known; False on timeout."""
        if self.node.lead != NONE:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leader_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            return False
        return self.node.lead != NONE

    async def propose(self, request: Request, timeout_s: float) -> Outcome:
        """Commit and apply a write through the leader; returns its outcome.

        Raises NoLeader (UNAVAILABLE) when no leader emerges in time, OutcomeUnknown
        (UNAVAILABLE) when leadership changed mid-way, ResourceExhausted on a full disk.
        """
        payload = encode_request(request.command, request.request_id)
        return await self.propose_payload(
            payload,
            timeout_s,
            command=type(request.command).__name__,
            idempotent=request.request_id is not None,
        )

    async def record_member(self, node_id: int, address: str, zone: str, timeout_s: float) -> None:
        """Replicate the address of a member added at run time (before its conf change)."""
        await self.propose_payload(
            encode_member_record(node_id, address, zone),
            timeout_s,
            command="MemberRecord",
            idempotent=True,
        )

    async def propose_payload(
        self, payload: bytes, timeout_s: float, *, command: str, idempotent: bool
    ) -> Outcome:
        """Propose through the leader (this member, or forwarded); one ``raft.propose`` span,
        a child of the caller's, from receipt to apply (to the leader's answer if forwarded)."""
        span = self._tracer.start_span(
            "raft.propose",
            kind=SpanKind.INTERNAL,
            attributes={"x0.raft.command": command, "x0.raft.bytes": len(payload)},
        )
        try:
            if self.node.lead == self.id and self.storage_error is None:
                # Hot path (this member leads): the span need not become the current one.
                try:
                    outcome = await self.propose_local(payload, timeout_s)
                except (NotLeader, ProposalRefused):
                    pass  # nothing was proposed: go the general way below
                else:
                    span.set_attribute("x0.raft.forwarded", False)
                    return outcome
            with trace.use_span(span, end_on_exit=False):
                return await self._propose_through_leader(
                    payload, timeout_s, span, idempotent=idempotent
                )
        except Exception as err:
            span.set_status(Status(StatusCode.ERROR, f"{type(err).__name__}: {err}"))
            raise
        finally:
            span.end()

    async def _propose_through_leader(
        self, payload: bytes, timeout_s: float, span: trace.Span, *, idempotent: bool
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._check_storage()
            remaining = deadline - loop.time()
            if remaining <= 0:
                metrics.PROPOSALS_FAILED.labels("timeout").inc()
                raise NoLeader("no leader accepted the write in time")
            leader = self.node.lead
            if leader == NONE:
                if not await self.wait_for_leader(remaining):
                    metrics.PROPOSALS_FAILED.labels("no_leader").inc()
                    raise NoLeader("no leader elected in time")
                continue
            try:
                if leader == self.id:
                    span.set_attribute("x0.raft.forwarded", False)
                    return await self.propose_local(payload, remaining)
                span.set_attribute("x0.raft.forwarded", True)
                span.set_attribute("x0.raft.leader", leader)
                return await self._forward(leader, payload, remaining, idempotent)
            except (NotLeader, ProposalRefused):
                # Nothing was proposed: safe to try again (with the new leader).
                await asyncio.sleep(min(0.02, max(0.0, deadline - loop.time())))

    async def propose_local(self, payload: bytes, timeout_s: float) -> Outcome:
        """Propose on this member, which must be the leader; wait for apply."""
        self._check_storage()
        fut: asyncio.Future[ApplyOutcome | None] = asyncio.get_running_loop().create_future()
        self._post(("propose", payload, fut))
        try:
            # No shield: a cancelled or timed-out future is skipped when its entry applies.
            async with asyncio.timeout(timeout_s):
                applied = await fut
        except TimeoutError:
            metrics.PROPOSALS_FAILED.labels("timeout").inc()
            raise OutcomeUnknown("the write did not commit in time") from None
        if applied is None:  # a member record: nothing to report
            return RevisionResult(self.kv.revision)
        return _outcome(applied)

    async def _forward(
        self, leader: int, payload: bytes, timeout_s: float, idempotent: bool
    ) -> Outcome:
        link = self.transport.link(leader)  # its mTLS channel carries the Raft traffic too
        if link is None:
            raise NoLeader(f"address of leader {leader} unknown")
        client = link.client
        address = client.address
        try:
            response: raft_pb2.ForwardResponse = await client.call(
                lambda ch, t: raft_pb2_grpc.RaftServiceStub(ch).Forward(
                    raft_pb2.ForwardRequest(request=payload), timeout=t
                ),
                idempotent=idempotent,
                timeout_s=max(0.05, timeout_s),
            )
        except aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise NotLeader(leader, address) from None
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ResourceExhausted(f"leader {leader}: {err.details()}") from None
            metrics.PROPOSALS_FAILED.labels("forward").inc()
            raise OutcomeUnknown(
                f"forwarding to leader {leader} failed ({err.code().name}: {err.details()})"
            ) from None
        return decode_outcome_bytes(response.outcome)

    async def read_barrier(self, timeout_s: float) -> None:
        """Wait until this member's state reflects every write committed before the call
        (ReadIndex): afterwards a local read is linearizable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self._check_storage()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoLeader("the read could not be confirmed by a quorum in time")
            if self.node.lead == NONE and not await self.wait_for_leader(remaining):
                raise NoLeader("no leader to confirm a linearizable read")
            fut: asyncio.Future[int] = loop.create_future()
            self._post(("read", fut))
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    index = await fut
            except NoLeader:
                await asyncio.sleep(0.01)
                continue
            except TimeoutError:
                raise NoLeader("the read could not be confirmed by a quorum in time") from None
            await self.wait_applied(index, max(0.0, deadline - loop.time()))
            return

    async def wait_applied(self, index: int, timeout_s: float) -> None:
        if self.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._applied_waiters, (index, next(self._waiter_seq), fut))
        try:
            async with asyncio.timeout(timeout_s):
                await fut
        except TimeoutError:
            raise Unavailable(
                f"member {self.id} did not catch up to index {index} in time"
            ) from None

    async def change_membership(self, change: ConfChange, timeout_s: float) -> None:
        self._check_storage()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._post(("conf", change, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except TimeoutError:
            raise OutcomeUnknown("the membership change did not commit in time") from None

    async def transfer_leadership(self, to: int, timeout_s: float) -> int:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._post(("transfer", to, fut))
        await fut
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            if self.node.lead == to:
                return to
            await asyncio.sleep(self.raft.tick_ms / 1000)
        raise Unavailable(f"leadership did not move to {to} within {timeout_s:.1f}s")

    def status(self) -> StatusView:
        node = self.node
        membership = node.membership
        leader = node.lead
        is_leader = node.role is Role.LEADER
        last = node.log.last_index()
        members: list[MemberView] = []
        for member in sorted(membership.ids()):
            if member == leader:
                role = "leader"
            elif member in membership.learners or member in membership.learners_next:
                role = "learner"
            elif member == self.id and node.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
                role = "candidate"
            else:
                role = "follower"
            pr = node.progress.get(member) if is_leader else None
            match = last if member == self.id and is_leader else (pr.match if pr else 0)
            members.append(
                MemberView(
                    node_id=member,
                    address=self.address_of(member) or "",
                    zone=self.zone_of(member),
                    role=role,
                    match=match,
                    lag=max(0, last - match) if is_leader else 0,
                    active=bool(pr.recent_active) if pr else member == self.id,
                )
            )
        return StatusView(
            node_id=self.id,
            term=node.term,
            leader_id=leader,
            leader_address=(self.address_of(leader) or "") if leader else "",
            commit=node.log.committed,
            applied=self.applied,
            revision=self.kv.revision,
            joint=membership.is_joint,
            members=tuple(members),
        )

    def leader_metadata(self) -> tuple[tuple[str, str], ...]:
        """Trailing metadata naming the known leader, for errors a client may redirect on."""
        leader = self.node.lead
        if leader == NONE:
            return ()
        return (("x0-leader-id", str(leader)), ("x0-leader-address", self.address_of(leader) or ""))

    async def ready_check(self) -> tuple[bool, str]:
        if self.storage_error is not None:
            return False, f"storage failure: {self.storage_error}"
        if not hasattr(self, "node"):
            return False, "starting"
        if self.node.lead == NONE:
            return False, "no leader known"
        if self.applied < self.commit_at_start:
            return False, f"catching up: applied {self.applied} < {self.commit_at_start}"
        return True, f"leader {self.node.lead}, term {self.node.term}, applied {self.applied}"


PROBE_BYTES = 1 << 20


def _probe_writable(data_dir: Path) -> None:
    """Write and fsync a scratch file of PROBE_BYTES: raise StorageError if the disk refuses."""
    path = data_dir / ".probe"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            write_all(fd, bytes(PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, f"probing {data_dir}") from exc
    finally:
        path.unlink(missing_ok=True)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


__all__ = [
    "NoLeader",
    "NotLeader",
    "OutcomeUnknown",
    "ProposalRefused",
    "RaftRuntime",
    "ResourceExhausted",
    "StatusView",
]

"""An in-memory cluster for scripted interaction tests (the analogue of etcd's ``rafttest``).

Every peer is a :class:`RaftNode` over a :class:`MemoryLogStore` driven exactly as an
application would drive it (persist, send, apply, advance). Messages wait in a FIFO queue
until the test delivers them, so a test controls every interleaving: it can drop, hold or
partition traffic and inspect the state at each point. No I/O, no clock, no global random.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from .config import RaftConfig
from .log_store import MemoryLogStore
from .messages import Entry, EntryType, Message, ReadState, Role
from .node import RaftNode

MessageFilter = Callable[[Message], bool]


@dataclass
class Peer:
    node: RaftNode
    store: MemoryLogStore
    applied: list[Entry] = field(default_factory=list)
    """Every committed entry applied so far, normal and conf-change alike, in order."""
    read_states: list[ReadState] = field(default_factory=list)
    persists: int = 0
    """Number of Ready batches that required an fsync."""

    def applied_data(self) -> list[bytes]:
        return [e.data for e in self.applied if e.type is EntryType.NORMAL and e.data]


class Network:
    """A cluster of peers connected by a scriptable message queue."""

    def __init__(
        self,
        voters: Sequence[int],
        *,
        learners: Sequence[int] = (),
        config: Callable[[int], RaftConfig] | None = None,
        seed: int = 0,
    ) -> None:
        self._config = config or (lambda i: RaftConfig(node_id=i))
        self._seed = seed
        self.peers: dict[int, Peer] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        """Directed links (from, to) whose messages are dropped on delivery."""
        self.delivered: list[Message] = []
        """Every message delivered so far (for assertions about traffic)."""
        for i in [*voters, *learners]:
            store = MemoryLogStore.bootstrap(voters, learners)
            self._start(i, store, applied=1)

    def _start(self, node_id: int, store: MemoryLogStore, applied: int) -> None:
        cfg = replace(self._config(node_id), applied=applied)
        rng = random.Random(self._seed * 1000 + node_id)
        self.peers[node_id] = Peer(RaftNode(cfg, store, rng), store)

    def add_peer(self, node_id: int) -> Peer:
        """Start a brand-new, empty node (it must then be added by a conf change)."""
        self._start(node_id, MemoryLogStore(), applied=0)
        return self.peers[node_id]

    def restart(self, node_id: int) -> None:
        """Crash and restart ``node_id`` from what it persisted (applied state is rebuilt)."""
        store = self.peers[node_id].store
        snap_index = store.snapshot().index
        self._start(node_id, store, applied=snap_index)
        self.queue = [m for m in self.queue if m.to != node_id]

    def node(self, node_id: int) -> RaftNode:
        return self.peers[node_id].node

    # ------------------------------------------------------------------ driving

    def process_ready(self, node_id: int) -> bool:
        """Handle one Ready of ``node_id`` as an application would; False if none."""
        peer = self.peers[node_id]
        node = peer.node
        if not node.has_ready():
            return False
        rd = node.ready()
        self.queue.extend(rd.messages)
        if rd.snapshot is not None:
            peer.store.apply_snapshot(rd.snapshot)
        peer.store.append(rd.entries)
        if rd.hard_state is not None:
            peer.store.set_hard_state(rd.hard_state)
        if rd.must_sync:
            peer.persists += 1
        self.queue.extend(rd.messages_after_persist)
        peer.applied.extend(rd.committed_entries)
        peer.read_states.extend(rd.read_states)
        node.advance(rd)
        return True

    def process_all_ready(self) -> None:
        for node_id in sorted(self.peers):
            while self.process_ready(node_id):
                pass

    def deliver_one(self, m: Message) -> None:
        if (m.frm, m.to) in self.cut or m.to not in self.peers:
            return
        self.delivered.append(m)
        self.peers[m.to].node.step(m)

    def stabilize(self, drop: MessageFilter | None = None, max_rounds: int = 10_000) -> None:
        """Process readies and deliver messages until nothing is left to do.

        Messages matching ``drop`` are discarded instead of delivered.
        """
        for _ in range(max_rounds):
            self.process_all_ready()
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for m in batch:
                if drop is not None and drop(m):
                    continue
                self.deliver_one(m)
        raise AssertionError("network did not stabilize")

    def take(self, pred: MessageFilter) -> list[Message]:
        """Remove and return queued messages matching ``pred`` (to hold or inspect them)."""
        taken = [m for m in self.queue if pred(m)]
        self.queue = [m for m in self.queue if not pred(m)]
        return taken

    def tick(self, node_ids: Iterable[int] | None = None, n: int = 1) -> None:
        ids = sorted(self.peers) if node_ids is None else list(node_ids)
        for _ in range(n):
            for i in ids:
                self.peers[i].node.tick()

    def tick_and_stabilize(self, n: int, drop: MessageFilter | None = None) -> None:
        for _ in range(n):
            self.tick()
            self.stabilize(drop)

    # ------------------------------------------------------------------ partitions

    def isolate(self, node_id: int) -> None:
        for other in self.peers:
            if other != node_id:
                self.cut.add((node_id, other))
                self.cut.add((other, node_id))

    def partition(self, *groups: Iterable[int]) -> None:
        sets = [set(g) for g in groups]
        for a in sets:
            for b in sets:
                if a is not b:
                    self.cut.update((x, y) for x in a for y in b)

    def heal(self) -> None:
        self.cut.clear()

    # ------------------------------------------------------------------ inspection

    def leaders(self) -> list[int]:
        return sorted(i for i, p in self.peers.items() if p.node.role is Role.LEADER)

    def leader(self) -> int:
        """The id of the unique leader of the highest term (fails if there is none)."""
        top = max(p.node.term for p in self.peers.values())
        found = [
            i for i, p in self.peers.items() if p.node.role is Role.LEADER and p.node.term == top
        ]
        if len(found) != 1:
            raise AssertionError(f"expected one leader at term {top}, found {found}")
        return found[0]

    def elect(self, node_id: int) -> None:
        """Make ``node_id`` campaign and run the election to completion."""
        self.node(node_id).campaign()
        self.stabilize()
        if self.node(node_id).role is not Role.LEADER:
            raise AssertionError(f"node {node_id} failed to become leader")

    def propose(self, node_id: int, data: bytes) -> int:
        index = self.node(node_id).propose(data)
        self.stabilize()
        return index

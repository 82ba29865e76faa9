"""Deterministic, seeded simulation of sync replicas over a faulty network.

Everything random comes from one ``random.Random(seed)``, so a seed replays exactly. The network
loses, duplicates, delays (and thereby reorders) messages and can be partitioned; time is a
tick counter passed to the replicas as ``now_ms``. The workload uses oracles that make a wrong
merge visible: every counter change and every add/remove of a *unique* element is recorded, so
the converged values are known exactly, and "a removed element never comes back" is checked at
every tick (a replica that applied the remove of an element must never show it again).

With ``leave_mid`` one replica stops writing a quarter of the way in, keeps replicating until
every other replica has its writes, then stops for good; the others are told it left at random
later ticks, and a relayed batch of its events and a snapshot taken before the leave are
delivered again at random later ticks. It must end up pruned: no context of any replica
mentions it.
"""

from __future__ import annotations

import random
from collections.abc import Hashable
from dataclasses import dataclass, field

from tests.support.crdt_specs import AW, DW, LWW, MAP, MAP_AW, MV, PN, RW
from x0tta6bl4.sync.core import (
    Add,
    Assign,
    AWSet,
    CausalContext,
    Clear,
    Decrement,
    DeltaBatch,
    Digest,
    Disable,
    Dot,
    Enable,
    Event,
    Increment,
    MapRemove,
    MapUpdate,
    Message,
    Op,
    ORMap,
    Remove,
    Replica,
    ReplicaConfig,
    TypeSpec,
    value_of,
)

TICK_MS = 100


def elements(r: Replica, key: str) -> list[str]:
    read = r.get(key)
    if read is None or not isinstance(read.value, AWSet):
        return []
    return [e for e in read.value.elements if isinstance(e, str)]


def map_keys(r: Replica, key: str) -> list[str]:
    read = r.get(key)
    return read.value.keys() if read is not None and isinstance(read.value, ORMap) else []


@dataclass
class NetFaults:
    loss: float = 0.15
    duplicate: float = 0.05
    max_delay: int = 12  # ticks; random delays reorder messages, long ones arrive after GC


@dataclass
class Network:
    rng: random.Random
    faults: NetFaults
    groups: list[frozenset[str]] | None = None
    queue: list[tuple[int, int, str, str, Message]] = field(default_factory=list)
    sent: int = 0
    dropped: int = 0
    _n: int = 0

    def connected(self, a: str, b: str) -> bool:
        return self.groups is None or any(a in g and b in g for g in self.groups)

    def send(self, src: str, dst: str, msg: Message, tick: int) -> None:
        self.sent += 1
        if not self.connected(src, dst) or self.rng.random() < self.faults.loss:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < self.faults.duplicate else 1
        for _ in range(copies):
            self._n += 1
            delay = self.rng.randint(0, self.faults.max_delay)
            self.queue.append((tick + delay, self._n, src, dst, msg))

    def due(self, tick: int) -> list[tuple[str, str, Message]]:
        ready = [q for q in self.queue if q[0] <= tick]
        self.queue = [q for q in self.queue if q[0] > tick]
        self.rng.shuffle(ready)
        # A partition also cuts messages that were already in flight when it started.
        return [(s, d, m) for _, _, s, d, m in ready if self.connected(s, d)]


@dataclass
class Oracle:
    counter: int = 0
    set_added: set[str] = field(default_factory=set)
    set_removed: set[str] = field(default_factory=set)
    umap_added: set[str] = field(default_factory=set)
    umap_removed: set[str] = field(default_factory=set)
    removals: list[tuple[Dot, str, str]] = field(default_factory=list)  # (event, key, element)


@dataclass
class Result:
    seed: int
    n: int
    values_rounds: int
    state_rounds: int
    messages: int
    dropped: int
    collected_tokens: int
    dropped_events: int


class Simulation:
    def __init__(
        self, seed: int, n: int, *, join_late: bool = False, leave_mid: bool = False
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.net = Network(self.rng, NetFaults())
        self.ids = [f"r{i}" for i in range(n)]
        config = ReplicaConfig(retransmit_ms=3 * TICK_MS, max_batch_events=64)
        self.config = config
        initial = self.ids[:-1] if join_late else self.ids
        self.replicas = {
            i: Replica(i, [p for p in initial if p != i], config=config) for i in initial
        }
        self.pending_join = self.ids[-1] if join_late else None
        self.oracle = Oracle()
        self.tick = 0
        self.serial = 0
        self.collected = 0
        self.dropped_events = 0
        self.client_writes = CausalContext()
        self.leaver = self.ids[0] if leave_mid else None
        self.leaver_events: list[Event] = []
        self.leaving = False  # the leaver writes no more
        self.stopped = False
        self.leave_at: dict[str, int] = {}  # remaining replica -> tick it is told

    @property
    def now(self) -> int:
        return self.tick * TICK_MS

    # -- workload ------------------------------------------------------------------------

    def _do(self, r: Replica, key: str, op: Op, spec: TypeSpec) -> Event:
        ev = r.update(key, op, self.now, spec)
        self.client_writes = self.client_writes.add(ev.dot)
        if r.id == self.leaver:
            self.leaver_events.append(ev)
        return ev

    def _fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def write(self) -> None:
        ready = [
            r
            for r in self.replicas.values()
            if r.bootstrapped and not (self.leaving and r.id == self.leaver)
        ]
        r = self.rng.choice(ready)
        kind = self.rng.random()
        o = self.oracle
        if kind < 0.25:
            present = elements(r, "set")
            if present and self.rng.random() < 0.45:
                e = self.rng.choice(present)
                ev = self._do(r, "set", Remove(e), AW)
                o.set_removed.add(e)
                o.removals.append((ev.dot, "set", e))
            else:
                e = self._fresh("e")
                self._do(r, "set", Add(e), AW)
                o.set_added.add(e)
        elif kind < 0.40:
            n = self.rng.randint(1, 9)
            if self.rng.random() < 0.3:
                self._do(r, "hits", Decrement(n), PN)
                o.counter -= n
            else:
                self._do(r, "hits", Increment(n), PN)
                o.counter += n
        elif kind < 0.55:
            k = f"k{self.rng.randint(0, 5)}"
            if self.rng.random() < 0.3:
                self._do(r, "config", MapRemove(k), MAP)
            else:
                value = Assign(self.rng.randint(0, 99))
                self._do(r, "config", MapUpdate(k, value), MAP)
        elif kind < 0.70:
            keys = map_keys(r, "umap")
            if keys and self.rng.random() < 0.45:
                k = self.rng.choice(keys)
                ev = self._do(r, "umap", MapRemove(k), MAP_AW)
                o.umap_removed.add(k)
                o.removals.append((ev.dot, "umap", k))
            else:
                k = self._fresh("u")
                self._do(r, "umap", MapUpdate(k, Add("v")), MAP_AW)
                o.umap_added.add(k)
        elif kind < 0.82:
            e = f"t{self.rng.randint(0, 3)}"
            op = Add(e) if self.rng.random() < 0.5 else Remove(e)
            self._do(r, "tags", op, RW)
        elif kind < 0.87:
            read = r.get("reg")
            ctx = read.context if read is not None and self.rng.random() < 0.5 else None
            self._do(r, "reg", Assign(self.rng.randint(0, 9), ctx), MV)
        elif kind < 0.95:
            self.write_register(r)
        else:
            flip = Enable() if self.rng.random() < 0.5 else Disable()
            self._do(r, "flag", flip, DW)

    def write_register(self, r: Replica) -> None:
        """Top-level LWW registers (kept as rows), cleared now and then, and ``mix``, which
        replicas that have not seen it yet create as a register or as a set: concurrent
        creations give it a shadowed type, so it moves between a row and entries."""
        key = self.rng.choice(("r0", "r1", "mix"))
        read = r.get(key)
        if read is not None:
            spec = read.spec  # writes go to the type the key shows
        else:
            spec = self.rng.choice((LWW, AW)) if key == "mix" else LWW
        if read is not None and self.rng.random() < 0.2:
            self._do(r, key, Clear(read.context if self.rng.random() < 0.5 else None), spec)
        elif spec == AW:
            self._do(r, key, Add(self._fresh("m")), AW)
        else:
            ctx = read.context if read is not None and self.rng.random() < 0.5 else None
            self._do(r, key, Assign(self.rng.randint(0, 9), ctx), LWW)

    # -- network activity ----------------------------------------------------------------

    def _send_all(self, msgs: list[tuple[str, str, Message]]) -> None:
        for src, dst, m in msgs:
            self.net.send(src, dst, m, self.tick)

    def push_round(self) -> None:
        out: list[tuple[str, str, Message]] = []
        for r in self.replicas.values():
            for p in r.members:
                b = r.push(p, self.now)
                if b is not None:
                    out.append((r.id, p, b))
        self._send_all(out)

    def digest_round(self) -> None:
        out: list[tuple[str, str, Message]] = []
        for r in self.replicas.values():
            d: Digest = r.digest()
            out.extend((r.id, p, d) for p in r.members)
        self._send_all(out)

    def deliver(self) -> None:
        for src, dst, msg in self.net.due(self.tick):
            replica = self.replicas.get(dst)
            if replica is None or src not in replica.members:
                continue
            self._send_all([(dst, src, reply) for reply in replica.receive(msg, self.now)])

    def gc(self) -> None:
        for r in self.replicas.values():
            rep = r.gc(self.now)
            self.collected += rep.collected_tokens
            self.dropped_events += rep.dropped_events

    def join_pending(self) -> None:
        new = self.pending_join
        if new is None:
            return
        self.pending_join = None
        others = list(self.replicas)
        self.replicas[new] = Replica(new, others, config=self.config, bootstrapped=False)
        for r in others:
            self.replicas[r].join(new)
        if self.stopped:
            self.leave_at[new] = self.tick

    def depart(self) -> None:
        """The leaver stops once every other replica has its writes; the others are told at
        random later ticks; old messages from before the leave are replayed later still."""
        leaver = self.leaver
        if leaver is None or not self.leaving or self.stopped:
            return
        mine = CausalContext.from_dots(ev.dot for ev in self.leaver_events)
        if not all(mine.leq(r.applied) for i, r in self.replicas.items() if i != leaver):
            return
        self.stopped = True
        del self.replicas[leaver]
        self.net.queue = [q for q in self.net.queue if leaver not in (q[2], q[3])]
        for i in self.replicas:
            self.leave_at[i] = self.tick + self.rng.randint(0, 25)
        relay, other = self.rng.sample(sorted(self.replicas), 2)
        batch = DeltaBatch(relay, 1 << 40, tuple(self.leaver_events))
        for src, msg in ((relay, batch), (other, self.replicas[other].snapshot())):
            for dst in self.replicas:
                if dst != src:
                    when = self.tick + self.rng.randint(10, 60)
                    self.net.queue.append((when, 0, src, dst, msg))

    def tell_leaves(self, everyone: bool = False) -> None:
        for i, at in list(self.leave_at.items()):
            if everyone or at <= self.tick:
                assert self.leaver is not None
                self.replicas[i].leave(self.leaver)
                del self.leave_at[i]

    # -- invariants ----------------------------------------------------------------------

    def check_no_resurrection(self) -> None:
        for r in self.replicas.values():
            for dot, key, element in self.oracle.removals:
                if not r.applied.contains(dot) and dot.replica not in r.retired:
                    continue
                live = elements(r, key) if key == "set" else map_keys(r, key)
                present = element in live
                assert not present, (
                    f"{element} came back at {r.id} (tick {self.tick}) after its removal "
                    f"{dot} was applied there"
                )

    def values(self, r: Replica) -> dict[str, Hashable]:
        """What a client reads; an absent key reads like its empty value (a collected
        disable-wins flag is simply gone, and reads as off)."""
        keys = r.keys()
        out = {k: value_of(r.get(k)) for k in keys}
        return {k: v for k, v in out.items() if v not in (None, False, (), 0)}

    def values_converged(self) -> bool:
        """Every client write is applied everywhere and every replica reads the same values
        (GC's own collection events may still be in flight: they never change a value)."""
        rs = list(self.replicas.values())
        if not all(self.client_writes.without(r.retired).leq(r.applied) for r in rs):
            return False
        first = self.values(rs[0])
        return all(self.values(r) == first for r in rs[1:])

    def states_converged(self) -> bool:
        rs = list(self.replicas.values())
        return all(r.state() == rs[0].state() for r in rs[1:])

    def check_oracle(self) -> None:
        o = self.oracle
        for r in self.replicas.values():
            assert (value_of(r.get("hits")) or 0) == o.counter, r.id
            assert set(elements(r, "set")) == o.set_added - o.set_removed, r.id
            assert set(map_keys(r, "umap")) == o.umap_added - o.umap_removed, r.id

    # -- scenario ------------------------------------------------------------------------

    def check_pruned(self) -> None:
        """No context, vector or log of a remaining replica mentions the leaver."""
        leaver = self.leaver
        if leaver is None:
            return
        assert self.stopped, "the leaver never had its writes everywhere"
        for r in self.replicas.values():
            _, cc, applied = r.state()
            cp = r.checkpoint()
            contexts = [
                cc,
                applied,
                r.digest().applied,
                *(c for _, a, b in cp.peers for c in (a, b)),
            ]
            assert r.retired == [leaver] and r.departing == [], r.id
            assert not any(c.mentions(leaver) for c in contexts), r.id
            assert not any(ev.dot.replica == leaver for ev in cp.log), r.id

    def step(self, writes: int) -> None:
        self.tick += 1
        self.depart()
        self.tell_leaves()
        for _ in range(writes):
            self.write()
        self.push_round()
        if self.tick % 3 == 0:
            self.digest_round()
        self.deliver()
        self.gc()
        self.check_no_resurrection()

    def partition_randomly(self) -> None:
        ids = list(self.replicas)
        if self.rng.random() < 0.25:
            self.net.groups = None
            return
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, len(ids) - 1)
        self.net.groups = [frozenset(ids[:cut]), frozenset(ids[cut:])]

    def run(self, ticks: int = 120, post_heal_loss: float = 0.0, max_rounds: int = 30) -> Result:
        """Faulty phase with writes and shifting partitions, then heal and count rounds."""
        for t in range(ticks):
            if t % 15 == 0:
                self.partition_randomly()
            if t == ticks // 3:
                self.join_pending()
            if t == ticks // 4:
                self.leaving = True
            self.step(writes=self.rng.randint(0, 3))
        # Heal. In-flight stale messages still arrive; from now on only anti-entropy rounds.
        self.tell_leaves(everyone=True)
        self.net.groups = None
        self.net.faults = NetFaults(loss=post_heal_loss, duplicate=0.0, max_delay=0)
        stale = [q for q in self.net.queue]
        values_rounds = state_rounds = -1
        for rnd in range(1, max_rounds + 1):
            self.anti_entropy_round(stale if rnd == 1 else [])
            if values_rounds < 0 and self.values_converged():
                values_rounds = rnd
            if self.states_converged():
                state_rounds = rnd
                break
        assert values_rounds > 0 and state_rounds > 0, f"no convergence within {max_rounds} rounds"
        self.check_oracle()
        self.check_pruned()
        assert all(r.bootstrapped for r in self.replicas.values()), "a joiner never bootstrapped"
        return Result(
            self.seed,
            len(self.replicas),
            values_rounds,
            state_rounds,
            self.net.sent,
            self.net.dropped,
            self.collected,
            self.dropped_events,
        )

    def anti_entropy_round(self, stale: list[tuple[int, int, str, str, Message]]) -> None:
        """One round = one round trip: everyone sends its digest (and pushes its buffer) to
        every peer at once; replies and acks are delivered before the round ends; then GC."""
        self.tick += 1
        self.net.queue = []
        for _, _, s, d, m in stale:  # old messages from before the heal arrive now
            self.net.queue.append((self.tick, 0, s, d, m))
        self.digest_round()
        self.push_round()
        for _ in range(3):  # request -> reply -> ack, all within this round trip
            self.deliver()
        self.gc()
        self.check_no_resurrection()

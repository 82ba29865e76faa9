"""The replication protocol core: one replica's state machine, free of I/O.

A :class:`Replica` holds a keyed store of CRDTs that all share one causal context: every local
write is an *event* with a fresh dot ``(replica, n)``, and that same dot is the one the write
mints inside its CRDT. The replica keeps two contexts over the same dot space:

* ``applied`` - events whose deltas were joined here: the anti-entropy digest, what acks carry,
  what causal stability and delta-log truncation are computed from, and what deduplicates
  events;
* ``context`` - the data context of every value (what removals are checked against). It is a
  superset: a write that superseded entry ``d`` carries ``d`` in its delta, so ``d`` may be in
  the data context before event ``d`` (and whatever *it* superseded) has arrived.

Messages in and out are plain values; the gRPC adapter moves them and calls these methods:

* ``update(key, op, now_ms, spec)`` -> :class:`Event` (also appended to the delta log).
* ``push(peer, now_ms)`` -> :class:`DeltaBatch` of logged events the peer has not acknowledged
  and that are not in a batch sent less than ``retransmit_ms`` ago. A lost batch is therefore
  resent after ``retransmit_ms``; duplicates are harmless (events are deduplicated by dot).
* ``on_batch(batch, now_ms)`` -> :class:`Ack` carrying the receiver's applied context.
* ``on_ack(ack)`` - the peer's applied context grows; acknowledged batches are forgotten.
* ``digest()`` / ``on_digest(d, now_ms)`` - anti-entropy: the answer is a batch of exactly the
  events the peer lacks, or a :class:`Snapshot` (full state) when some were already collected
  from the log or the gap is large, or ``None`` when the peer is up to date.
* ``on_snapshot(s, now_ms)`` -> :class:`Ack`.
* ``join(peer)`` / ``leave(peer)``; a new replica starts ``bootstrapped=False`` and refuses
  writes until a snapshot arrived, so that its writes are causally after the cluster's past.
* ``gc(now_ms)`` - drops log entries every member has applied, and collects remove-wins
  tokens that are strongly stable (:mod:`.gc`) through a replicated removal event.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from .causal import CausalContext, Dot, VersionVector, check_replica
from .counters import GCounter, PNCounter
from .dotstore import (
    EMPTY_FUN,
    EMPTY_MAP,
    DotFun,
    DotMap,
    DotStore,
    _filter,
    _filter_fun,
    dots,
    join_at,
    join_fun,
    join_map,
)
from .errors import InvalidOperation
from .flags import DWFlag, EWFlag
from .gc import StabilityCut, stable_vector
from .hlc import HLC
from .maps import ORMap
from .ops import MapRemove, MapUpdate, Op, apply_op
from .registers import LWWRegister, MVRegister
from .sets import AWSet, RWSet
from .spec import MAP_STORE_TAGS, TypeSpec, TypeTag, spec_of
from .values import DEFAULT_LIMITS, Limits, check_key

if TYPE_CHECKING:
    from .spec import CRDT

StoredValue: TypeAlias = DotStore | GCounter | PNCounter
"""What the store keeps per key: a dot store (its context is the replica's) or a counter."""


@dataclass(frozen=True, slots=True)
class Event:
    """One write: ``dot`` identifies it and is the dot it minted (if any) in ``delta``."""

    dot: Dot
    key: str
    spec: TypeSpec
    delta: CRDT
    hlc: HLC
    path: tuple[str, ...] = ()
    """Nested map keys the delta is confined to, so receivers join only that branch."""


@dataclass(frozen=True, slots=True)
class DeltaBatch:
    sender: str
    seq: int
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    sender: str
    seq: int
    applied: CausalContext


@dataclass(frozen=True, slots=True)
class Digest:
    sender: str
    applied: CausalContext
    want_snapshot: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Full state: the entries, the events they reflect and their shared data context."""

    sender: str
    applied: CausalContext
    entries: tuple[tuple[str, TypeSpec, StoredValue], ...]
    context: CausalContext


Message: TypeAlias = DeltaBatch | Ack | Digest | Snapshot


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    max_batch_events: int = 512
    retransmit_ms: int = 1000
    snapshot_threshold: int = 4096
    """Send a full snapshot instead of deltas when a peer lacks more events than this."""
    limits: Limits = DEFAULT_LIMITS


@dataclass(frozen=True, slots=True)
class Read:
    """A value and the context to pass back so a write supersedes exactly what was read."""

    key: str
    spec: TypeSpec
    value: CRDT
    context: CausalContext


@dataclass(frozen=True, slots=True)
class GCReport:
    stable: VersionVector
    strongly_stable: VersionVector
    dropped_events: int
    collected_tokens: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything a replica must keep across a restart (see :meth:`Replica.checkpoint`)."""

    replica: str
    entries: tuple[tuple[str, TypeSpec, StoredValue], ...]
    context: CausalContext
    applied: CausalContext
    clock: HLC
    log: tuple[Event, ...]
    """The delta log: events some member may still lack (the unacknowledged deltas)."""
    peers: tuple[tuple[str, CausalContext, CausalContext], ...]
    """Each member: (id, acked, reported)."""
    cut: StabilityCut
    bootstrapped: bool


@dataclass(slots=True)
class _Peer:
    acked: CausalContext = field(default_factory=CausalContext)
    """Events the peer is known to have: its reports plus what it sent us (push filter)."""
    reported: CausalContext = field(default_factory=CausalContext)
    """The union of the peer's own reports (acks, digests, snapshots): used for stability."""
    next_seq: int = 1
    inflight: dict[int, tuple[int, frozenset[Dot]]] = field(default_factory=dict)
    last_heard_ms: int | None = None


def _live(value: StoredValue) -> bool:
    """Whether a stored value is worth keeping: counters always, dot stores when non-empty."""
    return isinstance(value, GCounter | PNCounter) or len(value) > 0


def _bottom(spec: TypeSpec) -> StoredValue:
    if spec.tag is TypeTag.GCOUNTER:
        return GCounter()
    if spec.tag is TypeTag.PNCOUNTER:
        return PNCounter()
    return EMPTY_MAP if spec.tag in MAP_STORE_TAGS else EMPTY_FUN


class Replica:
    def __init__(
        self,
        replica_id: str,
        peers: Iterable[str] = (),
        *,
        config: ReplicaConfig | None = None,
        bootstrapped: bool = True,
    ) -> None:
        self.id = check_replica(replica_id, "replica_id")
        self.config = config or ReplicaConfig()
        self._data: dict[str, tuple[TypeSpec, StoredValue]] = {}
        # Values of a key under a type that lost a concurrent-creation conflict (rare): kept,
        # joined like any value, and shown again if the winning type's value is emptied.
        self._shadow: dict[str, dict[TypeSpec, StoredValue]] = {}
        self._cc = CausalContext()  # data context: every dot any applied delta has seen
        self._events = CausalContext()  # applied events: the digest, acks and stability
        self._clock = HLC.zero(self.id)
        self._log: dict[Dot, Event] = {}
        self._peers: dict[str, _Peer] = {}
        self._cut = StabilityCut()
        self._bootstrapped = bootstrapped
        self._dirty = False  # data changed since the last collection pass
        for p in peers:
            self.join(p)

    # -- reads -----------------------------------------------------------------------------

    @property
    def applied(self) -> CausalContext:
        """The events whose deltas this replica has joined (what digests and acks carry)."""
        return self._events

    @property
    def context(self) -> CausalContext:
        """The shared causal context of all values (a superset of :attr:`applied`)."""
        return self._cc

    @property
    def clock(self) -> HLC:
        return self._clock

    @property
    def members(self) -> list[str]:
        return sorted(self._peers)

    @property
    def bootstrapped(self) -> bool:
        return self._bootstrapped

    def keys(self) -> list[str]:
        return sorted(self._data)

    def get(self, key: str) -> Read | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        spec, stored = entry
        return Read(key, spec, self._view(spec, stored), self._cc)

    def _view(self, spec: TypeSpec, stored: StoredValue) -> CRDT:
        if isinstance(stored, GCounter | PNCounter):
            return stored
        return spec.view(stored, self._cc)

    def state(
        self,
    ) -> tuple[tuple[tuple[str, TypeSpec, StoredValue], ...], CausalContext, CausalContext]:
        """The complete replicated state: entries, data context, applied events.

        A key has one entry per type it holds a non-empty value under: normally one, more
        only after concurrent creation with different types (the shown one first)."""
        if not self._shadow:  # the usual case: one type per key
            data = self._data
            return tuple([(k, *data[k]) for k in sorted(data)]), self._cc, self._events
        entries: list[tuple[str, TypeSpec, StoredValue]] = []
        for k in sorted(self._data):
            entries.append((k, *self._data[k]))
            shadow = self._shadow.get(k)
            if shadow:
                entries += [(k, t, shadow[t]) for t in sorted(shadow, key=TypeSpec.sort_key)]
        return tuple(entries), self._cc, self._events

    def unacked(self, peer: str) -> int:
        """Logged events ``peer`` has not acknowledged (the per-peer delta buffer)."""
        acked = self._peer(peer).acked
        return sum(1 for d in self._log if d.replica != peer and not acked.contains(d))

    @property
    def log_size(self) -> int:
        return len(self._log)

    @property
    def strongly_stable(self) -> VersionVector:
        return self._cut.stable

    # -- durability ------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint:
        """A plain value of the whole replica, for a durable snapshot; in-flight batch
        bookkeeping is left out (unacked events are resent after a restart, deduplicated)."""
        entries, cc, events = self.state()
        return Checkpoint(
            self.id,
            entries,
            cc,
            events,
            self._clock,
            tuple(self._log[d] for d in sorted(self._log)),
            tuple((p, s.acked, s.reported) for p, s in sorted(self._peers.items())),
            self._cut,
            self._bootstrapped,
        )

    @classmethod
    def restore(cls, cp: Checkpoint, config: ReplicaConfig | None = None) -> Replica:
        """The replica :meth:`checkpoint` was taken from."""
        r = cls(cp.replica, config=config, bootstrapped=cp.bootstrapped)
        for k, spec, v in cp.entries:
            r._place(k, spec, v)
        r._cc = cp.context
        r._events = cp.applied
        r._clock = cp.clock
        r._log = {ev.dot: ev for ev in cp.log}
        for pid, acked, reported in cp.peers:
            r._peers[pid] = _Peer(acked=acked, reported=reported)
        r._cut = cp.cut
        r._dirty = True
        return r

    def replay(self, event: Event) -> bool:
        """Re-apply an event from this replica's durable log after a restart (local or
        received); the clock moves past it so no timestamp or dot is ever reused."""
        event = self._check_event(event, "event")
        applied = self._apply(event)
        self._clock = self._clock.receive(event.hlc, 0)
        return applied

    # -- local writes ----------------------------------------------------------------------

    def update(self, key: str, op: Op, now_ms: int, spec: TypeSpec | None = None) -> Event:
        """Apply a client operation; raise :class:`InvalidOperation` with nothing applied."""
        if not self._bootstrapped:
            raise InvalidOperation("replica", "joining replica has not received a snapshot yet")
        key = check_key(key, "key", self.config.limits)
        current = self._data.get(key)
        if spec is None:
            if current is None:
                raise InvalidOperation("type", f"key {key!r} does not exist; name its type")
            spec = current[0]
        elif not isinstance(spec, TypeSpec):
            raise InvalidOperation("type", "unknown type")
        elif current is not None and current[0] != spec:
            raise InvalidOperation(
                "type", f"key {key!r} holds a {current[0].name}, not a {spec.name}"
            )
        value = self._view(spec, current[1] if current is not None else _bottom(spec))
        hlc = self._clock.now(now_ms)
        dot = self._cc.next_dot(self.id)
        _, delta = apply_op(value, op, self.id, hlc, self.config.limits)
        if not isinstance(delta, GCounter | PNCounter):
            # Removal-only deltas mint no dot; the event's dot still marks them as applied.
            delta = spec.view(delta.store, delta.cc.add(dot))
        event = Event(dot, key, spec, delta, hlc, _path(op))
        self._clock = hlc
        self._apply(event)
        return event

    # -- applying events and states --------------------------------------------------------

    def _merge_into(
        self,
        key: str,
        spec: TypeSpec,
        incoming: StoredValue,
        incoming_cc: CausalContext,
        path: tuple[str, ...] = (),
    ) -> None:
        """Join one key's incoming value; the replica's own context must not be updated yet.

        A key's state is one value per type (a product of CRDTs, each joined on its own), and
        only non-empty values are kept: an emptied key is simply absent, so a delete-heavy
        workload leaves no per-key residue. What a read shows is a deterministic function of
        that state - the value of the greatest type (:meth:`TypeSpec.sort_key`) - so
        concurrent creation of one key with two types converges everywhere, and a losing
        value reappears if the winner is removed (its writes were never observed by that
        removal). A removed value never comes back: its dots stay in the data context.
        """
        current = self._data.get(key)
        if current is not None and current[0] == spec:
            mine = current[1]
        else:
            shadow = self._shadow.get(key)
            found = shadow.get(spec) if shadow is not None else None
            mine = found if found is not None else _bottom(spec)
        merged: StoredValue
        if isinstance(mine, GCounter) and isinstance(incoming, GCounter):  # noqa: SIM114 - typing
            merged = mine.merge(incoming)
        elif isinstance(mine, PNCounter) and isinstance(incoming, PNCounter):
            merged = mine.merge(incoming)
        elif isinstance(mine, GCounter | PNCounter) or isinstance(incoming, GCounter | PNCounter):
            raise InvalidOperation("delta", f"value for {key!r} does not match {spec.name}")
        else:
            merged = join_at(mine, self._cc, incoming, incoming_cc, path)
        if current is not None and current[0] == spec and key not in self._shadow:
            if _live(merged):  # the common case: one type, updated in place
                self._data[key] = (spec, merged)
            else:
                del self._data[key]
            return
        self._place(key, spec, merged)

    def _merge_two(
        self,
        key: str,
        current: tuple[TypeSpec, StoredValue],
        theirs: tuple[TypeSpec, StoredValue],
        their_cc: CausalContext,
    ) -> None:
        """Snapshot join of a key holding one type here and another type there."""
        for spec, got in sorted(((current[0], None), theirs), key=lambda sv: sv[0].sort_key()):
            self._merge_into(key, spec, _bottom(spec) if got is None else got, their_cc)

    def _place(self, key: str, spec: TypeSpec, value: StoredValue) -> None:
        """Set ``key``'s value of type ``spec`` and re-pick the shown type."""
        values = dict(self._shadow.pop(key, {}))
        current = self._data.pop(key, None)
        if current is not None:
            values[current[0]] = current[1]
        values[spec] = value
        live = {t: v for t, v in values.items() if _live(v)}
        if not live:
            return
        top = max(live, key=TypeSpec.sort_key)
        self._data[key] = (top, live.pop(top))
        if live:
            self._shadow[key] = live

    def _apply(self, event: Event) -> bool:
        # Deduplicate on *applied events*, not on the data context: a later write that
        # superseded this event's entry puts its dot in the data context without carrying
        # what this event itself superseded, so the event must still be joined.
        if self._events.contains(event.dot):
            return False
        delta = event.delta
        if isinstance(delta, GCounter | PNCounter):
            self._merge_into(event.key, event.spec, delta, CausalContext())
            self._cc = self._cc.add(event.dot)
        else:
            self._merge_into(event.key, event.spec, delta.store, delta.cc, event.path)
            self._cc = self._cc.union(delta.cc).add(event.dot)
        self._events = self._events.add(event.dot)
        self._log[event.dot] = event
        self._dirty = True
        return True

    def _check_event(self, event: object, field: str) -> Event:
        if not isinstance(event, Event):
            raise InvalidOperation(field, "not an event")
        check_key(event.key, f"{field}.key", self.config.limits)
        check_replica(event.dot.replica, f"{field}.dot.replica")
        if not isinstance(event.spec, TypeSpec) or spec_of(event.delta) != event.spec:
            raise InvalidOperation(f"{field}.delta", f"delta is not a {event.spec}")
        if not isinstance(event.hlc, HLC):
            raise InvalidOperation(f"{field}.hlc", "missing hybrid logical clock")
        if not isinstance(event.path, tuple) or not all(isinstance(k, str) for k in event.path):
            raise InvalidOperation(f"{field}.path", "must be a tuple of map keys")
        return event

    # -- replication -----------------------------------------------------------------------

    def _peer(self, peer: str) -> _Peer:
        p = self._peers.get(peer)
        if p is None:
            raise InvalidOperation("sender", f"{peer!r} is not a member")
        return p

    def push(self, peer: str, now_ms: int) -> DeltaBatch | None:
        p = self._peer(peer)
        recent: set[Dot] = set()
        for sent_ms, sent in p.inflight.values():
            if now_ms - sent_ms < self.config.retransmit_ms:
                recent |= sent
        events = [
            ev
            for d, ev in self._log.items()
            if d.replica != peer and d not in recent and not p.acked.contains(d)
        ]
        if not events:
            return None
        return self._batch(p, events, now_ms)

    def _batch(self, p: _Peer, events: list[Event], now_ms: int) -> DeltaBatch:
        events = events[: self.config.max_batch_events]
        seq = p.next_seq
        p.next_seq += 1
        p.inflight[seq] = (now_ms, frozenset(ev.dot for ev in events))
        return DeltaBatch(self.id, seq, tuple(events))

    def forget_batch(self, peer: str, seq: int) -> None:
        """The batch ``seq`` to ``peer`` is known not to have arrived (the call failed): its
        events are pushed again at once instead of after ``retransmit_ms``."""
        p = self._peers.get(peer)
        if p is not None:
            p.inflight.pop(seq, None)

    def on_batch(self, batch: DeltaBatch, now_ms: int) -> Ack:
        p = self._peer(batch.sender)
        events = [self._check_event(ev, f"events[{i}]") for i, ev in enumerate(batch.events)]
        for ev in events:  # all validated before any is applied
            self._apply(ev)
            self._clock = self._clock.receive(ev.hlc, now_ms)
        p.acked = p.acked.union(CausalContext.from_dots(ev.dot for ev in events))
        p.last_heard_ms = now_ms
        return Ack(self.id, batch.seq, self._events)

    def on_ack(self, ack: Ack, now_ms: int | None = None) -> None:
        p = self._peer(ack.sender)
        p.acked = p.acked.union(ack.applied)
        p.reported = p.reported.union(ack.applied)
        p.inflight.pop(ack.seq, None)
        for seq in [s for s, (_, ds) in p.inflight.items() if all(map(p.acked.contains, ds))]:
            del p.inflight[seq]
        if now_ms is not None:
            p.last_heard_ms = now_ms

    def digest(self) -> Digest:
        return Digest(self.id, self._events, want_snapshot=not self._bootstrapped)

    def on_digest(self, digest: Digest, now_ms: int) -> DeltaBatch | Snapshot | None:
        p = self._peer(digest.sender)
        p.acked = p.acked.union(digest.applied)
        p.reported = p.reported.union(digest.applied)
        p.last_heard_ms = now_ms
        if digest.want_snapshot:
            return self.snapshot()
        if self._events.count_not_in(digest.applied) > self.config.snapshot_threshold:
            return self.snapshot()
        events: list[Event] = []
        for d in sorted(self._events.dots_not_in(digest.applied)):
            ev = self._log.get(d)
            if ev is None:  # already collected (or learnt from a snapshot): send the state
                return self.snapshot()
            events.append(ev)
        if len(events) > self.config.max_batch_events:  # one state beats many round trips
            return self.snapshot()
        return self._batch(p, events, now_ms) if events else None

    def snapshot(self) -> Snapshot:
        entries, cc, events = self.state()
        return Snapshot(self.id, events, entries, cc)

    def on_snapshot(self, snap: Snapshot, now_ms: int) -> Ack:
        p = self._peer(snap.sender)
        limits = self.config.limits
        max_key = limits.max_key_bytes
        # key -> (type, value); the rare further types of a key (concurrent creation) apart.
        incoming: dict[str, tuple[TypeSpec, StoredValue]] = {}
        more: dict[str, list[tuple[TypeSpec, StoredValue]]] = {}
        last_spec: object = None
        last_type: type | None = None
        for i, (key, spec, value) in enumerate(snap.entries):
            if type(key) is not str or not key.isascii() or not 0 < len(key) <= max_key:
                check_key(key, f"entries[{i}].key", limits)  # the exact check (non-ASCII)
            if spec is not last_spec:  # entries usually share their type objects
                if not isinstance(spec, TypeSpec):
                    raise InvalidOperation(f"entries[{i}].value", "value does not match its type")
                last_spec, last_type = spec, type(_bottom(spec))
            if type(value) is not last_type:
                raise InvalidOperation(f"entries[{i}].value", "value does not match its type")
            first = incoming.get(key)
            if first is None:
                incoming[key] = (spec, value)
                continue
            others = more.setdefault(key, [])
            if first[0] == spec or any(t == spec for t, _ in others):
                raise InvalidOperation(f"entries[{i}]", f"duplicate entry for {key!r}")
            others.append((spec, value))
        # Every (key, type) either side holds is joined, in (key, type) order. The joins are
        # independent per key and all use the contexts from before this snapshot; the common
        # case (one dot-store type per key on each side) is done inline, with the same result
        # as ``_merge_into``.
        data, shadow = self._data, self._shadow
        mine_cc, their_cc = self._cc, snap.context
        keys = data.keys() | incoming.keys()
        if shadow:
            keys |= shadow.keys()
        # Only the key being joined can gain or lose shadow values, so this is fixed up front.
        simple = not shadow and not more
        for key in sorted(keys):
            theirs = incoming.get(key)
            current = data.get(key)
            if simple or (key not in shadow and key not in more):
                merged: DotStore
                if current is None:
                    assert theirs is not None
                    # A key only the sender has: keep what this replica has not removed.
                    spec, value = theirs
                    if isinstance(value, DotFun):
                        merged = _filter_fun(value, mine_cc)
                    elif isinstance(value, DotMap):
                        merged = _filter(value, mine_cc)
                    else:
                        self._merge_into(key, spec, value, their_cc)
                        continue
                    if merged._d:  # non-empty (``len`` without the call)
                        data[key] = (spec, merged)
                    continue
                spec, stored = current
                if theirs is None:
                    # A key only this replica has: drop what the sender has removed.
                    if isinstance(stored, DotFun):
                        merged = _filter_fun(stored, their_cc)
                    elif isinstance(stored, DotMap):
                        merged = _filter(stored, their_cc)
                    else:
                        continue  # a counter joined with its bottom is itself
                elif theirs[0] is spec or theirs[0] == spec:
                    value = theirs[1]
                    if isinstance(stored, DotFun) and isinstance(value, DotFun):
                        merged = join_fun(stored, mine_cc, value, their_cc)
                    elif isinstance(stored, DotMap) and isinstance(value, DotMap):
                        merged = join_map(stored, mine_cc, value, their_cc)
                    else:
                        self._merge_into(key, spec, value, their_cc)
                        continue
                else:
                    self._merge_two(key, current, theirs, their_cc)
                    continue
                if merged._d:  # non-empty (``len`` without the call)
                    if merged is not stored:
                        data[key] = (spec, merged)
                else:
                    del data[key]
                continue
            # General case (concurrently created types): type by type.
            specs: dict[TypeSpec, StoredValue | None] = {}
            if current is not None:
                specs[current[0]] = None
            for t in shadow.get(key, {}):
                specs[t] = None
            for t, v in ([theirs] if theirs is not None else []) + more.get(key, []):
                specs[t] = v
            for spec in sorted(specs, key=TypeSpec.sort_key):
                got = specs[spec]
                self._merge_into(key, spec, _bottom(spec) if got is None else got, their_cc)
        self._cc = self._cc.union(snap.context)
        self._events = self._events.union(snap.applied)
        self._bootstrapped = True
        self._dirty = True
        p.acked = p.acked.union(snap.applied)
        p.reported = p.reported.union(snap.applied)
        p.last_heard_ms = now_ms
        return Ack(self.id, 0, self._events)

    def receive(self, msg: Message, now_ms: int) -> list[Message]:
        """Dispatch one message; return the replies to send back to its sender."""
        if isinstance(msg, DeltaBatch):
            return [self.on_batch(msg, now_ms)]
        if isinstance(msg, Ack):
            self.on_ack(msg, now_ms)
            return []
        if isinstance(msg, Digest):
            reply = self.on_digest(msg, now_ms)
            return [] if reply is None else [reply]
        if isinstance(msg, Snapshot):
            return [self.on_snapshot(msg, now_ms)]
        raise InvalidOperation("message", f"unknown message {type(msg).__name__}")

    # -- membership ------------------------------------------------------------------------

    def join(self, peer: str) -> None:
        check_replica(peer, "peer")
        if peer == self.id:
            raise InvalidOperation("peer", "a replica is not its own peer")
        self._peers.setdefault(peer, _Peer())

    def leave(self, peer: str) -> None:
        """Forget a departed peer: its buffer, its acks, and its place in stability."""
        self._peers.pop(peer, None)

    # -- garbage collection ----------------------------------------------------------------

    def _acks(self) -> dict[str, VersionVector]:
        acks = {p: s.reported.vv for p, s in self._peers.items()}
        acks[self.id] = self._events.vv
        return acks

    def gc(self, now_ms: int) -> GCReport:
        """Truncate the delta log to what some member still lacks, advance the strongly
        stable cut, and collect remove-wins tokens that it makes final.

        Collection is itself a replicated write (a removal of exactly the collected token
        dots), issued by one designated replica. Dropping tokens locally instead would diverge:
        a later add by a replica that already dropped a token would not supersede that token
        at replicas that still hold it, and they would read the add as concurrent and losing.
        """
        acks = self._acks()
        stable = stable_vector(acks.values())
        drop = [d for d in self._log if stable.covers(d)]
        for d in drop:
            del self._log[d]
        before = self._cut.stable
        self._cut = self._cut.advance(acks)
        collected = 0
        if self._bootstrapped and (self._cut.stable != before or self._dirty):
            self._dirty = False
            collected = self._collect(self._cut.stable, now_ms)
        return GCReport(stable, self._cut.stable, len(drop), collected)

    def _collect(self, strongly_stable: VersionVector, now_ms: int) -> int:
        collected = 0
        alive = {self.id, *self._peers}
        for key, (spec, stored) in list(self._data.items()):
            if isinstance(stored, GCounter | PNCounter):
                continue
            view = spec.view(stored, self._cc)
            if not isinstance(view, RWSet | DWFlag | ORMap):
                continue
            kept = view.collect(strongly_stable)
            if kept is view:
                continue
            gone = set(dots(stored)) - set(dots(kept.store))
            owner = max(gone).replica
            if (owner if owner in alive else min(alive)) != self.id:
                continue  # another replica is designated to collect these
            self._emit_removal(key, spec, CausalContext.from_dots(gone), now_ms)
            collected += len(gone)
        return collected

    def _emit_removal(self, key: str, spec: TypeSpec, seen: CausalContext, now_ms: int) -> Event:
        hlc = self._clock.now(now_ms)
        dot = self._cc.next_dot(self.id)
        bottom = _bottom(spec)
        assert not isinstance(bottom, GCounter | PNCounter)
        event = Event(dot, key, spec, spec.view(bottom, seen.add(dot)), hlc)
        self._clock = hlc
        self._apply(event)
        return event


def _path(op: Op) -> tuple[str, ...]:
    if isinstance(op, MapUpdate):
        return (op.key, *_path(op.op))
    if isinstance(op, MapRemove):
        return (op.key,)
    return ()


def value_of(read: Read | None) -> Hashable:
    """A plain, comparable rendering of a read value (for tests and the CLI)."""
    if read is None:
        return None
    return plain_value(read.value)


def plain_value(v: CRDT) -> Hashable:
    """A CRDT's user-visible value as plain Python data (tuples, so it is hashable)."""
    if isinstance(v, GCounter | PNCounter | LWWRegister | EWFlag | DWFlag):
        return v.value
    if isinstance(v, MVRegister):
        return tuple(v.values)
    if isinstance(v, AWSet | RWSet):
        return tuple(v.elements)
    if isinstance(v, ORMap):
        return tuple((k, plain_value(x)) for k, x in v.items())
    raise TypeError(type(v).__name__)

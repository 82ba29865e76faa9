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
* ``gc(now_ms)`` - drops log entries every member has applied, collects remove-wins
  tokens that are strongly stable (:mod:`.gc`) through a replicated removal event, and prunes
  departed replicas.

Storage. Values are kept per key as entries ``(key, type, stored value)``, except the
commonest kind: the LWW register of a key holding no other type is kept as a *row*, the flat
tuple of its dot function (:data:`~.dotstore.Row`), a few hundred bytes less per key. States
carry both forms (:attr:`Snapshot.registers`, :attr:`Snapshot.entries`), so a snapshot's
registers are written, read and joined column by column and row by row
(:meth:`Replica._join_rows`) without building a dot store per key.

Pruning. ``leave(r)`` (r stopped for good) makes r *departing*; ``gc`` *retires* it once its
events are settled: every member has reported, after the leave, having applied exactly the
events of r this replica applied, and the strongly stable cut covers them (so r's remove-wins
tokens were collectable too). Retiring removes r's entry from every context and vector this
replica keeps and sends, and drops r's logged events; only the id is remembered. A context
that forgot r stands for one that has seen *every* dot of r (:meth:`CausalContext.saturated`),
which is what it had seen. So:

* an event of r is never applied again (a replayed batch), and a dot of r in a received
  context is dropped from it (an ack, digest or snapshot of a member that has not pruned);
* snapshots are joined with both sides' contexts saturated by their own retired ids, and carry
  the sender's retired ids, which the receiver adopts: a member that has not pruned learns it
  from the snapshot a pruned one answers its digest with (no snapshot ping-pong);
* dots of r still held in values stay readable, and a client context that names no dot of a
  retired replica is taken to have seen them all, so Clear with a ``Get`` context removes them.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, ne
from typing import TYPE_CHECKING, TypeAlias, TypeGuard, TypeVar

from .causal import EMPTY_CONTEXT, CausalContext, Dot, VersionVector, check_replica
from .counters import GCounter, PNCounter
from .dotstore import (
    EMPTY_FUN,
    EMPTY_MAP,
    ROW_FIELDS,
    DotFun,
    DotStore,
    Row,
    _filter,
    dots,
    filter_row,
    fun_of,
    join,
    join_at,
    join_fun,
    join_rows,
    row_of,
    unseen,
    unseen_rows,
)
from .errors import InvalidOperation
from .flags import DWFlag, EWFlag
from .gc import StabilityCut, stable_vector
from .hlc import HLC
from .maps import ORMap
from .ops import MapRemove, MapUpdate, Op, apply_op, map_contexts
from .registers import LWWRegister, MVRegister
from .sets import AWSet, RWSet
from .spec import LWW_SPEC, MAP_STORE_TAGS, TypeSpec, TypeTag, canonical, spec_of
from .values import DEFAULT_LIMITS, Limits, check_key

if TYPE_CHECKING:
    from .spec import CRDT

StoredValue: TypeAlias = DotStore | GCounter | PNCounter
"""What the store keeps per key: a dot store (its context is the replica's) or a counter."""
Entry: TypeAlias = tuple[str, TypeSpec, StoredValue]
Entries: TypeAlias = tuple[Entry, ...]
"""A whole state, key by key (a key holding values of several types has several entries)."""
_Incoming: TypeAlias = tuple[dict[str, Entry], dict[str, list[tuple[TypeSpec, StoredValue]]]]
"""A snapshot's entries by key, and the rare further types of a key."""
Rows: TypeAlias = dict[str, Row]
"""Top-level LWW registers by key, each as the :data:`~.dotstore.Row` of its dot function.
A replica keeps every such register of a key holding no other type this way (the rest of its
state is entries), and states travel the same way (:class:`Snapshot`, :class:`Checkpoint`)."""


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
    retired: frozenset[str] = frozenset()
    """Replicas the sender pruned: its contexts have seen every dot of theirs."""
    registers: Rows = field(default_factory=dict, hash=False)
    """The LWW registers of keys holding no other type (the other values are ``entries``)."""


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
    pruned: tuple[str, ...] = ()
    """Departed replicas retired by this pass."""


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
    retired: frozenset[str] = frozenset()
    departing: frozenset[str] = frozenset()
    """Replicas that left and are not retired yet."""
    registers: Rows = field(default_factory=dict, hash=False)
    """As :attr:`Snapshot.registers`."""


@dataclass(slots=True)
class _Peer:
    acked: CausalContext = field(default_factory=CausalContext)
    """Events the peer is known to have: its reports plus what it sent us (push filter)."""
    reported: CausalContext = field(default_factory=CausalContext)
    """The union of the peer's own reports (acks, digests, snapshots): used for stability."""
    next_seq: int = 1
    inflight: dict[int, tuple[int, frozenset[Dot]]] = field(default_factory=dict)
    last_heard_ms: int | None = None


_K = TypeVar("_K")
_V = TypeVar("_V")
_SPARSE_BYTES_PER_ENTRY = 192
"""A dict uses 30-95 bytes per entry when its table was sized for what it holds."""


def _compacted(d: dict[_K, _V]) -> dict[_K, _V]:
    """``d``, or a copy sized for what it holds now when deletions left its table mostly
    empty: a dict never shrinks on deletion, so a log or key space that once held 100,000
    entries would keep that table after collection emptied it."""
    if sys.getsizeof(d) > _SPARSE_BYTES_PER_ENTRY * len(d) + 4096:
        return dict(d)
    return d


def split_rows(entries: Iterable[Entry]) -> tuple[Rows, Entries]:
    """A state's entries in the form replicas keep and send: the LWW registers of keys
    holding no other type as rows, and the other entries (in their order)."""
    entries = tuple(entries)
    once = Counter(map(itemgetter(0), entries))
    rows: Rows = {}
    rest: list[Entry] = []
    for entry in entries:
        key, spec, value = entry
        if once[key] == 1 and _rowable(value, spec):
            rows[key] = row_of(value)
        else:
            rest.append(entry)
    return rows, tuple(rest)


def _rowable(value: StoredValue, spec: TypeSpec) -> TypeGuard[DotFun]:
    """Whether a key's value is kept as a row when the key holds no other type: a non-empty
    LWW register."""
    return (spec is LWW_SPEC or spec == LWW_SPEC) and type(value) is DotFun and len(value) > 0


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
        # key -> (key, type, value): the entry tuple a state lists, shared, not rebuilt.
        self._data: dict[str, Entry] = {}
        self._regs: Rows = {}  # top-level LWW registers of keys holding no other type
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
        self._retired: frozenset[str] = frozenset()  # departed replicas forgotten everywhere
        # Departed replicas not retired yet -> members yet to report after the leave.
        self._departing: dict[str, set[str]] = {}
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

    @property
    def retired(self) -> list[str]:
        """Departed replicas whose ids no context or vector of this replica mentions."""
        return sorted(self._retired)

    @property
    def departing(self) -> list[str]:
        """Replicas that left and will be retired once their events are settled."""
        return sorted(self._departing)

    def keys(self) -> list[str]:
        return sorted([*self._data, *self._regs])

    @property
    def key_count(self) -> int:
        """``len(keys())`` without sorting every key (readiness probes and stats ask often)."""
        return len(self._data) + len(self._regs)

    def _entry(self, key: str) -> Entry | None:
        """The entry of ``key``'s shown value (built for a register kept as a row)."""
        row = self._regs.get(key)
        if row is not None:
            return key, LWW_SPEC, fun_of(row)
        return self._data.get(key)

    def _shown_type(self, key: str) -> TypeSpec | None:
        """The type of ``key``'s shown value (``None``: it holds nothing), without building
        its entry."""
        if key in self._regs:
            return LWW_SPEC
        entry = self._data.get(key)
        return None if entry is None else entry[1]

    def _put(self, key: str, spec: TypeSpec, value: StoredValue) -> None:
        """Make ``value`` (non-empty) the shown value of ``key``, as a row if it is an LWW
        register and the key holds no other type."""
        if key not in self._shadow and _rowable(value, spec):
            self._regs[key] = row_of(value)
            self._data.pop(key, None)
        else:
            self._data[key] = (key, spec, value)
            self._regs.pop(key, None)

    def _drop(self, key: str) -> None:
        self._data.pop(key, None)
        self._regs.pop(key, None)

    def get(self, key: str) -> Read | None:
        entry = self._entry(key)
        if entry is None:
            return None
        _, spec, stored = entry
        return Read(key, spec, self._view(spec, stored), self._cc)

    def _view(self, spec: TypeSpec, stored: StoredValue) -> CRDT:
        if isinstance(stored, GCounter | PNCounter):
            return stored
        return spec.view(stored, self._cc)

    def state(
        self,
    ) -> tuple[Entries, CausalContext, CausalContext]:
        """The complete replicated state: entries (registers kept as rows included), data
        context, applied events.

        A key has one entry per type it holds a non-empty value under: normally one, more
        only after concurrent creation with different types (the shown one first)."""
        entries = self._entries(sorted(self._data.keys() | self._regs.keys()))
        return entries, self._cc, self._events

    def _entries(self, keys: list[str]) -> Entries:
        """The entries of ``keys`` (sorted), shadow values after the shown one."""
        entry = self._entry
        if not self._shadow:  # the usual case: one type per key
            return tuple(map(entry, keys))  # type: ignore[arg-type]
        listed: list[Entry] = []
        for k in keys:
            shown = entry(k)
            assert shown is not None
            listed.append(shown)
            shadow = self._shadow.get(k)
            if shadow:
                listed += [(k, t, shadow[t]) for t in sorted(shadow, key=TypeSpec.sort_key)]
        return tuple(listed)

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
        return Checkpoint(
            self.id,
            self._entries(sorted(self._data)),
            self._cc,
            self._events,
            self._clock,
            tuple(self._log[d] for d in sorted(self._log)),
            tuple((p, s.acked, s.reported) for p, s in sorted(self._peers.items())),
            self._cut,
            self._bootstrapped,
            self._retired,
            frozenset(self._departing),
            dict(self._regs),
        )

    @classmethod
    def restore(cls, cp: Checkpoint, config: ReplicaConfig | None = None) -> Replica:
        """The replica :meth:`checkpoint` was taken from."""
        r = cls(cp.replica, config=config, bootstrapped=cp.bootstrapped)
        for k, spec, v in cp.entries:
            r._place(k, spec, v)
        r._add_rows(cp.registers)
        r._cc = cp.context
        r._events = cp.applied
        r._clock = cp.clock
        r._log = {ev.dot: ev for ev in cp.log}
        for pid, acked, reported in cp.peers:
            r._peers[pid] = _Peer(acked=acked, reported=reported)
        r._cut = cp.cut
        r._retired = cp.retired
        # Reports heard before the restart are not known to postdate the leave: ask again.
        r._departing = {d: set(r._peers) for d in cp.departing}
        r._dirty = True
        return r

    def _add_rows(self, rows: Rows) -> None:
        """Set the registers of keys this replica holds nothing of (as :meth:`_place` does)."""
        clash = rows.keys() & (self._data.keys() | self._shadow.keys())
        self._regs.update(rows)
        for k in clash:
            self._place(k, LWW_SPEC, fun_of(self._regs.pop(k)))

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
        current = self._entry(key)
        if spec is None:
            if current is None:
                raise InvalidOperation("type", f"key {key!r} does not exist; name its type")
            spec = current[1]
        elif not isinstance(spec, TypeSpec):
            raise InvalidOperation("type", "unknown type")
        elif current is not None and current[1] is not spec and current[1] != spec:
            raise InvalidOperation(
                "type", f"key {key!r} holds a {current[1].name}, not a {spec.name}"
            )
        spec = canonical(spec) if current is None else current[1]
        if self._retired:
            op = map_contexts(op, self._seen_retired)
        value = self._view(spec, current[2] if current is not None else _bottom(spec))
        hlc = self._clock.now(now_ms)
        dot = self._cc.next_dot(self.id)
        new, delta = apply_op(value, op, self.id, hlc, self.config.limits)
        if not isinstance(delta, GCounter | PNCounter):
            # Removal-only deltas mint no dot; the event's dot still marks them as applied.
            cc = delta.cc.add(dot)
            if cc is not delta.cc:
                delta = spec.view(delta.store, cc)
        event = Event(dot, key, spec, delta, hlc, _path(op))
        self._clock = hlc
        # ``new`` is the key's value joined with the delta already: no second join.
        self._apply(event, new if isinstance(new, GCounter | PNCounter) else new.store)
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
        current = self._entry(key)
        same = current is not None and (current[1] is spec or current[1] == spec)
        if same:
            assert current is not None
            mine = current[2]
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
        self._set(key, spec, None if current is None else current[1], merged)

    def _set(self, key: str, spec: TypeSpec, shown: TypeSpec | None, value: StoredValue) -> None:
        """Make ``value`` the value of type ``spec`` of ``key`` (whose shown type is
        ``shown``; ``None``: it holds nothing)."""
        if key not in self._shadow and (
            shown is None or shown is spec or shown == spec
        ):  # one type: the usual case
            if _live(value):
                self._put(key, spec if shown is None else shown, value)
            elif shown is not None:
                self._drop(key)
            return
        self._place(key, spec, value)

    def _merge_two(
        self,
        key: str,
        current: Entry,
        theirs: Entry,
        their_cc: CausalContext,
    ) -> None:
        """Snapshot join of a key holding one type here and another type there."""
        both: list[tuple[TypeSpec, StoredValue | None]] = [(current[1], None), theirs[1:]]
        for spec, got in sorted(both, key=lambda sv: sv[0].sort_key()):
            self._merge_into(key, spec, _bottom(spec) if got is None else got, their_cc)

    def _place(self, key: str, spec: TypeSpec, value: StoredValue) -> None:
        """Set ``key``'s value of type ``spec`` and re-pick the shown type."""
        values = dict(self._shadow.pop(key, {}))
        current = self._entry(key)
        self._drop(key)
        if current is not None:
            values[current[1]] = current[2]
        values[spec] = value
        live = {t: v for t, v in values.items() if _live(v)}
        if not live:
            return
        top = max(live, key=TypeSpec.sort_key)
        shown = live.pop(top)
        if live:
            self._shadow[key] = live
        self._put(key, top, shown)

    def _apply(self, event: Event, joined: StoredValue | None = None) -> bool:
        """Join an event's delta (or, for a local write, set ``joined``: the key's value
        already joined with it)."""
        # Deduplicate on *applied events*, not on the data context: a later write that
        # superseded this event's entry puts its dot in the data context without carrying
        # what this event itself superseded, so the event must still be joined.
        if self._events.contains(event.dot) or event.dot.replica in self._retired:
            return False
        delta = event.delta
        if joined is not None:
            self._set(event.key, event.spec, self._shown_type(event.key), joined)
        elif isinstance(delta, GCounter | PNCounter):
            self._merge_into(event.key, event.spec, delta, EMPTY_CONTEXT)
        else:
            self._merge_into(event.key, event.spec, delta.store, delta.cc, event.path)
        if isinstance(delta, GCounter | PNCounter):
            self._cc = self._cc.add(event.dot)
        else:
            self._cc = self._cc.union(delta.cc.without(self._retired)).add(event.dot)
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
        sent = CausalContext.from_dots(ev.dot for ev in events)
        p.acked = p.acked.union(sent.without(self._retired))
        p.last_heard_ms = now_ms
        return Ack(self.id, batch.seq, self._events)

    def _heard(self, peer: str, p: _Peer, applied: CausalContext) -> None:
        """``peer`` reported the events it has applied (an ack, a digest or a snapshot)."""
        applied = applied.without(self._retired)
        p.acked = p.acked.union(applied)
        p.reported = p.reported.union(applied)
        for owed in self._departing.values():
            owed.discard(peer)

    def on_ack(self, ack: Ack, now_ms: int | None = None) -> None:
        p = self._peer(ack.sender)
        self._heard(ack.sender, p, ack.applied)
        p.inflight.pop(ack.seq, None)
        for seq in [s for s, (_, ds) in p.inflight.items() if all(map(p.acked.contains, ds))]:
            del p.inflight[seq]
        if now_ms is not None:
            p.last_heard_ms = now_ms

    def digest(self) -> Digest:
        return Digest(self.id, self._events, want_snapshot=not self._bootstrapped)

    def on_digest(self, digest: Digest, now_ms: int) -> DeltaBatch | Snapshot | None:
        p = self._peer(digest.sender)
        self._heard(digest.sender, p, digest.applied)
        p.last_heard_ms = now_ms
        if digest.want_snapshot or any(map(digest.applied.mentions, self._retired)):
            return self.snapshot()  # the sender still lists replicas retired here: teach it
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
        entries = self._entries(sorted(self._data))
        return Snapshot(self.id, self._events, entries, self._cc, self._retired, dict(self._regs))

    def on_snapshot(self, snap: Snapshot, now_ms: int) -> Ack:
        p = self._peer(snap.sender)
        incoming, more = self._check_entries(snap.entries)
        rows = self._check_rows(snap.registers, incoming, more)
        adopted = self._check_retired(snap.retired) - self._retired
        # Every (key, type) either side holds is joined. The joins are independent per key
        # and all use the contexts from before this snapshot, each saturated by the replicas
        # its side retired (it had seen all their dots).
        theirs = snap.context.saturated(snap.retired)
        self._cc = self._cc.saturated(self._retired)
        # A key kept as a row on one side and as entries on the other is joined as entries.
        for k in rows.keys() & self._data.keys():
            incoming[k] = (k, LWW_SPEC, fun_of(rows.pop(k)))
        for k in self._regs.keys() & incoming.keys():
            self._data[k] = (k, LWW_SPEC, fun_of(self._regs.pop(k)))
        self._join_rows(rows, theirs)
        if not self._shadow and not more:
            self._join_entries(incoming, theirs)
        else:
            self._join_entries_by_type(incoming, more, theirs)
        retired = self._retired | adopted
        self._cc = self._cc.union(theirs).without(retired)
        self._events = self._events.union(snap.applied).without(retired)
        self._retire(adopted)  # the sender's state had settled them: so has the join
        self._bootstrapped = True
        self._dirty = True
        self._heard(snap.sender, p, snap.applied)
        p.last_heard_ms = now_ms
        return Ack(self.id, 0, self._events)

    def _check_retired(self, retired: object) -> frozenset[str]:
        if not isinstance(retired, frozenset):
            raise InvalidOperation("retired", "must be a set of replica ids")
        for rid in retired:
            check_replica(rid, "retired")
        if self.id in retired:
            raise InvalidOperation("retired", f"{self.id!r} is this replica, not a retired one")
        return retired

    def _check_entries(self, entries: Entries) -> _Incoming:
        """Validate a snapshot's entries: whole-column checks first; an entry-by-entry pass
        finds what they rejected (and sorts out keys holding several types)."""
        keys = list(map(itemgetter(0), entries))
        specs = list(map(itemgetter(1), entries))
        max_key = self.config.limits.max_key_bytes
        by_id = dict(zip(map(id, specs), specs, strict=True))
        kinds = set(zip(map(id, specs), map(type, map(itemgetter(2), entries)), strict=True))
        if (
            not keys
            or set(map(type, keys)) != {str}
            or not "".join(keys).isascii()
            or not 0 < min(map(len, keys)) <= max(map(len, keys)) <= max_key
            or not all(
                isinstance(by_id[sid], TypeSpec) and vtype is type(_bottom(by_id[sid]))
                for sid, vtype in kinds
            )
        ):
            return self._check_each_entry(entries)
        incoming = dict(zip(keys, entries, strict=True))
        if len(incoming) != len(entries):  # a key with several types (or a duplicate)
            return self._check_each_entry(entries)
        return incoming, {}

    def _check_rows(
        self,
        registers: object,
        incoming: dict[str, Entry],
        more: dict[str, list[tuple[TypeSpec, StoredValue]]],
    ) -> Rows:
        """Validate a snapshot's registers (whole-column checks); return them with the LWW
        registers among its entries of keys holding no other type (a state of a replica that
        kept none as rows), which leave ``incoming``."""
        if not isinstance(registers, dict):
            raise InvalidOperation("registers", "must be a dict of key -> row")
        rows: Rows = dict(registers)
        if rows:
            keys = list(rows)
            values = list(rows.values())
            max_key = self.config.limits.max_key_bytes
            if (
                set(map(type, keys)) != {str}
                or not "".join(keys).isascii()
                or not 0 < min(map(len, keys)) <= max(map(len, keys)) <= max_key
            ):
                for i, key in enumerate(keys):
                    check_key(key, f"registers[{i}].key", self.config.limits)
            if (
                set(map(type, values)) != {tuple}
                or not all(n and not n % ROW_FIELDS for n in set(map(len, values)))
                or set(map(type, map(itemgetter(0), values))) != {str}
                or set(map(type, map(itemgetter(1), values))) != {int}
            ):
                raise InvalidOperation(
                    "registers", "each row must be (replica, counter, wall, logical, value)..."
                )
            if not rows.keys().isdisjoint(incoming):
                raise InvalidOperation("registers", "a key is both a register row and an entry")
        moved, _ = split_rows(e for k, e in incoming.items() if k not in more)
        for k in moved:
            del incoming[k]
        rows.update(moved)
        return rows

    def _join_rows(self, rows: Rows, their_cc: CausalContext) -> None:
        """The snapshot join of the keys kept as rows here or there (as :meth:`_join_entries`
        does with entries, on rows: no dot store is built unless both sides hold siblings)."""
        regs, mine_cc = self._regs, self._cc
        both = list(rows.keys() & regs.keys())
        new = list(rows.keys() - regs.keys())
        old = list(regs.keys() - rows.keys())
        got = list(map(rows.__getitem__, new))
        if unseen_rows(got, mine_cc):  # all kept as they are
            regs.update(zip(new, got, strict=True))
        else:
            for k, t in zip(new, got, strict=True):
                j = filter_row(t, mine_cc)
                if j:
                    regs[k] = j
        mine = list(map(regs.__getitem__, old))
        if not unseen_rows(mine, their_cc):
            for k, m in zip(old, mine, strict=True):
                j = filter_row(m, their_cc)
                if j is not m:
                    if j:
                        regs[k] = j
                    else:
                        del regs[k]
        here = list(map(regs.__getitem__, both))
        there = list(map(rows.__getitem__, both))
        differ = list(map(ne, here, there))  # an equal row is its own join
        for k, m, t in compress(zip(both, here, there, strict=True), differ):
            j = join_rows(m, mine_cc, t, their_cc)
            if j is not m:
                if j:
                    regs[k] = j
                else:
                    del regs[k]

    def _check_each_entry(self, entries: Entries) -> _Incoming:
        limits = self.config.limits
        incoming: dict[str, Entry] = {}
        more: dict[str, list[tuple[TypeSpec, StoredValue]]] = {}
        for i, entry in enumerate(entries):
            key, spec, value = entry
            check_key(key, f"entries[{i}].key", limits)
            if not isinstance(spec, TypeSpec) or type(value) is not type(_bottom(spec)):
                raise InvalidOperation(f"entries[{i}].value", "value does not match its type")
            first = incoming.get(key)
            if first is None:
                incoming[key] = entry
                continue
            others = more.setdefault(key, [])
            if first[1] == spec or any(t == spec for t, _ in others):
                raise InvalidOperation(f"entries[{i}]", f"duplicate entry for {key!r}")
            others.append((spec, value))
        return incoming, more

    def _join_entries(self, incoming: dict[str, Entry], their_cc: CausalContext) -> None:
        """The snapshot join when each key holds one type on each side (the usual case).

        Keys one side lacks are settled a whole side at a time when the other side's context
        has seen none of their dots (they are then kept as they are), else key by key."""
        data, mine_cc = self._data, self._cc
        both = incoming.keys() & data.keys()
        new = list(map(incoming.__getitem__, incoming.keys() - data.keys()))
        if unseen(list(map(itemgetter(2), new)), mine_cc):  # all kept as they are
            data.update(zip(map(itemgetter(0), new), new, strict=True))
        else:
            for theirs in new:  # keys only the sender has: keep what this replica has not seen
                self._join_key(theirs[0], None, theirs, their_cc)
        old = list(map(data.__getitem__, data.keys() - incoming.keys()))
        if not unseen(list(map(itemgetter(2), old)), their_cc):
            for current in old:  # keys only this replica has: drop what the sender removed
                self._join_key(current[0], current, None, their_cc)
        mine = list(map(data.__getitem__, both))
        self._join_shared(mine, list(map(incoming.__getitem__, both)), their_cc)

    def _join_shared(self, mine: list[Entry], theirs: list[Entry], their_cc: CausalContext) -> None:
        """Join the keys both sides hold (``mine[i]`` and ``theirs[i]`` are one key's).

        One pass, key by key: each join touches only its two small stores, which beats
        whole-column passes that each walk every entry of both states again."""
        data, mine_cc = self._data, self._cc
        for current, other in zip(mine, theirs, strict=True):
            key, spec, stored = current
            value = other[2]
            if stored is value:
                continue
            if type(stored) is not DotFun or type(value) is not DotFun or other[1] is not spec:
                self._join_key(key, current, other, their_cc)
                continue
            merged = join_fun(stored, mine_cc, value, their_cc)  # the usual case, inlined
            if merged is stored:
                continue
            if not merged._d:
                del data[key]
            else:
                data[key] = other if merged is value else (key, spec, merged)

    def _join_key(
        self, key: str, current: Entry | None, theirs: Entry | None, their_cc: CausalContext
    ) -> None:
        """Join one key of a snapshot that holds one type on each side (or is absent)."""
        if current is None:
            assert theirs is not None
            # A key only the sender has: keep what this replica has not removed.
            _, spec, value = theirs
            if isinstance(value, GCounter | PNCounter):
                self._merge_into(key, spec, value, their_cc)
                return
            merged = _filter(value, self._cc)
            if merged._d:  # non-empty (``len`` without the call)
                self._put(key, spec, merged)
            return
        _, spec, stored = current
        if theirs is None:
            # A key only this replica has: drop what the sender has removed.
            if isinstance(stored, GCounter | PNCounter):
                return  # a counter joined with its bottom is itself
            merged = _filter(stored, their_cc)
        elif theirs[1] is spec or theirs[1] == spec:
            value = theirs[2]
            if isinstance(stored, GCounter | PNCounter) or isinstance(value, GCounter | PNCounter):
                self._merge_into(key, spec, value, their_cc)
                return
            merged = join(stored, self._cc, value, their_cc)
        else:
            self._merge_two(key, current, theirs, their_cc)
            return
        if not merged._d:
            self._drop(key)
        elif merged is not stored:
            self._put(key, spec, merged)

    def _join_entries_by_type(
        self,
        incoming: dict[str, Entry],
        more: dict[str, list[tuple[TypeSpec, StoredValue]]],
        their_cc: CausalContext,
    ) -> None:
        """The general snapshot join: keys concurrently created with several types are joined
        type by type, in (key, type) order; the others as in :meth:`_join_entries`."""
        data, shadow = self._data, self._shadow
        keys = data.keys() | incoming.keys() | shadow.keys()
        # Only the key being joined can gain or lose shadow values, so this is fixed up front.
        plain = {k for k in keys if k not in shadow and k not in more}
        for key in sorted(keys):
            theirs = incoming.get(key)
            current = data.get(key)
            if key in plain:
                self._join_key(key, current, theirs, their_cc)
                continue
            specs: dict[TypeSpec, StoredValue | None] = {}
            if current is not None:
                specs[current[1]] = None
            for t in shadow.get(key, {}):
                specs[t] = None
            if theirs is not None:
                specs[theirs[1]] = theirs[2]
            for t, v in more.get(key, []):
                specs[t] = v
            for spec in sorted(specs, key=TypeSpec.sort_key):
                got = specs[spec]
                self._merge_into(key, spec, _bottom(spec) if got is None else got, their_cc)

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
        if peer in self._retired:
            raise InvalidOperation("peer", f"{peer!r} left and was retired; rejoin with a new id")
        self._departing.pop(peer, None)
        if peer not in self._peers:
            self._peers[peer] = _Peer()
            for owed in self._departing.values():
                owed.add(peer)

    def leave(self, peer: str) -> None:
        """Forget a departed peer (stopped for good): its buffer, its acks, and its place in
        stability at once; its id leaves every context once its events are settled (:meth:`gc`).

        Call it on every remaining member, only after ``peer`` stopped: an event of ``peer``
        that reaches some member after every member pruned it would be dropped there."""
        check_replica(peer, "peer")
        was_member = self._peers.pop(peer, None) is not None
        for owed in self._departing.values():
            owed.discard(peer)
        if peer in self._retired or peer == self.id:
            return
        if was_member or self._cc.mentions(peer):
            self._departing[peer] = set(self._peers)

    def _settled(self, peer: str) -> bool:
        """Whether the departed ``peer``'s events can be forgotten: every member reported after
        the leave, nobody has reported (or relayed) an event of it this replica lacks, and the
        strongly stable cut covers all of them (so none is outstanding anywhere)."""
        n = self._events.max_counter(peer)
        return (
            not self._departing[peer]
            and self._events.vv.get(peer) == n
            and self._cc.max_counter(peer) <= n
            and self._cut.stable.get(peer) >= n
            and all(p.acked.max_counter(peer) <= n for p in self._peers.values())
        )

    def _retire(self, replicas: Iterable[str]) -> None:
        """Forget ``replicas`` in every context, vector and the log; remember their ids."""
        replicas = frozenset(replicas)
        if not replicas:
            return
        self._retired |= replicas
        gone = self._retired
        for r in replicas:
            self._departing.pop(r, None)
        self._events = self._events.without(gone)
        self._cc = self._cc.without(gone)
        for p in self._peers.values():
            p.acked = p.acked.without(gone)
            p.reported = p.reported.without(gone)
        for d in [d for d in self._log if d.replica in gone]:
            del self._log[d]
        self._cut = self._cut.without(gone)
        self._dirty = True

    def _seen_retired(self, context: CausalContext) -> CausalContext:
        """A client context naming no dot of a retired replica was read after that replica
        was pruned here (or before it wrote anything): it observed every dot of it."""
        return context.saturated(r for r in self._retired if not context.mentions(r))

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
        self._log = _compacted(self._log)
        before = self._cut.stable
        self._cut = self._cut.advance(acks)
        collected = 0
        if self._bootstrapped and (self._cut.stable != before or self._dirty):
            self._dirty = False
            collected = self._collect(self._cut.stable.saturated(self._retired), now_ms)
        pruned: tuple[str, ...] = ()
        if self._bootstrapped:
            pruned = tuple(r for r in sorted(self._departing) if self._settled(r))
            self._retire(pruned)
        self._data = _compacted(self._data)  # removals and collection free keys
        self._regs = _compacted(self._regs)
        return GCReport(stable, self._cut.stable, len(drop), collected, pruned)

    def _collect(self, strongly_stable: VersionVector, now_ms: int) -> int:
        collected = 0
        alive = {self.id, *self._peers}
        for key, spec, stored in list(self._data.values()):
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

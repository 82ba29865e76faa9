"""Binary encoding of the replication messages' parts: events, snapshots and checkpoints.

The gRPC adapter carries events and snapshots as opaque bytes made here (and contexts as
:func:`~.codec.encode_context` bytes); the durable log and checkpoint files use the same
encodings. CRDT values and deltas inside are :func:`~.codec.encode` blobs. Layout (integers are
unsigned LEB128 varints; ``str`` and ``blob`` are length-prefixed)::

    event      := WIRE_VERSION:u8 0x45 dot key:str hlc path delta:blob
    dot        := replica:str counter
    hlc        := wall_ms logical replica:str
    path       := n  n * str
    snapshot   := WIRE_VERSION:u8 0x53 sender:str applied:blob context:blob n n*entry
    entry      := key:str value:blob     # a counter, or a dot store as a CRDT whose context
                                         # is exactly its own dots (so it costs no bytes)
    checkpoint := WIRE_VERSION:u8 0x43 replica:str bootstrapped:u8 applied:blob context:blob
                  hlc n*entry n*event:blob n*(peer:str acked:blob reported:blob)
                  cut:(stable candidate frontier: blob each) members:(n * str)

Anything malformed raises :class:`DecodeError` naming the field.
"""

from __future__ import annotations

from .causal import MAX_COUNTER, CausalContext, Dot, VersionVector, check_replica
from .codec import decode, decode_context, encode, encode_context
from .counters import GCounter, PNCounter
from .dotstore import DotStore, dots
from .errors import DecodeError, InvalidOperation
from .gc import StabilityCut
from .hlc import HLC, MAX_LOGICAL
from .replica import Checkpoint, Event, Snapshot, StoredValue
from .spec import TypeSpec, spec_of
from .values import DEFAULT_LIMITS, Limits

WIRE_VERSION = 1
_EVENT, _SNAPSHOT, _CHECKPOINT = 0x45, 0x53, 0x43
_MAX_TEXT = 64 * 1024


class _W:
    __slots__ = ("buf",)

    def __init__(self, kind: int) -> None:
        self.buf = bytearray((WIRE_VERSION, kind))

    def varint(self, n: int) -> None:
        while n >= 0x80:
            self.buf.append((n & 0x7F) | 0x80)
            n >>= 7
        self.buf.append(n)

    def blob(self, b: bytes) -> None:
        self.varint(len(b))
        self.buf += b

    def text(self, s: str) -> None:
        self.blob(s.encode("utf-8"))


class _R:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, kind: int, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(what, "expected bytes")
        self.data = bytes(data)
        self.pos = 0
        if self.u8(f"{what}.version") != WIRE_VERSION:
            raise DecodeError(f"{what}.version", "unsupported wire version")
        if self.u8(f"{what}.kind") != kind:
            raise DecodeError(f"{what}.kind", f"not an encoded {what}")

    def u8(self, field: str) -> int:
        if self.pos >= len(self.data):
            raise DecodeError(field, f"truncated input (at byte {self.pos})")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self, field: str, maximum: int = (1 << 64) - 1) -> int:
        n = shift = 0
        for _ in range(10):
            b = self.u8(field)
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                if n > maximum:
                    raise DecodeError(field, f"value {n} exceeds {maximum}")
                return n
            shift += 7
        raise DecodeError(field, "varint longer than 10 bytes")

    def count(self, field: str) -> int:
        return self.varint(field, len(self.data) - self.pos)

    def blob(self, field: str) -> bytes:
        n = self.count(field)
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def text(self, field: str) -> str:
        b = self.blob(field)
        if len(b) > _MAX_TEXT:
            raise DecodeError(field, "string too long")
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(field, "invalid utf-8") from None

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise DecodeError(what, f"{len(self.data) - self.pos} trailing bytes")


# -- events ----------------------------------------------------------------------------------


def _write_hlc(w: _W, hlc: HLC) -> None:
    w.varint(hlc.wall_ms)
    w.varint(hlc.logical)
    w.text(hlc.replica)


def _read_hlc(r: _R, field: str) -> HLC:
    wall = r.varint(f"{field}.wall_ms", MAX_COUNTER)
    logical = r.varint(f"{field}.logical", MAX_LOGICAL)
    return HLC(wall, logical, r.text(f"{field}.replica"))


def encode_event(ev: Event) -> bytes:
    w = _W(_EVENT)
    w.text(ev.dot.replica)
    w.varint(ev.dot.counter)
    w.text(ev.key)
    _write_hlc(w, ev.hlc)
    w.varint(len(ev.path))
    for k in ev.path:
        w.text(k)
    w.blob(encode(ev.delta))
    return bytes(w.buf)


def decode_event(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Event:
    r = _R(data, _EVENT, "event")
    try:
        replica = check_replica(r.text("event.dot.replica"), "event.dot.replica")
        counter = r.varint("event.dot.counter", MAX_COUNTER)
        if counter == 0:
            raise DecodeError("event.dot.counter", "dot counters start at 1")
        key = r.text("event.key")
        hlc = _read_hlc(r, "event.hlc")
        path = tuple(r.text(f"event.path[{i}]") for i in range(r.count("event.path")))
        delta = decode(r.blob("event.delta"), limits)
        r.end("event")
    except DecodeError:
        raise
    except InvalidOperation as e:
        raise DecodeError(f"event.{e.field}", e.reason) from None
    return Event(Dot(replica, counter), key, spec_of(delta), delta, hlc, path)


# -- entries and snapshots -------------------------------------------------------------------


def _encode_entry(spec: TypeSpec, stored: StoredValue) -> bytes:
    if isinstance(stored, GCounter | PNCounter):
        return encode(stored)
    return encode(spec.view(stored, CausalContext.from_dots(dots(stored))))


def _decode_entry(data: bytes, field: str, limits: Limits) -> tuple[TypeSpec, StoredValue]:
    try:
        crdt = decode(data, limits)
    except InvalidOperation as e:
        raise DecodeError(f"{field}.{e.field}", e.reason) from None
    spec = spec_of(crdt)
    if isinstance(crdt, GCounter | PNCounter):
        return spec, crdt
    store: DotStore = crdt.store
    return spec, store


def _write_entries(w: _W, entries: tuple[tuple[str, TypeSpec, StoredValue], ...]) -> None:
    w.varint(len(entries))
    for key, spec, stored in entries:
        w.text(key)
        w.blob(_encode_entry(spec, stored))


def _read_entries(
    r: _R, field: str, limits: Limits
) -> tuple[tuple[str, TypeSpec, StoredValue], ...]:
    out: list[tuple[str, TypeSpec, StoredValue]] = []
    for i in range(r.count(field)):
        key = r.text(f"{field}[{i}].key")
        spec, stored = _decode_entry(r.blob(f"{field}[{i}].value"), f"{field}[{i}]", limits)
        out.append((key, spec, stored))
    return tuple(out)


def _ctx(r: _R, field: str) -> CausalContext:
    try:
        return decode_context(r.blob(field))
    except InvalidOperation as e:
        raise DecodeError(f"{field}.{e.field}", e.reason) from None


def encode_snapshot(snap: Snapshot) -> bytes:
    w = _W(_SNAPSHOT)
    w.text(snap.sender)
    w.blob(encode_context(snap.applied))
    w.blob(encode_context(snap.context))
    _write_entries(w, snap.entries)
    return bytes(w.buf)


def decode_snapshot(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Snapshot:
    r = _R(data, _SNAPSHOT, "snapshot")
    sender = r.text("snapshot.sender")
    applied = _ctx(r, "snapshot.applied")
    context = _ctx(r, "snapshot.context")
    entries = _read_entries(r, "snapshot.entries", limits)
    r.end("snapshot")
    return Snapshot(sender, applied, entries, context)


# -- checkpoints -----------------------------------------------------------------------------


def _vv(v: VersionVector) -> bytes:
    return encode_context(CausalContext(v))


def _read_vv(r: _R, field: str) -> VersionVector:
    cc = _ctx(r, field)
    if cc.cloud:
        raise DecodeError(field, "a version vector has no dot cloud")
    return cc.vv


def encode_checkpoint(cp: Checkpoint) -> bytes:
    w = _W(_CHECKPOINT)
    w.text(cp.replica)
    w.buf.append(1 if cp.bootstrapped else 0)
    w.blob(encode_context(cp.applied))
    w.blob(encode_context(cp.context))
    _write_hlc(w, cp.clock)
    _write_entries(w, cp.entries)
    w.varint(len(cp.log))
    for ev in cp.log:
        w.blob(encode_event(ev))
    w.varint(len(cp.peers))
    for pid, acked, reported in cp.peers:
        w.text(pid)
        w.blob(encode_context(acked))
        w.blob(encode_context(reported))
    w.blob(_vv(cp.cut.stable))
    w.blob(_vv(cp.cut.candidate))
    w.blob(_vv(cp.cut.frontier))
    members = sorted(cp.cut.members)
    w.varint(len(members))
    for m in members:
        w.text(m)
    return bytes(w.buf)


def decode_checkpoint(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    r = _R(data, _CHECKPOINT, "checkpoint")
    replica = r.text("checkpoint.replica")
    flag = r.u8("checkpoint.bootstrapped")
    if flag > 1:
        raise DecodeError("checkpoint.bootstrapped", "must be 0 or 1")
    applied = _ctx(r, "checkpoint.applied")
    context = _ctx(r, "checkpoint.context")
    try:
        clock = _read_hlc(r, "checkpoint.clock")
    except InvalidOperation as e:
        raise DecodeError(f"checkpoint.{e.field}", e.reason) from None
    entries = _read_entries(r, "checkpoint.entries", limits)
    log = tuple(
        decode_event(r.blob(f"checkpoint.log[{i}]"), limits)
        for i in range(r.count("checkpoint.log"))
    )
    peers = []
    for i in range(r.count("checkpoint.peers")):
        pid = r.text(f"checkpoint.peers[{i}].id")
        peers.append(
            (
                pid,
                _ctx(r, f"checkpoint.peers[{i}].acked"),
                _ctx(r, f"checkpoint.peers[{i}].reported"),
            )
        )
    stable = _read_vv(r, "checkpoint.cut.stable")
    candidate = _read_vv(r, "checkpoint.cut.candidate")
    frontier = _read_vv(r, "checkpoint.cut.frontier")
    members = frozenset(
        r.text(f"checkpoint.cut.members[{i}]") for i in range(r.count("checkpoint.cut.members"))
    )
    r.end("checkpoint")
    return Checkpoint(
        replica,
        entries,
        context,
        applied,
        clock,
        log,
        tuple(peers),
        StabilityCut(stable, candidate, frontier, members),
        flag == 1,
    )

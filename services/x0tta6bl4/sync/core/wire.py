"""Binary encoding of the replication messages' parts: events, snapshots and checkpoints.

The gRPC adapter carries events and snapshots as opaque bytes made here (and contexts as
:func:`~.codec.encode_context` bytes); the durable log and checkpoint files use the same
encodings. CRDT values and deltas inside are :func:`~.codec.encode` blobs. Layout (integers are
unsigned LEB128 varints; ``str`` and ``blob`` are length-prefixed)::

    event      := 1:u8 0x45 dot key:str hlc path delta:blob
    dot        := replica:str counter
    hlc        := wall_ms logical replica:str
    path       := n  n * str
    snapshot   := version:u8 0x53 sender:str applied:blob context:blob [rows] entries [retired]
    checkpoint := WIRE_VERSION:u8 0x43 replica:str bootstrapped:u8 applied:blob context:blob
                  hlc rows entries n*event:blob n*(peer:str acked:blob reported:blob)
                  cut:(stable candidate frontier: blob each) members:(n * str)
                  retired departing
    retired    := n * str                # replicas pruned from every context (version 3)
    departing  := n * str                # replicas that left, not pruned yet (version 3)
    rows       := n [registers]          # LWW registers kept as rows (version 4)
    entries    := n [registers]  m m*(position entry)
    entry      := key:str value:blob     # a counter, or a dot store as a CRDT whose context
                                         # is exactly its own dots (so it costs no bytes)

The ``n`` entries that are LWW registers (nearly every key of a replicated map) are stored by
column, so that a large snapshot is written and read in a few C-level passes over lists instead
of field by field; the ``m`` other entries keep their position in the sequence::

    registers  := replicas:(k k*str)  key_length:col keys:blob  size:col
                  dot_replica:col counter:col  wall_base wall_offset:col logical:col  kind:col
                  text_length:col texts:blob  data_length:col datas:blob  integer:col
    col        := width:u8 (1, 2, 4 or 8)  one little-endian unsigned integer per item

``size`` is each register's number of entries (concurrent siblings), and the columns after it
hold all the entries, register by register (in store order). Lengths of text (keys, text
values) count code points of the one UTF-8 blob they slice; a value ``kind`` is 0 integer
(``integer`` holds it zigzag-encoded), 1 text, 2 bytes.

``rows`` are the registers a replica keeps as rows (:data:`~.replica.Rows`: the LWW register
of every key that holds no other type), in the same column layout, each register's entries in
dot order; ``entries`` then hold the other values only, so a key is in one of the two.
Version 4 added ``rows``; version 3 added ``retired`` (and ``departing``) after version 2's
fields. Events are still version 1. A snapshot is written in the oldest version that holds it
(2 with no rows and nothing retired, then 3), so replicas of earlier releases read what they
can; a replica of an earlier release cannot read a version-4 snapshot and reports a decode
error, so upgrade every replica before relying on snapshots between them. Versions 1 to 3 are
still read, their registers moved into rows. Anything malformed raises :class:`DecodeError`
naming the field.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain, compress, repeat
from operator import attrgetter, itemgetter
from typing import Any

from .bytes_io import ByteReader, ByteWriter
from .causal import MAX_COUNTER, CausalContext, Dot, VersionVector, check_replica
from .codec import decode, decode_context, encode, encode_context
from .counters import GCounter, PNCounter
from .dotstore import ROW_FIELDS, DotFun, DotStore, Row, dots, fun_of, row_dots, row_of
from .errors import DecodeError, InvalidOperation
from .gc import StabilityCut
from .hlc import HLC, MAX_LOGICAL
from .registers import LWWRegister
from .replica import Checkpoint, Entries, Entry, Event, Rows, Snapshot, StoredValue, split_rows
from .spec import TypeSpec, TypeTag, spec_of
from .values import DEFAULT_LIMITS, Limits

WIRE_VERSION = 4
_RETIRED_SINCE = 3  # the first version listing retired (and departing) replicas
_ROWS_SINCE = 4  # the first version with a block of registers kept as rows
_EVENT_VERSION = 1  # events have not changed since version 1
_COLUMN_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
_LWW = spec_of(LWWRegister())
_INT, _TEXT, _DATA = 0, 1, 2
_KINDS: dict[type, int] = {int: _INT, str: _TEXT, bytes: _DATA}
_EVENT, _SNAPSHOT, _CHECKPOINT = 0x45, 0x53, 0x43
_MAX_TEXT = 64 * 1024


class _W(ByteWriter):
    __slots__ = ()

    def __init__(self, kind: int, version: int = WIRE_VERSION) -> None:
        super().__init__(bytes((version, kind)))

    def column(self, values: Sequence[int]) -> None:
        """Unsigned integers (< 2^64) at the narrowest width that holds them all."""
        top = max(values, default=0)
        width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
        self.buf.append(width)
        self.buf += struct.pack(f"<{len(values)}{_COLUMN_CODES[width]}", *values)

    def texts(self, texts: list[str]) -> None:
        """Strings as a column of code-point lengths and one UTF-8 blob."""
        self.column(list(map(len, texts)))
        self.raw("".join(texts).encode("utf-8"))


class _R(ByteReader):
    __slots__ = ("version",)

    def __init__(
        self, data: bytes, kind: int, what: str, versions: tuple[int, ...] = (WIRE_VERSION,)
    ) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError(what, "expected bytes")
        super().__init__(bytes(data))
        self.version = self.u8(f"{what}.version")
        if self.version not in versions:
            raise DecodeError(f"{what}.version", "unsupported wire version")
        if self.u8(f"{what}.kind") != kind:
            raise DecodeError(f"{what}.kind", f"not an encoded {what}")

    def text(self, field: str, maximum: int = _MAX_TEXT) -> str:
        return super().text(field, maximum)

    def column(self, n: int, field: str, minimum: int = 0, maximum: int = (1 << 64) - 1) -> Any:
        """``n`` unsigned integers written by :meth:`_W.column`, all in [minimum, maximum]."""
        width = self.u8(f"{field}.width")
        code = _COLUMN_CODES.get(width)
        if code is None:
            raise self.fail(f"{field}.width", f"column width {width} is not 1, 2, 4 or 8")
        if n * width > len(self.data) - self.pos:
            raise self.fail(field, "truncated input")
        values = struct.unpack_from(f"<{n}{code}", self.data, self.pos)
        self.pos += n * width
        # A bound the width cannot break costs no pass over the column.
        if values and (
            (minimum > 0 and min(values) < minimum)
            or (maximum < (1 << 8 * width) - 1 and max(values) > maximum)
        ):
            raise self.fail(field, f"values must be in [{minimum}, {maximum}]")
        return values

    def texts(self, n: int, field: str, minimum: int, max_bytes: int) -> list[str]:
        """``n`` strings written by :meth:`_W.texts`, each of ``minimum`` code points to
        ``max_bytes`` UTF-8 bytes."""
        lengths = self.column(n, f"{field}.length", minimum, max_bytes)
        blob = self.raw(f"{field}.text")
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{field}.text", "invalid utf-8") from None
        ends = list(accumulate(lengths))
        if (ends[-1] if ends else 0) != len(text):
            raise self.fail(f"{field}.length", "lengths do not add up to the text")
        out = list(map(text.__getitem__, map(slice, [0, *ends], ends)))
        if not text.isascii() and any(len(t.encode("utf-8")) > max_bytes for t in out):
            raise self.fail(field, f"a string exceeds {max_bytes} bytes")
        return out


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
    w = _W(_EVENT, _EVENT_VERSION)
    w.text(ev.dot.replica)
    w.varint(ev.dot.counter)
    w.text(ev.key)
    _write_hlc(w, ev.hlc)
    w.varint(len(ev.path))
    for k in ev.path:
        w.text(k)
    w.raw(encode(ev.delta))
    return bytes(w.buf)


def decode_event(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Event:
    r = _R(data, _EVENT, "event", (_EVENT_VERSION,))
    try:
        replica = check_replica(r.text("event.dot.replica"), "event.dot.replica")
        counter = r.varint("event.dot.counter", MAX_COUNTER)
        if counter == 0:
            raise DecodeError("event.dot.counter", "dot counters start at 1")
        key = r.text("event.key")
        hlc = _read_hlc(r, "event.hlc")
        path = tuple(r.text(f"event.path[{i}]") for i in range(r.count("event.path")))
        delta = decode(r.raw("event.delta"), limits)
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


def _write_entries(w: _W, entries: Entries) -> None:
    registers, stores, others = _split_registers(entries)
    w.varint(len(registers))
    if registers:
        _write_registers(w, list(map(itemgetter(0), registers)), stores)
    w.varint(len(others))
    for i, (key, spec, stored) in others:
        w.varint(i)
        w.text(key)
        w.raw(_encode_entry(spec, stored))


def _split_registers(
    entries: Entries,
) -> tuple[Sequence[Entry], list[dict[Dot, Any]], list[tuple[int, Entry]]]:
    """The entries that are non-empty LWW registers with their stores' dicts, and the other
    entries with their positions; checked column by column first, as a state is usually
    all registers."""
    specs = list(map(itemgetter(1), entries))
    stored = list(map(itemgetter(2), entries))
    if all(spec.tag is TypeTag.LWW_REGISTER for spec in _distinct(specs)) and set(
        map(type, stored)
    ) <= {DotFun}:
        stores: list[dict[Dot, Any]] = list(map(attrgetter("_d"), stored))
        if all(stores):
            return entries, stores, []
    registers: list[Entry] = []
    others: list[tuple[int, Entry]] = []
    for i, entry in enumerate(entries):
        spec, value = entry[1], entry[2]
        if spec.tag is TypeTag.LWW_REGISTER and type(value) is DotFun and value._d:
            registers.append(entry)
        else:
            others.append((i, entry))
    return registers, list(map(attrgetter("_d"), map(itemgetter(2), registers))), others


def _distinct(objects: list[Any]) -> Iterable[Any]:
    """The distinct objects of a list (by identity), found at C speed."""
    return dict(zip(map(id, objects), objects, strict=True)).values()


def _write_registers(w: _W, keys: list[str], stores: list[dict[Dot, Any]]) -> None:
    dots: list[Dot] = list(chain.from_iterable(map(dict.keys, stores)))
    payloads: list[Any] = list(chain.from_iterable(map(dict.values, stores)))
    owners, counters = zip(*dots, strict=True)
    walls, logicals, values = zip(*payloads, strict=True)
    _write_columns(w, keys, list(map(len, stores)), (owners, counters, walls, logicals, values))


def _write_rows(w: _W, rows: Rows) -> None:
    """Registers kept as rows, in the registers' column layout."""
    w.varint(len(rows))
    if not rows:
        return
    values = list(rows.values())
    columns: Sequence[Sequence[Any]]
    if set(map(len, values)) == {ROW_FIELDS}:  # one entry each: the usual case
        columns = tuple(zip(*values, strict=True))
        sizes = [1] * len(values)
    else:
        flat = list(chain.from_iterable(values))
        columns = tuple(flat[i::ROW_FIELDS] for i in range(ROW_FIELDS))
        sizes = [n // ROW_FIELDS for n in map(len, values)]
    _write_columns(w, list(rows), sizes, columns)


def _write_columns(
    w: _W, keys: list[str], sizes: list[int], columns: Sequence[Sequence[Any]]
) -> None:
    """``columns``: the entries' (replica, counter, wall_ms, logical, value) by field."""
    owners, counters, walls, logicals, values = columns
    replicas = sorted(set(owners))
    w.varint(len(replicas))
    for rid in replicas:
        w.text(rid)
    w.texts(keys)
    w.column(sizes)
    index = {rid: i for i, rid in enumerate(replicas)}
    w.column(list(map(index.__getitem__, owners)))
    w.column(counters)
    base = min(walls)
    w.varint(base)
    w.column(list(map(base.__rsub__, walls)))
    w.column(logicals)
    kinds: list[int] = list(map(_KINDS.get, map(type, values), repeat(-1)))
    if -1 in kinds:  # subclasses of str, bytes or int
        kinds = [
            _TEXT if isinstance(v, str) else _DATA if isinstance(v, bytes) else _INT for v in values
        ]
    w.column(kinds)
    w.texts(list(compress(values, map(_TEXT.__eq__, kinds))))
    datas: list[bytes] = list(compress(values, map(_DATA.__eq__, kinds)))
    w.column(list(map(len, datas)))
    w.raw(b"".join(datas))
    ints: list[int] = list(compress(values, map(_INT.__eq__, kinds)))
    w.column([(v << 1) ^ (v >> 63) for v in ints])


def _read_entries(r: _R, field: str, limits: Limits) -> Entries:
    if r.version == 1:
        return _read_entries_v1(r, field, limits)
    out = _read_registers(r, f"{field}.registers", limits, r.count(field))
    more = r.count(f"{field}.others")
    if not more:
        return tuple(out)
    merged: list[Entry] = []
    taken = 0  # registers placed so far
    for i in range(more):
        f = f"{field}.others[{i}]"
        take = r.varint(f"{f}.position", len(out) + more - 1) - len(merged)
        if not 0 <= take <= len(out) - taken:
            raise DecodeError(f"{f}.position", "positions must increase within the entries")
        merged += out[taken : taken + take]
        taken += take
        key = r.text(f"{f}.key")
        spec, stored = _decode_entry(r.raw(f"{f}.value"), f, limits)
        merged.append((key, spec, stored))
    merged += out[taken:]
    return tuple(merged)


def _read_registers(
    r: _R, field: str, limits: Limits, n: int
) -> list[tuple[str, TypeSpec, StoredValue]]:
    """The columns :func:`_write_registers` wrote, as ``n`` (key, LWW spec, store) entries."""
    if not n:
        return []
    keys, sizes, (owners, counters, walls, logicals, values) = _read_columns(r, field, limits, n)
    dots = map(tuple.__new__, repeat(Dot), zip(owners, counters, strict=True))
    items = zip(dots, zip(walls, logicals, values, strict=True), strict=True)
    if sum(sizes) == n:  # one entry per register: the usual case
        stores = [{dot: payload} for dot, payload in items]
    else:
        flat = list(items)
        ends = list(accumulate(sizes))
        stores = list(map(dict, map(flat.__getitem__, map(slice, [0, *ends], ends))))
        if sum(map(len, stores)) != len(flat):  # two entries of one register on one dot
            raise DecodeError(f"{field}.dot", "a dot appears twice in one register")
    return list(zip(keys, repeat(_LWW), map(DotFun._wrap, stores)))


def _read_rows(r: _R, field: str, limits: Limits) -> Rows:
    """The registers :func:`_write_rows` wrote."""
    n = r.count(field)
    if not n:
        return {}
    keys, sizes, columns = _read_columns(r, field, limits, n)
    if sum(sizes) == n:  # one entry per register: the usual case
        return dict(zip(keys, zip(*columns, strict=True), strict=True))
    flat = tuple(chain.from_iterable(zip(*columns, strict=True)))
    ends = [ROW_FIELDS * e for e in accumulate(sizes)]
    rows: list[Row] = list(map(flat.__getitem__, map(slice, [0, *ends], ends)))
    for i in compress(range(n), map((1).__lt__, sizes)):  # the registers with siblings
        row = rows[i]
        if len(row) == 2 * ROW_FIELDS and row[:2] < row[ROW_FIELDS : ROW_FIELDS + 2]:
            continue  # two siblings in dot order: the usual case
        siblings = row_dots(row)
        if len(set(siblings)) != len(siblings):
            raise DecodeError(f"{field}.dot", "a dot appears twice in one register")
        if siblings != sorted(siblings):  # not written by this release: made canonical
            rows[i] = row_of(fun_of(row))
    return dict(zip(keys, rows, strict=True))


def _read_columns(
    r: _R, field: str, limits: Limits, n: int
) -> tuple[list[str], tuple[int, ...], tuple[Iterable[Any], ...]]:
    """The columns :func:`_write_columns` wrote: ``n`` keys, each one's number of entries,
    and the entries' (replica, counter, wall_ms, logical, value) by field."""
    replicas = [r.text(f"{field}.replicas[{i}]") for i in range(r.count(f"{field}.replicas"))]
    if not replicas or len(set(replicas)) != len(replicas):
        raise DecodeError(f"{field}.replicas", "no or duplicate replica ids")
    if not all(0 < len(rid.encode("utf-8")) <= limits.max_key_bytes for rid in replicas):
        raise DecodeError(f"{field}.replicas", "empty or oversized replica id")
    keys = r.texts(n, f"{field}.key", 1, limits.max_key_bytes)
    if len(set(keys)) != n:
        raise DecodeError(f"{field}.key", "duplicate key")
    sizes = r.column(n, f"{field}.size", 1, len(r.data) - r.pos)
    total = sum(sizes)
    owners = map(replicas.__getitem__, r.column(total, f"{field}.dot", 0, len(replicas) - 1))
    counters = r.column(total, f"{field}.counter", 1, MAX_COUNTER)
    base = r.varint(f"{field}.wall_base", MAX_COUNTER)
    walls = map(base.__add__, r.column(total, f"{field}.wall", 0, MAX_COUNTER - base))
    logicals = r.column(total, f"{field}.logical", 0, MAX_LOGICAL)
    values = _read_values(r, f"{field}.value", limits, r.column(total, f"{field}.kind", 0, 2))
    return keys, sizes, (owners, counters, walls, logicals, values)


def _read_values(r: _R, field: str, limits: Limits, kinds: tuple[int, ...]) -> list[Any]:
    texts = r.texts(kinds.count(_TEXT), f"{field}.text", 0, limits.max_value_bytes)
    lengths = r.column(kinds.count(_DATA), f"{field}.data_length", 0, limits.max_value_bytes)
    blob = r.raw(f"{field}.data")
    ends = list(accumulate(lengths))
    if (ends[-1] if ends else 0) != len(blob):
        raise DecodeError(f"{field}.data_length", "lengths do not add up to the data")
    datas = list(map(blob.__getitem__, map(slice, [0, *ends], ends)))
    ints = [(z >> 1) ^ -(z & 1) for z in r.column(kinds.count(_INT), f"{field}.integer")]
    if len(texts) == len(kinds):
        return texts
    by_kind = (iter(ints).__next__, iter(texts).__next__, iter(datas).__next__)
    return [by_kind[k]() for k in kinds]


def _read_entries_v1(r: _R, field: str, limits: Limits) -> Entries:
    out: list[tuple[str, TypeSpec, StoredValue]] = []
    for i in range(r.count(field)):
        key = r.text(f"{field}[{i}].key")
        spec, stored = _decode_entry(r.raw(f"{field}[{i}].value"), f"{field}[{i}]", limits)
        out.append((key, spec, stored))
    return tuple(out)


def _ctx(r: _R, field: str) -> CausalContext:
    try:
        return decode_context(r.raw(field))
    except InvalidOperation as e:
        raise DecodeError(f"{field}.{e.field}", e.reason) from None


def _write_ids(w: _W, ids: frozenset[str]) -> None:
    w.varint(len(ids))
    for rid in sorted(ids):
        w.text(rid)


def _read_ids(r: _R, field: str) -> frozenset[str]:
    """Replica ids (none before version 3)."""
    if r.version < _RETIRED_SINCE:
        return frozenset()
    try:
        return frozenset(
            check_replica(r.text(f"{field}[{i}]"), field) for i in range(r.count(field))
        )
    except InvalidOperation as e:
        raise DecodeError(e.field, e.reason) from None


def encode_snapshot(snap: Snapshot) -> bytes:
    # The oldest version that holds it, so that replicas of earlier releases can read it.
    version = WIRE_VERSION if snap.registers else _RETIRED_SINCE if snap.retired else 2
    w = _W(_SNAPSHOT, version)
    w.text(snap.sender)
    w.raw(encode_context(snap.applied))
    w.raw(encode_context(snap.context))
    if version >= _ROWS_SINCE:
        _write_rows(w, snap.registers)
    _write_entries(w, snap.entries)
    if version >= _RETIRED_SINCE:
        _write_ids(w, snap.retired)
    return bytes(w.buf)


def decode_snapshot(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Snapshot:
    r = _R(data, _SNAPSHOT, "snapshot", (1, 2, 3, WIRE_VERSION))
    sender = r.text("snapshot.sender")
    applied = _ctx(r, "snapshot.applied")
    context = _ctx(r, "snapshot.context")
    rows, entries = _read_state(r, "snapshot", limits)
    retired = _read_ids(r, "snapshot.retired")
    r.end("snapshot")
    return Snapshot(sender, applied, entries, context, retired, rows)


def _read_state(r: _R, field: str, limits: Limits) -> tuple[Rows, Entries]:
    """The registers kept as rows and the other entries (an older version's entries are
    split the same way)."""
    if r.version < _ROWS_SINCE:
        return split_rows(_read_entries(r, f"{field}.entries", limits))
    rows = _read_rows(r, f"{field}.registers", limits)
    entries = _read_entries(r, f"{field}.entries", limits)
    if rows and not rows.keys().isdisjoint(map(itemgetter(0), entries)):
        raise DecodeError(f"{field}.registers", "a key is both a register row and an entry")
    return rows, entries


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
    w.raw(encode_context(cp.applied))
    w.raw(encode_context(cp.context))
    _write_hlc(w, cp.clock)
    _write_rows(w, cp.registers)
    _write_entries(w, cp.entries)
    w.varint(len(cp.log))
    for ev in cp.log:
        w.raw(encode_event(ev))
    w.varint(len(cp.peers))
    for pid, acked, reported in cp.peers:
        w.text(pid)
        w.raw(encode_context(acked))
        w.raw(encode_context(reported))
    w.raw(_vv(cp.cut.stable))
    w.raw(_vv(cp.cut.candidate))
    w.raw(_vv(cp.cut.frontier))
    _write_ids(w, cp.cut.members)
    _write_ids(w, cp.retired)
    _write_ids(w, cp.departing)
    return bytes(w.buf)


def decode_checkpoint(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Checkpoint:
    r = _R(data, _CHECKPOINT, "checkpoint", (1, 2, 3, WIRE_VERSION))
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
    rows, entries = _read_state(r, "checkpoint", limits)
    log = tuple(
        decode_event(r.raw(f"checkpoint.log[{i}]"), limits)
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
    retired = _read_ids(r, "checkpoint.retired")
    departing = _read_ids(r, "checkpoint.departing")
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
        retired,
        departing,
        rows,
    )

"""Compact, versioned binary encoding of CRDT values and deltas.

Layout (all integers are unsigned LEB128 varints unless noted)::

    value    := FORMAT_VERSION:u8  spec  replicas  body
    spec     := tag:u8 [spec]                  # OR-Map is followed by its value spec
    replicas := n  n * str                     # replica-id table; dots refer to it by index
    dot      := replica_index  counter
    cc       := varint(n << 1 | has_cloud)  n * (replica_index counter)  [m  m * dot]
    body     := counters: n * (replica_index count)  |  causal: store  cc
    dotfun   := n  n * (dot payload)           # payload depends on the type
    dotmap   := n  n * (key  store)
    context  := FORMAT_VERSION:u8  0x40  replicas  cc   # a client context (encode_context)
    scalar   := varint(len << 2 | kind) data     # kind 1 str, 2 bytes; int: zigzag << 2 | 0
    lww      := varint(wall_ms << 1 | has_logical) [logical] scalar

The dots of a state's entries are always in its context, so they are left out of the encoded
context and restored on decode (a one-write delta carries its dot once). Encodings are
canonical: equal values encode to equal bytes. Any malformed input raises :class:`DecodeError`
naming where decoding failed; nothing else escapes :func:`decode`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .bytes_io import ByteReader, ByteWriter
from .causal import MAX_COUNTER, CausalContext, Dot, VersionVector
from .counters import MAX_ENTRY, GCounter, PNCounter
from .dotstore import DotFun, DotMap, DotStore, dots
from .errors import DecodeError, InvalidOperation
from .hlc import MAX_LOGICAL
from .spec import MAX_NESTING, TypeSpec, TypeTag, spec_of
from .values import DEFAULT_LIMITS, INT_MAX, INT_MIN, Limits, Scalar, scalar_sort_key

if TYPE_CHECKING:
    from .spec import CRDT

FORMAT_VERSION = 1
CONTEXT_TAG = 0x40  # not a CRDT type tag: marks an encoded client context
_INT, _STR, _BYTES = 0, 1, 2


# -- writing ---------------------------------------------------------------------------------


class _Writer(ByteWriter):
    __slots__ = ("index",)

    def __init__(self, index: dict[str, int]) -> None:
        super().__init__()
        self.index = index

    def scalar(self, v: Scalar) -> None:
        if isinstance(v, int):
            self.varint((((v << 1) ^ (v >> 63)) << 2) | _INT)  # zigzag
            return
        b = v.encode("utf-8") if isinstance(v, str) else v
        self.varint((len(b) << 2) | (_STR if isinstance(v, str) else _BYTES))
        self.buf += b

    def dot(self, d: Dot) -> None:
        self.varint(self.index[d.replica])
        self.varint(d.counter)


def _collect_replicas(crdt: CRDT) -> list[str]:
    if isinstance(crdt, GCounter):
        return sorted(crdt.entries)
    if isinstance(crdt, PNCounter):
        return sorted({*crdt.p.entries, *crdt.n.entries})
    ids = {*crdt.cc._v, *map(itemgetter(0), crdt.cc._cloud)}
    ids.update(map(itemgetter(0), _dots(crdt.store)))
    return sorted(ids)


def _dots(store: DotStore) -> Iterable[Dot]:
    """The dots held in ``store`` (a dot function's own keys, without a generator)."""
    return store._d if isinstance(store, DotFun) else dots(store)


def encode(crdt: CRDT) -> bytes:
    """Encode a CRDT state or delta (they are the same kind of value)."""
    spec = spec_of(crdt)
    replicas = _collect_replicas(crdt)
    w = _Writer({r: i for i, r in enumerate(replicas)})
    w.buf.append(FORMAT_VERSION)
    _write_spec(w, spec)
    w.varint(len(replicas))
    for r in replicas:
        w.text(r)
    _write_body(w, spec, crdt)
    return bytes(w.buf)


def encode_context(cc: CausalContext) -> bytes:
    """Encode a causal context for a client (``Get`` returns it, ``Update`` takes it back)."""
    replicas = sorted({*cc._v} | {d.replica for d in cc.cloud})
    w = _Writer({r: i for i, r in enumerate(replicas)})
    w.buf += bytes([FORMAT_VERSION, CONTEXT_TAG])
    w.varint(len(replicas))
    for r in replicas:
        w.text(r)
    _write_cc(w, cc, set())
    return bytes(w.buf)


def decode_context(data: bytes, limits: Limits = DEFAULT_LIMITS) -> CausalContext:
    """Decode a client-supplied context; anything malformed is a :class:`DecodeError` whose
    field starts with ``context``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("context", "expected bytes")
    r = _Reader(bytes(data), limits)
    try:
        if r.u8("context.version") != FORMAT_VERSION:
            raise r.fail("context.version", "unsupported format version")
        if r.u8("context.tag") != CONTEXT_TAG:
            raise r.fail("context.tag", "not an encoded causal context")
        _read_replicas(r, limits)
        cc = _read_cc(r, set())
        r.end("context")
        return cc
    except DecodeError as e:
        if e.field.startswith("context"):
            raise
        raise DecodeError(f"context.{e.field}", e.reason) from None
    except InvalidOperation as e:
        raise DecodeError(f"context.{e.field}", e.reason) from None


def _write_spec(w: _Writer, spec: TypeSpec) -> None:
    w.buf.append(int(spec.tag))
    if spec.value is not None:
        _write_spec(w, spec.value)


def _write_gcounter(w: _Writer, g: GCounter) -> None:
    w.varint(len(g.entries))
    for r in sorted(g.entries):
        w.varint(w.index[r])
        w.varint(g.entries[r])


def _write_body(w: _Writer, spec: TypeSpec, crdt: CRDT) -> None:
    if isinstance(crdt, GCounter):
        _write_gcounter(w, crdt)
        return
    if isinstance(crdt, PNCounter):
        _write_gcounter(w, crdt.p)
        _write_gcounter(w, crdt.n)
        return
    _write_store(w, spec, crdt.store)
    _write_cc(w, crdt.cc, _dots(crdt.store))


def _write_cc(w: _Writer, cc: CausalContext, implied: Iterable[Dot]) -> None:
    vv = sorted(cc._v.items())
    cloud = sorted(cc._cloud.difference(implied)) if cc._cloud else []
    w.varint(len(vv) << 1 | (1 if cloud else 0))
    for r, n in vv:
        w.varint(w.index[r])
        w.varint(n)
    if cloud:
        w.varint(len(cloud))
        for d in cloud:
            w.dot(d)


def _write_store(w: _Writer, spec: TypeSpec, store: DotStore) -> None:
    if isinstance(store, DotFun):
        w.varint(len(store._d))
        for d, payload in sorted(store._d.items()):
            w.dot(d)
            _write_payload(w, spec.tag, payload)
        return
    w.varint(len(store))
    keys: list[Any] = sorted(store, key=_key_order)
    for k in keys:
        sub = store.get(k)
        assert sub is not None
        if spec.tag is TypeTag.OR_MAP:
            assert spec.value is not None
            w.text(k)
            _write_store(w, spec.value, sub)
        else:  # sets: element -> dot function of flags
            w.scalar(k)
            _write_store(
                w, TypeSpec(TypeTag.EW_FLAG if spec.tag is TypeTag.AW_SET else TypeTag.DW_FLAG), sub
            )


def _key_order(k: Hashable) -> tuple[int, Any]:
    return scalar_sort_key(k) if isinstance(k, bytes | str | int) else (3, repr(k))


def _write_payload(w: _Writer, tag: TypeTag, payload: Any) -> None:
    if tag is TypeTag.MV_REGISTER:
        w.scalar(payload)
    elif tag is TypeTag.LWW_REGISTER:
        wall, logical, value = payload
        w.varint(wall << 1 | (1 if logical else 0))
        if logical:
            w.varint(logical)
        w.scalar(value)
    elif tag is TypeTag.DW_FLAG:
        w.buf.append(1 if payload else 0)
    # EW_FLAG: the payload is always True and takes no bytes


# -- reading ---------------------------------------------------------------------------------


class _Reader(ByteReader):
    __slots__ = ("limits", "replicas")

    def __init__(self, data: bytes, limits: Limits) -> None:
        super().__init__(data)
        self.replicas: list[str] = []
        self.limits = limits

    def scalar(self, field: str) -> Scalar:
        head = self.varint(field, maximum=(1 << 66) - 1)
        kind, n = head & 3, head >> 2
        if kind == _INT:
            v = (n >> 1) ^ -(n & 1)
            if not INT_MIN <= v <= INT_MAX:
                raise self.fail(field, "integer outside the signed 64-bit range")
            return v
        if kind not in (_STR, _BYTES):
            raise self.fail(field, f"unknown scalar kind {kind}")
        if n > min(self.limits.max_value_bytes, len(self.data) - self.pos):
            raise self.fail(field, f"length {n} exceeds the limit or the input")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        if kind == _BYTES:
            return b
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(field, "invalid utf-8") from None

    def replica(self, field: str) -> str:
        i = self.varint(field)
        if i >= len(self.replicas):
            raise self.fail(field, f"replica index {i} outside a table of {len(self.replicas)}")
        return self.replicas[i]

    def dot(self, field: str) -> Dot:
        r = self.replica(f"{field}.replica")
        n = self.varint(f"{field}.counter", MAX_COUNTER)
        if n == 0:
            raise self.fail(f"{field}.counter", "dot counters start at 1")
        return Dot(r, n)


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> CRDT:
    """Decode what :func:`encode` produced; raise :class:`DecodeError` for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("data", "expected bytes")
    r = _Reader(bytes(data), limits)
    try:
        return _decode(r, limits)
    except DecodeError:
        raise
    except InvalidOperation as e:  # a value constructor rejected what the bytes described
        raise r.fail(e.field, e.reason) from None


def _decode(r: _Reader, limits: Limits) -> CRDT:
    version = r.u8("version")
    if version != FORMAT_VERSION:
        raise r.fail("version", f"unsupported format version {version}")
    spec = _read_spec(r, "type", 0)
    _read_replicas(r, limits)
    value = _read_body(r, spec)
    r.end("data")
    return value


def _read_replicas(r: _Reader, limits: Limits) -> None:
    for i in range(r.count("replicas")):
        rid = r.text(f"replicas[{i}]", limits.max_key_bytes)
        if not rid:
            raise r.fail(f"replicas[{i}]", "empty replica id")
        r.replicas.append(rid)
    if len(set(r.replicas)) != len(r.replicas):
        raise r.fail("replicas", "duplicate replica id")


def _read_spec(r: _Reader, field: str, depth: int) -> TypeSpec:
    if depth > MAX_NESTING:
        raise r.fail(field, f"types nested deeper than {MAX_NESTING}")
    raw = r.u8(field)
    try:
        tag = TypeTag(raw)
    except ValueError:
        raise r.fail(field, f"unknown type tag {raw}") from None
    value = _read_spec(r, f"{field}.value", depth + 1) if tag is TypeTag.OR_MAP else None
    try:
        return TypeSpec(tag, value)
    except InvalidOperation as e:
        raise r.fail(e.field, e.reason) from None


def _read_gcounter(r: _Reader, field: str) -> GCounter:
    entries: dict[str, int] = {}
    for i in range(r.count(field)):
        rid = r.replica(f"{field}[{i}].replica")
        n = r.varint(f"{field}[{i}].count", MAX_ENTRY)
        if n == 0 or rid in entries:
            raise r.fail(f"{field}[{i}]", "zero or duplicate counter entry")
        entries[rid] = n
    return GCounter(entries)


def _read_body(r: _Reader, spec: TypeSpec) -> CRDT:
    if spec.tag is TypeTag.GCOUNTER:
        return _read_gcounter(r, "entries")
    if spec.tag is TypeTag.PNCOUNTER:
        return PNCounter(_read_gcounter(r, "p"), _read_gcounter(r, "n"))
    seen: set[Dot] = set()
    store = _read_store(r, spec, "store", seen)
    cc = _read_cc(r, seen)
    try:
        return spec.view(store, cc)
    except InvalidOperation as e:
        raise r.fail(e.field, e.reason) from None


def _read_cc(r: _Reader, seen: set[Dot]) -> CausalContext:
    """A context; ``seen`` are the entry dots left out of the encoding (restored here)."""
    vv: dict[str, int] = {}
    head = r.varint("cc", maximum=2 * (len(r.data) - r.pos) + 1)
    for i in range(head >> 1):
        rid = r.replica(f"cc.vv[{i}].replica")
        n = r.varint(f"cc.vv[{i}].counter", MAX_COUNTER)
        if n == 0 or rid in vv:
            raise r.fail(f"cc.vv[{i}]", "zero or duplicate vector entry")
        vv[rid] = n
    cloud: list[Dot] = []
    if head & 1:
        n_cloud = r.count("cc.cloud")
        if n_cloud == 0:
            raise r.fail("cc.cloud", "empty cloud flagged as present")
        for i in range(n_cloud):
            cloud.append(r.dot(f"cc.cloud[{i}]"))
    if len(set(cloud)) != len(cloud) or seen.intersection(cloud):
        raise r.fail("cc.cloud", "duplicate dot")
    return CausalContext(VersionVector(vv), [*cloud, *seen])


def _read_store(r: _Reader, spec: TypeSpec, field: str, seen: set[Dot]) -> DotStore:
    if spec.tag in {TypeTag.AW_SET, TypeTag.RW_SET, TypeTag.OR_MAP}:
        out: dict[Hashable, DotStore] = {}
        for i in range(r.count(field)):
            f = f"{field}[{i}]"
            sub_spec: TypeSpec
            key: Scalar
            if spec.tag is TypeTag.OR_MAP:
                assert spec.value is not None
                key, sub_spec = r.text(f"{f}.key", r.limits.max_key_bytes), spec.value
                if not key:
                    raise r.fail(f"{f}.key", "empty map key")
            else:
                key = r.scalar(f"{f}.element")
                sub_spec = TypeSpec(
                    TypeTag.EW_FLAG if spec.tag is TypeTag.AW_SET else TypeTag.DW_FLAG
                )
            if key in out:
                raise r.fail(f"{f}.key", f"duplicate key {key!r}")
            sub = _read_store(r, sub_spec, f"{f}.value", seen)
            if not len(sub):
                raise r.fail(f"{f}.value", "empty nested store")
            out[key] = sub
        return DotMap(out)
    entries: dict[Dot, Any] = {}
    for i in range(r.count(field)):
        d = r.dot(f"{field}[{i}].dot")
        if d in seen:
            raise r.fail(f"{field}[{i}].dot", f"dot {d} appears twice")
        seen.add(d)
        entries[d] = _read_payload(r, spec.tag, f"{field}[{i}].payload")
    return DotFun(entries)


def _read_payload(r: _Reader, tag: TypeTag, field: str) -> Any:
    if tag is TypeTag.MV_REGISTER:
        return r.scalar(field)
    if tag is TypeTag.LWW_REGISTER:
        head = r.varint(f"{field}.wall_ms", (MAX_COUNTER << 1) | 1)
        logical = 0
        if head & 1:
            logical = r.varint(f"{field}.logical", MAX_LOGICAL)
            if logical == 0:
                raise r.fail(f"{field}.logical", "zero logical part flagged as present")
        return (head >> 1, logical, r.scalar(f"{field}.value"))
    if tag is TypeTag.DW_FLAG:
        b = r.u8(field)
        if b > 1:
            raise r.fail(field, f"flag byte must be 0 or 1, got {b}")
        return b == 1
    return True

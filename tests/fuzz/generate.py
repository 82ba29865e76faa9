"""A descriptor-driven generator of bad (and some good) request bodies, seeded and replayable.

For a :class:`~tests.fuzz.apis.Method` it builds wire bytes from the request type's descriptor
with one of several strategies: a well-formed message with extreme values in its fields
(integers at and past every bound, NaN and infinities, empty, huge and invalid-UTF-8 strings,
unknown enum values, Durations/Timestamps that break the type's own rules, unknown fields),
huge repeated fields and strings, nesting past protobuf's limit (through the type's own
recursion, or 200 levels of a length-delimited field 1), a mutated encoding, and pure random
bytes. Fields the suite gives a meaning get domain values (:mod:`tests.fuzz.domain`); fields
:mod:`tests.fuzz.safety` guards mostly get safe values already (the safety pass still runs).

The same seed gives the same sequence of bodies. Bodies stay within :data:`MAX_BODY` bytes
and :data:`MAX_ITEMS` items per repeated field.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from tests.fuzz import domain, wire
from tests.fuzz.apis import Method
from tests.fuzz.safety import (
    KV_PREFIX,
    MEMBER_IDS,
    REPLICA_PREFIX,
    SPIFFE_PREFIX,
    SYNC_PREFIX,
    Rule,
    rule_for,
)

MAX_BODY = 1 << 20
MAX_ITEMS = 2000
DEEP_LEVELS = (101, 120, 200)

INT32 = (0, 1, -1, 2**31 - 1, -(2**31), 2**31, 2**32 - 1, 2**32, 2**63 - 1, -(2**63), 2**64 - 1)
INT64 = (0, 1, -1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63), -(2**63) + 1)
UINT = (0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
PLAUSIBLE = (1, 2, 3, 5, 10, 100, 1000)
FLOATS = (math.nan, math.inf, -math.inf, -0.0, 0.0, 1.0, 3.4028234663852886e38, 1e-45)
DOUBLES = (*FLOATS, 1.7976931348623157e308, 5e-324, -1e308)
NAN_BITS32 = (0x7FA00000, 0xFFC00001, 0x7F800001)
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80")
DURATION_SECONDS = (0, 1, -1, 30, 31, 315_576_000_000, 315_576_000_001, 2**63 - 1, -(2**63 - 1))
DURATION_NANOS = (0, 1, -1, 999_999_999, 1_000_000_000, 2_000_000_000, -(2**31), 2**31 - 1)
TIME_TYPES = frozenset({"google.protobuf.Duration", "google.protobuf.Timestamp"})
STRATEGIES = ("extremes", "huge", "deep", "mutate", "random", "raw-nesting", "empty")
WEIGHTS = (55, 8, 6, 14, 10, 4, 3)
Strategy = Callable[[Method], bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """One call: the method, its request messages (one unless client-streaming), how made."""

    method: Method
    messages: tuple[bytes, ...]
    strategy: str


class Generator:
    """``Generator(seed).request(method)``: the next request for ``method``."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._budget = MAX_BODY
        self._extreme = 0.5  # per message: how often a field gets an extreme value
        self._noise = 1.0  # how often unknown fields and invalid UTF-8 may be put in
        self._strategies: dict[str, Strategy] = {
            "extremes": self.extremes,
            "huge": self.huge,
            "deep": self.deep,
            "mutate": self.mutate,
            "random": self.random_bytes,
            "raw-nesting": self.raw_nesting,
            "empty": lambda _m: b"",
        }

    def request(self, method: Method, strategy: str | None = None) -> Request:
        name = strategy or self.rng.choices(STRATEGIES, WEIGHTS)[0]
        count = self.rng.randint(1, 4) if method.client_streaming else 1
        messages = tuple(self.body(method, name) for _ in range(count))
        return Request(method, messages, name)

    def body(self, method: Method, strategy: str) -> bytes:
        self._budget = MAX_BODY
        self._extreme = self.rng.choice((0.1, 0.5, 0.9))
        self._noise = 0.1 if strategy == "huge" else 1.0  # keep most huge bodies parseable
        body = self._strategies[strategy](method)
        return body[:MAX_BODY]

    # -- strategies ----------------------------------------------------------------------

    def extremes(self, method: Method) -> bytes:
        return self.message(method.input, 0, max_depth=self.rng.choice((2, 4, 8)))

    def huge(self, method: Method) -> bytes:
        """One field of the request made as big as the bounds allow: a string or bytes field
        up to the whole body, or a repeated field with up to MAX_ITEMS items."""
        rng = self.rng
        fields = [f for f in method.input.fields if f.is_repeated or _is_blob(f)]
        if not fields:
            filler = wire.field_len(rng.randint(16, 99), rng.randbytes(1 << 19))
            return self.extremes(method) + filler
        field = rng.choice(fields)
        head = self.message(method.input, 0, max_depth=3, skip=field)
        remaining = MAX_BODY - len(head) - 64
        if not field.is_repeated:
            self._budget = remaining
            size = rng.choice((64 * 1024 + 1, 256 * 1024, remaining))
            return head + wire.field_len(field.number, self._blob(field, size))
        count = rng.choice((129, 500, MAX_ITEMS))
        per_item = max(1, remaining // count - 8)
        items: list[bytes] = []
        total = 0
        for _ in range(count):
            self._budget = per_item  # caps every string or bytes inside the item
            item = self._value(field, 1, 3, per_item)
            total += len(item)
            if total > remaining:
                break
            items.append(item)
        return head + b"".join(items)

    def deep(self, method: Method) -> bytes:
        """Nesting past protobuf's limit of 100 through one of the request type's own
        recursions (e.g. an OR-map type of OR-map types), or raw nesting if it has none."""
        cycles = _cycles_from(method.input)
        if not cycles:
            return self.raw_nesting(method)
        path, loop = self.rng.choice(cycles)
        levels = self.rng.choice(DEEP_LEVELS)
        body = b""
        for i in reversed(range(levels)):  # inside out: the outermost level is loop[0]
            body = wire.field_len(loop[i % len(loop)].number, body)
        for field in reversed(path):
            body = wire.field_len(field.number, body)
        return body

    def raw_nesting(self, method: Method) -> bytes:
        """200 (or 101, 120) levels of one length-delimited field, field 1 mostly."""
        fields = method.input.fields
        number = self.rng.choice(fields).number if fields and self.rng.random() < 0.2 else 1
        return wire.nested(self.rng.choice(DEEP_LEVELS), number)

    def mutate(self, method: Method) -> bytes:
        data = bytearray(self.extremes(method) or b"\x08\x01")
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            kind = rng.randrange(6)
            if kind == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif kind == 1:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            elif kind == 2:
                del data[at : at + rng.randint(1, 8)]
            elif kind == 3:
                del data[at:]
            elif kind == 4:
                data[at:at] = b"\xff" * rng.randint(9, 11)  # an over-long varint
            else:
                data[at:at] = data[: rng.randint(1, 64)]
            if not data:
                data = bytearray(b"\x00")
        return bytes(data)

    def random_bytes(self, method: Method) -> bytes:
        size = self.rng.choice((1, 2, 3, 8, 32, 256, 4096))
        return self.rng.randbytes(self.rng.randint(1, size))

    # -- messages and fields ---------------------------------------------------------------

    def message(
        self,
        desc: Descriptor,
        depth: int,
        *,
        max_depth: int,
        skip: FieldDescriptor | None = None,
    ) -> bytes:
        rng = self.rng
        if desc.full_name in TIME_TYPES:
            return wire.duration(rng.choice(DURATION_SECONDS), rng.choice(DURATION_NANOS))
        chosen = {o.name: self._oneof_members(list(o.fields)) for o in desc.oneofs}
        parts: list[bytes] = []
        for field in desc.fields:
            if field is skip:
                continue
            oneof = field.containing_oneof
            if oneof is not None and field not in chosen.get(oneof.name, ()):
                continue
            if oneof is None and rng.random() < 0.3:
                continue
            count = rng.choice((0, 1, 1, 2, 3)) if field.is_repeated else 1
            parts += [self._value(field, depth, max_depth) for _ in range(count)]
        if parts and rng.random() < 0.05:
            parts.append(rng.choice(parts))  # a field twice (the last one wins)
        if rng.random() < (0.1 if depth == 0 else 0.02) * self._noise:
            parts.append(self._unknown_field())
        if rng.random() < 0.1:
            rng.shuffle(parts)
        return b"".join(parts)

    def _oneof_members(self, members: list[FieldDescriptor]) -> list[FieldDescriptor]:
        roll = self.rng.random()
        if roll < 0.1:
            return []
        return self.rng.sample(members, min(len(members), 2 if roll > 0.9 else 1))

    def _value(
        self, field: FieldDescriptor, depth: int, max_depth: int, size: int | None = None
    ) -> bytes:
        """One encoded occurrence of ``field`` (a packed run for a repeated number)."""
        rng = self.rng
        rule = rule_for(field, depth == 0)
        if rule is not None and rng.random() < 0.95:
            return self._ruled(field, rule)
        t = field.type
        if t == FieldDescriptor.TYPE_MESSAGE:
            if depth >= max_depth:
                return wire.field_len(field.number, b"")
            body = self.message(field.message_type, depth + 1, max_depth=max_depth)
            return wire.field_len(field.number, body)
        if _is_blob(field):
            return wire.field_len(field.number, self._blob(field, size))
        if field.is_repeated and rng.random() < 0.5 and t != FieldDescriptor.TYPE_GROUP:
            run = b"".join(self._number(field)[1] for _ in range(rng.randint(1, 8)))
            return wire.field_len(field.number, run)  # packed
        wire_type, payload = self._number(field)
        return wire.key(field.number, wire_type) + payload

    def _number(self, field: FieldDescriptor) -> tuple[int, bytes]:
        """(wire type, encoded value) of a scalar number, bool or enum."""
        rng, t = self.rng, field.type
        extreme = rng.random() < self._extreme
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            is_float = t == FieldDescriptor.TYPE_FLOAT
            if is_float and rng.random() < 0.2:
                return wire.I32, rng.choice(NAN_BITS32).to_bytes(4, "little")
            value = rng.choice(FLOATS if is_float else DOUBLES) if extreme else rng.random()
            encoded = wire.field_float(1, value) if is_float else wire.field_double(1, value)
            return (wire.I32 if is_float else wire.I64), encoded[1:]
        if t == FieldDescriptor.TYPE_ENUM:
            known = [v.number for v in field.enum_type.values]
            value = (
                rng.choice((-1, max(known) + 1, 99, 2**31 - 1, 2**32))
                if extreme
                else (rng.choice(known))
            )
            return wire.VARINT, wire.varint(value)
        if t == FieldDescriptor.TYPE_BOOL:
            return wire.VARINT, wire.varint(rng.choice((2, 255, 2**64 - 1)) if extreme else 1)
        signed = t in _SIGNED
        table = (INT32 if t in _BITS32 else INT64) if signed else UINT
        value = rng.choice(table) if extreme else rng.choice(PLAUSIBLE)
        if t in (FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64):
            return wire.VARINT, wire.varint(wire.zigzag(value))
        if t in (FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32):
            return wire.I32, (value & 0xFFFFFFFF).to_bytes(4, "little")
        if t in (FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64):
            return wire.I64, (value & wire.U64).to_bytes(8, "little")
        return wire.VARINT, wire.varint(value)

    def _blob(self, field: FieldDescriptor, size: int | None = None) -> bytes:
        """Contents of a string or bytes field: plausible, empty, huge, invalid UTF-8, ..."""
        rng = self.rng
        if size is None and field.name in ("context", "applied") and "sync" in field.full_name:
            return domain.sync_context(rng)
        if size is None:
            roll = rng.random()
            if roll < 0.15:
                return b""
            if roll < 0.25 and rng.random() < self._noise:
                return rng.choice(INVALID_UTF8) + b"x" * rng.randint(0, 3)
            if roll < 0.3:
                return wire.nested(200)
            if roll < 0.35:
                size = min(self._budget, rng.choice((1537, 64 * 1024 + 1, 256 * 1024)))
            else:
                return rng.choice((b"x", b"/fuzz/k", b"\x00", "ключ/✓".encode(), rng.randbytes(8)))
        size = max(0, min(size, self._budget))
        self._budget -= size
        return (b"a" * size) if field.type == FieldDescriptor.TYPE_STRING else rng.randbytes(size)

    def _ruled(self, field: FieldDescriptor, rule: Rule) -> bytes:
        """A field that names something real, given a value the safety rules allow."""
        rng = self.rng
        if rule is Rule.MEMBER_ID:
            value = rng.choice((*MEMBER_IDS, 0, 2**63, 2**64 - 1))
            return wire.key(field.number, wire.VARINT) + wire.varint(value)
        if rule is Rule.ADDRESS:
            return wire.field_len(field.number, domain.address(rng).encode("utf-8", "replace"))
        if rule is Rule.REPLICA_ID and rng.random() < 0.3:
            return wire.field_len(field.number, domain.replica_id(rng).encode("utf-8", "replace"))
        suffix = self._blob(field) if rng.random() < 0.5 else rng.choice((b"", b"k", b"k/1"))
        if rule is Rule.KV_KEY:
            return wire.field_len(field.number, KV_PREFIX + suffix)
        if rule is Rule.REPLICA_ID:
            return wire.field_len(field.number, REPLICA_PREFIX.encode() + suffix)
        if rule is Rule.SPIFFE_ID:
            return wire.field_len(field.number, SPIFFE_PREFIX.encode() + suffix)
        return wire.field_len(field.number, SYNC_PREFIX.encode() + suffix)

    def _unknown_field(self) -> bytes:
        """A field the type does not have: mostly well-formed (kept as unknown by the
        parser), sometimes not (field number 0 or past 2^29-1, wire types 6 and 7)."""
        rng = self.rng
        if rng.random() < 0.8:
            number = rng.choice((15, 16, 99, 19_000, wire.MAX_FIELD_NUMBER))
            wire_type = rng.choice((wire.VARINT, wire.I64, wire.LEN, wire.SGROUP, wire.I32))
        else:
            number = rng.choice((0, wire.MAX_FIELD_NUMBER + 1, 16))
            wire_type = rng.randrange(8)
        if wire_type == wire.SGROUP and rng.random() < 0.9:
            return wire.field_group(number, wire.field_varint(1, 1))
        payload = {
            wire.VARINT: wire.varint(rng.choice(UINT)),
            wire.I64: rng.randbytes(8),
            wire.LEN: wire.varint(3) + b"abc",
            wire.I32: rng.randbytes(4),
        }.get(wire_type, b"")
        return wire.key(number, wire_type) + payload


_SIGNED = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_BITS32 = frozenset(
    {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
)


def _is_blob(field: FieldDescriptor) -> bool:
    return field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)


def _cycles_from(
    desc: Descriptor, limit: int = 16
) -> list[tuple[list[FieldDescriptor], list[FieldDescriptor]]]:
    """Ways to nest without end from ``desc``: each a path of message fields to a type that
    contains itself and the loop of fields back to that type (at most ``limit`` of them)."""
    found: list[tuple[list[FieldDescriptor], list[FieldDescriptor]]] = []

    def walk(d: Descriptor, path: list[FieldDescriptor], seen: list[str]) -> None:
        for f in d.fields:
            if len(found) >= limit:
                return
            if f.type != FieldDescriptor.TYPE_MESSAGE or f.message_type.full_name in TIME_TYPES:
                continue
            target = f.message_type.full_name
            if target in seen:
                start = seen.index(target)
                found.append((path[:start], [*path[start:], f]))
            else:
                walk(f.message_type, [*path, f], [*seen, target])

    walk(desc, [], [desc.full_name])
    return found

"""What keeps generated requests from touching anything but the fuzzer's own data.

Every body goes through :meth:`Safety.make_safe` just before it is sent. A body that does not
parse as the method's request type is sent as it is: the server parses with the same protobuf
library and refuses it before anything applies. A body that parses is checked field by field
and, where a field names something real, rewritten and re-serialised:

- consensus keys, prefixes and range ends (every ``bytes`` field called key/prefix/range_*
  in ``x0tta6bl4.consensus.v1``, Txn compares and operations included) start with ``/fuzz/``;
- sync keys and watch prefixes (``string`` key/prefix of a request message) start with
  ``fuzz/``, replica ids given to Join/Leave with ``fuzz-``;
- member ids of ClusterService requests are 0, past int64, or one of the few
  :data:`MEMBER_IDS` (>= 1000: never a real member, and few, so learners added by MemberAdd
  are the ones MemberRemove takes away again);
- an address that the suite's own parser accepts is rewritten to 127.0.0.1 and one of the
  ports the test holds bound without listening (nobody can accept on them);
- SPIFFE IDs in identity requests (the workload's, its parent's, prefixes, revocations) are
  in the namespace ``fuzz`` of the trust domain, which no real workload or agent uses.

The rules come from the descriptors, so a new request type with a ``key`` is covered. Fail
closed: the methods of a package these rules were not written for (a new policy, healer or
ops API, say), and the few methods that act on everything without naming it
(:data:`UNCONFINED`), get only bodies that do not parse: a body that would parse has an
invalid tag appended. They are fuzzed at the parsing and authorisation boundary from the day
they exist, and fully once their rules are added here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from functools import cache

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from tests.fuzz.apis import Method, discover
from x0tta6bl4.platform.config import parse_peer_address

VETTED_PACKAGES = frozenset(
    {
        "grpc.health.v1",
        "x0tta6bl4.platform.v1",
        "x0tta6bl4.consensus.v1",
        "x0tta6bl4.sync.v1",
        "x0tta6bl4.identity.v1",
    }
)
UNCONFINED = frozenset({"/x0tta6bl4.identity.v1.IdentityService/Reconcile"})
INVALID_TAIL = b"\x07"  # field 0, wire type 7: no parser accepts it
KV_PREFIX = b"/fuzz/"
SYNC_PREFIX = "fuzz/"
REPLICA_PREFIX = "fuzz-"
SPIFFE_PREFIX = "spiffe://x0tta6bl4.mesh/ns/fuzz/"
INT64_MAX = (1 << 63) - 1
MEMBER_IDS = (1000, 1001, 1002, 1 << 31, (1 << 32) + 7, INT64_MAX)
_KEY_FIELDS = frozenset({"key", "prefix", "range_start", "range_end", "start_key", "end_key"})
_INTEGER_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
PARSE_ERRORS = (DecodeError, RecursionError, ValueError, UnicodeDecodeError)


class Rule(enum.Enum):
    KV_KEY = "kv key"
    SYNC_KEY = "sync key"
    REPLICA_ID = "replica id"
    MEMBER_ID = "member id"
    ADDRESS = "address"
    SPIFFE_ID = "spiffe id"


@cache
def _cluster_inputs() -> frozenset[str]:
    return frozenset(m.input.full_name for m in discover() if m.service.endswith(".ClusterService"))


def rule_for(field: FieldDescriptor, top_level: bool) -> Rule | None:
    """The safety rule of ``field`` (in a request message; ``top_level``: the method's own
    request type rather than a message nested in it), or None if it names nothing real."""
    message = field.containing_type
    package = message.file.package
    if package == "x0tta6bl4.consensus.v1":
        if field.type == FieldDescriptor.TYPE_BYTES and field.name in _KEY_FIELDS:
            return Rule.KV_KEY
        if message.full_name in _cluster_inputs():
            if field.type in _INTEGER_TYPES and (field.name == "id" or field.name.endswith("_id")):
                return Rule.MEMBER_ID
            if field.type == FieldDescriptor.TYPE_STRING and field.name == "address":
                return Rule.ADDRESS
    is_text = field.type == FieldDescriptor.TYPE_STRING
    identity = "spiffe_id" in field.name or field.name == "parent_id"
    if package == "x0tta6bl4.identity.v1" and is_text and identity:
        return Rule.SPIFFE_ID
    if package == "x0tta6bl4.sync.v1" and top_level:
        if field.type == FieldDescriptor.TYPE_STRING and field.name in _KEY_FIELDS:
            return Rule.SYNC_KEY
        if field.name == "replica_id":
            return Rule.REPLICA_ID
        if field.name == "address":
            return Rule.ADDRESS
    return None


def confined(method: Method) -> bool:
    """Whether the rules here confine what ``method`` can touch (else it only gets bodies
    that do not parse)."""
    return method.package in VETTED_PACKAGES and method.path not in UNCONFINED


def safe_member_id(value: int) -> int:
    if value == 0 or value > INT64_MAX or value in MEMBER_IDS:
        return value
    return MEMBER_IDS[value % len(MEMBER_IDS)]


@dataclasses.dataclass(frozen=True)
class Safety:
    """The rewriting rules, with the ports nobody listens on (held bound by the test)."""

    dead_ports: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.dead_ports:
            raise ValueError("Safety needs at least one port nobody listens on")

    def make_safe(self, method: Method, messages: Sequence[bytes]) -> tuple[bytes, ...]:
        """``messages`` (one per request message of the call), each safe to send."""
        return tuple(self.message(method, body) for body in messages)

    def message(self, method: Method, body: bytes) -> bytes:
        try:
            parsed = method.input_class.FromString(body)
        except PARSE_ERRORS:
            return body  # the server refuses it before anything applies
        if not confined(method):
            return body + INVALID_TAIL
        return parsed.SerializeToString() if self._force(parsed, True) else body

    def is_safe(self, method: Method, body: bytes) -> bool:
        return self.message(method, body) == body

    def fix(self, rule: Rule, value: object) -> object:
        """``value`` (of a field with ``rule``) made safe."""
        if rule is Rule.KV_KEY:
            assert isinstance(value, bytes)
            return value if value.startswith(KV_PREFIX) else KV_PREFIX + value
        if rule is Rule.SYNC_KEY:
            assert isinstance(value, str)
            return value if value.startswith(SYNC_PREFIX) else SYNC_PREFIX + value
        if rule is Rule.REPLICA_ID:
            assert isinstance(value, str)
            return value if value.startswith(REPLICA_PREFIX) else REPLICA_PREFIX + value
        if rule is Rule.SPIFFE_ID:
            assert isinstance(value, str)
            return value if value.startswith(SPIFFE_PREFIX) else SPIFFE_PREFIX + value
        if rule is Rule.MEMBER_ID:
            assert isinstance(value, int)
            return safe_member_id(value)
        assert isinstance(value, str)
        return self._address(value)

    def _address(self, value: str) -> str:
        try:
            parsed = parse_peer_address(value)
        except Exception:  # refused by the service's own parser: it goes nowhere
            return value
        if parsed.host == "127.0.0.1" and parsed.port in self.dead_ports:
            return value
        return f"127.0.0.1:{self.dead_ports[len(value) % len(self.dead_ports)]}"

    def _force(self, message: Message, top_level: bool) -> bool:
        changed = False
        for field in message.DESCRIPTOR.fields:
            oneof = field.containing_oneof
            if oneof is not None and message.WhichOneof(oneof.name) != field.name:
                continue
            rule = rule_for(field, top_level)
            if rule is not None:
                changed |= self._force_field(message, field, rule)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.message_type.GetOptions().map_entry:
                    values = list(getattr(message, field.name).values())
                    subs = [v for v in values if isinstance(v, Message)]
                elif field.is_repeated:
                    subs = list(getattr(message, field.name))
                elif message.HasField(field.name):
                    subs = [getattr(message, field.name)]
                else:
                    subs = []
                for sub in subs:
                    changed |= self._force(sub, False)
        return changed

    def _force_field(self, message: Message, field: FieldDescriptor, rule: Rule) -> bool:
        if field.is_repeated:
            container = getattr(message, field.name)
            values = list(container)
            fixed = [self.fix(rule, v) for v in values]
            if fixed == values:
                return False
            del container[:]
            container.extend(fixed)
            return True
        value = getattr(message, field.name)
        fixed_value = self.fix(rule, value)
        if fixed_value == value:
            return False
        setattr(message, field.name, fixed_value)
        return True

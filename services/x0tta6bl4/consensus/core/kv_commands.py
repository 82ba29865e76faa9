"""Commands of the key-value state machine and their compact byte encoding.

A command, wrapped in a :class:`Request` that may carry a client :class:`RequestId`, is the
payload of one Raft log entry. :func:`encode_request` and :func:`decode_request` are exact
inverses; decoding rejects anything else (unknown tags, truncation, trailing bytes) with a
:class:`~.kv_errors.DecodeError`.

:func:`validate_command` performs every check that does not depend on the store's state
(empty or oversized keys and values, bad ranges, duplicate writes in a transaction). A
proposer calls it before proposing; the state machine calls it again before applying.

Encoding (version 1): ``0x01``, request-id flag (0 | 1 client_id seq), tag, fields; integers
are varints, byte strings are length-prefixed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .kv_codec import Reader, Writer
from .kv_errors import DecodeError, InvalidArgument
from .kv_types import KvLimits

FORMAT_VERSION = 1
MAX_LEASE_TTL = 9_000_000_000  # seconds, etcd's bound
MAX_INT64 = (1 << 63) - 1
"""Lease ids, revisions, limits and compared numbers travel in the API's int64 fields: a
command may carry none larger, so no result it produces is unrepresentable."""


@dataclass(frozen=True, slots=True)
class RequestId:
    """Identifies a client write so a retry applies once. ``seq`` increases per client."""

    client_id: int
    seq: int


@dataclass(frozen=True, slots=True)
class Put:
    """Set ``key`` to ``value``, optionally bound to ``lease`` (0 = none)."""

    key: bytes
    value: bytes
    lease: int = 0
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRange:
    """Delete ``key``, or every key starting with ``key`` when ``prefix`` is set."""

    key: bytes
    prefix: bool = False
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Range:
    """Read ``key`` (or the ``prefix``) at ``revision`` (0 = current), at most ``limit`` keys."""

    key: bytes
    prefix: bool = False
    revision: int = 0
    limit: int = 0


class CompareTarget(enum.IntEnum):
    """What a :class:`Compare` looks at."""

    VALUE = 0
    VERSION = 1
    CREATE_REVISION = 2
    MOD_REVISION = 3


class CompareOp(enum.IntEnum):
    """How a :class:`Compare` compares: ``actual <op> expected``."""

    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


@dataclass(frozen=True, slots=True)
class Compare:
    """A guard of a :class:`Txn` on one key.

    For ``VALUE`` the expected value is ``value``; for the other targets it is ``number``.
    A missing key has version, create and mod revision 0; a ``VALUE`` compare on a missing key
    is always false.
    """

    key: bytes
    target: CompareTarget
    op: CompareOp
    value: bytes = b""
    number: int = 0


TxnOp = Put | DeleteRange | Range


@dataclass(frozen=True, slots=True)
class Txn:
    """If every compare holds, run ``success`` else ``failure``, atomically at one revision.

    Operations run in order; a range sees the writes of earlier operations. Within one branch a
    key may be written at most once (a put may not touch a key another write also touches).
    """

    compares: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """Create lease ``lease_id`` (0 = let the state machine choose) with ``ttl`` seconds."""

    lease_id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    """Delete the lease and every key bound to it. Unknown ids are ``NotFound``."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class LeaseKeepAlive:
    """Renew the lease: its remaining TTL becomes its full TTL. Unknown ids are ``NotFound``."""

    lease_id: int


@dataclass(frozen=True, slots=True)
class LeaseCheckpoint:
    """Record the leader's view of a lease's remaining time, so a new leader can resume it.

    Unknown ids are ignored (the lease may have expired in between).
    """

    lease_id: int
    remaining_ms: int


@dataclass(frozen=True, slots=True)
class LeaseExpire:
    """The leader decided the lease's time ran out: delete it and its keys.

    Unlike :class:`LeaseRevoke`, an unknown id is a no-op: expiry may be proposed twice.
    """

    lease_id: int


@dataclass(frozen=True, slots=True)
class Compact:
    """Discard history older than ``revision``; reads at earlier revisions then fail."""

    revision: int


Command = (
    Put
    | DeleteRange
    | Range
    | Txn
    | LeaseGrant
    | LeaseRevoke
    | LeaseKeepAlive
    | LeaseCheckpoint
    | LeaseExpire
    | Compact
)


@dataclass(frozen=True, slots=True)
class Request:
    """One log entry payload: a command and, for retried writes, the client's request id."""

    command: Command
    request_id: RequestId | None = None


class _Tag(enum.IntEnum):
    PUT = 1
    DELETE_RANGE = 2
    RANGE = 3
    TXN = 4
    LEASE_GRANT = 5
    LEASE_REVOKE = 6
    LEASE_KEEPALIVE = 7
    LEASE_CHECKPOINT = 8
    LEASE_EXPIRE = 9
    COMPACT = 10


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_request(command: Command, request_id: RequestId | None = None) -> bytes:
    """The log entry payload for ``command``."""
    w = Writer()
    w.uint(FORMAT_VERSION)
    if request_id is None:
        w.boolean(False)
    else:
        w.boolean(True).uint(request_id.client_id).uint(request_id.seq)
    _encode_command(w, command)
    return w.getvalue()


def _encode_command(w: Writer, cmd: Command) -> None:
    match cmd:
        case Put() | DeleteRange() | Range():
            _encode_op(w, cmd)
        case Txn(compares=compares, success=success, failure=failure):
            w.uint(_Tag.TXN).uint(len(compares))
            for c in compares:
                w.blob(c.key).uint(c.target).uint(c.op)
                if c.target is CompareTarget.VALUE:
                    w.blob(c.value)
                else:
                    w.uint(c.number)
            for branch in (success, failure):
                w.uint(len(branch))
                for op in branch:
                    _encode_op(w, op)
        case LeaseGrant(lease_id=lease_id, ttl=ttl):
            w.uint(_Tag.LEASE_GRANT).uint(lease_id).uint(ttl)
        case LeaseRevoke(lease_id=lease_id):
            w.uint(_Tag.LEASE_REVOKE).uint(lease_id)
        case LeaseKeepAlive(lease_id=lease_id):
            w.uint(_Tag.LEASE_KEEPALIVE).uint(lease_id)
        case LeaseCheckpoint(lease_id=lease_id, remaining_ms=remaining_ms):
            w.uint(_Tag.LEASE_CHECKPOINT).uint(lease_id).uint(remaining_ms)
        case LeaseExpire(lease_id=lease_id):
            w.uint(_Tag.LEASE_EXPIRE).uint(lease_id)
        case Compact(revision=revision):
            w.uint(_Tag.COMPACT).uint(revision)


def _encode_op(w: Writer, op: TxnOp) -> None:
    match op:
        case Put(key=key, value=value, lease=lease, prev_kv=prev_kv):
            w.uint(_Tag.PUT).blob(key).blob(value).uint(lease).boolean(prev_kv)
        case DeleteRange(key=key, prefix=prefix, prev_kv=prev_kv):
            w.uint(_Tag.DELETE_RANGE).blob(key).boolean(prefix).boolean(prev_kv)
        case Range(key=key, prefix=prefix, revision=revision, limit=limit):
            w.uint(_Tag.RANGE).blob(key).boolean(prefix).uint(revision).uint(limit)


# ---------------------------------------------------------------------------------------------
# Decoding

_MAX_ITEMS = 1 << 20


def decode_request(data: bytes) -> Request:
    """Parse a log entry payload; raise :class:`DecodeError` if it is malformed."""
    r = Reader(data)
    version = r.uint("version")
    if version != FORMAT_VERSION:
        raise DecodeError("version", f"unsupported command format version {version}")
    request_id = None
    if r.boolean("request_id"):
        request_id = RequestId(r.uint("request_id.client_id"), r.uint("request_id.seq"))
    command = _decode_command(r)
    r.expect_end()
    return Request(command=command, request_id=request_id)


def _decode_tag(r: Reader, field: str) -> _Tag:
    raw = r.uint(field)
    try:
        return _Tag(raw)
    except ValueError:
        raise DecodeError(field, f"unknown command tag {raw}") from None


def _decode_command(r: Reader) -> Command:
    tag = _decode_tag(r, "command")
    match tag:
        case _Tag.TXN:
            compares = tuple(
                _decode_compare(r, f"txn.compare[{i}]")
                for i in range(r.count("txn.compare", _MAX_ITEMS))
            )
            success = _decode_branch(r, "txn.success")
            failure = _decode_branch(r, "txn.failure")
            return Txn(compares, success, failure)
        case _Tag.LEASE_GRANT:
            return LeaseGrant(r.uint("lease_grant.id"), r.uint("lease_grant.ttl"))
        case _Tag.LEASE_REVOKE:
            return LeaseRevoke(r.uint("lease_revoke.id"))
        case _Tag.LEASE_KEEPALIVE:
            return LeaseKeepAlive(r.uint("lease_keepalive.id"))
        case _Tag.LEASE_CHECKPOINT:
            return LeaseCheckpoint(
                r.uint("lease_checkpoint.id"), r.uint("lease_checkpoint.remaining_ms")
            )
        case _Tag.LEASE_EXPIRE:
            return LeaseExpire(r.uint("lease_expire.id"))
        case _Tag.COMPACT:
            return Compact(r.uint("compact.revision"))
        case _:
            return _decode_op_body(r, tag, "")


def _decode_branch(r: Reader, field: str) -> tuple[TxnOp, ...]:
    n = r.count(field, _MAX_ITEMS)
    ops: list[TxnOp] = []
    for i in range(n):
        name = f"{field}[{i}]"
        ops.append(_decode_op_body(r, _decode_tag(r, name), f"{name}."))
    return tuple(ops)


def _decode_op_body(r: Reader, tag: _Tag, prefix: str) -> TxnOp:
    match tag:
        case _Tag.PUT:
            f = f"{prefix}put"
            return Put(
                r.blob(f"{f}.key"),
                r.blob(f"{f}.value"),
                r.uint(f"{f}.lease"),
                r.boolean(f"{f}.prev_kv"),
            )
        case _Tag.DELETE_RANGE:
            f = f"{prefix}delete_range"
            return DeleteRange(
                r.blob(f"{f}.key"), r.boolean(f"{f}.prefix"), r.boolean(f"{f}.prev_kv")
            )
        case _Tag.RANGE:
            f = f"{prefix}range"
            return Range(
                r.blob(f"{f}.key"),
                r.boolean(f"{f}.prefix"),
                r.uint(f"{f}.revision"),
                r.uint(f"{f}.limit"),
            )
        case _:
            raise DecodeError(f"{prefix}op", f"command tag {tag.name} is not an operation")


def _decode_compare(r: Reader, field: str) -> Compare:
    key = r.blob(f"{field}.key")
    raw_target = r.uint(f"{field}.target")
    raw_op = r.uint(f"{field}.op")
    try:
        target = CompareTarget(raw_target)
    except ValueError:
        raise DecodeError(f"{field}.target", f"unknown target {raw_target}") from None
    try:
        op = CompareOp(raw_op)
    except ValueError:
        raise DecodeError(f"{field}.op", f"unknown operator {raw_op}") from None
    if target is CompareTarget.VALUE:
        return Compare(key, target, op, value=r.blob(f"{field}.value"))
    return Compare(key, target, op, number=r.uint(f"{field}.number"))


# ---------------------------------------------------------------------------------------------
# Stateless validation


def validate_command(command: Command, limits: KvLimits) -> None:
    """Raise :class:`InvalidArgument` naming the field if ``command`` breaks a static rule."""
    match command:
        case Put() | DeleteRange() | Range():
            _validate_op(command, limits, op_field(command, ""))
        case Txn():
            _validate_txn(command, limits)
        case LeaseGrant(ttl=ttl):
            if ttl <= 0 or ttl > MAX_LEASE_TTL:
                raise InvalidArgument(
                    "lease_grant.ttl", f"must be between 1 and {MAX_LEASE_TTL} seconds, got {ttl}"
                )
            _check_i64("lease_grant.id", command.lease_id)
        case (
            LeaseRevoke(lease_id=lease_id)
            | LeaseKeepAlive(lease_id=lease_id)
            | LeaseExpire(lease_id=lease_id)
        ):
            if lease_id <= 0:
                name = {LeaseRevoke: "lease_revoke", LeaseKeepAlive: "lease_keepalive"}.get(
                    type(command), "lease_expire"
                )
                raise InvalidArgument(f"{name}.id", "must be a positive lease id")
        case LeaseCheckpoint(lease_id=lease_id, remaining_ms=remaining_ms):
            if lease_id <= 0:
                raise InvalidArgument("lease_checkpoint.id", "must be a positive lease id")
            _check_u64("lease_checkpoint.remaining_ms", remaining_ms)
        case Compact(revision=revision):
            if revision <= 0:
                raise InvalidArgument("compact.revision", f"must be positive, got {revision}")


def _check_u64(field: str, value: int) -> None:
    if value < 0 or value >= 1 << 64:
        raise InvalidArgument(field, f"must be an unsigned 64-bit integer, got {value}")


def _check_i64(field: str, value: int) -> None:
    if value < 0 or value > MAX_INT64:
        raise InvalidArgument(field, f"must be between 0 and 2^63-1, got {value}")


def op_field(op: TxnOp, prefix: str) -> str:
    """The field name of an operation in errors: ``<prefix>put`` / ``delete_range`` / ``range``."""
    if isinstance(op, Put):
        return f"{prefix}put"
    if isinstance(op, DeleteRange):
        return f"{prefix}delete_range"
    return f"{prefix}range"


def validate_key(field: str, key: bytes, limits: KvLimits, *, allow_empty: bool = False) -> None:
    """Raise :class:`InvalidArgument` if ``key`` is empty (unless allowed) or too long."""
    if not key and not allow_empty:
        raise InvalidArgument(field, "key must not be empty")
    if len(key) > limits.max_key_bytes:
        raise InvalidArgument(
            field, f"key is {len(key)} bytes, the limit is {limits.max_key_bytes} bytes"
        )


def _validate_op(op: TxnOp, limits: KvLimits, field: str) -> None:
    match op:
        case Put(key=key, value=value, lease=lease):
            validate_key(f"{field}.key", key, limits)
            if len(value) > limits.max_value_bytes:
                raise InvalidArgument(
                    f"{field}.value",
                    f"value is {len(value)} bytes, the limit is {limits.max_value_bytes} bytes",
                )
            _check_i64(f"{field}.lease", lease)
        case DeleteRange(key=key, prefix=prefix):
            validate_key(f"{field}.key", key, limits, allow_empty=prefix)
        case Range(key=key, prefix=prefix, revision=revision, limit=limit):
            validate_key(f"{field}.key", key, limits, allow_empty=prefix)
            _check_i64(f"{field}.revision", revision)
            _check_i64(f"{field}.limit", limit)


def _validate_txn(txn: Txn, limits: KvLimits) -> None:
    if len(txn.compares) > limits.max_txn_ops:
        raise InvalidArgument(
            "txn.compare", f"{len(txn.compares)} compares exceed the limit of {limits.max_txn_ops}"
        )
    for i, c in enumerate(txn.compares):
        field = f"txn.compare[{i}]"
        validate_key(f"{field}.key", c.key, limits)
        if c.target is CompareTarget.VALUE and len(c.value) > limits.max_value_bytes:
            raise InvalidArgument(f"{field}.value", "compare value exceeds the value size limit")
        if c.target is not CompareTarget.VALUE:
            _check_i64(f"{field}.number", c.number)
    for name, branch in (("txn.success", txn.success), ("txn.failure", txn.failure)):
        if len(branch) > limits.max_txn_ops:
            raise InvalidArgument(
                name, f"{len(branch)} operations exceed the limit of {limits.max_txn_ops}"
            )
        for i, op in enumerate(branch):
            _validate_op(op, limits, op_field(op, f"{name}[{i}]."))
        _check_disjoint_writes(name, branch)


def _check_disjoint_writes(name: str, branch: Sequence[TxnOp]) -> None:
    """A put may not share its key with any other write of the same branch."""
    puts: dict[bytes, int] = {}
    deletes: list[tuple[int, DeleteRange]] = []
    for i, op in enumerate(branch):
        if isinstance(op, Put):
            if op.key in puts:
                raise InvalidArgument(
                    f"{name}[{i}].put.key", f"duplicate key: also written by {name}[{puts[op.key]}]"
                )
            puts[op.key] = i
        elif isinstance(op, DeleteRange):
            deletes.append((i, op))
    for key, i in puts.items():
        for j, d in deletes:
            if key == d.key or (d.prefix and key.startswith(d.key)):
                raise InvalidArgument(f"{name}[{i}].put.key", f"key is also deleted by {name}[{j}]")

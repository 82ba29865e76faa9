"""Typed values of the consensus KV API: what the client returns, and builders for the
compares and operations of a transaction.

The results are frozen dataclasses converted from the protobuf responses once, so callers
never handle ``kv_pb2`` messages or their zero-value conventions (``found``, empty
``prev_kv``). Compares take an operator as text: ``"="``, ``"!="``, ``"<"``, ``">"``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from x0tta6bl4.consensus.v1 import kv_pb2


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key; ``revision`` is the store revision of the change."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeResult:
    revision: int
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool


OpResult = PutResult | DeleteResult | RangeResult


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int
    responses: tuple[OpResult, ...]


def kv_of(pb: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(pb.key, pb.value, pb.create_revision, pb.mod_revision, pb.version, pb.lease)


def event_of(pb: kv_pb2.Event) -> Event:
    kind = EventType.DELETE if pb.type == kv_pb2.Event.EVENT_TYPE_DELETE else EventType.PUT
    return Event(kind, kv_of(pb.kv), kv_of(pb.prev_kv) if pb.HasField("prev_kv") else None)


def put_result(pb: kv_pb2.PutResponse) -> PutResult:
    return PutResult(pb.header.revision, kv_of(pb.prev_kv) if pb.HasField("prev_kv") else None)


def delete_result(pb: kv_pb2.DeleteResponse) -> DeleteResult:
    return DeleteResult(pb.header.revision, pb.deleted, tuple(map(kv_of, pb.prev_kvs)))


def range_result(pb: kv_pb2.RangeResponse) -> RangeResult:
    return RangeResult(pb.header.revision, tuple(map(kv_of, pb.kvs)), pb.count, pb.more)


def txn_result(pb: kv_pb2.TxnResponse) -> TxnResult:
    out: list[OpResult] = []
    for r in pb.responses:
        which = r.WhichOneof("result")
        if which == "put":
            out.append(put_result(r.put))
        elif which == "delete":
            out.append(delete_result(r.delete))
        else:
            out.append(range_result(r.range))
    return TxnResult(pb.succeeded, pb.header.revision, tuple(out))


_OPERATORS = {
    "=": kv_pb2.Compare.OPERATOR_EQUAL,
    "!=": kv_pb2.Compare.OPERATOR_NOT_EQUAL,
    "<": kv_pb2.Compare.OPERATOR_LESS,
    ">": kv_pb2.Compare.OPERATOR_GREATER,
}


def _operator(op: str) -> kv_pb2.Compare.Operator.ValueType:
    try:
        return _OPERATORS[op]
    except KeyError:
        allowed = sorted(_OPERATORS)
        raise ValueError(f"compare operator must be one of {allowed}, got {op!r}") from None


def value_is(key: bytes, op: str, value: bytes) -> kv_pb2.Compare:
    return kv_pb2.Compare(key=key, operator=_operator(op), value=value)


def version_is(key: bytes, op: str, version: int) -> kv_pb2.Compare:
    """``version_is(key, "=", 0)``: the key does not exist."""
    return kv_pb2.Compare(key=key, operator=_operator(op), version=version)


def create_revision_is(key: bytes, op: str, revision: int) -> kv_pb2.Compare:
    return kv_pb2.Compare(key=key, operator=_operator(op), create_revision=revision)


def mod_revision_is(key: bytes, op: str, revision: int) -> kv_pb2.Compare:
    return kv_pb2.Compare(key=key, operator=_operator(op), mod_revision=revision)


def put_op(key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> kv_pb2.TxnOp:
    return kv_pb2.TxnOp(put=kv_pb2.TxnPut(key=key, value=value, lease=lease, prev_kv=prev_kv))


def delete_op(key: bytes, *, prefix: bool = False, prev_kv: bool = False) -> kv_pb2.TxnOp:
    return kv_pb2.TxnOp(delete=kv_pb2.TxnDelete(key=key, prefix=prefix, prev_kv=prev_kv))


def range_op(key: bytes, *, prefix: bool = False, limit: int = 0) -> kv_pb2.TxnOp:
    return kv_pb2.TxnOp(range=kv_pb2.TxnRange(key=key, prefix=prefix, limit=limit))

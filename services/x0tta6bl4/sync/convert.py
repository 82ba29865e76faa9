"""Between the sync API's protobuf messages and the core's values.

Every rejection is an :class:`~x0tta6bl4.platform.errors.InvalidArgument` naming the request
field (``operation.assign.value``, ``type.kind``, ``context``...), raised before anything is
applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from x0tta6bl4.platform.errors import InvalidArgument
from x0tta6bl4.sync.core import (
    Add,
    Assign,
    CausalContext,
    Clear,
    Decrement,
    Disable,
    DWFlag,
    Enable,
    EWFlag,
    GCounter,
    Increment,
    InvalidOperation,
    LWWRegister,
    MapRemove,
    MapUpdate,
    MVRegister,
    Op,
    ORMap,
    PNCounter,
    Remove,
    Scalar,
    TypeSpec,
    TypeTag,
    decode_context,
)
from x0tta6bl4.sync.core.sets import AWSet, RWSet
from x0tta6bl4.sync.core.values import INT_MAX, INT_MIN
from x0tta6bl4.sync.v1 import sync_pb2

if TYPE_CHECKING:
    from x0tta6bl4.sync.core.spec import CRDT

MAX_OP_NESTING = 16

# Core field names of a rejected operation, and the request field each comes from.
_OP_FIELDS = {
    "amount": "operation.amount",
    "value": "operation.assign.value",
    "element": "operation.element",
}


def invalid(err: InvalidOperation) -> InvalidArgument:
    """The API error for a core rejection, naming the request field."""
    field = err.field
    if field.startswith("op"):
        field = "operation" + field[2:]
    elif field.startswith("map["):
        field = f"operation.{field}"
    else:
        field = _OP_FIELDS.get(field, field)
    return InvalidArgument(field, err.reason)


def type_from_proto(t: sync_pb2.CrdtType, field: str = "type", depth: int = 0) -> TypeSpec:
    if depth > 8:
        raise InvalidArgument(field, "types nested too deeply")
    try:
        tag = TypeTag(t.kind)
    except ValueError:
        raise InvalidArgument(f"{field}.kind", f"unknown type {t.kind}") from None
    value = None
    if t.HasField("value"):
        value = type_from_proto(t.value, f"{field}.value", depth + 1)
    try:
        return TypeSpec(tag, value)
    except InvalidOperation as err:
        raise InvalidArgument(f"{field}{err.field[4:]}", err.reason) from None


def type_to_proto(spec: TypeSpec) -> sync_pb2.CrdtType:
    out = sync_pb2.CrdtType(kind=sync_pb2.CrdtKind.ValueType(int(spec.tag)))
    if spec.value is not None:
        out.value.CopyFrom(type_to_proto(spec.value))
    return out


def scalar_from_proto(s: sync_pb2.Scalar, field: str) -> Scalar:
    kind = s.WhichOneof("kind")
    if kind == "text":
        return s.text
    if kind == "data":
        return s.data
    if kind == "integer":
        return s.integer
    raise InvalidArgument(field, "a value (text, data or integer) is required")


def scalar_to_proto(v: Scalar) -> sync_pb2.Scalar:
    if isinstance(v, str):
        return sync_pb2.Scalar(text=v)
    if isinstance(v, bytes):
        return sync_pb2.Scalar(data=v)
    return sync_pb2.Scalar(integer=v)


def context_arg(raw: bytes, field: str) -> CausalContext:
    """An encoded causal context from a request field; INVALID_ARGUMENT naming ``field``."""
    try:
        return decode_context(raw)
    except InvalidOperation as err:
        raise InvalidArgument(field, err.reason if err.field == "context" else str(err)) from None


def context_from_proto(raw: bytes) -> CausalContext | None:
    """A client's optional ``context`` (empty: none)."""
    return context_arg(raw, "context") if raw else None


def op_from_proto(
    op: sync_pb2.Operation, ctx: CausalContext | None, field: str = "operation", depth: int = 0
) -> Op:
    if depth > MAX_OP_NESTING:
        raise InvalidArgument(field, "operations nested too deeply")
    kind = op.WhichOneof("op")
    if kind is None:
        raise InvalidArgument(field, "an operation is required")
    f = f"{field}.{kind}"
    if kind == "increment":
        return Increment(op.increment.amount or 1)
    if kind == "decrement":
        return Decrement(op.decrement.amount or 1)
    if kind == "assign":
        return Assign(scalar_from_proto(op.assign.value, f"{f}.value"), ctx)
    if kind == "clear":
        return Clear(ctx)
    if kind == "enable":
        return Enable(ctx)
    if kind == "disable":
        return Disable(ctx)
    if kind == "add":
        return Add(scalar_from_proto(op.add.element, f"{f}.element"))
    if kind == "remove":
        return Remove(scalar_from_proto(op.remove.element, f"{f}.element"), ctx)
    if kind == "map_update":
        if not op.map_update.key:
            raise InvalidArgument(f"{f}.key", "a map key is required")
        inner = op_from_proto(op.map_update.operation, ctx, f"{f}.operation", depth + 1)
        return MapUpdate(op.map_update.key, inner)
    if kind == "map_remove":
        if not op.map_remove.key:
            raise InvalidArgument(f"{f}.key", "a map key is required")
        return MapRemove(op.map_remove.key, ctx)
    raise InvalidArgument(field, f"unknown operation {kind}")  # pragma: no cover


def value_to_proto(v: CRDT) -> sync_pb2.Value:
    if isinstance(v, GCounter | PNCounter):
        total = v.value
        if INT_MIN <= total <= INT_MAX:
            return sync_pb2.Value(counter=total)
        return sync_pb2.Value(big_counter=str(total))  # see Value.counter in sync.proto
    if isinstance(v, LWWRegister):
        current = v.value
        return sync_pb2.Value(
            register=sync_pb2.Scalars(values=[] if current is None else [scalar_to_proto(current)])
        )
    if isinstance(v, MVRegister):
        return sync_pb2.Value(
            register=sync_pb2.Scalars(values=[scalar_to_proto(x) for x in v.values])
        )
    if isinstance(v, EWFlag | DWFlag):
        return sync_pb2.Value(flag=v.value)
    if isinstance(v, AWSet | RWSet):
        return sync_pb2.Value(
            elements=sync_pb2.Scalars(values=[scalar_to_proto(x) for x in v.elements])
        )
    if isinstance(v, ORMap):
        return sync_pb2.Value(
            map=sync_pb2.MapValue(
                entries=[sync_pb2.MapEntry(key=k, value=value_to_proto(x)) for k, x in v.items()]
            )
        )
    raise TypeError(type(v).__name__)  # pragma: no cover

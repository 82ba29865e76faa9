"""KVService: the client API of the replicated key-value store.

Requests are checked here first (every static rule of the state machine, with the proto
field names in errors: ``key: key must not be empty``), then writes go through the Raft log
(:meth:`RaftRuntime.propose`) and reads through ReadIndex (:meth:`RaftRuntime.read_barrier`)
unless ``serializable`` is asked for.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from x0tta6bl4.consensus.core import kv_commands as cmd
from x0tta6bl4.consensus.core.kv_errors import ErrorResult, KvError
from x0tta6bl4.consensus.core.kv_results import (
    DeleteRangeResult,
    LeaseResult,
    Outcome,
    PutResult,
    RangeResult,
    RevisionResult,
    TxnResult,
)
from x0tta6bl4.consensus.core.kv_types import Event, EventType, KeyValue
from x0tta6bl4.consensus.key_access import KeyAccess
from x0tta6bl4.consensus.runtime import RaftRuntime
from x0tta6bl4.consensus.v1 import kv_pb2, kv_pb2_grpc
from x0tta6bl4.platform.errors import InvalidArgument, ServiceError, Unavailable
from x0tta6bl4.platform.request_fields import non_negative, positive

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 30.0
_COMMAND_PREFIX = re.compile(
    r"^(put|delete_range|range|txn|lease_grant|lease_revoke|lease_keepalive)\."
)


class KvServiceError(ServiceError):
    """A refusal of the state machine, with its gRPC code and the field it names."""

    def __init__(self, code: grpc.StatusCode, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.code = code
        self.field = field


def _api_field(field: str, rpc: str) -> str:
    """State-machine field paths (``put.key``, ``txn.success[0].delete_range.key``) as proto
    field paths of the RPC (``key``, ``success[0].delete.key``)."""
    name = _COMMAND_PREFIX.sub("", field, count=1)
    name = name.replace("delete_range", "delete")
    if rpc == "LeaseGrant" and name == "ttl":
        return "ttl_seconds"
    if rpc == "Range" and name == "key":
        return "prefix"
    if rpc == "Watch":
        return name.removeprefix("watch.")
    return name


def _raise_error(error: ErrorResult | KvError, rpc: str) -> None:
    code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.UNKNOWN)
    raise KvServiceError(code, _api_field(error.field, rpc), error.problem)


def _timeout(context: aio.ServicerContext[Any, Any]) -> float:
    remaining = context.time_remaining()
    if remaining is None:
        return DEFAULT_TIMEOUT_S
    return max(0.01, min(MAX_TIMEOUT_S, remaining - 0.02))


def _request_id(has: bool, rid: kv_pb2.RequestId) -> cmd.RequestId | None:
    if not has:
        return None
    if rid.client_id == 0:
        raise InvalidArgument("request_id.client_id", "must be positive")
    if rid.seq == 0:
        raise InvalidArgument("request_id.seq", "must be positive")
    return cmd.RequestId(rid.client_id, rid.seq)


def kv_to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )


def event_to_pb(event: Event, prev_kv: bool) -> kv_pb2.Event:
    pb = kv_pb2.Event(
        type=kv_pb2.Event.EVENT_TYPE_PUT
        if event.type is EventType.PUT
        else kv_pb2.Event.EVENT_TYPE_DELETE,
        kv=kv_to_pb(event.kv),
    )
    if prev_kv and event.prev_kv is not None:
        pb.prev_kv.CopyFrom(kv_to_pb(event.prev_kv))
    return pb


_OPERATORS = {
    kv_pb2.Compare.OPERATOR_EQUAL: cmd.CompareOp.EQUAL,
    kv_pb2.Compare.OPERATOR_NOT_EQUAL: cmd.CompareOp.NOT_EQUAL,
    kv_pb2.Compare.OPERATOR_LESS: cmd.CompareOp.LESS,
    kv_pb2.Compare.OPERATOR_GREATER: cmd.CompareOp.GREATER,
}
_NUMBER_TARGETS = {
    "version": cmd.CompareTarget.VERSION,
    "create_revision": cmd.CompareTarget.CREATE_REVISION,
    "mod_revision": cmd.CompareTarget.MOD_REVISION,
}


def _compare(c: kv_pb2.Compare, field: str) -> cmd.Compare:
    op = _OPERATORS.get(c.operator)
    if op is None:
        raise InvalidArgument(f"{field}.operator", "must be EQUAL, NOT_EQUAL, LESS or GREATER")
    which = c.WhichOneof("target")
    if which is None:
        raise InvalidArgument(
            f"{field}.target", "set one of value, version, create_revision, mod_revision"
        )
    if which == "value":
        return cmd.Compare(c.key, cmd.CompareTarget.VALUE, op, value=c.value)
    number = non_negative(f"{field}.{which}", getattr(c, which))
    return cmd.Compare(c.key, _NUMBER_TARGETS[which], op, number=number)


def _txn_op(op: kv_pb2.TxnOp, field: str) -> cmd.TxnOp:
    which = op.WhichOneof("op")
    if which == "put":
        p = op.put
        return cmd.Put(p.key, p.value, non_negative(f"{field}.put.lease", p.lease), p.prev_kv)
    if which == "delete":
        d = op.delete
        return cmd.DeleteRange(d.key, d.prefix, d.prev_kv)
    if which == "range":
        r = op.range
        return cmd.Range(
            r.key,
            r.prefix,
            non_negative(f"{field}.range.revision", r.revision),
            non_negative(f"{field}.range.limit", r.limit),
        )
    raise InvalidArgument(f"{field}.op", "set one of put, delete, range")


# What each write command the servicer proposes answers with.
_RESULT_OF: dict[type, type] = {
    cmd.Put: PutResult,
    cmd.DeleteRange: DeleteRangeResult,
    cmd.Txn: TxnResult,
    cmd.LeaseGrant: LeaseResult,
    cmd.LeaseKeepAlive: LeaseResult,
    cmd.LeaseRevoke: RevisionResult,
}


class KvServicer(kv_pb2_grpc.KVServiceServicer):
    def __init__(self, runtime: RaftRuntime, access: KeyAccess | None = None) -> None:
        self._rt = runtime
        self._access = access or KeyAccess(None)

    def _header(self, revision: int) -> kv_pb2.ResponseHeader:
        return kv_pb2.ResponseHeader(
            member_id=self._rt.id, revision=revision, raft_term=self._rt.node.term
        )

    def _validate(self, command: cmd.Command, rpc: str) -> None:
        """Static rules first (so bad input is named as such), then the caller's key-range
        permissions for every key the command touches."""
        try:
            cmd.validate_command(command, self._rt.kv.limits)
        except KvError as err:
            _raise_error(err, rpc)
        self._access.check(command)

    def _check_lease(self, lease_id: int) -> None:
        info = self._rt.kv.lease(lease_id)
        if info is not None:
            self._access.check_lease_keys(lease_id, info.keys)

    async def _write(
        self,
        command: cmd.Command,
        request_id: cmd.RequestId | None,
        rpc: str,
        context: aio.ServicerContext[Any, Any],
    ) -> Outcome:
        self._validate(command, rpc)
        try:
            outcome = await self._rt.propose(cmd.Request(command, request_id), _timeout(context))
        except ServiceError:
            context.set_trailing_metadata(self._rt.leader_metadata())
            raise
        if isinstance(outcome, ErrorResult):
            _raise_error(outcome, rpc)
        if request_id is not None and not isinstance(outcome, _RESULT_OF[type(command)]):
            # The store answers a known request id with what that request got; here that
            # was another kind of write, so this one was not applied.
            raise InvalidArgument(
                "request_id",
                f"client {request_id.client_id} seq {request_id.seq} was already used for "
                f"another kind of write; a retry must repeat the same request",
            )
        return outcome

    async def _read_barrier(
        self, serializable: bool, context: aio.ServicerContext[Any, Any], max_staleness_ms: int = 0
    ) -> None:
        if max_staleness_ms > 0:
            # Bounded staleness: answer locally if this member heard from the leader lately.
            if not self._rt.follower_read_allowed(max_staleness_ms):
                context.set_trailing_metadata(self._rt.leader_metadata())
                raise Unavailable(
                    f"member {self._rt.id} has not heard from a leader within "
                    f"max_staleness_ms={max_staleness_ms}; read from the leader or without a bound"
                )
            return
        if not serializable:
            try:
                await self._rt.read_barrier(_timeout(context))
            except ServiceError:
                context.set_trailing_metadata(self._rt.leader_metadata())
                raise

    def _range(
        self, key: bytes, prefix: bool, revision: int, limit: int, rpc: str, start: bytes = b""
    ) -> RangeResult:
        try:
            return self._rt.kv.range(
                key, prefix=prefix, revision=revision, limit=limit, start=start
            )
        except KvError as err:
            _raise_error(err, rpc)
            raise AssertionError("unreachable") from None

    # -- RPCs ---------------------------------------------------------------------------------

    async def Put(
        self, request: kv_pb2.PutRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.PutResponse:
        command = cmd.Put(
            request.key, request.value, non_negative("lease", request.lease), request.prev_kv
        )
        rid = _request_id(request.HasField("request_id"), request.request_id)
        result = await self._write(command, rid, "Put", context)
        assert isinstance(result, PutResult)
        response = kv_pb2.PutResponse(header=self._header(result.revision))
        if result.prev_kv is not None:
            response.prev_kv.CopyFrom(kv_to_pb(result.prev_kv))
        return response

    async def Get(
        self, request: kv_pb2.GetRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.GetResponse:
        revision = non_negative("revision", request.revision)
        self._validate(cmd.Range(request.key, False, revision, 0), "Get")
        await self._read_barrier(request.serializable, context, request.max_staleness_ms)
        result = self._range(request.key, False, revision, 0, "Get")
        response = kv_pb2.GetResponse(header=self._header(result.revision), found=bool(result.kvs))
        if result.kvs:
            response.kv.CopyFrom(kv_to_pb(result.kvs[0]))
        return response

    async def Range(
        self, request: kv_pb2.RangeRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.RangeResponse:
        revision = non_negative("revision", request.revision)
        limit = non_negative("limit", request.limit)
        self._validate(cmd.Range(request.prefix, True, revision, limit), "Range")
        if len(request.start_key) > self._rt.kv.limits.max_key_bytes:
            raise InvalidArgument(
                "start_key",
                f"is {len(request.start_key)} bytes; keys are at most "
                f"{self._rt.kv.limits.max_key_bytes}",
            )
        await self._read_barrier(request.serializable, context, request.max_staleness_ms)
        result = self._range(request.prefix, True, revision, limit, "Range", request.start_key)
        return kv_pb2.RangeResponse(
            header=self._header(result.revision),
            kvs=[kv_to_pb(kv) for kv in result.kvs],
            count=result.count,
            more=result.more,
        )

    async def Delete(
        self, request: kv_pb2.DeleteRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.DeleteResponse:
        command = cmd.DeleteRange(request.key, request.prefix, request.prev_kv)
        rid = _request_id(request.HasField("request_id"), request.request_id)
        result = await self._write(command, rid, "Delete", context)
        assert isinstance(result, DeleteRangeResult)
        return kv_pb2.DeleteResponse(
            header=self._header(result.revision),
            deleted=result.deleted,
            prev_kvs=[kv_to_pb(kv) for kv in result.prev_kvs],
        )

    async def Txn(
        self, request: kv_pb2.TxnRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.TxnResponse:
        command = cmd.Txn(
            compares=tuple(_compare(c, f"compare[{i}]") for i, c in enumerate(request.compare)),
            success=tuple(_txn_op(op, f"success[{i}]") for i, op in enumerate(request.success)),
            failure=tuple(_txn_op(op, f"failure[{i}]") for i, op in enumerate(request.failure)),
        )
        rid = _request_id(request.HasField("request_id"), request.request_id)
        result = await self._write(command, rid, "Txn", context)
        assert isinstance(result, TxnResult)
        responses: list[kv_pb2.TxnOpResult] = []
        for r in result.responses:
            header = self._header(r.revision)
            if isinstance(r, PutResult):
                put = kv_pb2.PutResponse(header=header)
                if r.prev_kv is not None:
                    put.prev_kv.CopyFrom(kv_to_pb(r.prev_kv))
                responses.append(kv_pb2.TxnOpResult(put=put))
            elif isinstance(r, DeleteRangeResult):
                responses.append(
                    kv_pb2.TxnOpResult(
                        delete=kv_pb2.DeleteResponse(
                            header=header,
                            deleted=r.deleted,
                            prev_kvs=[kv_to_pb(kv) for kv in r.prev_kvs],
                        )
                    )
                )
            else:
                responses.append(
                    kv_pb2.TxnOpResult(
                        range=kv_pb2.RangeResponse(
                            header=header,
                            kvs=[kv_to_pb(kv) for kv in r.kvs],
                            count=r.count,
                            more=r.more,
                        )
                    )
                )
        return kv_pb2.TxnResponse(
            header=self._header(result.revision), succeeded=result.succeeded, responses=responses
        )

    async def Watch(
        self, request: kv_pb2.WatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[kv_pb2.WatchResponse]:
        start = non_negative("start_revision", request.start_revision)
        self._validate(cmd.Range(request.key, request.prefix, 0, 0), "Watch")
        kv = self._rt.kv
        hub = self._rt.hub
        # Reading the history and registering happen with no await in between, so no applied
        # change can fall between them.
        history: list[Event] = []
        if start:
            try:
                history = kv.events_since(start, request.key, prefix=request.prefix)
            except KvError as err:
                _raise_error(err, "Watch")
        watcher = hub.add(request.key, request.prefix)
        try:
            yield kv_pb2.WatchResponse(header=self._header(kv.revision), created=True)
            if history:
                yield kv_pb2.WatchResponse(
                    header=self._header(history[-1].revision),
                    events=[event_to_pb(e, request.prev_kv) for e in history],
                )
            while True:
                events = await watcher.queue.get()
                if events is None:
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE,
                        f"watch ended ({watcher.end_reason}); re-watch from the last revision "
                        "seen + 1",
                    )
                    return
                watcher.pending -= len(events)
                if events[0].revision < start:
                    # etcd's semantics: nothing below the start revision, also for a start
                    # in the future (the watch waits until the store gets there).
                    events = [e for e in events if e.revision >= start]
                    if not events:
                        continue
                yield kv_pb2.WatchResponse(
                    header=self._header(events[-1].revision),
                    events=[event_to_pb(e, request.prev_kv) for e in events],
                )
        finally:
            hub.remove(watcher)

    async def LeaseGrant(
        self, request: kv_pb2.LeaseGrantRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.LeaseGrantResponse:
        command = cmd.LeaseGrant(non_negative("id", request.id), request.ttl_seconds)
        rid = _request_id(request.HasField("request_id"), request.request_id)
        result = await self._write(command, rid, "LeaseGrant", context)
        assert isinstance(result, LeaseResult)
        return kv_pb2.LeaseGrantResponse(
            header=self._header(result.revision), id=result.lease_id, ttl_seconds=result.ttl
        )

    async def LeaseKeepAlive(
        self, request: kv_pb2.LeaseKeepAliveRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.LeaseKeepAliveResponse:
        command = cmd.LeaseKeepAlive(positive("id", request.id))
        self._check_lease(command.lease_id)
        result = await self._write(command, None, "LeaseKeepAlive", context)
        assert isinstance(result, LeaseResult)
        return kv_pb2.LeaseKeepAliveResponse(
            header=self._header(result.revision), id=result.lease_id, ttl_seconds=result.ttl
        )

    async def LeaseRevoke(
        self, request: kv_pb2.LeaseRevokeRequest, context: aio.ServicerContext[Any, Any]
    ) -> kv_pb2.LeaseRevokeResponse:
        command = cmd.LeaseRevoke(positive("id", request.id))
        self._check_lease(command.lease_id)
        rid = _request_id(request.HasField("request_id"), request.request_id)
        result = await self._write(command, rid, "LeaseRevoke", context)
        assert isinstance(result, RevisionResult)
        return kv_pb2.LeaseRevokeResponse(header=self._header(result.revision))

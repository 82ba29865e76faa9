"""gRPC servicers of a sync replica: the client API and the replica-to-replica API.

Platform :class:`~x0tta6bl4.platform.errors.ServiceError` subclasses raised here become status
codes in the platform interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from grpc import aio

from x0tta6bl4.platform.errors import InvalidArgument
from x0tta6bl4.sync import metrics
from x0tta6bl4.sync.convert import (
    context_arg,
    context_from_proto,
    op_from_proto,
    type_from_proto,
    type_to_proto,
    value_to_proto,
)
from x0tta6bl4.sync.core import Ack, DeltaBatch, Digest, Read, Snapshot, encode_context
from x0tta6bl4.sync.core.wire import encode_event
from x0tta6bl4.sync.node import SNAPSHOT_CHUNK_BYTES, SyncNode, decode_events
from x0tta6bl4.sync.v1 import replication_pb2, replication_pb2_grpc, sync_pb2, sync_pb2_grpc


def _read_to_proto(read: Read | None) -> tuple[bool, dict[str, object]]:
    if read is None:
        return False, {}
    return True, {
        "type": type_to_proto(read.spec),
        "value": value_to_proto(read.value),
        "context": encode_context(read.context),
    }


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, node: SyncNode) -> None:
        self.node = node

    async def Update(
        self, request: sync_pb2.UpdateRequest, context: aio.ServicerContext[Any, Any]
    ) -> sync_pb2.UpdateResponse:
        if not request.key:
            raise InvalidArgument("key", "a key is required")
        spec = type_from_proto(request.type) if request.HasField("type") else None
        ctx = context_from_proto(request.context)
        if not request.HasField("operation"):
            raise InvalidArgument("operation", "an operation is required")
        op = op_from_proto(request.operation, ctx)
        event, after = await self.node.update(request.key, op, spec)
        return sync_pb2.UpdateResponse(
            dot=sync_pb2.Dot(replica=event.dot.replica, counter=event.dot.counter),
            context=encode_context(after),
        )

    async def Get(
        self, request: sync_pb2.GetRequest, context: aio.ServicerContext[Any, Any]
    ) -> sync_pb2.GetResponse:
        if not request.key:
            raise InvalidArgument("key", "a key is required")
        found, fields = _read_to_proto(self.node.get(request.key))
        return sync_pb2.GetResponse(found=found, **fields)  # type: ignore[arg-type]

    async def Watch(
        self, request: sync_pb2.WatchRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[sync_pb2.WatchResponse]:
        async for key, origin, read in self.node.watch(request.prefix):
            _, fields = _read_to_proto(read)
            yield sync_pb2.WatchResponse(key=key, origin=origin, **fields)  # type: ignore[arg-type]

    async def Stats(
        self, request: sync_pb2.StatsRequest, context: aio.ServicerContext[Any, Any]
    ) -> sync_pb2.StatsResponse:
        node, replica = self.node, self.node.replica
        peers = [
            sync_pb2.PeerStats(
                replica_id=p,
                address=node.addresses.get(p, ""),
                unacked_deltas=replica.unacked(p),
                seconds_since_exchange=node.seconds_since(p),
            )
            for p in replica.members
        ]
        return sync_pb2.StatsResponse(
            replica_id=node.id,
            peers=peers,
            keys=replica.key_count,
            log_size=replica.log_size,
            gc_collected=node.gc_collected,
            gc_dropped_events=node.gc_dropped,
            snapshots_received=node.snapshots_received,
            bootstrapped=replica.bootstrapped,
            applied=encode_context(replica.applied),
            retired_replicas=replica.retired,
            departing_replicas=replica.departing,
        )


class ReplicationServicer(replication_pb2_grpc.ReplicationServiceServicer):
    def __init__(self, node: SyncNode) -> None:
        self.node = node

    async def PushDeltas(
        self, request: replication_pb2.PushDeltasRequest, context: aio.ServicerContext[Any, Any]
    ) -> replication_pb2.PushDeltasResponse:
        metrics.DELTA_BYTES_RECEIVED.labels(request.sender).inc(sum(map(len, request.events)))
        batch = DeltaBatch(request.sender, request.seq, decode_events(request.events))
        ack = await self.node.apply_batch(batch)
        return replication_pb2.PushDeltasResponse(
            sender=ack.sender, seq=ack.seq, applied=encode_context(ack.applied)
        )

    async def ExchangeDigest(
        self, request: replication_pb2.ExchangeDigestRequest, context: aio.ServicerContext[Any, Any]
    ) -> replication_pb2.ExchangeDigestResponse:
        digest = Digest(
            request.sender, context_arg(request.applied, "applied"), request.want_snapshot
        )
        reply, mine = await self.node.on_digest(digest)
        response = replication_pb2.ExchangeDigestResponse(
            sender=self.node.id, applied=encode_context(mine.applied)
        )
        if isinstance(reply, Snapshot):
            response.snapshot_required = True
        elif isinstance(reply, DeltaBatch):
            events = [encode_event(ev) for ev in reply.events]
            metrics.DELTA_BYTES_SENT.labels(request.sender).inc(sum(map(len, events)))
            response.seq = reply.seq
            response.events.extend(events)
        return response

    async def Acknowledge(
        self, request: replication_pb2.AcknowledgeRequest, context: aio.ServicerContext[Any, Any]
    ) -> replication_pb2.AcknowledgeResponse:
        await self.node.on_ack(
            Ack(request.sender, request.seq, context_arg(request.applied, "applied"))
        )
        return replication_pb2.AcknowledgeResponse()

    async def FetchSnapshot(
        self, request: replication_pb2.FetchSnapshotRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[replication_pb2.FetchSnapshotResponse]:
        data = await self.node.snapshot_bytes()
        for start in range(0, max(len(data), 1), SNAPSHOT_CHUNK_BYTES):
            end = start + SNAPSHOT_CHUNK_BYTES
            yield replication_pb2.FetchSnapshotResponse(
                chunk=data[start:end], last=end >= len(data)
            )

    async def Join(
        self, request: replication_pb2.JoinRequest, context: aio.ServicerContext[Any, Any]
    ) -> replication_pb2.JoinResponse:
        members = await self.node.join(request.replica_id, request.address)
        return replication_pb2.JoinResponse(members=members)

    async def Leave(
        self, request: replication_pb2.LeaveRequest, context: aio.ServicerContext[Any, Any]
    ) -> replication_pb2.LeaveResponse:
        if not request.replica_id:
            raise InvalidArgument("replica_id", "a replica id is required")
        await self.node.leave(request.replica_id)
        return replication_pb2.LeaveResponse()

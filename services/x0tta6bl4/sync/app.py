"""Wiring of the sync service into the platform runtime (the ``register`` hook)."""

from __future__ import annotations

from grpc import aio

from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.server import Register, Runtime
from x0tta6bl4.sync.node import CALL_TIMEOUT_S, SyncNode
from x0tta6bl4.sync.servicer import ReplicationServicer, SyncServicer
from x0tta6bl4.sync.settings import SyncSettings
from x0tta6bl4.sync.v1 import replication_pb2, replication_pb2_grpc, sync_pb2, sync_pb2_grpc


def make_register(sync: SyncSettings) -> Register:
    """The hook that opens the replica's store, starts replication and adds both services."""

    async def register(server: aio.Server, rt: Runtime) -> list[str]:
        def client_factory(address: str) -> MeshClient:
            return rt.peer_client(address, timeout_s=CALL_TIMEOUT_S, max_attempts=2)

        node = SyncNode(sync, client_factory)
        node.open()  # raises CorruptStore: the process refuses to start
        rt.readiness.add("sync", node.ready)
        sync_pb2_grpc.add_SyncServiceServicer_to_server(SyncServicer(node), server)
        replication_pb2_grpc.add_ReplicationServiceServicer_to_server(
            ReplicationServicer(node), server
        )
        await node.start()
        rt.on_stop(node.close)
        return [
            sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
            replication_pb2.DESCRIPTOR.services_by_name["ReplicationService"].full_name,
        ]

    return register

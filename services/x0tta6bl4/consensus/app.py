"""Wiring of the consensus service into the platform runtime (the ``register`` hook)."""

from __future__ import annotations

from grpc import aio

from x0tta6bl4.consensus.key_access import KeyAccess
from x0tta6bl4.consensus.key_permissions_source import KvAuthzSettings, PermissionSource
from x0tta6bl4.consensus.runtime import RaftRuntime
from x0tta6bl4.consensus.servicer_cluster import ClusterServicer
from x0tta6bl4.consensus.servicer_kv import KvServicer
from x0tta6bl4.consensus.servicer_raft import RaftServicer
from x0tta6bl4.consensus.settings import RaftSettings
from x0tta6bl4.consensus.v1 import (
    cluster_pb2,
    cluster_pb2_grpc,
    kv_pb2,
    kv_pb2_grpc,
    raft_pb2,
    raft_pb2_grpc,
)
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.server import Register, Runtime

PEER_TIMEOUT_S = 5.0


def make_register(raft: RaftSettings, kv_authz: KvAuthzSettings) -> Register:
    """The hook that starts the Raft member and adds KV, Cluster and Raft services."""

    async def register(server: aio.Server, rt: Runtime) -> list[str]:
        permissions = PermissionSource(rt.settings.opa_url, kv_authz)
        rt.readiness.add("kv_permissions", permissions.ready)
        if kv_authz.enforce:
            await permissions.refresh()
            permissions.start()
        rt.on_stop(permissions.close)

        def client_factory(address: str) -> MeshClient:
            return rt.peer_client(address, timeout_s=PEER_TIMEOUT_S, max_attempts=3)

        runtime = RaftRuntime(raft, client_factory=client_factory, tracer=rt.telemetry.tracer)
        # Added before the first await: /readyz may be evaluating concurrently.
        rt.readiness.add("raft", runtime.ready_check)
        await runtime.start()
        rt.on_stop(runtime.stop)
        kv_servicer = KvServicer(runtime, KeyAccess(permissions))
        kv_pb2_grpc.add_KVServiceServicer_to_server(kv_servicer, server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(ClusterServicer(runtime), server)
        raft_servicer = RaftServicer(runtime)
        rt.on_drain(runtime.hub.drain)
        rt.on_drain(raft_servicer.end_streams)
        raft_pb2_grpc.add_RaftServiceServicer_to_server(raft_servicer, server)
        return [
            kv_pb2.DESCRIPTOR.services_by_name["KVService"].full_name,
            cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name,
            raft_pb2.DESCRIPTOR.services_by_name["RaftService"].full_name,
        ]

    return register

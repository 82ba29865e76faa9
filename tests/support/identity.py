"""The identity service on a test mesh: its process wired to the mesh's SPIRE server and a
consensus cluster, with an OPA sidecar that loads identity's own revocation bundle."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    ServiceProcess,
    Workload,
    consensus_cluster,
    svid_source,
)
from x0tta6bl4.clients.identity import IdentityClient
from x0tta6bl4.devstack.procs import free_port


def consensus_dependency(cluster: ConsensusCluster) -> str:
    """``X0_DEPENDENCIES`` naming every member of ``cluster``."""
    return "consensus=" + "|".join(f"127.0.0.1:{p}" for p in cluster.ports.values())


def identity_service(
    mesh: Mesh,
    cluster: ConsensusCluster,
    *,
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    workload: Workload | None = None,
) -> ServiceProcess:
    """One identity replica. Its OPA sidecar polls the replica's revocation bundle, so a ban
    it records denies callers of this process."""
    http_port = free_port()
    opa = mesh.opa(identity_http_url=f"http://127.0.0.1:{http_port}")
    return mesh.service(
        "identity",
        workload=workload,
        opa=opa,
        http_port=http_port,
        wait_ready=wait_ready,
        env={
            "X0_DEPENDENCIES": consensus_dependency(cluster),
            "X0_IDENTITY_SPIRE_SOCKET": str(mesh.server.socket_path),
            "X0_IDENTITY_SPIRE_HEALTH_URL": mesh.server.health_url,
            "X0_IDENTITY_RECONCILE_INTERVAL_S": "2",
            "X0_IDENTITY_HEALTH_INTERVAL_S": "1",
            "X0_IDENTITY_LEASE_TTL_S": "4",
            **(env or {}),
        },
    )


@contextlib.asynccontextmanager
async def identity_client(
    caller: Workload, *replicas: ServiceProcess
) -> AsyncIterator[IdentityClient]:
    """An identity client as ``caller`` on the given replicas."""
    async with svid_source(caller) as svids:
        client = IdentityClient(
            svids, [r.grpc_addr for r in replicas], caller_service=caller.name, namespace="local"
        )
        try:
            yield client
        finally:
            await client.close()


@dataclasses.dataclass(frozen=True)
class IdentitySuite:
    """A mesh (its SPIRE server), a 3-member consensus cluster and one identity replica."""

    mesh: Mesh
    cluster: ConsensusCluster
    identity: ServiceProcess


@contextlib.contextmanager
def identity_suite(root: Path, *, env: dict[str, str] | None = None) -> Iterator[IdentitySuite]:
    """:class:`IdentitySuite` under ``root``, stopped on exit."""
    mesh = Mesh(root / "mesh")
    try:
        cluster = consensus_cluster(mesh, root / "raft")
        yield IdentitySuite(mesh, cluster, identity_service(mesh, cluster, env=env))
    finally:
        mesh.close()

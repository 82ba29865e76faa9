"""A real SPIRE trust domain for tests: a SPIRE server, one agent per workload, OPA sidecars and
service processes, all on 127.0.0.1 with free ports under a temporary directory.

It starts the same binaries with the same configuration code as `x0 up` (x0tta6bl4.devstack).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from grpc import aio

from tests.support.faultproxy import FaultNetwork
from x0tta6bl4.devstack.opa import opa_command
from x0tta6bl4.devstack.procs import ManagedProcess, free_port, wait_until
from x0tta6bl4.devstack.spire import Entry, SpireAgent, SpireServer
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.config import dns_name_for, spiffe_id_for
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

_ids = itertools.count(1)
K = TypeVar("K")


@dataclasses.dataclass
class Workload:
    name: str
    spiffe_id: str
    socket_path: Path
    agent: SpireAgent
    entry: Entry


@dataclasses.dataclass
class Opa:
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def healthy(self) -> bool:
        return http_status(f"{self.url}/health") == 200


@dataclasses.dataclass
class ServiceProcess:
    service: str
    grpc_port: int
    http_port: int
    process: ManagedProcess
    workload: Workload

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def ready(self) -> bool:
        return http_status(self.url("/readyz")) == 200

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as response:
            return str(response.read().decode())


def run_with_settings(service: str, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m x0tta6bl4.<service>`` with ``settings`` as its only X0_* variables (it is
    expected to exit at start-up, e.g. on a bad setting); its exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("X0_")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", f"x0tta6bl4.{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return 0


class Mesh:
    """One trust domain; ``close()`` stops every process it started."""

    def __init__(
        self, root: Path, *, trust_domain: str = "x0tta6bl4.mesh", namespace: str = "local"
    ) -> None:
        self.root = root
        self.namespace = namespace
        self.processes: list[ManagedProcess] = []
        self.server = SpireServer(
            root / "server", port=free_port(), trust_domain=trust_domain, sync_interval="1s"
        )
        self.server.write_config()
        server = self._start("spire-server", self.server.command())
        wait_until(self.server.healthy, timeout_s=60, what="spire-server", diagnose=server.log_tail)
        self.bundle_pem = self.server.bundle_pem()

    @property
    def trust_domain(self) -> str:
        return self.server.trust_domain

    def _start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_path=self.root / "logs" / f"{name}.log", env=env)
        self.processes.append(process.start())
        return process

    def workload(
        self,
        name: str,
        *,
        svid_ttl_s: int = 3600,
        register: bool = True,
        dns_names: tuple[str, ...] | None = None,
    ) -> Workload:
        """An agent serving the SPIFFE ID ``.../ns/<ns>/sa/<name>`` (registered unless told not)."""
        agent_name = f"{name}-{next(_ids)}"
        agent = SpireAgent(self.root / "agents" / agent_name, agent_name, self.server)
        spiffe_id = spiffe_id_for(name, self.namespace, self.trust_domain)
        entry = Entry(
            spiffe_id=spiffe_id,
            parent_id=self.server.agent_alias(agent_name),
            selectors=(f"unix:uid:{os.getuid()}",),
            dns_names=dns_names if dns_names is not None else (dns_name_for(name, self.namespace),),
            x509_svid_ttl_s=svid_ttl_s,
        )
        workload = Workload(name, spiffe_id, agent.socket_path, agent, entry)
        if register:
            self.register(workload)
        agent.write_config(self.server.join_token(agent_name), self.bundle_pem)
        process = self._start(f"agent-{agent_name}", agent.command())
        wait_until(
            agent.healthy, timeout_s=60, what=f"agent {agent_name}", diagnose=process.log_tail
        )
        return workload

    def register(self, workload: Workload) -> None:
        self.server.create_entry(workload.entry)

    def opa(self, port: int | None = None, *, identity_http_url: str = "") -> Opa:
        """An OPA sidecar; with ``identity_http_url`` it loads the identity service's bans."""
        port = port or free_port()
        process = self._start(f"opa-{port}", opa_command(port, identity_http_url=identity_http_url))
        opa = Opa(port, process)
        wait_until(opa.healthy, timeout_s=30, what="opa", diagnose=process.log_tail)
        return opa

    def service(
        self,
        service: str,
        *,
        workload: Workload | None = None,
        opa: Opa | None = None,
        env: dict[str, str] | None = None,
        wait_ready: bool = True,
        grpc_port: int | None = None,
        http_port: int | None = None,
    ) -> ServiceProcess:
        workload = workload or self.workload(service)
        opa = opa or self.opa()
        grpc_port, http_port = grpc_port or free_port(), http_port or free_port()
        full_env = dict(os.environ)
        full_env.update(
            {
                "X0_NAMESPACE": self.namespace,
                "X0_TRUST_DOMAIN": self.trust_domain,
                "X0_SPIFFE_SOCKET": str(workload.socket_path),
                "X0_OPA_URL": opa.url,
                "X0_GRPC_ADDR": f"127.0.0.1:{grpc_port}",
                "X0_HTTP_ADDR": f"127.0.0.1:{http_port}",
                "OTEL_TRACES_EXPORTER": "none",
            }
        )
        full_env.update(env or {})
        process = self._start(
            f"{service}-{grpc_port}", [sys.executable, "-m", f"x0tta6bl4.{service}"], full_env
        )
        proc = ServiceProcess(service, grpc_port, http_port, process, workload)
        if wait_ready:
            wait_until(
                proc.ready, timeout_s=60, what=f"{service} /readyz", diagnose=process.log_tail
            )
        return proc

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout_s=10)
        self.processes.clear()


@contextlib.asynccontextmanager
async def svid_source(workload: Workload, timeout_s: float = 30) -> AsyncIterator[SvidSource]:
    """This test process's SVIDs as ``workload``, from its agent's Workload API."""
    source = SvidSource(str(workload.socket_path))
    source.start()
    try:
        assert await asyncio.to_thread(source.wait_loaded, timeout_s), (
            f"no SVID for {workload.spiffe_id} within {timeout_s}s"
        )
        yield source
    finally:
        source.close()


@contextlib.asynccontextmanager
async def client(
    svids: SvidSource, target: ServiceProcess, *, caller: str = "operator", namespace: str = "local"
) -> AsyncIterator[MeshClient]:
    mesh_client = MeshClient(
        svids,
        address=target.grpc_addr,
        target_service=target.service,
        caller_service=caller,
        namespace=namespace,
        default_timeout_s=5,
    )
    try:
        yield mesh_client
    finally:
        await mesh_client.close()


@contextlib.asynccontextmanager
async def member_clients(
    mesh: Mesh, members: Mapping[K, ServiceProcess]
) -> AsyncIterator[dict[K, MeshClient]]:
    """One client per member, all with the SVIDs of a new ``operator`` workload."""
    async with (
        svid_source(mesh.workload("operator")) as svids,
        contextlib.AsyncExitStack() as stack,
    ):
        yield {k: await stack.enter_async_context(client(svids, m)) for k, m in members.items()}


async def unary_call(
    mesh_client: MeshClient, stub: Any, rpc: str, request: Any, timeout_s: float = 10
) -> Any:
    """``stub(channel).<rpc>(request)`` through ``mesh_client`` (not idempotent: no retry)."""
    return await mesh_client.call(
        lambda ch, t: getattr(stub(ch), rpc)(request, timeout=t),
        idempotent=False,
        timeout_s=timeout_s,
    )


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 60.0, what: str = ""
) -> float:
    """Poll ``check`` (an RPC error counts as false) until it holds; the seconds it took."""
    t0 = time.monotonic()
    while True:
        try:
            if await check():
                return time.monotonic() - t0
        except aio.AioRpcError:
            pass
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not within {timeout_s}s: {what}")
        await asyncio.sleep(0.05)


async def whoami(mesh_client: MeshClient) -> diagnostics_pb2.WhoAmIResponse:
    return await mesh_client.call(
        lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).WhoAmI(
            diagnostics_pb2.WhoAmIRequest(), timeout=t
        ),
        idempotent=False,
    )


@dataclasses.dataclass
class ConsensusCluster:
    """Consensus members (real processes) sharing one SPIRE agent and one OPA sidecar.

    Member ``i`` listens on a fixed gRPC port (chosen up front, so X0_RAFT_PEERS can name
    every member) and keeps its data in ``root/node-<i>``, so a killed member can be
    restarted on the same port and directory. Member ``i`` is in zone ``zones[i]`` (default
    zone-a, zone-b, zone-c, zone-a, ...). With ``links`` (from a
    ``tests.support.faultproxy.FaultNetwork``, named ``"i->j"``), member i dials member j
    through link i->j: its X0_RAFT_PEERS entry for j names the link's port.
    """

    mesh: Mesh
    workload: Workload
    opa: Opa
    root: Path
    ports: dict[int, int]
    env: dict[str, str]
    members: dict[int, ServiceProcess] = dataclasses.field(default_factory=dict)
    links: dict[str, int] = dataclasses.field(default_factory=dict)
    zones: dict[int, str] = dataclasses.field(default_factory=dict)
    member_env: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)
    network: FaultNetwork | None = None

    def links_of(self, node_id: int) -> list[str]:
        """Names of the proxy links from and to ``node_id``."""
        return [n for n in self.links if node_id in map(int, n.split("->"))]

    def zone_of(self, node_id: int) -> str:
        return self.zones.get(node_id) or f"zone-{'abc'[(node_id - 1) % 3]}"

    def peers_for(self, node_id: int) -> str:
        """X0_RAFT_PEERS as member ``node_id`` sees them (through its links, if any)."""
        return ",".join(
            f"{i}=127.0.0.1:{self.links.get(f'{node_id}->{i}', port)}@{self.zone_of(i)}"
            for i, port in self.ports.items()
        )

    def start(self, node_id: int, *, env: dict[str, str] | None = None) -> ServiceProcess:
        member_env = {
            "X0_RAFT_NODE_ID": str(node_id),
            "X0_RAFT_PEERS": self.peers_for(node_id),
            "X0_RAFT_DATA_DIR": str(self.root / f"node-{node_id}"),
            **self.env,
            **self.member_env.get(node_id, {}),
            **(env or {}),
        }
        if self.network is not None:
            # Undo kill()'s reset of this member's links (and any partition on them).
            self.network.heal(*self.links_of(node_id))
        process = self.mesh.service(
            "consensus",
            workload=self.workload,
            opa=self.opa,
            env=member_env,
            wait_ready=False,
            grpc_port=self.ports[node_id],
        )
        self.members[node_id] = process
        return process

    def kill(self, node_id: int) -> None:
        """kill -9 the member's process group and wait for it to be gone."""
        process = self.members[node_id].process
        process.signal(9)
        if process.popen is not None:
            process.popen.wait(10)
        if self.network is not None:
            # The kernel resets a dead process's connections; a proxy in between would keep
            # the peer's half open (and its HTTP/2 channel silently stuck), so reset them.
            self.network.partition(*self.links_of(node_id), mode="reset")

    def pause(self, node_id: int) -> None:
        """SIGSTOP the member (it keeps its sockets but answers nothing)."""
        self.members[node_id].process.signal(signal.SIGSTOP)

    def resume(self, node_id: int) -> None:
        self.members[node_id].process.signal(signal.SIGCONT)

    def isolate(self, node_id: int) -> None:
        """Drop every byte between ``node_id`` and the other members (both directions)."""
        assert self.network is not None, "isolate() needs a cluster started with a network"
        self.network.partition(*self.links_of(node_id), mode="drop")

    def wait_ready(self, node_ids: list[int] | None = None, timeout_s: float = 60) -> None:
        for node_id in node_ids or list(self.members):
            member = self.members[node_id]
            wait_until(
                member.ready,
                timeout_s=timeout_s,
                what=f"consensus member {node_id} /readyz",
                diagnose=member.process.log_tail,
            )


def consensus_cluster(
    mesh: Mesh,
    root: Path,
    size: int = 3,
    env: dict[str, str] | None = None,
    *,
    network: FaultNetwork | None = None,
    zones: dict[int, str] | None = None,
    member_env: dict[int, dict[str, str]] | None = None,
) -> ConsensusCluster:
    """Start ``size`` consensus members and wait until every one is ready (has a leader).

    With ``network``, every ordered pair of members gets a proxy link ``"i->j"`` in it (so a
    test can add latency or partition any link) and members dial each other through them.
    """
    cluster = ConsensusCluster(
        mesh,
        mesh.workload("consensus"),
        mesh.opa(),
        root,
        {i: free_port() for i in range(1, size + 1)},
        dict(env or {}),
        zones=dict(zones or {}),
        member_env={k: dict(v) for k, v in (member_env or {}).items()},
        network=network,
    )
    if network is not None:
        for i, j in itertools.permutations(cluster.ports, 2):
            cluster.links[f"{i}->{j}"] = network.link(f"{i}->{j}", cluster.ports[j]).port
    for node_id in cluster.ports:
        cluster.start(node_id)
    cluster.wait_ready()
    return cluster


@dataclasses.dataclass
class SyncCluster:
    """Sync replicas (real processes) sharing one SPIRE agent and one OPA sidecar.

    Replica ``rid`` listens on a fixed gRPC port and keeps its data in ``root/<rid>``, so a
    killed replica restarts on the same port and directory. With ``links`` (from a
    ``tests.support.faultproxy.FaultNetwork``), replica A dials B through link ``"A->B"``.
    """

    mesh: Mesh
    workload: Workload
    opa: Opa
    root: Path
    ports: dict[str, int]
    env: dict[str, str]
    links: dict[str, int] = dataclasses.field(default_factory=dict)
    members: dict[str, ServiceProcess] = dataclasses.field(default_factory=dict)

    def peers_for(self, rid: str) -> str:
        return ",".join(
            f"{p}=127.0.0.1:{self.links.get(f'{rid}->{p}', port)}"
            for p, port in self.ports.items()
            if p != rid
        )

    def start(
        self, rid: str, *, env: dict[str, str] | None = None, wait_ready: bool = True
    ) -> ServiceProcess:
        replica_env = {
            "X0_SYNC_REPLICA_ID": rid,
            "X0_SYNC_PEERS": self.peers_for(rid),
            "X0_SYNC_DATA_DIR": str(self.root / rid),
            **self.env,
            **(env or {}),
        }
        process = self.mesh.service(
            "sync",
            workload=self.workload,
            opa=self.opa,
            env=replica_env,
            wait_ready=wait_ready,
            grpc_port=self.ports[rid],
        )
        self.members[rid] = process
        return process

    def kill(self, rid: str) -> None:
        """kill -9 the replica's process group and wait for it to be gone."""
        process = self.members[rid].process
        process.signal(9)
        if process.popen is not None:
            process.popen.wait(10)


def sync_cluster(
    mesh: Mesh,
    root: Path,
    ids: tuple[str, ...] = ("a", "b", "c"),
    env: dict[str, str] | None = None,
    links: dict[str, int] | None = None,
    ports: dict[str, int] | None = None,
    *,
    network: FaultNetwork | None = None,
) -> SyncCluster:
    """Start one sync replica per id (each ready) and return the cluster.

    With ``network``, every ordered pair of replicas gets a proxy link
    ``"A->B"`` in it and replicas dial each other through them.
    """
    cluster = SyncCluster(
        mesh,
        mesh.workload("sync"),
        mesh.opa(),
        root,
        ports or {rid: free_port() for rid in ids},
        dict(env or {}),
        dict(links or {}),
    )
    if network is not None:
        for i, j in itertools.permutations(ids, 2):
            cluster.links[f"{i}->{j}"] = network.link(f"{i}->{j}", cluster.ports[j]).port
    for rid in ids:
        cluster.start(rid, wait_ready=False)
    for rid in ids:
        member = cluster.members[rid]
        wait_until(
            member.ready, timeout_s=60, what=f"sync {rid} /readyz", diagnose=member.process.log_tail
        )
    return cluster

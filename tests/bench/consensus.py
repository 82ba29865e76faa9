"""Consensus benchmark: x0tta6bl4 vs etcd vs PySyncObj, one load generator, one run.

``make bench-consensus`` (full) or ``make bench-consensus ARGS=--quick`` (under 60 s).

Every system runs as 3 members on 127.0.0.1 with data directories on disk, and is driven by the
same Python ``grpc.aio`` load generator in this process, with the same workload: 256-byte values,
N concurrent clients each issuing one request at a time (closed loop) to the leader:

* writes: Put of a 256-byte value -> ops/s, p50/p99 (p999 in ``extra``) latency;
* linearizable reads: etcd ``Range`` (``serializable=false``, ReadIndex), PySyncObj log reads,
  x0tta6bl4 ``Get`` (linearizable by default);
* failover: SIGKILL of the leader -> the first write acknowledged by a surviving member
  (probers retry against the survivors every few tens of milliseconds);
* server CPU (sum over the members' processes, % of one core) per phase and idle, and RSS
  (sum of the members).

``grpc-floor`` is a reference, not a peer: one bare ``grpc.aio`` process with an in-memory dict
behind the same etcd API subset (tests/bench/floor_node.py) - no replication, no disk, no TLS.
It bounds what any Python ``grpc.aio`` service can reach here with this load generator; it has
no failover.

Results: a table with the systems side by side (ratios vs etcd) and
``bench-results/consensus.json`` shaped as
``{"<system>": {"writes": {"<clients>": {"ops_per_s", "p50_ms", "p99_ms"}}, "reads": {...},
"failover_s": .., "extra": {...}}}``; a system that could not run holds ``{"error": ".."}``.
The exit status is non-zero only if a peer (etcd, PySyncObj) failed.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from grpc import aio

from x0tta6bl4.devstack.procs import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from etcd_api import pb, pb_grpc  # noqa: E402

VALUE_BYTES = 256
READ_KEYS = 256
SYSTEMS = ("x0tta6bl4", "x0tta6bl4-authz-off", "etcd", "pysyncobj", "grpc-floor")
"""``x0tta6bl4-authz-off`` is the same cluster with its key-range permissions off
(``X0_KV_AUTHZ=off``): the two side by side are the cost of enforcing them."""
PEERS = ("etcd", "pysyncobj", "grpc-floor")
"""Systems whose failure fails the run (everything but ours, which may be ``not built``)."""


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


# -- clients ------------------------------------------------------------------------------------


class KVClient(abc.ABC):
    """One connection to one member; ``put``/``get`` raise on any failure."""

    @abc.abstractmethod
    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None: ...

    @abc.abstractmethod
    async def get(self, key: bytes, timeout_s: float) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...


class EtcdApiClient(KVClient):
    """The etcd v3 subset (KV/Put, KV/Range) over plain-text gRPC: etcd and the PySyncObj
    front end."""

    def __init__(self, address: str) -> None:
        self.channel = aio.insecure_channel(address)
        self.kv = pb_grpc.KVStub(self.channel)

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self.kv.Put(pb.PutRequest(key=key, value=value), timeout=timeout_s)

    async def get(self, key: bytes, timeout_s: float) -> None:
        resp = await self.kv.Range(pb.RangeRequest(key=key, serializable=False), timeout=timeout_s)
        if not resp.kvs:
            raise LookupError(f"key {key!r} not found")

    async def close(self) -> None:
        await self.channel.close(grace=None)


async def etcd_status(address: str, timeout_s: float = 1.0) -> tuple[int, int] | None:
    """(member id, leader id) as ``address`` sees them, or None if it does not answer."""
    async with aio.insecure_channel(address) as channel:
        try:
            resp = await pb_grpc.MaintenanceStub(channel).Status(
                pb.StatusRequest(), timeout=timeout_s
            )
        except aio.AioRpcError:
            return None
    return int(resp.header.member_id), int(resp.leader)


# -- systems ------------------------------------------------------------------------------------


class NotBuilt(Exception):
    """The system under test does not exist (yet); reported, never faked."""


class System(abc.ABC):
    """Three members on loopback: start, find/kill the leader, make clients, stop."""

    name: str
    election: str = ""
    has_failover = True

    @abc.abstractmethod
    async def start(self, workdir: Path) -> None: ...

    @abc.abstractmethod
    def client(self, member: int) -> KVClient: ...

    @abc.abstractmethod
    async def leader(self) -> int | None:
        """The index (0..2) of the member all live members agree leads, if any."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Server processes of the live members (for CPU and RSS)."""

    @abc.abstractmethod
    def kill(self, member: int) -> None:
        """SIGKILL the member's process."""

    @abc.abstractmethod
    def alive(self) -> list[int]: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def wait_leader(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = await self.leader()
            if leader is not None:
                return leader
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name}: no leader within {timeout_s:.0f}s")


class ProcessCluster(System):
    """Members that are plain child processes with a log file each."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes] | None] = []
        self.logs: list[Path] = []

    def spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.procs.append(proc)
        self.logs.append(log)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p is not None and p.poll() is None]

    def kill(self, member: int) -> None:
        proc = self.procs[member]
        assert proc is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)

    def check_running(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace").splitlines()[-15:]
                raise RuntimeError(
                    f"{self.name}: {log.stem} exited with {proc.returncode}:\n" + "\n".join(tail)
                )

    async def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is None:
                continue
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class GrpcFloor(ProcessCluster):
    """One tests/bench/floor_node.py process: the per-request cost of Python grpc.aio alone."""

    name = "grpc-floor"
    election = "none: one process, no replication"
    has_failover = False

    def __init__(self) -> None:
        super().__init__()
        self.address = ""

    async def start(self, workdir: Path) -> None:
        port = free_port()
        self.address = f"127.0.0.1:{port}"
        argv = [sys.executable, str(HERE / "floor_node.py"), f"--grpc-port={port}"]
        self.spawn(argv, workdir / "floor.log")
        deadline = time.monotonic() + 30
        while await etcd_status(self.address) is None:
            self.check_running()
            if time.monotonic() > deadline:
                raise TimeoutError("grpc-floor: not serving within 30s")
            await asyncio.sleep(0.05)

    def client(self, member: int) -> KVClient:
        return EtcdApiClient(self.address)

    async def leader(self) -> int | None:
        return 0 if self.alive() else None


class EtcdCluster(ProcessCluster):
    """Three etcd members (Debian's /usr/bin/etcd), default fsync, default timers."""

    name = "etcd"
    election = "etcd defaults: heartbeat 100 ms, election timeout 1000 ms"

    def __init__(self) -> None:
        super().__init__()
        self.client_addrs: list[str] = []
        self.member_ids: dict[int, int] = {}

    async def start(self, workdir: Path) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed (apt-get install etcd-server)")
        ports = [(free_port(), free_port()) for _ in range(3)]
        cluster = ",".join(f"n{i + 1}=http://127.0.0.1:{p}" for i, (_, p) in enumerate(ports))
        for i, (client_port, peer_port) in enumerate(ports):
            name = f"n{i + 1}"
            self.client_addrs.append(f"127.0.0.1:{client_port}")
            argv = [
                binary,
                f"--name={name}",
                f"--data-dir={workdir / name}",
                f"--listen-client-urls=http://127.0.0.1:{client_port}",
                f"--advertise-client-urls=http://127.0.0.1:{client_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster={cluster}",
                "--initial-cluster-token=x0-bench",
                "--initial-cluster-state=new",
                "--logger=zap",
                "--log-outputs=stderr",
                "--log-level=warn",
            ]
            self.spawn(argv, workdir / f"{name}.log")
        deadline = time.monotonic() + 30
        while len(self.member_ids) < 3:
            self.check_running()
            if time.monotonic() > deadline:
                raise TimeoutError("etcd: members did not answer Status within 30s")
            for i, addr in enumerate(self.client_addrs):
                if i not in self.member_ids:
                    status = await etcd_status(addr)
                    if status is not None:
                        self.member_ids[i] = status[0]
            await asyncio.sleep(0.05)

    def client(self, member: int) -> KVClient:
        return EtcdApiClient(self.client_addrs[member])

    async def leader(self) -> int | None:
        seen = set()
        for i in self.alive():
            status = await etcd_status(self.client_addrs[i])
            if status is None:
                return None
            seen.add(status[1])
        if len(seen) != 1:
            return None
        by_id = {mid: i for i, mid in self.member_ids.items()}
        leader = by_id.get(seen.pop())
        return leader if leader in self.alive() else None


class PySyncObjCluster(ProcessCluster):
    """Three tests/bench/pysyncobj_node.py processes (PySyncObj + a gRPC front end)."""

    name = "pysyncobj"
    election = "PySyncObj defaults: election timeout 0.4-1.4 s, append entries every 0.1 s"

    def __init__(self, batch: bool = False) -> None:
        super().__init__()
        self.client_addrs: list[str] = []
        self.batch = batch
        self.election += f"; appendEntriesUseBatch={batch}"

    async def start(self, workdir: Path) -> None:
        raft_ports = [free_port() for _ in range(3)]
        members = ",".join(f"{i + 1}=127.0.0.1:{p}" for i, p in enumerate(raft_ports))
        for i in range(3):
            grpc_port = free_port()
            self.client_addrs.append(f"127.0.0.1:{grpc_port}")
            argv = [
                sys.executable,
                str(HERE / "pysyncobj_node.py"),
                f"--id={i + 1}",
                f"--members={members}",
                f"--grpc-port={grpc_port}",
                f"--data-dir={workdir / f'n{i + 1}'}",
                "--batch" if self.batch else "--no-batch",
            ]
            self.spawn(argv, workdir / f"n{i + 1}.log")
        deadline = time.monotonic() + 30
        while await self.leader() is None:
            self.check_running()
            if time.monotonic() > deadline:
                raise TimeoutError("pysyncobj: no leader within 30s")
            await asyncio.sleep(0.05)

    def client(self, member: int) -> KVClient:
        return EtcdApiClient(self.client_addrs[member])

    async def leader(self) -> int | None:
        seen = set()
        for i in self.alive():
            status = await etcd_status(self.client_addrs[i])
            if status is None:
                return None
            seen.add(status[1])
        if len(seen) != 1:
            return None
        leader = seen.pop() - 1
        return leader if leader in self.alive() else None


def _x0_api() -> tuple[Any, Any, Any, Any]:
    """kv_pb2, kv_pb2_grpc, cluster_pb2, cluster_pb2_grpc of x0tta6bl4.consensus.v1, if the
    service exists and its process serves KVService; NotBuilt otherwise."""
    try:
        api = tuple(
            importlib.import_module(f"x0tta6bl4.consensus.v1.{m}")
            for m in ("kv_pb2", "kv_pb2_grpc", "cluster_pb2", "cluster_pb2_grpc")
        )
    except ImportError as err:
        raise NotBuilt(f"not built: x0tta6bl4.consensus.v1 API is missing ({err})") from None
    spec = importlib.util.find_spec("x0tta6bl4.consensus")
    assert spec is not None and spec.origin is not None
    package = Path(spec.origin).parent
    served = any(
        "add_KVServiceServicer_to_server" in f.read_text(errors="replace")
        for f in package.rglob("*.py")
        if "v1" not in f.relative_to(package).parts
    )
    if not served:
        raise NotBuilt(
            "not built: `python -m x0tta6bl4.consensus` does not serve "
            "x0tta6bl4.consensus.v1.KVService yet"
        )
    return api  # type: ignore[return-value]


class X0Client(KVClient):
    def __init__(self, channel: aio.Channel, api: tuple[Any, Any, Any, Any]) -> None:
        self.channel = channel
        self.kv_pb, kv_grpc, self.cluster_pb, cluster_grpc = api
        self.kv = kv_grpc.KVServiceStub(channel)
        self.cluster = cluster_grpc.ClusterServiceStub(channel)

    async def put(self, key: bytes, value: bytes, timeout_s: float) -> None:
        await self.kv.Put(self.kv_pb.PutRequest(key=key, value=value), timeout=timeout_s)

    async def get(self, key: bytes, timeout_s: float) -> None:
        resp = await self.kv.Get(self.kv_pb.GetRequest(key=key), timeout=timeout_s)
        if not resp.found:
            raise LookupError(f"key {key!r} not found")

    async def status(self, timeout_s: float = 1.0) -> tuple[int, int]:
        resp = await self.cluster.Status(self.cluster_pb.StatusRequest(), timeout=timeout_s)
        return int(resp.member_id), int(resp.leader_id)

    async def close(self) -> None:
        await self.channel.close(grace=None)


class X0Cluster(System):
    """Three ``python -m x0tta6bl4.consensus`` processes in a real SPIRE + OPA mesh
    (tests/support/mesh.py), over mTLS like production."""

    name = "x0tta6bl4"
    election = "x0tta6bl4 defaults: tick 10 ms, heartbeat 100 ms, election timeout 0.5-1 s"

    def __init__(self, kv_authz: bool = True) -> None:
        self.kv_authz = kv_authz
        if not kv_authz:
            self.name = "x0tta6bl4-authz-off"
        self.api = _x0_api()
        self.mesh: Any = None
        self.nodes: list[Any] = []
        self.killed: set[int] = set()
        self._svids_cm: Any = None
        self.svids: Any = None

    async def start(self, workdir: Path) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.support.mesh import Mesh, consensus_cluster, svid_source

        self.mesh = await asyncio.to_thread(Mesh, workdir / "mesh")
        # The test suite's cluster (zones a, b, c; waits until every member is ready).
        env = {} if self.kv_authz else {"X0_KV_AUTHZ": "off"}
        cluster = await asyncio.to_thread(consensus_cluster, self.mesh, workdir / "raft", env=env)
        self.nodes = [cluster.members[i] for i in sorted(cluster.members)]
        operator = await asyncio.to_thread(self.mesh.workload, "operator")
        self._svids_cm = svid_source(operator)
        self.svids = await self._svids_cm.__aenter__()
        await self.wait_leader(30)

    def client(self, member: int) -> X0Client:
        from x0tta6bl4.platform.config import dns_name_for
        from x0tta6bl4.platform.credentials import channel_credentials

        authority = dns_name_for("consensus", "local")
        channel = aio.secure_channel(
            self.nodes[member].grpc_addr,
            channel_credentials(self.svids.require()),
            options=[
                ("grpc.ssl_target_name_override", authority),
                ("grpc.default_authority", authority),
            ],
        )
        return X0Client(channel, self.api)

    async def leader(self) -> int | None:
        """From each live member's ClusterService/Status (member ids are index + 1)."""
        seen = set()
        for i in self.alive():
            client = self.client(i)
            try:
                seen.add((await client.status())[1])
            except aio.AioRpcError:
                return None
            finally:
                await client.close()
        if len(seen) != 1:
            return None
        leader = seen.pop() - 1
        return leader if leader in self.alive() else None

    def pids(self) -> list[int]:
        return [self.nodes[i].process.pid for i in self.alive()]

    def alive(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if i not in self.killed and n.process.running()]

    def kill(self, member: int) -> None:
        self.killed.add(member)
        os.kill(self.nodes[member].process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self._svids_cm is not None:
            with contextlib.suppress(Exception):
                await self._svids_cm.__aexit__(None, None, None)
        if self.mesh is not None:
            await asyncio.to_thread(self.mesh.close)


# -- load generation ----------------------------------------------------------------------------


def _describe_error(err: BaseException) -> str:
    """One line: a gRPC error's status code and details, anything else's type and text."""
    code, details = getattr(err, "code", None), getattr(err, "details", None)
    if callable(code) and callable(details):
        return f"{type(err).__name__} {code().name}: {str(details())[:200]}"
    return f"{type(err).__name__}: {str(err)[:200]}"


@dataclass
class Plan:
    clients: tuple[int, ...]
    warmup_s: float
    duration_s: float
    op_timeout_s: float = 5.0


@dataclass
class PhaseResult:
    ops: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    server_cpu_pct: float
    client_cpu_pct: float
    server_rss_bytes: int
    first_error: str = ""

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        return {
            "ops_per_s": round(self.ops / self.seconds, 1),
            "p50_ms": round(percentile(lat, 0.50), 3),
            "p99_ms": round(percentile(lat, 0.99), 3),
        }


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


async def run_phase(
    clients: list[KVClient],
    n: int,
    op: Callable[[KVClient, int, int], Awaitable[None]],
    plan: Plan,
    pids: list[int],
) -> PhaseResult:
    """``n`` closed-loop workers for warmup + duration; only the measured window counts."""
    loop_start = time.perf_counter()
    measure_from = loop_start + plan.warmup_s
    measure_to = measure_from + plan.duration_s
    latencies: list[float] = []
    errors = 0
    first_error = ""
    me = psutil.Process()
    cpu0: tuple[float, float] | None = None

    async def worker(w: int) -> None:
        nonlocal errors, first_error
        client = clients[w % len(clients)]
        seq = 0
        while True:
            t0 = time.perf_counter()
            if t0 >= measure_to:
                return
            try:
                await op(client, w, seq)
            except Exception as err:
                errors += 1
                if not first_error:
                    first_error = _describe_error(err)
                await asyncio.sleep(0.01)
            else:
                t1 = time.perf_counter()
                if measure_from <= t0 and t1 <= measure_to:
                    latencies.append((t1 - t0) * 1000)
            seq += 1

    async def sample_cpu() -> None:
        nonlocal cpu0
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        ct = me.cpu_times()
        cpu0 = (cpu_seconds(pids), ct.user + ct.system)

    sampler = asyncio.create_task(sample_cpu())
    await asyncio.gather(*(worker(w) for w in range(n)))
    await sampler
    window = time.perf_counter() - measure_from
    ct = me.cpu_times()
    assert cpu0 is not None
    server_cpu = (cpu_seconds(pids) - cpu0[0]) / window * 100
    client_cpu = (ct.user + ct.system - cpu0[1]) / window * 100
    return PhaseResult(
        ops=len(latencies),
        seconds=plan.duration_s,
        latencies_ms=latencies,
        errors=errors,
        server_cpu_pct=round(server_cpu, 1),
        client_cpu_pct=round(client_cpu, 1),
        server_rss_bytes=rss_bytes(pids),
        first_error=first_error,
    )


async def measure_failover(system: System, value: bytes, budget_s: float = 20.0) -> float:
    """SIGKILL the leader; seconds until a survivor acknowledges a write."""
    leader = await system.wait_leader(10)
    survivors = [i for i in system.alive() if i != leader]
    clients = [system.client(i) for i in survivors]
    # Connect before the kill so connection setup is not part of the measurement.
    for c in clients:
        with contextlib.suppress(Exception):
            await c.put(b"bench/failover/warm", value, 2.0)
    done = asyncio.Event()
    result: list[float] = []
    killed_at = 0.0

    async def prober(k: int) -> None:
        client = clients[k % len(clients)]
        await asyncio.sleep(0.03 * k)
        seq = 0
        while not done.is_set():
            try:
                await client.put(f"bench/failover/{k}/{seq}".encode(), value, 0.5)
            except Exception:
                await asyncio.sleep(0.02)
            else:
                if not done.is_set():
                    result.append(time.perf_counter() - killed_at)
                    done.set()
            seq += 1

    killed_at = time.perf_counter()
    system.kill(leader)
    tasks = [asyncio.create_task(prober(k)) for k in range(8)]
    try:
        await asyncio.wait_for(done.wait(), budget_s)
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in clients:
            await c.close()
    return round(result[0], 3)


async def bench_system(system: System, plan: Plan, value: bytes) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"x0-bench-{system.name}-"))
    started = time.perf_counter()
    try:
        await system.start(workdir)
        leader = await system.wait_leader(30)
        print(f"  {system.name}: up in {time.perf_counter() - started:.1f}s, leader {leader + 1}")
        pids = system.pids()
        idle0, idle_t0 = cpu_seconds(pids), time.perf_counter()
        await asyncio.sleep(0.5)
        idle_cpu = (cpu_seconds(pids) - idle0) / (time.perf_counter() - idle_t0) * 100
        out: dict[str, Any] = {"writes": {}, "reads": {}}
        extra: dict[str, Any] = {
            "p999_ms": {"writes": {}, "reads": {}},
            "errors": {"writes": {}, "reads": {}},
            "server_cpu_pct": {"writes": {}, "reads": {}},
            "client_cpu_pct": {"writes": {}, "reads": {}},
            "server_rss_bytes": 0,
            "server_idle_cpu_pct": round(idle_cpu, 1),
            "election": system.election,
        }
        pool_size = 4

        async def put(c: KVClient, w: int, seq: int) -> None:
            await c.put(f"bench/w/{w:03d}/{seq % 1000:04d}".encode(), value, plan.op_timeout_s)

        async def get(c: KVClient, w: int, seq: int) -> None:
            await c.get(f"bench/r/{(w * 7919 + seq) % READ_KEYS:05d}".encode(), plan.op_timeout_s)

        clients = [system.client(leader) for _ in range(pool_size)]
        try:
            sem = asyncio.Semaphore(32)

            async def preload(k: int) -> None:
                async with sem:
                    await clients[k % pool_size].put(
                        f"bench/r/{k:05d}".encode(), value, plan.op_timeout_s
                    )

            await asyncio.gather(*(preload(k) for k in range(READ_KEYS)))
            for kind, op in (("writes", put), ("reads", get)):
                for n in plan.clients:
                    res = await run_phase(clients[: min(n, pool_size)], n, op, plan, pids)
                    out[kind][str(n)] = res.summary()
                    lat = sorted(res.latencies_ms)
                    extra["p999_ms"][kind][str(n)] = round(percentile(lat, 0.999), 3)
                    extra["errors"][kind][str(n)] = res.errors
                    extra["server_cpu_pct"][kind][str(n)] = res.server_cpu_pct
                    extra["client_cpu_pct"][kind][str(n)] = res.client_cpu_pct
                    extra["server_rss_bytes"] = max(extra["server_rss_bytes"], res.server_rss_bytes)
                    s = out[kind][str(n)]
                    err = f", {res.errors} errors ({res.first_error})" if res.errors else ""
                    print(
                        f"  {system.name}: {kind:6} c={n:<3} {s['ops_per_s']:>9.1f} ops/s "
                        f"p50 {s['p50_ms']:.2f} ms p99 {s['p99_ms']:.2f} ms "
                        f"srv cpu {res.server_cpu_pct:.0f}%{err}"
                    )
                    if res.ops == 0:
                        raise RuntimeError(f"{kind} at {n} clients: nothing succeeded{err}")
        finally:
            for c in clients:
                await c.close()
        if system.has_failover:
            out["failover_s"] = await measure_failover(system, value)
            print(f"  {system.name}: failover {out['failover_s']:.3f}s")
        out["extra"] = extra
        return out
    finally:
        await system.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- report -------------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}{unit}"
    if v >= 100:
        return f"{v:.0f}{unit}"
    return f"{v:.2f}{unit}"


def table(results: dict[str, dict[str, Any]], plan: Plan) -> str:
    systems = [s for s in SYSTEMS if s in results]
    cols = ["etcd", *[s for s in systems if s != "etcd"]] if "etcd" in results else systems
    rows: list[tuple[str, dict[str, float | None]]] = []

    def get(sysname: str, *path: str) -> float | None:
        node: Any = results.get(sysname, {})
        for p in path:
            if not isinstance(node, dict) or p not in node:
                return None
            node = node[p]
        return float(node) if isinstance(node, int | float) else None

    for kind in ("writes", "reads"):
        for n in plan.clients:
            label = "linearizable reads" if kind == "reads" else "writes"
            rows.append(
                (f"{label} c={n} ops/s", {s: get(s, kind, str(n), "ops_per_s") for s in cols})
            )
            rows.append(("  p50 ms", {s: get(s, kind, str(n), "p50_ms") for s in cols}))
            rows.append(("  p99 ms", {s: get(s, kind, str(n), "p99_ms") for s in cols}))
    rows.append(("failover s (kill -9 leader)", {s: get(s, "failover_s") for s in cols}))
    top = str(max(plan.clients))
    rows.append(
        (
            f"server CPU % writes c={top}",
            {s: get(s, "extra", "server_cpu_pct", "writes", top) for s in cols},
        )
    )
    rows.append(("server CPU % idle", {s: get(s, "extra", "server_idle_cpu_pct") for s in cols}))
    rows.append(
        (
            "server RSS MiB (all members)",
            {
                s: (v / 2**20 if (v := get(s, "extra", "server_rss_bytes")) is not None else None)
                for s in cols
            },
        )
    )
    header = f"{'':32}" + "".join(
        f"{c:>21}" + ("" if c == "etcd" or "etcd" not in cols else f"{'x etcd':>8}") for c in cols
    )
    lines = [header, "-" * len(header)]
    for label, vals in rows:
        line = f"{label:32}"
        for c in cols:
            if "error" in results.get(c, {}):
                cell = "not built" if str(results[c]["error"]).startswith("not built") else "FAILED"
                line += f"{cell:>21}" + ("" if c == "etcd" or "etcd" not in cols else f"{'':>8}")
                continue
            v = vals.get(c)
            line += f"{_fmt(v):>21}"
            if c != "etcd" and "etcd" in cols:
                base = vals.get("etcd")
                ratio = f"{v / base:.2f}x" if v is not None and base else "-"
                line += f"{ratio:>8}"
        lines.append(line)
    for c in cols:
        if "error" in results.get(c, {}):
            lines.append(f"{c}: {results[c]['error'].splitlines()[0]}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    if args.quick:
        plan = Plan(clients=(1, 64, 256), warmup_s=0.2, duration_s=0.8)
    else:
        plan = Plan(clients=(1, 16, 64, 256), warmup_s=1.0, duration_s=6.0)
    if args.duration:
        plan.duration_s = args.duration
    value = os.urandom(VALUE_BYTES)
    factories: dict[str, Callable[[], System]] = {
        "x0tta6bl4": X0Cluster,
        "x0tta6bl4-authz-off": lambda: X0Cluster(kv_authz=False),
        "etcd": EtcdCluster,
        "pysyncobj": lambda: PySyncObjCluster(batch=args.pysyncobj_batch),
        "grpc-floor": GrpcFloor,
    }
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for name in args.systems:
        print(f"[{name}]")
        try:
            system = factories[name]()
            results[name] = await bench_system(system, plan, value)
        except NotBuilt as err:
            results[name] = {"error": str(err)}
            print(f"  {name}: {err}")
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {err}"}
            print(f"  {name}: FAILED\n{traceback.format_exc()}")
    elapsed = time.perf_counter() - t0
    mode = "quick" if args.quick else "full"
    print(
        f"\nconsensus benchmark ({mode}, {elapsed:.0f}s): 3 members each on 127.0.0.1, "
        f"{VALUE_BYTES}-byte values, closed-loop clients on the leader, "
        f"{plan.duration_s:g}s per point; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(table(results, plan))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    failed_peers = [s for s in PEERS if s in results and "error" in results[s]]
    return 1 if failed_peers else 0


def main() -> int:
    parser = argparse.ArgumentParser(description="x0tta6bl4 consensus vs etcd vs PySyncObj")
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument("--duration", type=float, help="seconds per measured point")
    parser.add_argument(
        "--systems",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(SYSTEMS),
        help="comma-separated subset of " + ",".join(SYSTEMS),
    )
    parser.add_argument(
        "--pysyncobj-batch",
        action="store_true",
        help="run PySyncObj with appendEntriesUseBatch=True (its default; see the docs)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "consensus.json")
    args = parser.parse_args()
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

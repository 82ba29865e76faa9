"""A 3-member consensus cluster of real processes under faults: kill -9 of the leader under a
stream of writes, restart with a torn WAL tail and catch-up (through an InstallSnapshot once
the log is compacted).

Every write carries a request id and is retried on UNAVAILABLE against another member, as a
careful client would; every acknowledged write must be readable afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc import aio

from tests.support.history import ClusterClients
from tests.support.mesh import ConsensusCluster, Mesh, consensus_cluster, member_clients
from tests.support.metrics import metric
from x0tta6bl4.consensus.v1 import kv_pb2, kv_pb2_grpc

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(240)]

SNAPSHOT_ENTRIES = 200


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> ConsensusCluster:
    return consensus_cluster(
        mesh,
        tmp_path_factory.mktemp("raft"),
        env={
            "X0_RAFT_SNAPSHOT_ENTRIES": str(SNAPSHOT_ENTRIES),
            "X0_RAFT_CATCHUP_ENTRIES": "20",
        },
    )


@pytest.fixture
async def clients(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[ClusterClients]:
    async with member_clients(mesh, cluster.members) as by_member:
        yield ClusterClients(by_member)


@dataclass
class History:
    acked: dict[bytes, bytes] = field(default_factory=dict)
    ack_times: list[tuple[float, float]] = field(default_factory=list)
    """(first attempt, acknowledgement) times of every acknowledged write."""
    failures: int = 0


async def writer(
    clients: ClusterClients, client_id: int, stop: asyncio.Event, history: History
) -> None:
    rng = random.Random(client_id)
    for seq in itertools.count(1):
        if stop.is_set():
            return
        key = b"sys/w%d/%06d" % (client_id, seq)
        value = b"value-%d-%d" % (client_id, seq)
        request = kv_pb2.PutRequest(
            key=key, value=value, request_id=kv_pb2.RequestId(client_id=client_id, seq=seq)
        )
        issued = time.monotonic()
        deadline = issued + 20
        while True:  # retry the same request id until acknowledged
            member = rng.choice(clients.alive())
            try:
                await clients.call(member, kv_pb2_grpc.KVServiceStub, "Put", request, 2)
            except aio.AioRpcError as err:
                history.failures += 1
                assert err.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ), err
                assert time.monotonic() < deadline, f"write {key!r} not acknowledged in 20s"
                await asyncio.sleep(0.02)
                continue
            history.acked[key] = value
            history.ack_times.append((issued, time.monotonic()))
            break


async def test_leader_kill_under_writes_loses_no_acknowledged_write(
    cluster: ConsensusCluster, clients: ClusterClients
) -> None:
    history = History()
    stop = asyncio.Event()
    writers = [asyncio.create_task(writer(clients, 100 + i, stop, history)) for i in range(4)]
    try:
        await asyncio.sleep(2)
        before_kill = len(history.acked)
        assert before_kill > 0, "no writes acknowledged before the fault"
        old_leader = await clients.leader()
        cluster.kill(old_leader)  # returns once the process is gone
        killed_at = time.monotonic()
        clients.down.add(old_leader)
        deadline = killed_at + 30
        while not any(issued > killed_at for issued, _ in history.ack_times):
            assert time.monotonic() < deadline, "no write acknowledged within 30 s of the kill"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # and writes keep flowing on the new leader
    finally:
        stop.set()
        await asyncio.gather(*writers)
    # Failover: from the leader's death to the first acknowledgement of a write issued after it.
    after_kill = [acked for issued, acked in history.ack_times if issued > killed_at]
    assert after_kill, "no write issued after the leader was killed was acknowledged"
    failover_s = min(after_kill) - killed_at
    new_leader = await clients.leader()
    assert new_leader != old_leader
    print(
        f"\nleader kill: {len(history.acked)} writes acknowledged ({before_kill} before the "
        f"kill), {history.failures} retried calls, first write after the kill "
        f"{failover_s * 1000:.0f} ms later; new leader {new_leader}"
    )
    got = await clients.call(
        clients.alive()[0],
        kv_pb2_grpc.KVServiceStub,
        "Range",
        kv_pb2.RangeRequest(prefix=b"sys/w"),
        10,
    )
    stored = {kv.key: kv.value for kv in got.kvs}
    missing = {k for k, v in history.acked.items() if stored.get(k) != v}
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:3]}"
    # Retried requests applied once: every key was written exactly once (version 1).
    assert all(kv.version == 1 for kv in got.kvs)

    # The killed member restarts from its WAL; with the log compacted meanwhile it catches up
    # through a streamed snapshot.
    leader_metrics_before = cluster.members[new_leader].metrics()
    for i in range(SNAPSHOT_ENTRIES + 50):
        await clients.call(
            new_leader,
            kv_pb2_grpc.KVServiceStub,
            "Put",
            kv_pb2.PutRequest(key=b"sys/more/%04d" % i, value=b"m"),
            5,
        )
    # A torn write at the end of its WAL (as if the kill hit mid-append) is cut off on start.
    wal_dir = cluster.root / f"node-{old_leader}" / "wal"
    last_segment = sorted(wal_dir.iterdir())[-1]
    with last_segment.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01torn")
    cluster.start(old_leader)
    clients.down.discard(old_leader)
    cluster.wait_ready([old_leader])
    await clients.wait_caught_up(old_leader, timeout_s=60)
    got = await clients.call(
        old_leader,
        kv_pb2_grpc.KVServiceStub,
        "Range",
        kv_pb2.RangeRequest(prefix=b"sys/", serializable=True),
        10,
    )
    stored = {kv.key: kv.value for kv in got.kvs}
    assert all(stored.get(k) == v for k, v in history.acked.items())
    assert sum(1 for k in stored if k.startswith(b"sys/more/")) == SNAPSHOT_ENTRIES + 50
    leader_metrics = cluster.members[new_leader].metrics()
    sent = metric(leader_metrics, "x0tta6bl4_raft_snapshots_total", kind="sent")
    sent_before = metric(
        leader_metrics_before, "x0tta6bl4_raft_snapshots_total", default=0.0, kind="sent"
    )
    assert sent > sent_before, "the restarted member should have been sent a snapshot"
    assert metric(leader_metrics, "x0tta6bl4_raft_snapshot_compression_ratio") > 1.0
    log = cluster.members[old_leader].process.log_path.read_text()
    assert "wal.torn_tail_truncated" in log
    restarted_metrics = cluster.members[old_leader].metrics()
    assert metric(restarted_metrics, "x0tta6bl4_raft_snapshots_total", kind="installed") >= 1


async def test_single_client_write_rate(cluster: ConsensusCluster, clients: ClusterClients) -> None:
    """Not a pass/fail timing test: prints a rough sequential write rate for the report."""
    leader = await clients.leader()
    n, started = 0, time.monotonic()
    while time.monotonic() - started < 2:
        await clients.call(
            leader,
            kv_pb2_grpc.KVServiceStub,
            "Put",
            kv_pb2.PutRequest(key=b"rate/k", value=b"x" * 256),
            5,
        )
        n += 1
    writes_s = n / (time.monotonic() - started)
    n, started = 0, time.monotonic()
    while time.monotonic() - started < 2:
        await clients.call(
            leader, kv_pb2_grpc.KVServiceStub, "Get", kv_pb2.GetRequest(key=b"rate/k"), 5
        )
        n += 1
    reads_s = n / (time.monotonic() - started)
    print(
        f"\none client on the leader: {writes_s:.0f} writes/s, {reads_s:.0f} linearizable reads/s"
    )
    assert writes_s > 0 and reads_s > 0

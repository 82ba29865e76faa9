"""A 5-member cluster keeps accepting writes with two members killed (-9) under load, and the
two catch up when they come back. Every acknowledged write is on every member at the end."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from grpc import aio

from tests.support.history import ClusterClients
from tests.support.mesh import ConsensusCluster, Mesh, consensus_cluster, member_clients

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> ConsensusCluster:
    return consensus_cluster(
        mesh,
        tmp_path_factory.mktemp("raft5"),
        size=5,
        env={"X0_RAFT_SNAPSHOT_ENTRIES": "100", "X0_RAFT_CATCHUP_ENTRIES": "20"},
    )


@pytest.fixture
async def clients(mesh: Mesh, cluster: ConsensusCluster) -> AsyncIterator[ClusterClients]:
    async with member_clients(mesh, cluster.members) as by_member:
        yield ClusterClients(by_member)


async def test_two_of_five_killed_under_load_then_caught_up(
    cluster: ConsensusCluster, clients: ClusterClients
) -> None:
    leader, _ = await clients.agreed_leader()
    victims = [m for m in cluster.members if m != leader][:2]
    acknowledged: list[bytes] = []
    stop = asyncio.Event()
    sequence = itertools.count()

    async def writer(worker: int) -> None:
        while not stop.is_set():
            key = f"five/{worker}/{next(sequence)}".encode()
            for member in clients.alive():
                try:
                    await clients.put(member, key, b"v" * 256, timeout_s=3)
                except aio.AioRpcError:
                    continue  # an unknown outcome is never counted as acknowledged
                acknowledged.append(key)
                break
            await asyncio.sleep(0.01)

    writers = [asyncio.ensure_future(writer(w)) for w in range(4)]
    await asyncio.sleep(1.0)
    before_kill = len(acknowledged)
    for victim in victims:
        cluster.kill(victim)
        clients.down.add(victim)
    deadline = asyncio.get_running_loop().time() + 30
    while len(acknowledged) - before_kill <= 20:  # a re-election if the leader was hit
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    during = len(acknowledged) - before_kill
    for victim in victims:
        cluster.start(victim)
    cluster.wait_ready(victims)
    clients.down.clear()
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*writers)

    assert before_kill > 0
    assert during > 20, f"only {during} writes were acknowledged with two of five members down"
    expected = set(acknowledged)

    async def keys_on(member: int) -> set[bytes]:
        response = await clients.range(member, b"five/", serializable=True)
        return {kv.key for kv in response.kvs}

    deadline = asyncio.get_running_loop().time() + 60
    while True:
        missing = {m: len(expected - await keys_on(m)) for m in cluster.members}
        if not any(missing.values()):
            break
        assert asyncio.get_running_loop().time() < deadline, f"missing writes: {missing}"
        await asyncio.sleep(0.5)

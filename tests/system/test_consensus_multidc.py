"""Multi-datacenter behaviour of a real 3-member cluster whose peer links go through fault
proxies: zone-a (member 1), zone-b (2), zone-c (3), with 40 ms one-way latency on every link
to and from zone-c (80 ms round trip).

- X0_RAFT_LINK_RTT_MS on the remote member raises its timers (visible in its metrics), and
  the WAN latency causes no elections (term and leader unchanged while writes flow).
- X0_RAFT_PREFERRED_ZONE=zone-a: the leader settles in zone-a; killing it fails over to
  another zone; once it is back and caught up, leadership returns to zone-a.
- A learner added in a remote zone (zone-d) is reported as a learner and receives the data.
- Bounded-staleness reads (max_staleness_ms) are answered by a follower from its own state,
  and refused with UNAVAILABLE once it has not heard from the leader within the bound.
- Placement validation warns when one zone holds a quorum (settings, no processes).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.support.faultproxy import FaultNetwork
from tests.support.history import ClusterClients
from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    client,
    consensus_cluster,
    member_clients,
    svid_source,
)
from tests.support.metrics import metric
from x0tta6bl4.consensus.settings import load_raft_settings
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.devstack.procs import free_port

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(180)]

RAFT_ENV = {
    "X0_RAFT_HEARTBEAT_TICKS": "5",
    "X0_RAFT_ELECTION_TICKS": "30",
    "X0_RAFT_PREFERRED_ZONE": "zone-a",
}
REMOTE = 3  # zone-c
WAN_ONE_WAY_S = 0.040


@pytest.fixture(scope="module")
def cluster(
    mesh: Mesh, network: FaultNetwork, tmp_path_factory: pytest.TempPathFactory
) -> ConsensusCluster:
    cluster = consensus_cluster(
        mesh,
        tmp_path_factory.mktemp("raft"),
        env=RAFT_ENV,
        network=network,
        member_env={REMOTE: {"X0_RAFT_LINK_RTT_MS": "1=80,2=80"}},
    )
    for name in cluster.links_of(REMOTE):
        network.set_latency(name, WAN_ONE_WAY_S)
    return cluster


@pytest.fixture
async def clients(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[ClusterClients]:
    async with member_clients(mesh, cluster.members) as by_member:
        yield ClusterClients(by_member)


async def wait_leader(clients: ClusterClients, want: int, timeout_s: float = 30) -> float:
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        views = await clients.leaders()
        if views and all(leader == want for leader, _ in views.values()):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"leadership did not settle on {want} within {timeout_s}s: {views}")


async def test_remote_member_gets_longer_timers_and_latency_causes_no_elections(
    cluster: ConsensusCluster, clients: ClusterClients
) -> None:
    local = metric(cluster.members[1].metrics(), "x0tta6bl4_raft_election_timeout_ms")
    remote = metric(cluster.members[REMOTE].metrics(), "x0tta6bl4_raft_election_timeout_ms")
    remote_hb = metric(cluster.members[REMOTE].metrics(), "x0tta6bl4_raft_heartbeat_interval_ms")
    assert remote > local, (local, remote)
    assert remote_hb >= 160  # 2 x the 80 ms round trip
    await wait_leader(clients, 1)  # the preferred zone's member leads
    leader, term = await clients.agreed_leader()
    started = time.monotonic()
    n = 0
    while time.monotonic() - started < 5:  # writes through every member, incl. the remote one
        await clients.put(1 + n % 3, b"dc/w/%04d" % n, b"v", timeout_s=5)
        n += 1
    views = await clients.leaders()
    print(
        f"\nelection timeout: {local:.0f} ms in zone-a, {remote:.0f} ms (heartbeat "
        f"{remote_hb:.0f} ms) in zone-c with an 80 ms RTT; {n} writes in 5 s under WAN "
        f"latency; views {views}"
    )
    assert views == {i: (leader, term) for i in cluster.ports}, "an election happened"
    log = cluster.members[REMOTE].process.log_path.read_text()
    assert "timers raised for link RTTs" in log
    # The leader measures each link's round trip from its heartbeats.
    leader_metrics = cluster.members[leader].metrics()
    wan = metric(leader_metrics, "x0tta6bl4_raft_peer_rtt_seconds", peer=str(REMOTE))
    lan = metric(leader_metrics, "x0tta6bl4_raft_peer_rtt_seconds", peer="2")
    print(
        f"measured round trips from leader {leader}: zone-c {wan * 1000:.0f} ms, "
        f"zone-b {lan * 1000:.1f} ms"
    )
    assert wan >= 2 * WAN_ONE_WAY_S * 0.9 and lan < wan / 2, (wan, lan)
    # ... and warns that its own (zone-a) timers are tight for the link to zone-c.
    assert "raft.link_rtt_high" in cluster.members[leader].process.log_path.read_text()


async def test_leadership_returns_to_the_preferred_zone_after_failover(
    cluster: ConsensusCluster, clients: ClusterClients
) -> None:
    await wait_leader(clients, 1)
    cluster.kill(1)
    clients.down.add(1)
    killed_at = time.monotonic()
    other, _ = await clients.agreed_leader(exclude=1)
    failover_s = time.monotonic() - killed_at
    for i in range(20):
        await clients.put(other, b"dc/failover/%02d" % i, b"v", timeout_s=5)
    cluster.start(1)
    restarted_at = time.monotonic()
    await asyncio.to_thread(cluster.wait_ready, [1])
    clients.down.discard(1)
    back_s = await wait_leader(clients, 1, timeout_s=60)
    print(
        f"\npreferred leader 1 (zone-a) killed: {other} ({cluster.zone_of(other)}) led after "
        f"{failover_s * 1000:.0f} ms; leadership back in zone-a "
        f"{(time.monotonic() - restarted_at) * 1000:.0f} ms after restarting 1 "
        f"({back_s * 1000:.0f} ms after it was ready)"
    )
    got = await clients.range(1, b"dc/failover/", serializable=True)
    assert len(got.kvs) == 20


async def test_bounded_staleness_reads_served_by_a_follower(
    cluster: ConsensusCluster, network: FaultNetwork, clients: ClusterClients
) -> None:
    leader, _ = await clients.agreed_leader()
    follower = next(i for i in cluster.ports if i not in (leader, REMOTE))
    await clients.put(leader, b"dc/stale", b"fresh", timeout_s=5)

    async def bounded_get(bound_ms: int) -> Any:
        return await clients.call(
            follower,
            kv_pb2_grpc.KVServiceStub,
            "Get",
            kv_pb2.GetRequest(key=b"dc/stale", max_staleness_ms=bound_ms),
            5,
        )

    deadline = time.monotonic() + 10
    while (got := await bounded_get(2000)).kv.value != b"fresh":
        assert time.monotonic() < deadline, "the follower never showed the write"
        await asyncio.sleep(0.05)
    assert got.header.member_id == follower
    names = cluster.links_of(follower)
    network.partition(*names, mode="drop")
    try:
        await asyncio.sleep(1.5)
        with pytest.raises(aio.AioRpcError) as refused:
            await bounded_get(500)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "max_staleness_ms" in (refused.value.details() or "")
    finally:
        network.heal(*names)
    deadline = time.monotonic() + 20
    while True:
        try:
            await bounded_get(500)
            break
        except aio.AioRpcError:
            assert time.monotonic() < deadline, "bounded reads never resumed after healing"
            await asyncio.sleep(0.1)


async def test_remote_learner_is_a_learner_and_receives_data(
    cluster: ConsensusCluster, clients: ClusterClients, mesh: Mesh
) -> None:
    leader, _ = await clients.agreed_leader()
    cluster.ports[4] = free_port()
    cluster.zones[4] = "zone-d"
    await clients.call(
        leader,
        cluster_pb2_grpc.ClusterServiceStub,
        "MemberAdd",
        cluster_pb2.MemberAddRequest(id=4, address=f"127.0.0.1:{cluster.ports[4]}", zone="zone-d"),
        15,
    )
    cluster.start(4, env={"X0_RAFT_JOIN": "true"})
    await asyncio.to_thread(cluster.wait_ready, [4])
    await clients.put(leader, b"dc/learner", b"replicated", timeout_s=5)
    async with (
        svid_source(mesh.workload("operator")) as svids,
        client(svids, cluster.members[4]) as learner,
    ):
        deadline = time.monotonic() + 30
        while True:
            got = await learner.call(
                lambda ch, t: kv_pb2_grpc.KVServiceStub(ch).Get(
                    kv_pb2.GetRequest(key=b"dc/learner", serializable=True), timeout=t
                ),
                idempotent=True,
            )
            if got.found:
                break
            assert time.monotonic() < deadline, "the learner never received the data"
            await asyncio.sleep(0.1)
    status = await clients.status(leader)
    roles = {m.id: m.role for m in status.members}
    assert roles[4] == cluster_pb2.Member.ROLE_LEARNER
    assert sum(r != cluster_pb2.Member.ROLE_LEARNER for r in roles.values()) == 3


def test_placement_warning_and_rtt_timers_from_settings(tmp_path: Any) -> None:
    platform: Any = SimpleNamespace(grpc_addr=None, state_dir=str(tmp_path))
    env = {
        "X0_RAFT_NODE_ID": "3",
        "X0_RAFT_PEERS": "1=h:1@dc1,2=h:2@dc1,3=h:3@dc2",
        "X0_RAFT_LINK_RTT_MS": "1=80,2=80",
    }
    raft = load_raft_settings(platform, env)
    assert any("'dc1' holds 2 of 3 voters" in note for note in raft.notes), raft.notes
    assert raft.heartbeat_ticks == 16 and raft.election_ticks == 80
    balanced = load_raft_settings(
        platform, {"X0_RAFT_NODE_ID": "1", "X0_RAFT_PEERS": "1=h:1@a,2=h:2@b,3=h:3@c"}
    )
    assert balanced.notes == []
    assert (balanced.heartbeat_ticks, balanced.election_ticks) == (10, 50)

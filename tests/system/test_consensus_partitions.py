"""A 3-member consensus cluster of real processes whose peer links all go through fault
proxies (member i dials member j through link "i->j"): network partitions and SIGSTOP.

- An isolated leader: the majority elects a new leader and keeps accepting writes; the old
  leader cannot commit (its write is never acknowledged, and never applied); check-quorum makes
  it step down; after healing it follows the new leader and catches up.
- Pre-vote: an isolated follower does not raise its term while cut off, and rejoining does not
  depose the healthy leader (term and leader unchanged).
- SIGSTOP of the leader for longer than the election timeout: a new leader; SIGCONT: the old
  one steps down, and no acknowledged write is lost.

Test clients dial members directly (never through a proxy), so they still reach an isolated
member. No timing assertions: the machine is small and shared; failover times are printed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from tests.support.faultproxy import FaultNetwork
from tests.support.history import ClusterClients
from tests.support.mesh import ConsensusCluster, Mesh, consensus_cluster, member_clients

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(180)]

# 10 ms ticks: heartbeat 50 ms, election timeout 300-600 ms (generous for a shared 2-core box).
RAFT_ENV = {"X0_RAFT_HEARTBEAT_TICKS": "5", "X0_RAFT_ELECTION_TICKS": "30"}
ELECTION_S = 0.6  # upper bound of the randomised election timeout


@pytest.fixture(scope="module")
def cluster(
    mesh: Mesh, network: FaultNetwork, tmp_path_factory: pytest.TempPathFactory
) -> ConsensusCluster:
    return consensus_cluster(mesh, tmp_path_factory.mktemp("raft"), env=RAFT_ENV, network=network)


@pytest.fixture
async def clients(
    cluster: ConsensusCluster, mesh: Mesh, network: FaultNetwork
) -> AsyncIterator[ClusterClients]:
    network.heal()
    async with member_clients(mesh, cluster.members) as by_member:
        yield ClusterClients(by_member)
    network.heal()


async def write_until(
    clients: ClusterClients, members: list[int], prefix: bytes, n: int, acked: dict[bytes, bytes]
) -> None:
    """Write ``n`` keys through ``members`` (round robin, retrying UNAVAILABLE for up to 30 s)."""
    deadline = time.monotonic() + 30
    for i in range(n):
        key, value = b"%s/%04d" % (prefix, i), b"v%d" % i
        while True:
            member = members[i % len(members)]
            try:
                await clients.put(member, key, value, timeout_s=3)
            except aio.AioRpcError as err:
                assert err.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ), err
                assert time.monotonic() < deadline, f"{key!r} not acknowledged in 30 s"
                await asyncio.sleep(0.05)
                continue
            acked[key] = value
            break


async def assert_all_present(
    clients: ClusterClients, member: int, prefix: bytes, acked: dict[bytes, bytes]
) -> None:
    got = await clients.range(member, prefix, serializable=True)
    stored = {kv.key: kv.value for kv in got.kvs}
    missing = sorted(k for k, v in acked.items() if stored.get(k) != v)
    assert not missing, f"member {member} lacks {len(missing)} acknowledged writes: {missing[:3]}"


async def test_isolated_leader_cannot_commit_and_majority_moves_on(
    cluster: ConsensusCluster, network: FaultNetwork, clients: ClusterClients
) -> None:
    acked: dict[bytes, bytes] = {}
    old_leader, old_term = await clients.agreed_leader()
    others = [i for i in cluster.ports if i != old_leader]
    await write_until(clients, [*others, old_leader], b"part/before", 20, acked)

    cluster.isolate(old_leader)
    cut_at = time.monotonic()
    # The old leader still believes it leads for up to an election timeout: a write sent to
    # it now cannot reach a quorum, so it must never be acknowledged (and never be applied).
    orphan = asyncio.create_task(clients.put(old_leader, b"part/orphan", b"never", timeout_s=3))
    new_leader, new_term = await clients.agreed_leader(others, exclude=old_leader)
    elected_s = time.monotonic() - cut_at
    with pytest.raises(aio.AioRpcError) as failed:
        await orphan
    assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert new_term > old_term
    await write_until(clients, others, b"part/during", 30, acked)
    first_write_s = time.monotonic() - cut_at

    # Check-quorum: the isolated leader notices it lost its quorum and steps down.
    deadline = time.monotonic() + 20
    while (s := await clients.status(old_leader)).leader_id == old_leader:
        assert time.monotonic() < deadline, "the isolated leader never stepped down"
        await asyncio.sleep(0.1)
    # A linearizable read on the isolated member cannot be served (no quorum to confirm it).
    with pytest.raises(aio.AioRpcError) as read_failed:
        await clients.range(old_leader, b"part/")
    assert read_failed.value.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )

    network.heal()
    healed_at = time.monotonic()
    await clients.wait_caught_up(old_leader, new_leader)
    caught_up_s = time.monotonic() - healed_at
    leader_after, _ = await clients.agreed_leader()
    print(
        f"\nleader {old_leader} isolated (term {old_term}): majority elected {new_leader} "
        f"(term {new_term}) after {elected_s * 1000:.0f} ms, 30 writes done "
        f"{first_write_s * 1000:.0f} ms after the cut; old leader stepped down (term "
        f"{s.term}); caught up {caught_up_s * 1000:.0f} ms after healing; leader now "
        f"{leader_after}"
    )
    for member in cluster.ports:
        await assert_all_present(clients, member, b"part/", acked)
        got = await clients.range(member, b"part/orphan", serializable=True)
        assert not got.kvs, f"member {member} applied a write the old leader never committed"
    await write_until(clients, [old_leader], b"part/after", 5, acked)
    await assert_all_present(clients, leader_after, b"part/", acked)


async def test_rejoining_partitioned_follower_does_not_disrupt_the_leader(
    cluster: ConsensusCluster, network: FaultNetwork, clients: ClusterClients
) -> None:
    """Pre-vote: an isolated follower keeps failing pre-votes without bumping its term, so
    when it comes back it neither forces a new election nor deposes the leader."""
    leader, term = await clients.agreed_leader()
    follower = next(i for i in cluster.ports if i != leader)
    cluster.isolate(follower)
    # Many election timeouts: without pre-vote the follower would have raised its term ~10x.
    deadline = time.monotonic() + 10 * ELECTION_S
    follower_terms = set()
    while time.monotonic() < deadline:
        follower_terms.add(int((await clients.status(follower)).term))
        await asyncio.sleep(0.2)
    leader_view = await clients.status(leader)
    network.heal()
    acked: dict[bytes, bytes] = {}
    await write_until(clients, [leader], b"prevote/k", 10, acked)
    await clients.wait_caught_up(follower, leader)
    await asyncio.sleep(3 * ELECTION_S)  # time for a disruptive election, had there been one
    after = await clients.leaders()
    print(
        f"\nfollower {follower} isolated {10 * ELECTION_S:.0f} s: terms {sorted(follower_terms)}"
        f", leader {leader} term {term} before, views after healing {after}"
    )
    assert follower_terms == {term}, "the isolated follower raised its term (no pre-vote?)"
    assert leader_view.leader_id == leader and leader_view.term == term
    assert after == {i: (leader, term) for i in cluster.ports}, (
        "rejoining follower disturbed the leader"
    )
    await assert_all_present(clients, follower, b"prevote/", acked)


async def test_sigstopped_leader_is_replaced_and_steps_down_on_sigcont(
    cluster: ConsensusCluster, clients: ClusterClients
) -> None:
    acked: dict[bytes, bytes] = {}
    old_leader, old_term = await clients.agreed_leader()
    others = [i for i in cluster.ports if i != old_leader]
    await write_until(clients, others, b"stop/before", 10, acked)
    cluster.pause(old_leader)
    clients.down.add(old_leader)
    stopped_at = time.monotonic()
    try:
        new_leader, new_term = await clients.agreed_leader(others, exclude=old_leader)
        elected_s = time.monotonic() - stopped_at
        await write_until(clients, others, b"stop/during", 20, acked)
        first_write_s = time.monotonic() - stopped_at
        await asyncio.sleep(max(0.0, 5 * ELECTION_S - (time.monotonic() - stopped_at)))
    finally:
        cluster.resume(old_leader)
        clients.down.discard(old_leader)
    resumed_at = time.monotonic()
    await clients.wait_caught_up(old_leader, new_leader)
    stepped_down_s = time.monotonic() - resumed_at
    print(
        f"\nleader {old_leader} SIGSTOPped (term {old_term}): {new_leader} elected (term "
        f"{new_term}) after {elected_s * 1000:.0f} ms, first 20 writes by "
        f"{first_write_s * 1000:.0f} ms; after SIGCONT the old leader followed {new_leader} "
        f"within {stepped_down_s * 1000:.0f} ms"
    )
    assert new_term > old_term
    leader_after, _ = await clients.agreed_leader()
    for member in cluster.ports:
        await assert_all_present(clients, member, b"stop/", acked)
    assert leader_after in cluster.ports

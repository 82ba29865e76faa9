"""The shared clients through kill -9 on a real 3-member cluster: a stream of writes and a
watch across the leader's death (every acknowledged write once, every revision once and in
order), a single-actor holder killed and replaced within its lease TTL, and document history
through the loss of a member."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.history import ClusterClients
from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    consensus_cluster,
    member_clients,
    svid_source,
)
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import Event, EventType
from x0tta6bl4.clients.single_actor import SingleActor
from x0tta6bl4.clients.versions import Documents

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(240)]

PREFIX = b"/x0/ops/failover/"


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> ConsensusCluster:
    return consensus_cluster(mesh, tmp_path_factory.mktemp("raft"))


@pytest.fixture
async def kv(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[ConsensusClient]:
    async with svid_source(mesh.workload("operator")) as svids:
        client = ConsensusClient(
            svids,
            [m.grpc_addr for m in cluster.members.values()],
            caller_service="operator",
            timeout_s=2,
        )
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def admin(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[ClusterClients]:
    async with member_clients(mesh, cluster.members) as by_member:
        yield ClusterClients(by_member)


async def _writer(
    kv: ConsensusClient, n: int, stop: asyncio.Event, acked: dict[bytes, int]
) -> None:
    for seq in itertools.count(1):
        if stop.is_set():
            return
        key = PREFIX + b"w%d/%06d" % (n, seq)
        acked[key] = (await kv.put(key, b"v")).revision


async def _collect(watch: AsyncIterator[Event], into: list[Event], stop: asyncio.Event) -> None:
    async for event in watch:
        into.append(event)
        if stop.is_set():
            return


async def test_writes_and_a_watch_across_a_leader_kill(
    cluster: ConsensusCluster, kv: ConsensusClient, admin: ClusterClients
) -> None:
    start = (await kv.put(PREFIX + b"start", b"")).revision + 1
    events: list[Event] = []
    acked: dict[bytes, int] = {}
    stop, watch_stop = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(
        _collect(kv.watch(PREFIX, prefix=True, start_revision=start), events, watch_stop)
    )
    writers = [asyncio.create_task(_writer(kv, n, stop, acked)) for n in range(3)]
    try:
        deadline = time.monotonic() + 30
        while len(acked) < 30:
            assert time.monotonic() < deadline, f"only {len(acked)} writes acknowledged"
            await asyncio.sleep(0.05)
        leader = await admin.leader()
        cluster.kill(leader)
        admin.down.add(leader)
        killed_at, before = time.monotonic(), len(acked)
        while len(acked) < before + 30:
            assert time.monotonic() < killed_at + 60, "writes did not go on after the kill"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    final = max(acked.values())
    deadline = time.monotonic() + 30
    while not events or events[-1].revision < final:
        assert time.monotonic() < deadline, "the watch did not catch up after the kill"
        await asyncio.sleep(0.05)
    watch_stop.set()
    watcher.cancel()
    stored = await kv.range(PREFIX + b"w")
    by_key = {x.key: x for x in stored.kvs}
    assert set(acked) <= set(by_key), "an acknowledged write is missing"
    assert all(x.version == 1 for x in stored.kvs), "a retried write applied twice"
    revisions = [e.revision for e in events]
    assert revisions == sorted(set(revisions)), "the watch repeated or reordered a revision"
    assert all(e.type is EventType.PUT for e in events)
    seen = {e.kv.key for e in events}
    assert set(acked) <= seen, "the watch missed an acknowledged write"
    print(f"\n{len(acked)} acknowledged writes, {len(events)} watch events, leader {leader}")
    cluster.start(leader)
    cluster.wait_ready([leader])
    admin.down.discard(leader)


HOLDER = """
import asyncio, sys
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.single_actor import SingleActor

async def main() -> None:
    svids = SvidSource(sys.argv[1])
    svids.start()
    assert await asyncio.to_thread(svids.wait_loaded, 30)
    kv = ConsensusClient(svids, sys.argv[2].split(","), caller_service="operator")
    tenure = await SingleActor(kv, "healer", "loop", "holder-process", ttl_s=2).acquire()
    print("acquired", tenure.token, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_holder_is_replaced_within_its_lease_ttl(
    cluster: ConsensusCluster, mesh: Mesh, kv: ConsensusClient
) -> None:
    members = ",".join(m.grpc_addr for m in cluster.members.values())
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(mesh.workload("operator").socket_path),
        members,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        assert holder.stdout is not None
        line = ""
        while not line.startswith("acquired"):  # its log lines come first
            raw = await asyncio.wait_for(holder.stdout.readline(), 60)
            assert raw, "the holder process exited before it acquired"
            line = raw.decode()
        contender = SingleActor(kv, "healer", "loop", "in-test", ttl_s=2)
        assert await contender.holder_now() == "holder-process"
        assert await contender.try_acquire() is None
        holder.kill()
        await holder.wait()
        killed = time.monotonic()
        tenure = await asyncio.wait_for(contender.acquire(), 30)
        took = time.monotonic() - killed
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
    assert tenure.token > int(line.split()[1])
    assert await contender.holder_now() == "in-test"
    print(f"\ntakeover {took:.2f} s after kill -9 (lease TTL 2 s)")
    # generous (3 TTLs): a loaded machine is slow, but a lease that never expires is a bug
    assert took < 3 * 2, f"takeover took {took:.1f} s, the lease TTL is 2 s"
    await tenure.resign()


async def test_document_history_survives_the_loss_of_a_member(
    cluster: ConsensusCluster, kv: ConsensusClient, admin: ClusterClients
) -> None:
    docs = Documents(kv, "ops", "spiffe://x0tta6bl4.mesh/ns/local/sa/operator")
    for i in range(3):
        await docs.propose("drill", b"step %d\n" % i, f"revision {i}")
    await docs.activate("drill", 3, expected=0)
    leader = await admin.leader()
    cluster.kill(leader)
    admin.down.add(leader)
    try:
        history = await docs.history("drill")
        assert [r.content for r in history] == [b"step 0\n", b"step 1\n", b"step 2\n"]
        assert await docs.current_number("drill") == 3
        assert (await docs.propose("drill", b"step 3\n")).number == 4
    finally:
        cluster.start(leader)
        cluster.wait_ready([leader])
        admin.down.discard(leader)

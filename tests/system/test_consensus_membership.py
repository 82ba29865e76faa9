"""Membership changes on a running cluster: add a 4th member as a learner (it joins empty and
catches up through InstallSnapshot), promote it to voter, then remove it again."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    client,
    consensus_cluster,
    svid_source,
    unary_call,
)
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.devstack.procs import free_port
from x0tta6bl4.platform.svid import SvidSource

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> ConsensusCluster:
    return consensus_cluster(
        mesh,
        tmp_path_factory.mktemp("raft"),
        env={
            "X0_RAFT_SNAPSHOT_ENTRIES": "50",
            "X0_RAFT_CATCHUP_ENTRIES": "5",
            "X0_RAFT_HISTORY_REVISIONS": "20",
            # Small chunks: the joiner's snapshot arrives in several InstallSnapshot messages.
            "X0_RAFT_SNAPSHOT_CHUNK_BYTES": "1024",
        },
    )


@pytest.fixture
async def svids(mesh: Mesh) -> AsyncIterator[SvidSource]:
    async with svid_source(mesh.workload("operator")) as source:
        yield source


async def test_add_learner_promote_and_remove(cluster: ConsensusCluster, svids: SvidSource) -> None:
    async with client(svids, cluster.members[1]) as first:
        status = await unary_call(
            first, cluster_pb2_grpc.ClusterServiceStub, "Status", cluster_pb2.StatusRequest()
        )
    async with client(svids, cluster.members[status.leader_id]) as leader:
        for i in range(
            120
        ):  # enough to compact the log past its start: the joiner needs a snapshot
            await unary_call(
                leader,
                kv_pb2_grpc.KVServiceStub,
                "Put",
                # Incompressible values: the snapshot spans several 1 KiB chunks.
                kv_pb2.PutRequest(key=b"m/%03d" % i, value=hashlib.sha256(b"%d" % i).digest()),
            )
        cluster.ports[4] = free_port()
        added = await unary_call(
            leader,
            cluster_pb2_grpc.ClusterServiceStub,
            "MemberAdd",
            cluster_pb2.MemberAddRequest(
                id=4, address=f"127.0.0.1:{cluster.ports[4]}", zone="zone-d"
            ),
        )
        roles = {m.id: m.role for m in added.members}
        assert roles[4] == cluster_pb2.Member.ROLE_LEARNER
        cluster.start(4, env={"X0_RAFT_JOIN": "true"})
        cluster.wait_ready([4])

        async with client(svids, cluster.members[4]) as joiner:
            deadline = time.monotonic() + 30
            while True:
                mine = await unary_call(
                    joiner,
                    cluster_pb2_grpc.ClusterServiceStub,
                    "Status",
                    cluster_pb2.StatusRequest(),
                )
                theirs = await unary_call(
                    leader,
                    cluster_pb2_grpc.ClusterServiceStub,
                    "Status",
                    cluster_pb2.StatusRequest(),
                )
                if mine.applied_index >= theirs.commit_index:
                    break
                assert time.monotonic() < deadline, "the learner did not catch up"
                await asyncio.sleep(0.2)
            got = await unary_call(
                joiner,
                kv_pb2_grpc.KVServiceStub,
                "Range",
                kv_pb2.RangeRequest(prefix=b"m/", serializable=True),
            )
            assert got.count == 120
            # The learner learned every member's address (its own record came with the snapshot
            # or the log), so it serves linearizable reads through the leader too.
            got = await unary_call(
                joiner, kv_pb2_grpc.KVServiceStub, "Get", kv_pb2.GetRequest(key=b"m/007")
            )
            assert got.found and got.kv.value == hashlib.sha256(b"7").digest()
            member4 = next(m for m in theirs.members if m.id == 4)
            assert member4.zone == "zone-d" and member4.role == cluster_pb2.Member.ROLE_LEARNER

        promoted = await unary_call(
            leader,
            cluster_pb2_grpc.ClusterServiceStub,
            "MemberPromote",
            cluster_pb2.MemberPromoteRequest(id=4),
        )
        assert {m.id: m.role for m in promoted.members}[4] != cluster_pb2.Member.ROLE_LEARNER

        async def settled() -> cluster_pb2.StatusResponse:
            while True:
                s: cluster_pb2.StatusResponse = await unary_call(
                    leader,
                    cluster_pb2_grpc.ClusterServiceStub,
                    "Status",
                    cluster_pb2.StatusRequest(),
                )
                if not s.joint:
                    return s
                await asyncio.sleep(0.1)

        s = await asyncio.wait_for(settled(), 10)
        assert {m.id for m in s.members} == {1, 2, 3, 4}
        # A write now needs 3 of 4 members, and still works.
        await unary_call(
            leader, kv_pb2_grpc.KVServiceStub, "Put", kv_pb2.PutRequest(key=b"m/after", value=b"4")
        )

        with pytest.raises(aio.AioRpcError):
            await unary_call(
                leader,
                cluster_pb2_grpc.ClusterServiceStub,
                "MemberPromote",
                cluster_pb2.MemberPromoteRequest(id=4),
            )
        await unary_call(
            leader,
            cluster_pb2_grpc.ClusterServiceStub,
            "MemberRemove",
            cluster_pb2.MemberRemoveRequest(id=4),
        )
        s = await asyncio.wait_for(settled(), 10)
        assert {m.id for m in s.members} == {1, 2, 3}
        assert cluster.members[4].process.stop() == 0, "SIGTERM should drain and exit 0"
        await unary_call(
            leader,
            kv_pb2_grpc.KVServiceStub,
            "Put",
            kv_pb2.PutRequest(key=b"m/removed", value=b"3"),
        )


async def test_watch_from_a_compacted_revision_is_out_of_range(
    cluster: ConsensusCluster, svids: SvidSource
) -> None:
    async with client(svids, cluster.members[2]) as c:
        for i in range(60):  # history is kept for 20 revisions here
            await unary_call(
                c, kv_pb2_grpc.KVServiceStub, "Put", kv_pb2.PutRequest(key=b"h/k", value=b"%d" % i)
            )
        await asyncio.sleep(0.5)  # the leader proposes the compaction on its next check
        stream = kv_pb2_grpc.KVServiceStub(c.channel()).Watch(
            kv_pb2.WatchRequest(key=b"h/k", start_revision=1), timeout=10
        )
        with pytest.raises(aio.AioRpcError) as compacted:
            await stream.read()
        assert compacted.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert (compacted.value.details() or "").startswith("start_revision:")
        with pytest.raises(aio.AioRpcError) as old_read:
            await unary_call(
                c, kv_pb2_grpc.KVServiceStub, "Get", kv_pb2.GetRequest(key=b"h/k", revision=2)
            )
        assert old_read.value.code() == grpc.StatusCode.OUT_OF_RANGE

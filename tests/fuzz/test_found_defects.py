"""Regression tests of the defects the fuzz tier found, each checked the way a user meets it.

- A write whose request id was already used for another kind of write got INTERNAL (the
  servicer asserted the remembered outcome's type): now INVALID_ARGUMENT naming request_id,
  with nothing applied, while a true retry still gets its original answer.
- grpc.health.v1.Health/Watch failed INTERNAL on every process (the platform interceptor
  iterated the handler, which sends with ``context.write``), and Health/List, which the
  health servicer does not implement, was INTERNAL instead of UNIMPLEMENTED.
- MemberPromote made a learner that had acknowledged nothing (an unreachable address) a
  voter while the log was shorter than the catch-up margin; a few of those and the cluster
  has no quorum.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.fuzz.suite import FuzzSuite, operator_clients
from tests.support.mesh import ConsensusCluster, consensus_cluster, member_clients, unary_call
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(240)]

KV = kv_pb2_grpc.KVServiceStub
CLUSTER = cluster_pb2_grpc.ClusterServiceStub


async def test_a_request_id_used_for_another_kind_of_write_is_invalid_argument(
    fuzz_suite: FuzzSuite,
) -> None:
    rid = kv_pb2.RequestId(client_id=7_000_001, seq=1)
    key = b"/fuzz/defects/request-id"
    async with operator_clients(fuzz_suite) as clients:
        c = clients["consensus-1"]
        put = await unary_call(c, KV, "Put", kv_pb2.PutRequest(key=key, value=b"v", request_id=rid))
        reused = [
            ("LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=5, request_id=rid)),
            ("Delete", kv_pb2.DeleteRequest(key=key, request_id=rid)),
            ("Txn", kv_pb2.TxnRequest(request_id=rid)),
            ("LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=1, request_id=rid)),
        ]
        for rpc, request in reused:
            with pytest.raises(aio.AioRpcError) as failure:
                await unary_call(c, KV, rpc, request)
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, rpc
            assert (failure.value.details() or "").startswith("request_id: "), rpc
        retry = kv_pb2.PutRequest(key=key, value=b"v", request_id=rid)
        assert (await unary_call(c, KV, "Put", retry)).header.revision == put.header.revision
        got = await unary_call(c, KV, "Get", kv_pb2.GetRequest(key=key))
        assert got.found and got.kv.mod_revision == put.header.revision  # nothing else applied


async def test_health_watch_answers_serving_on_every_process(fuzz_suite: FuzzSuite) -> None:
    async with operator_clients(fuzz_suite) as clients:
        for name, c in clients.items():
            call = health_pb2_grpc.HealthStub(c.channel()).Watch(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            try:
                first = await call.read()
            finally:
                call.cancel()
            assert first.status == health_pb2.HealthCheckResponse.SERVING, name


async def test_a_method_the_servicer_lacks_is_unimplemented(fuzz_suite: FuzzSuite) -> None:
    async with operator_clients(fuzz_suite) as clients:
        with pytest.raises(aio.AioRpcError) as failure:
            await unary_call(
                clients["identity"],
                health_pb2_grpc.HealthStub,
                "List",
                health_pb2.HealthListRequest(),
            )
    assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.fixture(scope="module")
def fresh_cluster(
    fuzz_suite: FuzzSuite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsensusCluster]:
    """A new cluster of its own (its log still short), in the fuzz suite's trust domain."""
    cluster = consensus_cluster(fuzz_suite.mesh, tmp_path_factory.mktemp("short-log"))
    yield cluster
    for member in cluster.members.values():
        member.process.stop()


async def test_a_learner_that_acknowledged_nothing_is_not_promoted(
    fuzz_suite: FuzzSuite, fresh_cluster: ConsensusCluster, dead_ports: tuple[int, ...]
) -> None:
    async with member_clients(fuzz_suite.mesh, fresh_cluster.members) as clients:
        status = await unary_call(clients[1], CLUSTER, "Status", cluster_pb2.StatusRequest())
        leader = clients[status.leader_id]
        assert status.commit_index < 100, "the log must be short for this test to mean much"
        nowhere = f"127.0.0.1:{dead_ports[0]}"
        add = cluster_pb2.MemberAddRequest(id=1000, address=nowhere)
        await unary_call(leader, CLUSTER, "MemberAdd", add, 15)
        with pytest.raises(aio.AioRpcError) as failure:
            promote = cluster_pb2.MemberPromoteRequest(id=1000)
            await unary_call(leader, CLUSTER, "MemberPromote", promote, 15)
        assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "has not acknowledged any entry" in (failure.value.details() or "")
        after = await unary_call(leader, CLUSTER, "Status", cluster_pb2.StatusRequest())
        roles = {m.id: m.role for m in after.members}
        assert roles[1000] == cluster_pb2.Member.ROLE_LEARNER, after
        await unary_call(leader, CLUSTER, "MemberRemove", cluster_pb2.MemberRemoveRequest(id=1000))

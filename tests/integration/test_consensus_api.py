"""The consensus KV and Cluster APIs on a real 3-member cluster over mTLS (SPIRE + OPA)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import grpc
import pytest
from grpc import aio

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    consensus_cluster,
    eventually,
    member_clients,
    unary_call,
)
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.platform.client import MeshClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsensusCluster]:
    yield consensus_cluster(mesh, tmp_path_factory.mktemp("raft"))


@pytest.fixture
async def clients(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[dict[int, MeshClient]]:
    async with member_clients(mesh, cluster.members) as by_member:
        yield by_member


def kv(c: MeshClient, rpc: str, request: Any) -> Awaitable[Any]:
    """Call ``KVService.<rpc>`` through ``c``."""
    return unary_call(c, kv_pb2_grpc.KVServiceStub, rpc, request)


def cl(c: MeshClient, rpc: str, request: Any) -> Awaitable[Any]:
    """Call ``ClusterService.<rpc>`` through ``c``."""
    return unary_call(c, cluster_pb2_grpc.ClusterServiceStub, rpc, request)


async def test_three_members_elect_one_leader(clients: dict[int, MeshClient]) -> None:
    statuses = [await cl(c, "Status", cluster_pb2.StatusRequest()) for c in clients.values()]
    leaders = {s.leader_id for s in statuses}
    assert len(leaders) == 1 and 0 not in leaders, statuses
    leader = leaders.pop()
    leader_status = next(s for s in statuses if s.member_id == leader)
    roles = {m.id: m.role for m in leader_status.members}
    assert roles[leader] == cluster_pb2.Member.ROLE_LEADER
    assert sorted(roles) == [1, 2, 3]
    assert {m.zone for m in leader_status.members} == {"zone-a", "zone-b", "zone-c"}
    assert all(m.address.startswith("127.0.0.1:") for m in leader_status.members)


async def test_put_through_any_member_is_read_linearizably_from_every_member(
    clients: dict[int, MeshClient],
) -> None:
    for writer, writer_client in clients.items():
        key = f"api/put/{writer}".encode()
        put = await kv(writer_client, "Put", kv_pb2.PutRequest(key=key, value=b"v%d" % writer))
        assert put.header.revision > 0
        for reader, c in clients.items():
            got = await kv(c, "Get", kv_pb2.GetRequest(key=key))
            assert got.found, (writer, reader)
            assert got.kv.value == b"v%d" % writer
            assert got.kv.mod_revision == put.header.revision


async def test_range_and_delete_by_prefix(clients: dict[int, MeshClient]) -> None:
    c1, c2, c3 = clients[1], clients[2], clients[3]
    for i in range(5):
        await kv(c1, "Put", kv_pb2.PutRequest(key=b"api/range/%d" % i, value=b"%d" % i))
    page = await kv(c2, "Range", kv_pb2.RangeRequest(prefix=b"api/range/", limit=3))
    assert [x.key for x in page.kvs] == [b"api/range/0", b"api/range/1", b"api/range/2"]
    assert page.count == 5 and page.more
    deleted = await kv(c3, "Delete", kv_pb2.DeleteRequest(key=b"api/range/", prefix=True))
    assert deleted.deleted == 5
    # An old revision still shows the keys (MVCC); the current one does not.
    old = await kv(
        c1, "Range", kv_pb2.RangeRequest(prefix=b"api/range/", revision=page.header.revision)
    )
    assert old.count == 5
    now = await kv(c1, "Range", kv_pb2.RangeRequest(prefix=b"api/range/"))
    assert now.count == 0


async def test_txn_compare_and_swap(clients: dict[int, MeshClient]) -> None:
    c = clients[2]
    put = await kv(c, "Put", kv_pb2.PutRequest(key=b"api/cas", value=b"one"))

    def cas(expected_mod: int, value: bytes) -> kv_pb2.TxnRequest:
        return kv_pb2.TxnRequest(
            compare=[
                kv_pb2.Compare(
                    key=b"api/cas",
                    operator=kv_pb2.Compare.OPERATOR_EQUAL,
                    mod_revision=expected_mod,
                )
            ],
            success=[kv_pb2.TxnOp(put=kv_pb2.TxnPut(key=b"api/cas", value=value))],
            failure=[kv_pb2.TxnOp(range=kv_pb2.TxnRange(key=b"api/cas"))],
        )

    won = await kv(c, "Txn", cas(put.header.revision, b"two"))
    assert won.succeeded
    lost = await kv(clients[3], "Txn", cas(put.header.revision, b"three"))
    assert not lost.succeeded
    assert lost.responses[0].range.kvs[0].value == b"two"
    value_cmp = kv_pb2.TxnRequest(
        compare=[
            kv_pb2.Compare(key=b"api/cas", operator=kv_pb2.Compare.OPERATOR_EQUAL, value=b"two")
        ],
        success=[kv_pb2.TxnOp(delete=kv_pb2.TxnDelete(key=b"api/cas", prev_kv=True))],
    )
    gone = await kv(clients[1], "Txn", value_cmp)
    assert gone.succeeded and gone.responses[0].delete.prev_kvs[0].value == b"two"


async def test_retried_write_with_a_request_id_applies_once(
    clients: dict[int, MeshClient],
) -> None:
    rid = kv_pb2.RequestId(client_id=4242, seq=1)
    first = await kv(
        clients[1], "Put", kv_pb2.PutRequest(key=b"api/once", value=b"a", request_id=rid)
    )
    again = await kv(
        clients[3], "Put", kv_pb2.PutRequest(key=b"api/once", value=b"a", request_id=rid)
    )
    assert again.header.revision == first.header.revision
    got = await kv(clients[2], "Get", kv_pb2.GetRequest(key=b"api/once"))
    assert got.kv.version == 1


async def test_watch_streams_changes_from_a_revision(clients: dict[int, MeshClient]) -> None:
    before = await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/watch/a", value=b"1"))
    channel = clients[3].channel()
    stream = kv_pb2_grpc.KVServiceStub(channel).Watch(
        kv_pb2.WatchRequest(
            key=b"api/watch/", prefix=True, start_revision=before.header.revision, prev_kv=True
        ),
        timeout=20,
    )
    try:
        created = await stream.read()
        assert isinstance(created, kv_pb2.WatchResponse) and created.created
        events: list[kv_pb2.Event] = []
        await kv(clients[2], "Put", kv_pb2.PutRequest(key=b"api/watch/b", value=b"2"))
        await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/other", value=b"x"))
        await kv(clients[1], "Delete", kv_pb2.DeleteRequest(key=b"api/watch/a"))
        while len(events) < 3:
            response = await asyncio.wait_for(stream.read(), 10)
            assert isinstance(response, kv_pb2.WatchResponse)
            events.extend(response.events)
    finally:
        stream.cancel()
    assert [(e.type, e.kv.key) for e in events] == [
        (kv_pb2.Event.EVENT_TYPE_PUT, b"api/watch/a"),
        (kv_pb2.Event.EVENT_TYPE_PUT, b"api/watch/b"),
        (kv_pb2.Event.EVENT_TYPE_DELETE, b"api/watch/a"),
    ]
    assert events[2].prev_kv.value == b"1"
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(revisions) and revisions[0] == before.header.revision


async def test_lease_keys_vanish_on_revoke_and_on_expiry(clients: dict[int, MeshClient]) -> None:
    grant = await kv(clients[2], "LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=60))
    await kv(clients[3], "Put", kv_pb2.PutRequest(key=b"api/lease/a", value=b"x", lease=grant.id))
    alive = await kv(clients[1], "LeaseKeepAlive", kv_pb2.LeaseKeepAliveRequest(id=grant.id))
    assert alive.ttl_seconds == 60
    await kv(clients[1], "LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=grant.id))
    assert not (await kv(clients[2], "Get", kv_pb2.GetRequest(key=b"api/lease/a"))).found

    short = await kv(clients[1], "LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=1))
    await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/lease/b", value=b"y", lease=short.id))
    assert (await kv(clients[3], "Get", kv_pb2.GetRequest(key=b"api/lease/b"))).found

    async def expired() -> bool:
        return not (await kv(clients[3], "Get", kv_pb2.GetRequest(key=b"api/lease/b"))).found

    await eventually(expired, timeout_s=10, what="api/lease/b gone after its 1 s lease expired")
    with pytest.raises(aio.AioRpcError) as unknown:
        await kv(clients[2], "LeaseKeepAlive", kv_pb2.LeaseKeepAliveRequest(id=short.id))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("rpc", "request_", "code", "field"),
    [
        ("Put", kv_pb2.PutRequest(key=b"", value=b"x"), "INVALID_ARGUMENT", "key"),
        ("Put", kv_pb2.PutRequest(key=b"k" * 2000, value=b"x"), "INVALID_ARGUMENT", "key"),
        (
            "Put",
            kv_pb2.PutRequest(key=b"k", value=b"v" * (1024 * 1024 + 1)),
            "INVALID_ARGUMENT",
            "value",
        ),
        ("Put", kv_pb2.PutRequest(key=b"k", value=b"x", lease=-1), "INVALID_ARGUMENT", "lease"),
        ("Put", kv_pb2.PutRequest(key=b"k", value=b"x", lease=987654), "NOT_FOUND", "lease"),
        (
            "Put",
            kv_pb2.PutRequest(key=b"k", request_id=kv_pb2.RequestId(client_id=0, seq=1)),
            "INVALID_ARGUMENT",
            "request_id.client_id",
        ),
        ("Get", kv_pb2.GetRequest(key=b""), "INVALID_ARGUMENT", "key"),
        ("Get", kv_pb2.GetRequest(key=b"k", revision=-3), "INVALID_ARGUMENT", "revision"),
        ("Get", kv_pb2.GetRequest(key=b"k", revision=10**9), "OUT_OF_RANGE", "revision"),
        ("Range", kv_pb2.RangeRequest(prefix=b"a", limit=-1), "INVALID_ARGUMENT", "limit"),
        ("Delete", kv_pb2.DeleteRequest(key=b""), "INVALID_ARGUMENT", "key"),
        (
            "Txn",
            kv_pb2.TxnRequest(compare=[kv_pb2.Compare(key=b"k", value=b"v")]),
            "INVALID_ARGUMENT",
            "compare[0].operator",
        ),
        (
            "Txn",
            kv_pb2.TxnRequest(success=[kv_pb2.TxnOp(put=kv_pb2.TxnPut(key=b""))]),
            "INVALID_ARGUMENT",
            "success[0].put.key",
        ),
        (
            "Txn",
            kv_pb2.TxnRequest(success=[kv_pb2.TxnOp()]),
            "INVALID_ARGUMENT",
            "success[0].op",
        ),
        ("LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=0), "INVALID_ARGUMENT", "ttl_seconds"),
        ("LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=0), "INVALID_ARGUMENT", "id"),
        ("LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=55555), "NOT_FOUND", "id"),
        ("LeaseKeepAlive", kv_pb2.LeaseKeepAliveRequest(id=55555), "NOT_FOUND", "id"),
    ],
)
async def test_bad_input_names_the_field(
    clients: dict[int, MeshClient], rpc: str, request_: Any, code: str, field: str
) -> None:
    with pytest.raises(aio.AioRpcError) as failure:
        await kv(clients[2], rpc, request_)
    assert failure.value.code() == getattr(grpc.StatusCode, code), failure.value.details()
    assert (failure.value.details() or "").startswith(f"{field}:"), failure.value.details()


async def test_cluster_calls_validate_and_name_the_leader(
    clients: dict[int, MeshClient],
) -> None:
    status = await cl(clients[1], "Status", cluster_pb2.StatusRequest())
    follower = next(i for i in clients if i != status.leader_id)
    with pytest.raises(aio.AioRpcError) as not_leader:
        await cl(clients[follower], "MemberRemove", cluster_pb2.MemberRemoveRequest(id=9))
    assert not_leader.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"leader: {status.leader_id} at 127.0.0.1:" in (not_leader.value.details() or "")
    metadata: Any = not_leader.value.trailing_metadata() or ()
    trailing = {str(k): str(v) for k, v in metadata}
    assert trailing.get("x0-leader-id") == str(status.leader_id)
    assert str(trailing.get("x0-leader-address", "")).startswith("127.0.0.1:")
    with pytest.raises(aio.AioRpcError) as bad:
        await cl(
            clients[status.leader_id],
            "MemberAdd",
            cluster_pb2.MemberAddRequest(id=7, address="no-port"),
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("address:")


async def test_transfer_leadership(clients: dict[int, MeshClient]) -> None:
    status = await cl(clients[1], "Status", cluster_pb2.StatusRequest())
    target = next(i for i in clients if i != status.leader_id)
    moved = await cl(
        clients[status.leader_id], "TransferLeader", cluster_pb2.TransferLeaderRequest(id=target)
    )
    assert moved.leader_id == target
    put = await kv(clients[status.leader_id], "Put", kv_pb2.PutRequest(key=b"api/t", value=b"1"))
    assert put.header.revision > 0


async def test_sigterm_stops_a_member_cleanly_and_it_restarts_with_its_data(
    cluster: ConsensusCluster, mesh: Mesh, clients: dict[int, MeshClient]
) -> None:
    """Last in this module: it restarts a member (the cluster is whole again afterwards)."""
    status = await cl(clients[1], "Status", cluster_pb2.StatusRequest())
    member = next(i for i in clients if i != status.leader_id)
    await kv(clients[status.leader_id], "Put", kv_pb2.PutRequest(key=b"api/kept", value=b"v"))
    process = cluster.members[member].process
    assert process.stop() == 0, "SIGTERM should drain and exit 0"
    stopped = [line for line in process.log_tail(200).splitlines() if '"raft.stopped"' in line]
    assert stopped, "the member did not close its Raft runtime (WAL, peer links) on SIGTERM"
    cluster.start(member)
    cluster.wait_ready([member])
    async with member_clients(mesh, {member: cluster.members[member]}) as restarted:

        async def served_locally() -> bool:
            got = await kv(
                restarted[member],
                "Get",
                kv_pb2.GetRequest(key=b"api/kept", serializable=True),
            )
            return bool(got.found and got.kv.value == b"v")

        await eventually(served_locally, 30, "the restarted member serves the key it had")


INT64_MAX = (1 << 63) - 1


async def test_a_lease_id_at_the_int64_limit_does_not_poison_lease_allocation(
    clients: dict[int, MeshClient],
) -> None:
    top = await kv(clients[1], "LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=5, id=INT64_MAX))
    assert top.id == INT64_MAX
    try:
        for c in clients.values():  # every later grant without an id still works
            chosen = await kv(c, "LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=5))
            assert 0 < chosen.id < INT64_MAX
            await kv(c, "LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=chosen.id))
    finally:
        await kv(clients[1], "LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=INT64_MAX))


async def test_a_watch_delivers_nothing_below_its_start_revision(
    clients: dict[int, MeshClient],
) -> None:
    now = await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/future/x", value=b"0"))
    start = now.header.revision + 2  # a revision the store has not reached yet
    stream = kv_pb2_grpc.KVServiceStub(clients[2].channel()).Watch(
        kv_pb2.WatchRequest(key=b"api/future/", prefix=True, start_revision=start), timeout=20
    )
    try:
        created = await stream.read()
        assert isinstance(created, kv_pb2.WatchResponse) and created.created
        first = await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/future/a", value=b"1"))
        second = await kv(clients[1], "Put", kv_pb2.PutRequest(key=b"api/future/b", value=b"2"))
        assert first.header.revision == start - 1 and second.header.revision == start
        response = await asyncio.wait_for(stream.read(), 10)
    finally:
        stream.cancel()
    assert isinstance(response, kv_pb2.WatchResponse)
    assert [(e.kv.key, e.kv.mod_revision) for e in response.events] == [(b"api/future/b", start)]


@pytest.mark.parametrize("address", ["[::1", " a b :1", "a=b:1", "1.2.3.4:5,6=x:7", "[::1]"])
async def test_member_add_refuses_malformed_addresses_and_changes_nothing(
    clients: dict[int, MeshClient], address: str
) -> None:
    status = await cl(clients[1], "Status", cluster_pb2.StatusRequest())
    with pytest.raises(aio.AioRpcError) as bad:
        await cl(
            clients[status.leader_id],
            "MemberAdd",
            cluster_pb2.MemberAddRequest(id=7, address=address),
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (bad.value.details() or "").startswith("address:"), bad.value.details()
    after = await cl(clients[status.leader_id], "Status", cluster_pb2.StatusRequest())
    assert sorted(m.id for m in after.members) == [1, 2, 3]

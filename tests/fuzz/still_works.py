"""Valid requests of every kind, for after a campaign: what a user does next must still work
(no poisoned state), on every member, replica and process.

Each check raises (an ``AssertionError`` or the RPC's error) naming what failed.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.support.mesh import eventually, unary_call
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.identity.v1 import identity_pb2, identity_pb2_grpc
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc
from x0tta6bl4.sync.v1 import sync_pb2, sync_pb2_grpc

VOTERS = {cluster_pb2.Member.ROLE_LEADER, cluster_pb2.Member.ROLE_FOLLOWER}


async def diagnostics(name: str, c: MeshClient) -> None:
    stub = diagnostics_pb2_grpc.DiagnosticsServiceStub
    who = await unary_call(c, stub, "WhoAmI", diagnostics_pb2.WhoAmIRequest())
    assert who.caller_spiffe_id.endswith("/sa/operator"), (name, who)
    pong = await unary_call(c, stub, "Ping", diagnostics_pb2.PingRequest(payload=b"after fuzz"))
    assert pong.payload == b"after fuzz", (name, pong)


async def _leader(members: Mapping[int, MeshClient]) -> MeshClient:
    """The client of the member every member names as leader (once they agree)."""
    leader: list[int] = []

    async def agreed() -> bool:
        statuses = [
            await unary_call(c, cluster_pb2_grpc.ClusterServiceStub, "Status", _STATUS)
            for c in members.values()
        ]
        ids = {s.leader_id for s in statuses}
        leader[:] = list(ids)
        return len(ids) == 1 and 0 not in ids

    await eventually(agreed, timeout_s=30, what="every member names one leader")
    return members[leader[0]]


_STATUS = cluster_pb2.StatusRequest()


async def cluster_membership(members: Mapping[int, MeshClient]) -> list[int]:
    """Remove the learners the campaign added (ids >= 1000) and check the members are the
    original voters again; the ids removed."""
    stub = cluster_pb2_grpc.ClusterServiceStub
    leader = await _leader(members)
    status = await unary_call(leader, stub, "Status", _STATUS)
    extra = [m.id for m in status.members if m.id not in members]
    for member_id in extra:
        await unary_call(
            leader, stub, "MemberRemove", cluster_pb2.MemberRemoveRequest(id=member_id), 15
        )
    status = await unary_call(await _leader(members), stub, "Status", _STATUS)
    roles = {m.id: m.role for m in status.members}
    assert set(roles) == set(members), f"members after the campaign: {status.members}"
    assert all(r in VOTERS for r in roles.values()), f"not all voters: {status.members}"
    return extra


async def kv_api(members: Mapping[int, MeshClient]) -> None:
    """Put/Get/Range/Txn/leases/Watch under /fuzz/after/, through every member."""
    stub = kv_pb2_grpc.KVServiceStub
    for n, c in members.items():
        key = b"/fuzz/after/%d" % n
        put = await unary_call(c, stub, "Put", kv_pb2.PutRequest(key=key, value=b"v"))
        for reader in members.values():
            got = await unary_call(reader, stub, "Get", kv_pb2.GetRequest(key=key))
            assert got.found and got.kv.mod_revision == put.header.revision, (n, got)
        listed = await unary_call(c, stub, "Range", kv_pb2.RangeRequest(prefix=b"/fuzz/after/"))
        assert key in [kv.key for kv in listed.kvs], (n, listed)
        txn = kv_pb2.TxnRequest(
            compare=[kv_pb2.Compare(key=key, operator=kv_pb2.Compare.OPERATOR_EQUAL, version=1)],
            success=[kv_pb2.TxnOp(put=kv_pb2.TxnPut(key=key + b"/txn", value=b"t"))],
        )
        assert (await unary_call(c, stub, "Txn", txn)).succeeded, n
        await _lease_round(c, key + b"/leased")
        await _watch_sees(c, key, put.header.revision)


async def _lease_round(c: MeshClient, key: bytes) -> None:
    stub = kv_pb2_grpc.KVServiceStub
    lease = await unary_call(c, stub, "LeaseGrant", kv_pb2.LeaseGrantRequest(ttl_seconds=60))
    await unary_call(c, stub, "Put", kv_pb2.PutRequest(key=key, value=b"l", lease=lease.id))
    kept = await unary_call(c, stub, "LeaseKeepAlive", kv_pb2.LeaseKeepAliveRequest(id=lease.id))
    assert kept.ttl_seconds == 60, kept
    await unary_call(c, stub, "LeaseRevoke", kv_pb2.LeaseRevokeRequest(id=lease.id))
    gone = await unary_call(c, stub, "Get", kv_pb2.GetRequest(key=key))
    assert not gone.found, f"{key!r} outlived its revoked lease"


async def _watch_sees(c: MeshClient, key: bytes, revision: int) -> None:
    request = kv_pb2.WatchRequest(key=key, start_revision=revision)
    call = kv_pb2_grpc.KVServiceStub(c.channel()).Watch(request, timeout=10)
    try:
        created = await call.read()
        assert created.created, created
        events = await call.read()
        assert [(e.kv.key, e.kv.mod_revision) for e in events.events][:1] == [(key, revision)]
    finally:
        call.cancel()


async def sync_api(replicas: Mapping[str, MeshClient]) -> None:
    """An increment on every replica; every replica then reads the sum (replication works)."""
    stub = sync_pb2_grpc.SyncServiceStub
    key = "fuzz/after/visits"
    counter = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_PN_COUNTER)
    before = await unary_call(
        next(iter(replicas.values())), stub, "Get", sync_pb2.GetRequest(key=key)
    )
    start = before.value.counter if before.found else 0
    for c in replicas.values():
        increment = sync_pb2.Operation(increment=sync_pb2.Increment(amount=1))
        await unary_call(
            c, stub, "Update", sync_pb2.UpdateRequest(key=key, type=counter, operation=increment)
        )
        assert (await unary_call(c, stub, "Stats", sync_pb2.StatsRequest())).replica_id

    async def converged() -> bool:
        for c in replicas.values():
            got = await unary_call(c, stub, "Get", sync_pb2.GetRequest(key=key))
            if got.value.counter != start + len(replicas):
                return False
        return True

    await eventually(converged, timeout_s=30, what=f"every replica reads {key} = {start} + 3")


async def identity_api(c: MeshClient, trust_domain: str) -> None:
    """Apply, read, list and delete a workload, and read the SPIRE server's health."""
    stub = identity_pb2_grpc.IdentityServiceStub
    spiffe_id = f"spiffe://{trust_domain}/ns/fuzz/sa/after-fuzz"
    workload = identity_pb2.Workload(
        spiffe_id=spiffe_id,
        parent_id=f"spiffe://{trust_domain}/ns/fuzz/sa/parent",
        selectors=[identity_pb2.Selector(type="unix", value="uid:4242")],
        x509_svid_ttl_seconds=600,
    )
    request = identity_pb2.ApplyWorkloadRequest(workload=workload)
    applied = await unary_call(c, stub, "ApplyWorkload", request)
    got = await unary_call(
        c, stub, "GetWorkload", identity_pb2.GetWorkloadRequest(spiffe_id=spiffe_id)
    )
    assert got.record.revision == applied.record.revision, (applied, got)
    listing = identity_pb2.ListWorkloadsRequest(spiffe_id_prefix=spiffe_id)
    listed = await unary_call(c, stub, "ListWorkloads", listing)
    assert [r.workload.spiffe_id for r in listed.workloads] == [spiffe_id], listed
    await unary_call(
        c, stub, "DeleteWorkload", identity_pb2.DeleteWorkloadRequest(spiffe_id=spiffe_id)
    )
    health = await unary_call(c, stub, "ServerHealth", identity_pb2.ServerHealthRequest())
    assert health.up, health

"""Three sync replicas as real processes over mTLS, each dialling its peers through a fault
proxy: convergence after writes on each, a partition healed, kill -9 and restart without a full
resync, remove + GC without resurrection, and bad input rejected with the field named.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc import aio

from tests.support.faultproxy import FaultNetwork
from tests.support.mesh import (
    Mesh,
    SyncCluster,
    client,
    eventually,
    member_clients,
    svid_source,
    sync_cluster,
)
from tests.support.sync_client import (
    AW,
    LWW,
    PN,
    RW,
    add,
    converged,
    get,
    inc,
    plain,
    remove,
    stats,
    update,
    values,
)
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.sync.v1 import sync_pb2

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(180)]

IDS = ("a", "b", "c")
ENV = {"X0_SYNC_PUSH_INTERVAL_MS": "50", "X0_SYNC_ANTI_ENTROPY_INTERVAL_MS": "250"}


@pytest.fixture(scope="module")
def cluster(
    mesh: Mesh, network: FaultNetwork, tmp_path_factory: pytest.TempPathFactory
) -> SyncCluster:
    return sync_cluster(mesh, tmp_path_factory.mktemp("sync"), IDS, env=ENV, network=network)


@pytest.fixture
async def clients(mesh: Mesh, cluster: SyncCluster) -> AsyncIterator[dict[str, MeshClient]]:
    async with member_clients(mesh, cluster.members) as by_replica:
        yield by_replica


async def test_bad_input_is_invalid_argument_naming_the_field(
    clients: dict[str, MeshClient],
) -> None:
    a = clients["a"]
    await update(
        a,
        "reg",
        sync_pb2.Operation(assign=sync_pb2.Assign(value=sync_pb2.Scalar(text="v1"))),
        type=LWW,
    )
    cases = [
        ("reg", inc(), {}, "operation"),  # incrementing a register
        ("new", inc(), {"type": sync_pb2.CrdtType(kind=99)}, "type.kind"),  # unknown type
        (
            "reg",
            sync_pb2.Operation(assign=sync_pb2.Assign(value=sync_pb2.Scalar(text="x"))),
            {"context": b"\x01\x40\xff\xff"},
            "context",
        ),  # malformed causal context
        (
            "big",
            sync_pb2.Operation(assign=sync_pb2.Assign(value=sync_pb2.Scalar(data=b"x" * 100_000))),
            {"type": LWW},
            "operation.assign.value",
        ),  # oversize value
        ("", inc(), {"type": PN}, "key"),
        (
            "m",
            sync_pb2.Operation(map_update=sync_pb2.MapUpdate(key="k", operation=inc())),
            {"type": sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_OR_MAP, value=PN)},
            "type.value",
        ),
    ]
    for key, op, kw, field in cases:
        with pytest.raises(aio.AioRpcError) as err:
            await update(a, key, op, **kw)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, err.value.details())
        assert (err.value.details() or "").startswith(field), (field, err.value.details())
    # Nothing was applied: the register still holds its value; no other key was created.
    assert plain((await get(a, "reg")).value) == ["v1"]
    assert not (await get(a, "big")).found
    assert not (await get(a, "new")).found


async def test_three_replicas_converge_after_writes_on_each(
    clients: dict[str, MeshClient],
) -> None:
    for i, rid in enumerate(IDS):
        await update(clients[rid], "hits", inc(i + 1), type=PN)
        await update(clients[rid], "tags", add(f"t-{rid}"), type=AW)
    await converged(clients, "hits", 6)
    await converged(clients, "tags", ["t-a", "t-b", "t-c"])
    # Get's context, passed back, makes a removal supersede exactly what was read.
    read = await get(clients["b"], "tags")
    await update(clients["b"], "tags", remove("t-a"), context=read.context)
    await converged(clients, "tags", ["t-b", "t-c"])


async def test_partition_write_both_sides_heal_converge(
    clients: dict[str, MeshClient], network: FaultNetwork
) -> None:
    cut = [f"{i}->{j}" for i in IDS for j in IDS if i != j and "a" in (i, j)]
    network.partition(*cut, mode="reset")
    try:
        for n in range(5):
            await update(clients["a"], "split", add(f"a{n}"), type=AW)
            await update(clients["b"], "split", add(f"b{n}"), type=AW)
            await update(clients["c"], "count", inc(), type=PN)
            await update(clients["a"], "count", inc(), type=PN)
        await asyncio.sleep(1.0)
        assert plain((await get(clients["a"], "split")).value) == [f"a{n}" for n in range(5)]
        assert plain((await get(clients["c"], "split")).value) == [f"b{n}" for n in range(5)]
    finally:
        network.heal()
    took = await converged(
        clients, "split", sorted([f"a{n}" for n in range(5)] + [f"b{n}" for n in range(5)])
    )
    await converged(clients, "count", 10)
    print(f"partition healed: converged in {took:.2f}s")


async def test_kill9_restart_loses_no_acknowledged_update_and_needs_no_resync(
    mesh: Mesh, cluster: SyncCluster, clients: dict[str, MeshClient]
) -> None:
    c = clients["c"]
    acked = []
    for n in range(40):
        await update(c, "durable", add(f"e{n}"), type=AW if n == 0 else None)
        acked.append(f"e{n}")
    cluster.kill("c")  # no time to push or checkpoint: the writes live in c's event log only
    cluster.start("c")
    async with (
        svid_source(mesh.workload("operator")) as svids,
        client(svids, cluster.members["c"]) as c2,
    ):
        got = plain((await get(c2, "durable")).value)
        assert got == sorted(acked)
        # It resumed from its own disk: no full-state transfer was needed.
        s = await stats(c2)
        assert s.snapshots_received == 0
        await converged({**clients, "c": c2}, "durable", sorted(acked))
        assert (await stats(c2)).snapshots_received == 0
        await update(c2, "durable", add("after"))
        await converged({**clients, "c": c2}, "durable", sorted([*acked, "after"]))


async def test_remove_and_gc_after_causal_stability_never_resurrects(
    mesh: Mesh, cluster: SyncCluster
) -> None:
    async with member_clients(mesh, cluster.members) as cs:
        await update(cs["a"], "rw", add("x"), type=RW)
        await update(cs["a"], "rw", add("y"))
        await converged(cs, "rw", ["x", "y"])
        await update(cs["b"], "rw", remove("x"))
        await converged(cs, "rw", ["y"])

        async def collected() -> bool:
            return sum([(await stats(c)).gc_collected for c in cs.values()]) > 0

        await eventually(collected, what="remove-wins token collected after stability")

        async def drained() -> bool:
            all_stats = [await stats(c) for c in cs.values()]
            return all(p.unacked_deltas == 0 for s in all_stats for p in s.peers)

        await eventually(drained, what="delta buffers drained")
        await update(cs["c"], "rw", add("z"))
        await converged(cs, "rw", ["y", "z"])
        await asyncio.sleep(1.0)  # a few more anti-entropy rounds: still gone
        assert set(map(repr, (await values(cs, "rw")).values())) == {repr(["y", "z"])}

"""Sync replicas as real processes over mTLS (real SPIRE + OPA), each configured replica dialling
its peers through a fault proxy: Watch(prefix) end to end, a replica joining later
(``X0_SYNC_JOIN=true``) that bootstraps from a full-state transfer, a long-absent replica that
catches up through a full-state transfer, and Leave.

The tests share one module-scoped cluster and run in file order (the joiner of one test is the
replica that leaves in the last).
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager, AsyncExitStack

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
    assign,
    converged,
    get,
    inc,
    plain,
    remove,
    stats,
    update,
)
from x0tta6bl4.devstack.procs import free_port
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.sync.core import decode_context
from x0tta6bl4.sync.v1 import replication_pb2, replication_pb2_grpc, sync_pb2, sync_pb2_grpc

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(300)]

IDS = ("a", "b", "c")
JOINER = "d"
ENV = {"X0_SYNC_PUSH_INTERVAL_MS": "50", "X0_SYNC_ANTI_ENTROPY_INTERVAL_MS": "250"}


@pytest.fixture(scope="module")
def cluster(
    mesh: Mesh, network: FaultNetwork, tmp_path_factory: pytest.TempPathFactory
) -> SyncCluster:
    return sync_cluster(mesh, tmp_path_factory.mktemp("sync"), IDS, env=ENV, network=network)


def clients_for(
    mesh: Mesh, cluster: SyncCluster, ids: tuple[str, ...]
) -> AbstractAsyncContextManager[dict[str, MeshClient]]:
    return member_clients(mesh, {rid: cluster.members[rid] for rid in ids})


class Watcher:
    """Collects a Watch(prefix) stream in the background."""

    def __init__(self, c: MeshClient, prefix: str) -> None:
        self.seen: list[sync_pb2.WatchResponse] = []
        self._call = sync_pb2_grpc.SyncServiceStub(c.channel()).Watch(
            sync_pb2.WatchRequest(prefix=prefix)
        )
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(aio.AioRpcError, asyncio.CancelledError):
            async for msg in self._call:
                self.seen.append(msg)

    def latest(self, key: str) -> sync_pb2.WatchResponse | None:
        found = [m for m in self.seen if m.key == key]
        return found[-1] if found else None

    async def close(self) -> None:
        self._call.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def test_watch_sees_local_and_replicated_writes_only_for_its_prefix(
    mesh: Mesh, cluster: SyncCluster
) -> None:
    async with clients_for(mesh, cluster, IDS) as cs:
        watcher = Watcher(cs["a"], "w/")
        try:
            await asyncio.sleep(0.5)  # the stream is registered before the first write
            await update(cs["a"], "w/local", inc(2), type=PN)
            await update(cs["b"], "w/remote", add("from-b"), type=AW)
            await update(cs["a"], "other/local", inc(), type=PN)
            await update(cs["b"], "other/remote", inc(), type=PN)
            await converged(cs, "other/remote", 1)  # replicated everywhere, so also to a

            async def both_seen() -> bool:
                local, remote = watcher.latest("w/local"), watcher.latest("w/remote")
                return (
                    local is not None
                    and remote is not None
                    and plain(local.value) == 2
                    and plain(remote.value) == ["from-b"]
                )

            await eventually(both_seen, what="watcher on a saw w/local and w/remote")
            local, remote = watcher.latest("w/local"), watcher.latest("w/remote")
            assert local is not None and local.origin == "a"
            assert remote is not None and remote.origin == "b"
            assert local.context and remote.context  # a context to pass back to Update
            # A later replicated change of a watched key is streamed too.
            await update(cs["c"], "w/remote", add("from-c"), type=AW)

            async def third_seen() -> bool:
                m = watcher.latest("w/remote")
                return m is not None and plain(m.value) == ["from-b", "from-c"]

            await eventually(third_seen, what="watcher saw the write replicated from c")
            latest = watcher.latest("w/remote")
            assert latest is not None and latest.origin == "c"
            await asyncio.sleep(0.5)
            assert {m.key for m in watcher.seen} == {"w/local", "w/remote"}
        finally:
            await watcher.close()


async def test_join_bootstraps_from_snapshot_then_converges(
    mesh: Mesh, cluster: SyncCluster
) -> None:
    async with clients_for(mesh, cluster, IDS) as cs:
        for n in range(20):
            await update(cs[IDS[n % 3]], "pre-join", add(f"p{n}"), type=AW)
        await update(cs["a"], "pre-count", inc(5), type=PN)
        await converged(cs, "pre-join", sorted(f"p{n}" for n in range(20)))

    port = free_port()
    cluster.ports[JOINER] = port  # peers_for(JOINER) names a, b, c (direct, no proxy)
    # /readyz is green only once the joiner has received a snapshot.
    cluster.start(
        JOINER,
        env={"X0_SYNC_JOIN": "true", "X0_SYNC_ADVERTISE_ADDR": f"127.0.0.1:{port}"},
        wait_ready=True,
    )
    everyone = (*IDS, JOINER)
    async with clients_for(mesh, cluster, everyone) as cs:
        s = await stats(cs[JOINER])
        assert s.bootstrapped
        assert s.snapshots_received >= 1
        assert sorted(p.replica_id for p in s.peers) == list(IDS)
        assert plain((await get(cs[JOINER], "pre-join")).value) == sorted(
            f"p{n}" for n in range(20)
        )
        assert plain((await get(cs[JOINER], "pre-count")).value) == 5

        async def all_know_joiner() -> bool:
            views = [{p.replica_id for p in (await stats(cs[r])).peers} for r in IDS]
            return all(JOINER in v for v in views)

        await eventually(all_know_joiner, what="every replica has the joiner as a member")
        # The joiner writes; its writes and everyone else's converge on all four.
        await update(cs[JOINER], "pre-join", add("from-d"), type=AW)
        await update(cs["b"], "pre-count", inc(1), type=PN)
        await update(cs[JOINER], "pre-count", inc(10), type=PN)
        await update(cs[JOINER], "d-only", inc(7), type=PN)
        await converged(cs, "pre-join", sorted([*(f"p{n}" for n in range(20)), "from-d"]))
        await converged(cs, "pre-count", 16)
        await converged(cs, "d-only", 7)


async def test_long_absent_replica_catches_up_by_full_state_transfer(
    mesh: Mesh, cluster: SyncCluster, network: FaultNetwork
) -> None:
    many = 700  # more than one batch (512 events) behind: a digest answers with a snapshot
    async with clients_for(mesh, cluster, ("a", "b", JOINER)) as cs:
        cluster.kill("c")
        await update(cs["a"], "absent", add("x0"), type=AW)
        for n in range(1, many):
            await update(cs["ab"[n % 2]], "absent", add(f"x{n}"), type=AW)
        await update(cs["a"], "absent-count", inc(many), type=PN)
        registers = {f"absent-reg/{n}": f"r{n}" for n in range(4)}  # sent as rows
        for n, (key, text) in enumerate(registers.items()):
            await update(cs["ab"[n % 2]], key, assign(text), type=LWW)
        await converged(cs, "absent", sorted(f"x{n}" for n in range(many)))

        # c comes back; only its outgoing links work at first, so it cannot be fed by pushes
        # and must repair itself through its own digest exchange.
        inbound = [f"{p}->c" for p in ("a", "b")]
        network.partition(*inbound, mode="reset")
        try:
            cluster.start("c")
            async with clients_for(mesh, cluster, ("c",)) as cc:

                async def caught_up() -> bool:
                    r = await get(cc["c"], "absent")
                    return r.found and len(plain(r.value)) == many

                await eventually(caught_up, what="c caught up while its inbound links were cut")
                s = await stats(cc["c"])
                assert s.snapshots_received >= 1
                assert plain((await get(cc["c"], "absent-count")).value) == many

                async def registers_arrived() -> bool:
                    got = [plain((await get(cc["c"], k)).value) for k in registers]
                    return got == [[text] for text in registers.values()]

                await eventually(registers_arrived, what="c has the registers written meanwhile")
        finally:
            network.heal()
        async with clients_for(mesh, cluster, ("a", "b", "c", JOINER)) as all4:
            await update(all4["c"], "absent", add("back"), type=AW)
            await converged(all4, "absent", sorted([*(f"x{n}" for n in range(many)), "back"]))


async def test_leave_removes_the_member_and_gc_no_longer_waits_for_it(
    mesh: Mesh, cluster: SyncCluster
) -> None:
    everyone = (*IDS, JOINER)
    async with clients_for(mesh, cluster, everyone) as cs:
        await update(cs[JOINER], "leaving", add("last-from-d"), type=RW)
        await converged(cs, "leaving", ["last-from-d"])

        async def d_drained() -> bool:
            return all(p.unacked_deltas == 0 for p in (await stats(cs[JOINER])).peers)

        await eventually(d_drained, what="the leaving replica drained its buffers")
    cluster.kill(JOINER)
    async with AsyncExitStack() as stack:
        svids = await stack.enter_async_context(svid_source(cluster.workload))
        for rid in IDS:
            peer = await stack.enter_async_context(client(svids, cluster.members[rid]))
            await peer.call(
                lambda ch, t: replication_pb2_grpc.ReplicationServiceStub(ch).Leave(
                    replication_pb2.LeaveRequest(replica_id=JOINER), timeout=t
                ),
                idempotent=True,
            )
    async with clients_for(mesh, cluster, IDS) as cs:
        for rid in IDS:
            assert JOINER not in {p.replica_id for p in (await stats(cs[rid])).peers}
        # With d gone (and down), stability no longer waits for it: a remove-wins token is
        # collected and the delta buffers drain among the three remaining replicas.
        before = sum([(await stats(c)).gc_collected for c in cs.values()])
        await update(cs["a"], "leaving", add("y"), type=RW)
        await update(cs["b"], "leaving", remove("last-from-d"), type=RW)
        await converged(cs, "leaving", ["y"])

        async def collected() -> bool:
            return sum([(await stats(c)).gc_collected for c in cs.values()]) > before

        await eventually(collected, what="a remove-wins token collected without d")

        async def drained() -> bool:
            all_stats = [await stats(cs[r]) for r in IDS]
            return all(p.unacked_deltas == 0 for s in all_stats for p in s.peers)

        await eventually(drained, what="buffers drained among a, b, c")
        await update(cs["c"], "leaving", add("z"), type=RW)
        await converged(cs, "leaving", ["y", "z"])

        async def pruned() -> bool:
            """d left every causal context: Stats' applied events, a read's context."""
            for rid in IDS:
                s = await stats(cs[rid])
                read = await get(cs[rid], "leaving")
                if list(s.retired_replicas) != [JOINER] or list(s.departing_replicas):
                    return False
                contexts = (decode_context(s.applied), decode_context(read.context))
                if any(ctx.mentions(JOINER) for ctx in contexts):
                    return False
            return True

        await eventually(pruned, what="d pruned from every context of a, b and c")
        await update(cs["a"], "leaving", add("after-prune"), type=RW)
        await converged(cs, "leaving", ["after-prune", "y", "z"])

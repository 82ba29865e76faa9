"""The shared consensus client, versioned documents and single-actor leases against a real
3-member cluster over mTLS (SPIRE + OPA): typed results and errors, compare-and-set,
leases, fencing. Failover under kill -9 is in tests/system/test_clients_failover.py."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from prometheus_client import REGISTRY

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    ServiceProcess,
    consensus_cluster,
    eventually,
    free_port,
    svid_source,
)
from x0tta6bl4.clients import keys
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import (
    EventType,
    PutResult,
    RangeResult,
    delete_op,
    put_op,
    range_op,
    value_is,
)
from x0tta6bl4.clients.errors import Conflict, Fenced, InvalidArgument, NotFound
from x0tta6bl4.clients.single_actor import SingleActor
from x0tta6bl4.clients.versions import Documents

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OPERATOR = "spiffe://x0tta6bl4.mesh/ns/local/sa/operator"


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsensusCluster]:
    yield consensus_cluster(mesh, tmp_path_factory.mktemp("raft"))


@pytest.fixture
async def kv(cluster: ConsensusCluster, mesh: Mesh) -> AsyncIterator[ConsensusClient]:
    async with svid_source(mesh.workload("operator")) as svids:
        client = ConsensusClient(
            svids, [m.grpc_addr for m in cluster.members.values()], caller_service="operator"
        )
        try:
            yield client
        finally:
            await client.close()


async def test_a_large_prefix_is_read_in_pages_at_one_revision(kv: ConsensusClient) -> None:
    """Values of 20 KiB: 300 keys are 6 MiB, more than one gRPC message may carry."""
    prefix = b"/x0/ops/pages/"
    value = b"v" * 20_000
    gate = asyncio.Semaphore(32)

    async def put(i: int) -> None:
        async with gate:
            await kv.put(prefix + b"%04d" % i, value)

    await asyncio.gather(*(put(i) for i in range(300)))
    seen: list[bytes] = []
    async for page in kv.range_pages(prefix, page_size=64):
        if not seen:  # after the first page: neither the new key nor the change shows
            await kv.put(prefix + b"0000", b"changed")
            await kv.put(prefix + b"9999", b"new")
        seen += [x.key for x in page.kvs]
        assert all(x.value == value for x in page.kvs)
    assert seen == [prefix + b"%04d" % i for i in range(300)]
    middle = await kv.range(prefix, limit=2, start_key=prefix + b"0150")
    assert [x.key for x in middle.kvs] == [prefix + b"0150", prefix + b"0151"]
    assert middle.more and middle.count == 151  # 0150..0299 and 9999
    with pytest.raises(InvalidArgument, match="start_key"):
        await kv.range(prefix, start_key=b"k" * 100_000)
    await kv.delete(prefix, prefix=True)


async def test_typed_reads_and_writes(kv: ConsensusClient) -> None:
    put = await kv.put(b"/x0/ops/t/a", b"1")
    again = await kv.put(b"/x0/ops/t/a", b"2", prev_kv=True)
    assert again.prev_kv is not None and again.prev_kv.value == b"1"
    got = await kv.get(b"/x0/ops/t/a")
    assert got is not None and got.value == b"2" and got.version == 2
    assert got.create_revision == put.revision
    assert await kv.get(b"/x0/ops/t/missing") is None
    await kv.put(b"/x0/ops/t/b", b"3")
    page = await kv.range(b"/x0/ops/t/")
    assert [x.key for x in page.kvs] == [b"/x0/ops/t/a", b"/x0/ops/t/b"] and page.count == 2
    deleted = await kv.delete(b"/x0/ops/t/", prefix=True)
    assert deleted.deleted == 2


async def test_errors_are_typed_and_name_the_field(kv: ConsensusClient) -> None:
    with pytest.raises(InvalidArgument) as bad:
        await kv.put(b"", b"x")
    assert bad.value.field == "key"
    with pytest.raises(NotFound):
        await kv.lease_keepalive(987_654_321)


async def test_txn_compare_and_set(kv: ConsensusClient) -> None:
    await kv.put(b"/x0/ops/cas", b"old")
    won = await kv.txn(
        [value_is(b"/x0/ops/cas", "=", b"old")],
        [put_op(b"/x0/ops/cas", b"new")],
        [range_op(b"/x0/ops/cas")],
    )
    lost = await kv.txn(
        [value_is(b"/x0/ops/cas", "=", b"old")],
        [put_op(b"/x0/ops/cas", b"newer")],
        [range_op(b"/x0/ops/cas"), delete_op(b"/x0/ops/nothing")],
    )
    assert won.succeeded and isinstance(won.responses[0], PutResult)
    assert not lost.succeeded
    seen = lost.responses[0]
    assert isinstance(seen, RangeResult) and seen.kvs[0].value == b"new"


async def test_a_lease_is_kept_alive_and_its_keys_go_with_it(kv: ConsensusClient) -> None:
    kept = await kv.lease(1)
    dropped = await kv.lease(1)
    await kv.put(b"/x0/ops/leased/kept", b"x", lease=kept.id)
    await kv.put(b"/x0/ops/leased/dropped", b"x", lease=dropped.id)
    watch = kv.watch(b"/x0/ops/leased/", prefix=True)
    first = asyncio.ensure_future(anext(watch))
    # Not renewed any more: the store expires it after its TTL, and its key goes.
    await dropped.abandon()
    expired = await asyncio.wait_for(first, 30)
    assert (expired.type, expired.kv.key) == (EventType.DELETE, b"/x0/ops/leased/dropped")
    # Meanwhile the other one, renewed in the background, outlived its TTL with its key.
    assert not kept.lost.is_set()
    assert await kv.get(b"/x0/ops/leased/kept") is not None
    await kept.revoke()
    revoked = await asyncio.wait_for(anext(watch), 10)
    assert (revoked.type, revoked.kv.key) == (EventType.DELETE, b"/x0/ops/leased/kept")
    await watch.aclose()


async def test_versioned_documents(kv: ConsensusClient) -> None:
    docs = Documents(kv, "policy", OPERATOR)
    one = await docs.propose("authz", b"allow: a\nrules:\n  - x\n", "first")
    two = await docs.propose("authz", b"allow: a\nrules:\n  - x\n  - y\n", "second")
    assert (one.number, two.number) == (1, 2)
    assert await docs.current("authz") is None
    await docs.activate("authz", 1, expected=0)
    results = await asyncio.gather(
        docs.activate("authz", 2, expected=1),
        docs.activate("authz", 2, expected=1),
        docs.activate("authz", 2, expected=1),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1, results
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    assert await docs.current_number("authz") == 2
    assert await docs.diff("authz", 1, 2) == [
        "--- authz@1\n",
        "+++ authz@2\n",
        "@@ -1,3 +1,4 @@\n",
        " allow: a\n",
        " rules:\n",
        "   - x\n",
        "+  - y\n",
    ]
    back = await docs.rollback("authz", 1, expected=2)
    assert back.number == 3 and back.content == one.content and back.parent == 2
    assert await docs.current_number("authz") == 3
    history = await docs.history("authz")
    assert [r.number for r in history] == [1, 2, 3]
    assert {r.author for r in history} == {OPERATOR}
    with pytest.raises(Conflict, match="current revision is 3, not the expected 2"):
        await docs.activate("authz", 2, expected=2)
    with pytest.raises(NotFound):
        await docs.activate("authz", 9, expected=3)


async def test_concurrent_proposals_get_distinct_numbers(kv: ConsensusClient) -> None:
    docs = Documents(kv, "ops", OPERATOR)
    made = await asyncio.gather(*(docs.propose("runbook", b"v%d" % i) for i in range(5)))
    assert sorted(r.number for r in made) == [1, 2, 3, 4, 5]
    stored = {r.number: r.content for r in await docs.history("runbook")}
    assert stored == {r.number: r.content for r in made}


async def test_a_stale_holders_fenced_write_is_refused(kv: ConsensusClient) -> None:
    first = SingleActor(kv, "healer", "loop", "replica-1", ttl_s=1)
    second = SingleActor(kv, "healer", "loop", "replica-2", ttl_s=1)
    tenure = await first.acquire()
    assert await second.try_acquire() is None
    assert await first.holder_now() == "replica-1"
    await tenure.put(keys.key("healer", "state"), b"by-1")
    lost: list[str] = []
    tenure.on_lost(lambda t: lost.append("lost"))
    # replica-1 stalls (stops renewing, as if paused): its lease expires, replica-2 takes over.
    await tenure.lease.abandon()
    taken = await asyncio.wait_for(second.acquire(), 30)
    assert await second.holder_now() == "replica-2"
    with pytest.raises(Fenced):
        await tenure.put(keys.key("healer", "state"), b"late write by 1")
    await asyncio.wait_for(tenure.lost.wait(), 10)
    assert lost == ["lost"]
    await taken.put(keys.key("healer", "state"), b"by-2")
    state = await kv.get(keys.key("healer", "state"))
    assert state is not None and state.value == b"by-2"
    await taken.resign()
    assert await second.holder_now() is None


async def test_a_watch_stream_is_counted_in_the_client_metrics_when_it_ends(
    kv: ConsensusClient,
) -> None:
    def watches() -> float:
        return sum(
            s.value
            for family in REGISTRY.collect()
            for s in family.samples
            if s.name == "x0tta6bl4_grpc_client_requests_total"
            and s.labels["method"] == "Watch"
            and s.labels["grpc_service"] == "x0tta6bl4.consensus.v1.KVService"
            and s.labels["service"] == "operator"
        )

    before = watches()
    written = await kv.put(b"/x0/ops/metrics/w", b"1")
    watch = kv.watch(b"/x0/ops/metrics/", prefix=True, start_revision=written.revision)
    assert (await asyncio.wait_for(anext(watch), 10)).kv.key == b"/x0/ops/metrics/w"
    await watch.aclose()
    await eventually(lambda: _more(watches, before), 10, "the ended watch counted")


async def _more(count: Callable[[], float], before: float) -> bool:
    return count() > before


def _readyz(service: ServiceProcess) -> dict[str, object]:
    try:
        with urllib.request.urlopen(service.url("/readyz"), timeout=5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        return dict(json.loads(err.read()))
    except urllib.error.URLError:
        return {}  # not listening yet


async def test_a_service_depending_on_consensus_is_ready_while_one_member_answers(
    cluster: ConsensusCluster, mesh: Mesh
) -> None:
    members = "|".join(m.grpc_addr for m in cluster.members.values())
    nobody = f"127.0.0.1:{free_port()}"
    probes = {"X0_DEPENDENCY_PROBE_INTERVAL_S": "0.2"}
    with_members = mesh.service(
        "policy", env={**probes, "X0_DEPENDENCIES": f"consensus={members}|{nobody}"}
    )
    checks = _readyz(with_members)["checks"]
    assert isinstance(checks, dict) and checks["dependencies"] == "ok: consensus"
    alone = mesh.service(
        "healer", env={**probes, "X0_DEPENDENCIES": f"consensus={nobody}"}, wait_ready=False
    )
    try:

        async def says_why() -> bool:
            body = _readyz(alone)
            checks = body.get("checks")
            return isinstance(checks, dict) and f"{nobody}: UNAVAILABLE" in str(
                checks.get("dependencies")
            )

        await eventually(says_why, 30, "healer names the member that does not answer")
        assert not alone.ready()
    finally:
        alone.process.stop()
        with_members.process.stop()

"""Key-range authorisation of the consensus store (issue 20) on a real 3-member cluster, with
the real SVIDs of each service and the real OPA sidecar holding the permission data: every
identity x every owner prefix x read/write through Get, Range, Put, Delete, Txn, Watch and
leases succeeds exactly where the permissions say so."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    Workload,
    consensus_cluster,
    eventually,
    svid_source,
)
from tests.support.metrics import metric
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import put_op, range_op, value_is
from x0tta6bl4.clients.errors import ClientError, PermissionDenied

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

OWNERS = ("policy", "identity", "ops", "healer")
CALLERS = (*OWNERS, "operator", "auditor")
DATA = Path(__file__).resolve().parents[2] / (
    "services/x0tta6bl4/platform/rego/x0tta6bl4/kv/data.json"
)
TD = "spiffe://x0tta6bl4.mesh/ns/local/sa"


@pytest.fixture(scope="module")
def cluster(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsensusCluster]:
    yield consensus_cluster(
        mesh, tmp_path_factory.mktemp("raft"), env={"X0_KV_AUTHZ_REFRESH_S": "0.2"}
    )


@pytest.fixture(scope="module")
def workloads(mesh: Mesh) -> dict[str, Workload]:
    """One real SPIRE identity per caller: the services, the operator and an auditor."""
    return {name: mesh.workload(name) for name in CALLERS}


@contextlib.asynccontextmanager
async def _client(workload: Workload, cluster: ConsensusCluster) -> AsyncIterator[ConsensusClient]:
    async with svid_source(workload) as svids:
        client = ConsensusClient(
            svids,
            [m.grpc_addr for m in cluster.members.values()],
            caller_service=workload.name,
            attempts=2,
        )
        try:
            yield client
        finally:
            await client.close()


@pytest.fixture
async def clients(
    cluster: ConsensusCluster, workloads: dict[str, Workload]
) -> AsyncIterator[dict[str, ConsensusClient]]:
    async with contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(_client(w, cluster))
            for name, w in workloads.items()
        }


def _may(caller: str, owner: str, write: bool) -> bool:
    return caller in ("operator", owner) or (caller == "auditor" and not write)


async def _outcome(call: Awaitable[object]) -> bool:
    try:
        await call
    except PermissionDenied:
        return False
    return True


async def _watch_allowed(kv: ConsensusClient, writer: ConsensusClient, prefix: bytes) -> bool:
    """Watch from the revision of a write made first: the write's event is the first one."""
    written = await writer.put(prefix + b"watched", b"x")
    watch = kv.watch(prefix, prefix=True, start_revision=written.revision)
    try:
        event = await asyncio.wait_for(anext(watch), 10)
        return event.kv.key == prefix + b"watched"
    except PermissionDenied:
        return False
    finally:
        await watch.aclose()


def _ops(
    kv: ConsensusClient, prefix: bytes
) -> dict[str, tuple[bool, Callable[[], Awaitable[object]]]]:
    """name -> (is a write, the call)."""
    key = prefix + b"k"

    async def txn_write_in_else() -> object:
        return await kv.txn([value_is(key, "=", b"never")], [], [put_op(key, b"else")])

    async def lease_attach_and_revoke() -> object:
        lease = await kv.lease(30)
        try:
            return await kv.put(prefix + b"leased", b"x", lease=lease.id)
        finally:
            await lease.abandon()
            with contextlib.suppress(ClientError):
                await kv.lease_revoke(lease.id)

    return {
        "Get": (False, lambda: kv.get(key)),
        "Range": (False, lambda: kv.range(prefix)),
        "Txn-read": (False, lambda: kv.txn([value_is(key, "=", b"v")], [range_op(key)])),
        "Put": (True, lambda: kv.put(key, b"v")),
        "Delete": (True, lambda: kv.delete(prefix + b"gone")),
        "Delete-prefix": (True, lambda: kv.delete(prefix + b"tmp/", prefix=True)),
        "Txn-else-write": (True, txn_write_in_else),
        "Lease": (True, lease_attach_and_revoke),
    }


async def test_the_permission_matrix(clients: dict[str, ConsensusClient]) -> None:
    operator = clients["operator"]
    for owner in OWNERS:
        await operator.put(f"/x0/{owner}/k".encode(), b"v")
    wrong: list[str] = []
    cells = 0
    for caller, kv in clients.items():
        for owner in OWNERS:
            prefix = f"/x0/{owner}/".encode()
            for name, (write, call) in _ops(kv, prefix).items():
                cells += 1
                if await _outcome(call()) != _may(caller, owner, write):
                    wrong.append(f"{caller} {name} {prefix!r}")
            cells += 1
            if await _watch_allowed(kv, operator, prefix) != _may(caller, owner, False):
                wrong.append(f"{caller} Watch {prefix!r}")
    assert not wrong, f"{len(wrong)} of {cells} cells wrong: {wrong}"


async def test_a_range_running_past_an_allowed_prefix_is_refused_whole(
    clients: dict[str, ConsensusClient],
) -> None:
    policy = clients["policy"]
    with pytest.raises(PermissionDenied) as refused:
        await policy.range(b"/x0/")
    assert "may not read prefix b'/x0/'" in refused.value.details
    with pytest.raises(PermissionDenied):
        await policy.range(b"/x0/pol")
    with pytest.raises(PermissionDenied):
        await policy.txn([], [range_op(b"/x0/", prefix=True)])
    with pytest.raises(PermissionDenied):  # a compare on a key it may not read
        await policy.txn([value_is(b"/x0/ops/k", "=", b"v")], [put_op(b"/x0/policy/k", b"x")])
    assert (await policy.range(b"/x0/policy/")).count >= 1


async def test_denials_are_counted_per_caller(
    clients: dict[str, ConsensusClient], cluster: ConsensusCluster
) -> None:
    with pytest.raises(PermissionDenied):
        await clients["healer"].get(b"/x0/ops/k")

    def denied() -> float:
        return sum(
            metric(m.metrics(), "x0tta6bl4_kv_permission_denied_total", 0.0, caller=f"{TD}/healer")
            for m in cluster.members.values()
        )

    assert denied() >= 1


async def test_changed_permission_data_takes_effect_without_a_restart(
    clients: dict[str, ConsensusClient], cluster: ConsensusCluster
) -> None:
    healer = clients["healer"]
    with pytest.raises(PermissionDenied):
        await healer.get(b"/x0/ops/k")
    shipped = json.loads(DATA.read_text())["permissions"]
    extra = {"callers": [f"{TD}/healer"], "prefix": "/x0/ops/", "access": "read"}
    url = f"{cluster.opa.url}/v1/data/x0tta6bl4/kv/permissions"
    async with httpx.AsyncClient() as http:
        (await http.put(url, json=[*shipped, extra])).raise_for_status()
        try:

            async def readable() -> bool:
                return await _outcome(healer.get(b"/x0/ops/k"))

            await eventually(readable, 30, "healer reads /x0/ops/ after the data changed")
            with pytest.raises(PermissionDenied):  # read only
                await healer.put(b"/x0/ops/k", b"no")
        finally:
            (await http.put(url, json=shipped)).raise_for_status()

    async def refused_again() -> bool:
        return not await _outcome(healer.get(b"/x0/ops/k"))

    await eventually(refused_again, 30, "the grant is gone again")

"""The shared sync client against real replicas over mTLS: typed values, the causal context
kept per key (a removal supersedes exactly what this client read), big counters, watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.mesh import Mesh, SyncCluster, eventually, svid_source, sync_cluster
from x0tta6bl4.clients.errors import InvalidArgument
from x0tta6bl4.clients.sync import (
    SyncClient,
    add,
    assign,
    crdt_type,
    increment,
    remove,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

INT64_MAX = (1 << 63) - 1


@pytest.fixture(scope="module")
def replicas(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyncCluster]:
    yield sync_cluster(mesh, tmp_path_factory.mktemp("sync"))


@pytest.fixture
async def clients(replicas: SyncCluster, mesh: Mesh) -> AsyncIterator[dict[str, SyncClient]]:
    """One client per replica (each pinned to it), all as the operator."""
    async with svid_source(mesh.workload("operator")) as svids:
        out = {
            rid: SyncClient(svids, [f"127.0.0.1:{port}"], caller_service="operator")
            for rid, port in replicas.ports.items()
        }
        try:
            yield out
        finally:
            for c in out.values():
                await c.close()


async def _value(c: SyncClient, key: str) -> object:
    read = await c.get(key)
    return None if read is None else read.value


async def test_values_come_back_typed(clients: dict[str, SyncClient]) -> None:
    a = clients["a"]
    await a.update("c/visits", increment(3), type=crdt_type("pn_counter"))
    await a.update("c/tags", add("x"), type=crdt_type("aw_set"))
    await a.update("c/name", assign("first"), type=crdt_type("lww_register"))
    assert await _value(a, "c/visits") == 3
    assert await _value(a, "c/tags") == ["x"]
    assert await _value(a, "c/name") == ["first"]
    assert await a.get("c/absent") is None
    with pytest.raises(InvalidArgument) as bad:
        await a.update("c/visits", add("x"))
    assert "does not apply" in bad.value.details


async def test_a_removal_supersedes_only_what_this_client_read(
    clients: dict[str, SyncClient],
) -> None:
    a, b = clients["a"], clients["b"]
    await a.update("c/set", add("seen"), type=crdt_type("aw_set"))
    await eventually(lambda: _has(b, "c/set", "seen"), 60, "b has 'seen'")
    read = await b.get("c/set")  # b's context now covers the add it saw
    assert read is not None and read.value == ["seen"]
    await a.update("c/set", add("seen"))  # a concurrent re-add b did not see
    await b.update("c/set", remove("seen"))  # sent with b's context from its read
    await eventually(lambda: _is(a, "c/set", ["seen"]), 60, "the unseen add survives")


async def _has(c: SyncClient, key: str, element: str) -> bool:
    value = await _value(c, key)
    return isinstance(value, list) and element in value


async def _is(c: SyncClient, key: str, expected: object) -> bool:
    return await _value(c, key) == expected


async def test_a_counter_past_int64_is_read_exactly_on_every_replica(
    clients: dict[str, SyncClient],
) -> None:
    await clients["a"].update("c/big", increment(INT64_MAX), type=crdt_type("g_counter"))
    await clients["b"].update("c/big", increment(INT64_MAX), type=crdt_type("g_counter"))
    for c in clients.values():
        await eventually(lambda c=c: _is(c, "c/big", 2 * INT64_MAX), 60, "sum on every replica")


async def test_watch_sees_changes_from_other_replicas(clients: dict[str, SyncClient]) -> None:
    watch = clients["c"].watch("w/")
    first = asyncio.ensure_future(anext(watch))
    try:
        # A sync watch starts "from now": write until the open stream reports a change.
        writes = 0
        while writes < 30:
            await clients["a"].update("w/k", increment(1), type=crdt_type("pn_counter"))
            writes += 1
            done, _ = await asyncio.wait({first}, timeout=2)
            if done:
                break
        change = first.result()
    finally:
        first.cancel()
        await watch.aclose()
    assert change.key == "w/k" and isinstance(change.value, int) and 1 <= change.value <= writes
    assert clients["c"].context_of("w/k") == change.context

"""Small client helpers for tests of the sync service (SyncService over mTLS, one replica per
MeshClient so a test chooses where each call goes); types, operation builders and ``plain``
come from the shared client, :mod:`x0tta6bl4.clients.sync`."""

from __future__ import annotations

from typing import Any

from tests.support.mesh import eventually
from x0tta6bl4.clients.sync import add, assign, crdt_type, increment, plain, remove
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.sync.v1 import sync_pb2, sync_pb2_grpc

CONVERGE_S = 60.0  # generous: the machine is shared; tests assert convergence, not its speed

PN = crdt_type("pn_counter")
AW = crdt_type("aw_set")
RW = crdt_type("rw_set")
LWW = crdt_type("lww_register")
inc = increment


async def update(c: MeshClient, key: str, op: sync_pb2.Operation, **kw: Any) -> Any:
    request = sync_pb2.UpdateRequest(key=key, operation=op, **kw)
    return await c.call(
        lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Update(request, timeout=t),
        idempotent=False,
    )


async def get(c: MeshClient, key: str) -> sync_pb2.GetResponse:
    request = sync_pb2.GetRequest(key=key)
    response: sync_pb2.GetResponse = await c.call(
        lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Get(request, timeout=t), idempotent=True
    )
    return response


async def stats(c: MeshClient) -> sync_pb2.StatsResponse:
    response: sync_pb2.StatsResponse = await c.call(
        lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Stats(sync_pb2.StatsRequest(), timeout=t),
        idempotent=True,
    )
    return response


async def values(clients: dict[str, MeshClient], key: str) -> dict[str, Any]:
    out = {}
    for rid, c in clients.items():
        r = await get(c, key)
        out[rid] = plain(r.value) if r.found else None
    return out


async def converged(clients: dict[str, MeshClient], key: str, expected: Any) -> float:
    async def check() -> bool:
        return set(map(repr, (await values(clients, key)).values())) == {repr(expected)}

    return await eventually(check, CONVERGE_S, f"{key} == {expected!r} on {sorted(clients)}")


__all__ = [
    "AW",
    "LWW",
    "PN",
    "RW",
    "add",
    "assign",
    "converged",
    "get",
    "inc",
    "plain",
    "remove",
    "stats",
    "update",
    "values",
]

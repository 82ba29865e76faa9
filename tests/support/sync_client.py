"""Small client helpers for tests of the sync service (SyncService over mTLS)."""

from __future__ import annotations

from typing import Any

from tests.support.mesh import eventually
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.sync.v1 import sync_pb2, sync_pb2_grpc

CONVERGE_S = 60.0  # generous: the machine is shared; tests assert convergence, not its speed

PN = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_PN_COUNTER)
AW = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_AW_SET)
RW = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_RW_SET)
LWW = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_LWW_REGISTER)


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


def plain(v: sync_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "counter":
        return v.counter
    if kind == "big_counter":
        return int(v.big_counter)
    if kind in ("register", "elements"):
        return sorted(str(getattr(s, s.WhichOneof("kind"))) for s in getattr(v, kind).values)
    if kind == "flag":
        return v.flag
    return None


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


def inc(n: int = 1) -> sync_pb2.Operation:
    return sync_pb2.Operation(increment=sync_pb2.Increment(amount=n))


def assign(text: str) -> sync_pb2.Operation:
    return sync_pb2.Operation(assign=sync_pb2.Assign(value=sync_pb2.Scalar(text=text)))


def add(x: str) -> sync_pb2.Operation:
    return sync_pb2.Operation(add=sync_pb2.SetAdd(element=sync_pb2.Scalar(text=x)))


def remove(x: str) -> sync_pb2.Operation:
    return sync_pb2.Operation(remove=sync_pb2.SetRemove(element=sync_pb2.Scalar(text=x)))

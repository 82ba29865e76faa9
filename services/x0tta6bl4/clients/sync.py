"""The sync (CRDT) client: update, get and watch, with the causal context kept for the caller.

A write that supersedes what was read (assign, clear, remove, flag writes) must carry the
context of that read, so it removes exactly what the caller saw and not concurrent writes it
did not see. :class:`SyncClient` remembers the context of the last :meth:`~SyncClient.get`
(or update, or watched change) of each key and sends it with the next update of that key,
unless the caller passes one. Values come back as plain Python: ``int`` for counters (also
past int64, see ``Value.big_counter``), a sorted list of scalars for registers and sets,
``bool`` for flags, a ``dict`` for maps.

Any replica accepts writes, so a call that a replica cannot serve goes to the next one. An
update is not idempotent for counters: it is sent to one replica and not retried after it
may have been applied (``Unavailable`` then); reads retry freely.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.clients.errors import Unavailable, from_rpc_error
from x0tta6bl4.clients.members import MemberPool, backoff_s
from x0tta6bl4.platform.server import Runtime
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.sync.v1 import sync_pb2, sync_pb2_grpc

Plain = int | bool | list[Any] | dict[str, Any] | None

KINDS = {
    "g_counter": sync_pb2.CRDT_KIND_G_COUNTER,
    "pn_counter": sync_pb2.CRDT_KIND_PN_COUNTER,
    "lww_register": sync_pb2.CRDT_KIND_LWW_REGISTER,
    "mv_register": sync_pb2.CRDT_KIND_MV_REGISTER,
    "ew_flag": sync_pb2.CRDT_KIND_EW_FLAG,
    "dw_flag": sync_pb2.CRDT_KIND_DW_FLAG,
    "aw_set": sync_pb2.CRDT_KIND_AW_SET,
    "rw_set": sync_pb2.CRDT_KIND_RW_SET,
}


def crdt_type(kind: str, value: sync_pb2.CrdtType | None = None) -> sync_pb2.CrdtType:
    """``crdt_type("pn_counter")``; an OR-map: ``crdt_type("or_map", crdt_type("aw_set"))``."""
    if kind == "or_map":
        if value is None:
            raise ValueError("an or_map needs the type of its values")
        return sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_OR_MAP, value=value)
    if kind not in KINDS:
        raise ValueError(f"unknown CRDT kind {kind!r}; one of {sorted([*KINDS, 'or_map'])}")
    return sync_pb2.CrdtType(kind=KINDS[kind])


def scalar(v: str | bytes | int) -> sync_pb2.Scalar:
    if isinstance(v, str):
        return sync_pb2.Scalar(text=v)
    if isinstance(v, bytes):
        return sync_pb2.Scalar(data=v)
    return sync_pb2.Scalar(integer=v)


def _scalar_value(s: sync_pb2.Scalar) -> str | bytes | int:
    kind = s.WhichOneof("kind")
    return getattr(s, kind) if kind else ""


def plain(v: sync_pb2.Value) -> Plain:
    """A ``Value`` as plain Python (see the module docstring)."""
    kind = v.WhichOneof("kind")
    if kind == "counter":
        return int(v.counter)
    if kind == "big_counter":
        return int(v.big_counter)
    if kind in ("register", "elements"):
        values = [_scalar_value(s) for s in getattr(v, kind).values]
        return sorted(values, key=lambda x: (type(x).__name__, x))
    if kind == "flag":
        return bool(v.flag)
    if kind == "map":
        return {e.key: plain(e.value) for e in v.map.entries}
    return None


def increment(n: int = 1) -> sync_pb2.Operation:
    return sync_pb2.Operation(increment=sync_pb2.Increment(amount=n))


def decrement(n: int = 1) -> sync_pb2.Operation:
    return sync_pb2.Operation(decrement=sync_pb2.Decrement(amount=n))


def assign(v: str | bytes | int) -> sync_pb2.Operation:
    return sync_pb2.Operation(assign=sync_pb2.Assign(value=scalar(v)))


def add(v: str | bytes | int) -> sync_pb2.Operation:
    return sync_pb2.Operation(add=sync_pb2.SetAdd(element=scalar(v)))


def remove(v: str | bytes | int) -> sync_pb2.Operation:
    return sync_pb2.Operation(remove=sync_pb2.SetRemove(element=scalar(v)))


def clear() -> sync_pb2.Operation:
    return sync_pb2.Operation(clear=sync_pb2.Clear())


def map_update(key: str, op: sync_pb2.Operation) -> sync_pb2.Operation:
    return sync_pb2.Operation(map_update=sync_pb2.MapUpdate(key=key, operation=op))


@dataclass(frozen=True, slots=True)
class Read:
    """A key as one replica has it now."""

    key: str
    type: sync_pb2.CrdtType
    value: Plain
    context: bytes
    origin: str = ""


class SyncClient:
    """A typed client of ``x0tta6bl4.sync.v1.SyncService`` on a set of replicas."""

    def __init__(
        self,
        svids: SvidSource,
        replicas: Sequence[str],
        *,
        caller_service: str,
        namespace: str = "local",
        timeout_s: float = 5.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._pool = MemberPool(
            svids,
            replicas,
            service="sync",
            caller_service=caller_service,
            namespace=namespace,
            timeout_s=timeout_s,
            tracer_provider=tracer_provider,
        )
        self._contexts: dict[str, bytes] = {}

    @classmethod
    def from_runtime(cls, rt: Runtime, *, timeout_s: float = 5.0) -> SyncClient:
        """A client of the sync members named in this process's ``X0_DEPENDENCIES``, as this
        workload; closed when the process stops."""
        client = cls(
            rt.svids,
            rt.members("sync"),
            caller_service=rt.settings.service,
            namespace=rt.settings.namespace,
            timeout_s=timeout_s,
            tracer_provider=rt.telemetry.tracer_provider,
        )
        rt.on_stop(client.close)
        return client

    def context_of(self, key: str) -> bytes:
        """The context this client last saw for ``key`` (``b""``: none)."""
        return self._contexts.get(key, b"")

    async def get(self, key: str) -> Read | None:
        request = sync_pb2.GetRequest(key=key)
        pb: sync_pb2.GetResponse = await self._pool.call(
            "SyncService/Get",
            lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Get(request, timeout=t),
        )
        if not pb.found:
            return None
        self._contexts[key] = pb.context
        return Read(key, pb.type, plain(pb.value), pb.context)

    async def update(
        self,
        key: str,
        op: sync_pb2.Operation,
        *,
        type: sync_pb2.CrdtType | None = None,
        context: bytes | None = None,
    ) -> bytes:
        """Apply ``op`` (``type`` is needed when the key is new); the context after it."""
        request = sync_pb2.UpdateRequest(
            key=key,
            type=type,
            operation=op,
            context=self.context_of(key) if context is None else context,
        )
        client = self._pool.current()
        try:
            pb: sync_pb2.UpdateResponse = await client.call(
                lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Update(request, timeout=t),
                idempotent=False,
            )
        except aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                self._pool.failed(client)
            raise from_rpc_error("SyncService/Update", err) from None
        self._contexts[key] = pb.context
        return pb.context

    async def watch(self, prefix: str = "", *, retry_s: float = 30.0) -> AsyncIterator[Read]:
        """Changes under ``prefix`` as they happen on one replica, moving to another one when
        it fails. A change made while no stream was open is seen at its next change."""
        failures, since_ok = 0, time.monotonic()
        while True:
            client = self._pool.current()
            stream = sync_pb2_grpc.SyncServiceStub(client.channel()).Watch(
                sync_pb2.WatchRequest(prefix=prefix)
            )
            try:
                async for pb in stream:
                    failures, since_ok = 0, time.monotonic()
                    self._contexts[pb.key] = pb.context
                    yield Read(pb.key, pb.type, plain(pb.value), pb.context, pb.origin)
            except aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                    raise from_rpc_error("SyncService/Watch", err) from None
            finally:
                stream.cancel()
            self._pool.failed(client)
            if time.monotonic() - since_ok > retry_s:
                raise Unavailable(
                    "SyncService/Watch",
                    grpc.StatusCode.UNAVAILABLE,
                    f"no replica of {self._pool.addresses} served the watch for {retry_s} s",
                )
            failures += 1
            await asyncio.sleep(backoff_s(failures))

    async def close(self) -> None:
        await self._pool.close()

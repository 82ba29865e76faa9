"""The consensus KV client: get/put/delete/range/txn, leases and a resuming watch.

Any member is a seed; a call moves to the leader a member names, or to the next member, when
it cannot be served (:mod:`.members`). Reads retry freely. Every write carries a request id
(``client_id`` random per client, ``seq`` increasing), so a retried write applies once and
gets its first outcome back; writes are therefore retried as safely as reads. The store
remembers the last 32 outcomes per client, so a write's seq is at most 31 ahead of the oldest
write of this client still unanswered (:class:`WriteWindow`): however long one write keeps
retrying, its outcome is still remembered when the retry lands.
:meth:`ConsensusClient.watch` delivers every change once, in revision order, and resumes
after a member failure or a leader change from the revision after the last it delivered.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.clients.consensus_types import (
    DeleteResult,
    Event,
    KeyValue,
    PutResult,
    RangeResult,
    TxnResult,
    delete_result,
    event_of,
    kv_of,
    put_result,
    range_result,
    txn_result,
)
from x0tta6bl4.clients.errors import Unavailable, from_rpc_error
from x0tta6bl4.clients.leases import Lease
from x0tta6bl4.clients.members import MemberPool, backoff_s, leader_hint
from x0tta6bl4.clients.write_window import WriteWindow
from x0tta6bl4.consensus.v1 import kv_pb2, kv_pb2_grpc
from x0tta6bl4.platform.server import Runtime
from x0tta6bl4.platform.svid import SvidSource

DEDUP_WINDOW = 32
WATCH_RESUMABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)


class ConsensusClient:
    """A typed client of ``x0tta6bl4.consensus.v1.KVService`` on a set of members."""

    def __init__(
        self,
        svids: SvidSource,
        members: Sequence[str],
        *,
        caller_service: str,
        namespace: str = "local",
        timeout_s: float = 5.0,
        attempts: int = 0,
        watch_retry_s: float = 30.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._pool = MemberPool(
            svids,
            members,
            service="consensus",
            caller_service=caller_service,
            namespace=namespace,
            timeout_s=timeout_s,
            attempts=attempts,
            tracer_provider=tracer_provider,
        )
        self.client_id = secrets.randbits(63) | 1
        self._window = WriteWindow(DEDUP_WINDOW)
        self._watch_retry_s = watch_retry_s

    @classmethod
    def from_runtime(cls, rt: Runtime, *, timeout_s: float = 5.0) -> ConsensusClient:
        """A client of the consensus members named in this process's ``X0_DEPENDENCIES``, as this
        workload; closed when the process stops."""
        client = cls(
            rt.svids,
            rt.members("consensus"),
            caller_service=rt.settings.service,
            namespace=rt.settings.namespace,
            timeout_s=timeout_s,
            tracer_provider=rt.telemetry.tracer_provider,
        )
        rt.on_stop(client.close)
        return client

    @property
    def members(self) -> list[str]:
        return self._pool.addresses

    async def _call(self, rpc: str, request: Any) -> Any:
        return await self._pool.call(
            f"KVService/{rpc}",
            lambda ch, t: getattr(kv_pb2_grpc.KVServiceStub(ch), rpc)(request, timeout=t),
        )

    async def _write(self, rpc: str, request: Callable[[kv_pb2.RequestId], Any]) -> Any:
        async with self._window.seq() as seq:
            return await self._call(
                rpc, request(kv_pb2.RequestId(client_id=self.client_id, seq=seq))
            )

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self, key: bytes, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None:
        """The key's value (linearizable unless ``serializable``), ``None`` if absent."""
        pb = await self._call(
            "Get", kv_pb2.GetRequest(key=key, revision=revision, serializable=serializable)
        )
        return kv_of(pb.kv) if pb.found else None

    async def range(
        self,
        prefix: bytes,
        *,
        limit: int = 0,
        revision: int = 0,
        serializable: bool = False,
        start_key: bytes = b"",
    ) -> RangeResult:
        """Keys starting with ``prefix`` in key order (at most ``limit``; 0 = all), from
        ``start_key`` on."""
        pb = await self._call(
            "Range",
            kv_pb2.RangeRequest(
                prefix=prefix,
                limit=limit,
                revision=revision,
                serializable=serializable,
                start_key=start_key,
            ),
        )
        return range_result(pb)

    async def range_pages(
        self, prefix: bytes, *, page_size: int = 500, revision: int = 0
    ) -> AsyncIterator[RangeResult]:
        """Every key under ``prefix`` a page at a time, all read at one revision (the first
        page's, unless given): a prefix of any size without one huge response."""
        start = b""
        while True:
            page = await self.range(prefix, limit=page_size, revision=revision, start_key=start)
            revision = revision or page.revision
            yield page
            if not page.more or not page.kvs:
                return
            start = page.kvs[-1].key + b"\x00"

    # -- writes ---------------------------------------------------------------------------

    async def put(
        self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False
    ) -> PutResult:
        pb = await self._write(
            "Put",
            lambda rid: kv_pb2.PutRequest(
                key=key, value=value, lease=lease, prev_kv=prev_kv, request_id=rid
            ),
        )
        return put_result(pb)

    async def delete(
        self, key: bytes, *, prefix: bool = False, prev_kv: bool = False
    ) -> DeleteResult:
        pb = await self._write(
            "Delete",
            lambda rid: kv_pb2.DeleteRequest(
                key=key, prefix=prefix, prev_kv=prev_kv, request_id=rid
            ),
        )
        return delete_result(pb)

    async def txn(
        self,
        compares: Sequence[kv_pb2.Compare],
        success: Sequence[kv_pb2.TxnOp] = (),
        failure: Sequence[kv_pb2.TxnOp] = (),
    ) -> TxnResult:
        """If every compare holds, run ``success``, else ``failure`` (builders in
        :mod:`.consensus_types`)."""
        pb = await self._write(
            "Txn",
            lambda rid: kv_pb2.TxnRequest(
                compare=list(compares),
                success=list(success),
                failure=list(failure),
                request_id=rid,
            ),
        )
        return txn_result(pb)

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, ttl_s: int) -> tuple[int, int]:
        """A new lease: ``(id, ttl_seconds)``."""
        pb = await self._write(
            "LeaseGrant",
            lambda rid: kv_pb2.LeaseGrantRequest(ttl_seconds=ttl_s, request_id=rid),
        )
        return int(pb.id), int(pb.ttl_seconds)

    async def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease to its full TTL; its TTL. ``NotFound`` once it expired."""
        pb = await self._call("LeaseKeepAlive", kv_pb2.LeaseKeepAliveRequest(id=lease_id))
        return int(pb.ttl_seconds)

    async def lease_revoke(self, lease_id: int) -> int:
        """Delete the lease and its keys; the revision of the deletion."""
        pb = await self._write(
            "LeaseRevoke", lambda rid: kv_pb2.LeaseRevokeRequest(id=lease_id, request_id=rid)
        )
        return int(pb.header.revision)

    async def lease(self, ttl_s: int) -> Lease:
        """A lease kept alive in the background until :meth:`Lease.revoke` (or until it
        could not be renewed within its TTL: then ``lost`` is set)."""
        lease_id, ttl = await self.lease_grant(ttl_s)
        return Lease.start(self, lease_id, ttl)

    # -- watch ----------------------------------------------------------------------------

    async def watch(
        self, key: bytes, *, prefix: bool = False, start_revision: int = 0, prev_kv: bool = False
    ) -> AsyncIterator[Event]:
        """Changes of ``key`` (or under it, with ``prefix``) from ``start_revision`` (0 = from
        now), each exactly once and in order, across member failures and leader changes.

        Raises ``OutOfRange`` if the history it must resume from was compacted, and
        ``Unavailable`` if no member served the watch for ``watch_retry_s``.
        """
        next_rev = start_revision
        since_ok = time.monotonic()
        attempt = 0
        while True:
            client = self._pool.current()
            request = kv_pb2.WatchRequest(
                key=key, prefix=prefix, start_revision=next_rev, prev_kv=prev_kv
            )
            stream = kv_pb2_grpc.KVServiceStub(client.channel()).Watch(request)
            hint = ""
            try:
                async for response in stream:
                    if response.created:
                        if next_rev == 0:
                            next_rev = response.header.revision + 1
                        since_ok, attempt = time.monotonic(), 0
                        continue
                    for pb in response.events:
                        event = event_of(pb)
                        if event.revision >= next_rev:
                            yield event
                    if response.events:
                        next_rev = max(next_rev, response.events[-1].kv.mod_revision + 1)
            except aio.AioRpcError as err:
                if err.code() not in WATCH_RESUMABLE:
                    raise from_rpc_error("KVService/Watch", err) from None
                hint = leader_hint(err)
            finally:
                stream.cancel()
            self._pool.failed(client, hint)
            if time.monotonic() - since_ok > self._watch_retry_s:
                raise Unavailable(
                    "KVService/Watch",
                    grpc.StatusCode.UNAVAILABLE,
                    f"no member of {self.members} served the watch for {self._watch_retry_s} s",
                )
            attempt += 1
            await asyncio.sleep(backoff_s(attempt))

    async def close(self) -> None:
        await self._pool.close()

"""Single-actor leases: "only one replica of service X acts at a time", with fencing.

A contender holds the key ``/x0/<owner>/leader/<name>`` (its value: the holder's name) bound
to a consensus lease it keeps alive. The key's ``create_revision`` is the *fencing token* of
that tenure: :meth:`Tenure.txn` adds "the key still has this create_revision" to every write,
so a holder that lost the key (its lease expired while it was paused, say) and writes late is
refused with :class:`~x0tta6bl4.clients.errors.Fenced` — even if it still believes it leads.
A tenure ends (``lost`` set, callbacks run once) when its lease is lost or the key is deleted
or taken over; the others wait on a watch of the key and contend again when it is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import grpc
import structlog

from x0tta6bl4.clients import keys
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import (
    EventType,
    PutResult,
    RangeResult,
    TxnResult,
    create_revision_is,
    put_op,
    range_op,
    version_is,
)
from x0tta6bl4.clients.errors import Fenced
from x0tta6bl4.clients.leases import Lease
from x0tta6bl4.consensus.v1 import kv_pb2

log = structlog.get_logger(__name__)


class Tenure:
    """One holder's time as the single actor; ``token`` fences its writes."""

    def __init__(self, client: ConsensusClient, key: bytes, lease: Lease, token: int) -> None:
        self.key = key
        self.token = token
        self.lease = lease
        self.lost = asyncio.Event()
        self._client = client
        self._callbacks: list[Callable[[Tenure], None]] = []
        self._watch: asyncio.Task[None] | None = None
        lease.on_lost(lambda _: self._lose("its lease was lost"))

    def _start_watch(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_key())

    def on_lost(self, callback: Callable[[Tenure], None]) -> None:
        """Call ``callback(tenure)`` once when the tenure ends (at once if it has)."""
        if self.lost.is_set():
            callback(self)
        else:
            self._callbacks.append(callback)

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost.set()
        log.warning("single_actor_lost", key=self.key.decode(errors="replace"), reason=reason)
        for callback in self._callbacks:
            callback(self)

    async def _watch_key(self) -> None:
        async for event in self._client.watch(self.key, start_revision=self.token + 1):
            if event.type is EventType.DELETE or event.kv.create_revision != self.token:
                self._lose("the key was deleted or taken over")
                return

    async def txn(
        self,
        compares: Sequence[kv_pb2.Compare],
        success: Sequence[kv_pb2.TxnOp],
        failure: Sequence[kv_pb2.TxnOp] = (),
    ) -> TxnResult:
        """A transaction that runs only while this tenure holds: ``Fenced`` otherwise. The
        result is the caller's (the fence's own compare and read are taken out)."""
        fence = create_revision_is(self.key, "=", self.token)
        result = await self._client.txn([fence, *compares], success, [*failure, range_op(self.key)])
        if result.succeeded:
            return result
        held = result.responses[-1]
        assert isinstance(held, RangeResult)
        if not held.kvs or held.kvs[0].create_revision != self.token:
            self._lose("a fenced write found the key gone or taken over")
            raise Fenced(
                "KVService/Txn",
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{self.key.decode(errors='replace')} is no longer held with token {self.token}",
            )
        return TxnResult(False, result.revision, result.responses[:-1])

    async def put(self, key: bytes, value: bytes) -> PutResult:
        """A fenced put."""
        result = await self.txn([], [put_op(key, value)])
        put = result.responses[0]
        assert isinstance(put, PutResult)
        return put

    async def resign(self) -> None:
        """Give the key up now (the lease and the key are deleted) so another can take it."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        await self.lease.revoke()
        self._lose("resigned")


class SingleActor:
    """Contend for ``/x0/<owner>/leader/<name>`` as ``holder``."""

    def __init__(
        self, client: ConsensusClient, owner: str, name: str, holder: str, *, ttl_s: int = 10
    ) -> None:
        self.key = keys.key(owner, "leader", name)
        self.holder = holder
        self.ttl_s = ttl_s
        self._client = client

    async def holder_now(self) -> str | None:
        """Who holds the key now (``None``: nobody)."""
        kv = await self._client.get(self.key)
        return kv.value.decode() if kv is not None else None

    async def try_acquire(self) -> Tenure | None:
        """Take the key if nobody holds it; ``None`` if someone does."""
        lease = await self._client.lease(self.ttl_s)
        result = await self._client.txn(
            [version_is(self.key, "=", 0)],
            [put_op(self.key, self.holder.encode(), lease=lease.id)],
        )
        if not result.succeeded:
            await lease.revoke()
            return None
        tenure = Tenure(self._client, self.key, lease, result.revision)
        tenure._start_watch()
        log.info("single_actor_acquired", key=self.key.decode(), token=result.revision)
        return tenure

    async def acquire(self) -> Tenure:
        """Wait until this contender holds the key."""
        while True:
            tenure = await self.try_acquire()
            if tenure is not None:
                return tenure
            current = await self._client.get(self.key)
            if current is None:
                continue
            async for event in self._client.watch(
                self.key, start_revision=current.mod_revision + 1
            ):
                if event.type is EventType.DELETE:
                    break

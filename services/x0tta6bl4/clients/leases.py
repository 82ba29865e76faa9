"""A consensus lease kept alive in the background.

The keep-alive task renews the lease every third of its TTL. The lease is *lost* — ``lost``
is set and the ``on_lost`` callbacks run once — when the store says it no longer exists, or
when no renewal succeeded for a whole TTL (the store may have expired it meanwhile: acting as
if it still held would be unsafe). :meth:`Lease.revoke` stops renewing and deletes it with
its keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from x0tta6bl4.clients.errors import ClientError, NotFound

if TYPE_CHECKING:
    from x0tta6bl4.clients.consensus import ConsensusClient

log = structlog.get_logger(__name__)


class Lease:
    """One lease of the consensus store, renewed until revoked or lost."""

    def __init__(self, client: ConsensusClient, lease_id: int, ttl_s: int) -> None:
        self.id = lease_id
        self.ttl_s = ttl_s
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._client = client
        self._callbacks: list[Callable[[Lease], None]] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, client: ConsensusClient, lease_id: int, ttl_s: int) -> Lease:
        lease = cls(client, lease_id, ttl_s)
        lease._task = asyncio.get_running_loop().create_task(lease._keep_alive())
        return lease

    def on_lost(self, callback: Callable[[Lease], None]) -> None:
        """Call ``callback(lease)`` once when the lease is lost (at once if it already is)."""
        if self.lost.is_set():
            callback(self)
        else:
            self._callbacks.append(callback)

    def _lose(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        log.warning("lease_lost", lease=self.id, reason=reason)
        for callback in self._callbacks:
            callback(self)

    async def _keep_alive(self) -> None:
        interval = max(0.1, self.ttl_s / 3)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self._client.lease_keepalive(self.id)
                renewed = time.monotonic()
            except NotFound:
                self._lose("the store no longer has it (expired or revoked)")
                return
            except ClientError as err:
                if time.monotonic() - renewed >= self.ttl_s:
                    self._lose(f"not renewed for its whole TTL of {self.ttl_s} s: {err}")
                    return

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def revoke(self) -> None:
        """Stop renewing and delete the lease and its keys (already gone is fine)."""
        await self._stop()
        with contextlib.suppress(NotFound):
            await self._client.lease_revoke(self.id)

    async def abandon(self) -> None:
        """Stop renewing without revoking (the lease then expires after its TTL)."""
        await self._stop()

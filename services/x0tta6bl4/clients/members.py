"""The members a client may call, and the retry loop that moves between them.

One :class:`~x0tta6bl4.platform.client.MeshClient` per member address (mTLS with this
workload's SVID, rebuilt on rotation). A call goes to the member that answered last; when it
fails with a status that says "try elsewhere" (UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED), the next attempt goes to the leader the member named in its trailing
metadata (``x0-leader-address``), else to the next member, after exponential backoff with
full jitter (tenacity). A member that failed without naming a leader (it is down, or has none
yet) is passed over for ``DOWN_S`` — also when another member still names it as the leader
(followers keep naming a dead leader until they elect a new one). Retries go on for
``retry_s`` (an election's worth of time) and at least ``attempts`` times. Only callers that
made the call safe to repeat (reads; writes with a request id) use :meth:`MemberPool.call`;
every attempt has a deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
import tenacity
from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.clients.errors import ClientError, from_rpc_error
from x0tta6bl4.platform.client import RETRYABLE, MeshClient
from x0tta6bl4.platform.svid import SvidSource

T = TypeVar("T")
LEADER_ADDRESS = "x0-leader-address"
_JITTER = random.SystemRandom()
DOWN_S = 2.0


def backoff_s(attempt: int, cap_s: float = 1.0) -> float:
    """Exponential backoff with full jitter before re-opening a stream (attempt 1, 2, ...)."""
    return min(cap_s, 0.05 * 2.0**attempt) * _JITTER.random()


def leader_hint(err: aio.AioRpcError) -> str:
    """The leader address a member named in an error's trailing metadata (``""`` if none)."""
    metadata: Any = err.trailing_metadata() or ()
    for k, v in metadata:
        if str(k) == LEADER_ADDRESS:
            return str(v)
    return ""


class MemberPool:
    """Clients of every member of one service, and which one to call next."""

    def __init__(
        self,
        svids: SvidSource,
        addresses: Sequence[str],
        *,
        service: str,
        caller_service: str,
        namespace: str = "local",
        timeout_s: float = 5.0,
        attempts: int = 0,
        retry_s: float = 10.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        if not addresses:
            raise ValueError(f"no {service} member addresses given")
        self._svids = svids
        self._service = service
        self._caller = caller_service
        self._namespace = namespace
        self._tracer_provider = tracer_provider
        self.timeout_s = timeout_s
        self._order: list[str] = []
        self._clients: dict[str, MeshClient] = {}
        for address in addresses:
            self._add(address)
        self._current = 0
        self._down_until: dict[str, float] = {}
        self.attempts = attempts or max(4, 2 * len(self._order))
        self.retry_s = retry_s

    def _add(self, address: str) -> MeshClient:
        client = self._clients.get(address)
        if client is None:
            client = MeshClient(
                self._svids,
                address=address,
                target_service=self._service,
                caller_service=self._caller,
                namespace=self._namespace,
                tracer_provider=self._tracer_provider,
                default_timeout_s=self.timeout_s,
            )
            self._clients[address] = client
            self._order.append(address)
        return client

    @property
    def addresses(self) -> list[str]:
        return list(self._order)

    def current(self) -> MeshClient:
        return self._clients[self._order[self._current]]

    def _is_down(self, address: str, now: float) -> bool:
        return self._down_until.get(address, 0.0) > now

    def failed(self, client: MeshClient, hint: str = "") -> None:
        """``client`` did not serve a call: move to the leader it named unless that one is
        known to be down, else to the next member not known to be down."""
        now = time.monotonic()
        if not hint:
            self._down_until[client.address] = now + DOWN_S
        if hint and hint != client.address and not self._is_down(hint, now):
            self._add(hint)
            self._current = self._order.index(hint)
            return
        if self._order[self._current] != client.address:
            return  # another call moved on already
        n = len(self._order)
        candidates = [(self._current + i) % n for i in range(1, n + 1)]
        up = [i for i in candidates if not self._is_down(self._order[i], now)]
        if up:
            self._current = up[0]
        else:  # every member failed lately: the one that failed longest ago
            self._current = min(candidates, key=lambda i: self._down_until[self._order[i]])

    async def call(self, method: str, invoke: Callable[[aio.Channel, float], Awaitable[T]]) -> T:
        """``invoke(channel, timeout)`` on a member, retried on another one when that is the
        answer; a typed :class:`ClientError` when it fails for good."""
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts)
            & tenacity.stop_after_delay(self.retry_s),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=1.0),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, aio.AioRpcError) and e.code() in RETRYABLE
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    client = self.current()
                    try:
                        return await client.call(invoke, idempotent=False, timeout_s=self.timeout_s)
                    except aio.AioRpcError as err:
                        if err.code() in RETRYABLE:
                            self.failed(client, leader_hint(err))
                        raise
        except aio.AioRpcError as err:
            raise from_rpc_error(method, err) from None
        raise ClientError(method, grpc.StatusCode.UNKNOWN, "no attempt was made")

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

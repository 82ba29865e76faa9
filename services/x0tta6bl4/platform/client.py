"""mTLS gRPC client to another mesh service.

- The channel presents this workload's current SVID and verifies the server's certificate
  against the trust bundle and the service's DNS SAN (``<svc>.<ns>.svc``), which SPIRE puts
  only into that service's SVIDs.
- When the SVID rotates, the next call builds a fresh channel; the old one stays open for
  ``retire_after_s`` so calls already on it finish. No call fails because of a rotation.
- Every call has a deadline. Only calls marked idempotent are retried, with exponential backoff
  and jitter (tenacity), on UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED.
- Outbound RED metrics of unary and streaming calls (a stream is counted when it ends) and
  trace propagation (OpenTelemetry client interceptors).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import tenacity
from grpc import aio
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.platform.config import dns_name_for
from x0tta6bl4.platform.credentials import channel_credentials
from x0tta6bl4.platform.svid import SvidMaterial, SvidSource
from x0tta6bl4.platform.telemetry import GRPC_CLIENT_DURATION, GRPC_CLIENT_REQUESTS

T = TypeVar("T")

RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class _CallMetrics:
    """Outbound RED metrics of one caller -> target; a stream is counted when it ends (its
    duration is the whole stream's, like the server side's)."""

    def __init__(self, service: str, target: str) -> None:
        self._service, self._target = service, target
        self._pending: set[asyncio.Task[None]] = set()

    def record(self, details: Any, started: float, code: grpc.StatusCode) -> None:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        grpc_service, _, name = method.lstrip("/").rpartition("/")
        GRPC_CLIENT_REQUESTS.labels(
            self._service, self._target, grpc_service, name, code.name
        ).inc()
        GRPC_CLIENT_DURATION.labels(self._service, self._target, grpc_service, name).observe(
            time.perf_counter() - started
        )

    def when_done(self, details: Any, started: float, call: Any) -> Any:
        async def record(done: Any) -> None:
            self.record(details, started, await done.code())

        def on_done(done: Any) -> None:
            task = asyncio.get_running_loop().create_task(record(done))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

        call.add_done_callback(on_done)
        return call


# grpc.aio files an interceptor under the first of the four kinds it is an instance of, so
# each kind of call needs an interceptor object of its own.
class _UnaryUnaryMetrics(aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: _CallMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        call = await continuation(details, request)
        try:
            await call
            code = grpc.StatusCode.OK
        except aio.AioRpcError as err:
            code = err.code()
        self._metrics.record(details, started, code)
        return call


class _UnaryStreamMetrics(aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: _CallMetrics) -> None:
        self._metrics = metrics

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        return self._metrics.when_done(details, started, await continuation(details, request))


class _StreamUnaryMetrics(aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: _CallMetrics) -> None:
        self._metrics = metrics

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        started = time.perf_counter()
        return self._metrics.when_done(details, started, await continuation(details, requests))


class _StreamStreamMetrics(aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, metrics: _CallMetrics) -> None:
        self._metrics = metrics

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        started = time.perf_counter()
        return self._metrics.when_done(details, started, await continuation(details, requests))


def metrics_interceptors(service: str, target: str) -> list[Any]:
    """Interceptors counting every kind of call ``service`` makes to ``target``."""
    metrics = _CallMetrics(service, target)
    return [
        _UnaryUnaryMetrics(metrics),
        _UnaryStreamMetrics(metrics),
        _StreamUnaryMetrics(metrics),
        _StreamStreamMetrics(metrics),
    ]


class MeshClient:
    """Calls one target service (``service_name`` at ``address``) as this workload."""

    def __init__(
        self,
        svids: SvidSource,
        *,
        address: str,
        target_service: str,
        caller_service: str,
        namespace: str = "local",
        tracer_provider: TracerProvider | None = None,
        default_timeout_s: float = 5.0,
        retire_after_s: float = 30.0,
        max_attempts: int = 4,
    ) -> None:
        self._svids = svids
        self._address = address
        self._target = target_service
        self._caller = caller_service
        self._authority = dns_name_for(target_service, namespace)
        self._tracer_provider = tracer_provider
        self.default_timeout_s = default_timeout_s
        self._retire_after_s = retire_after_s
        self._max_attempts = max_attempts
        self._channel: aio.Channel | None = None
        self._serial: int | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """The ``host:port`` this client dials."""
        return self._address

    def _build(self, material: SvidMaterial) -> aio.Channel:
        interceptors: list[Any] = metrics_interceptors(self._caller, self._target)
        interceptors += aio_client_interceptors(  # type: ignore[no-untyped-call]
            tracer_provider=self._tracer_provider
        )
        return aio.secure_channel(
            self._address,
            channel_credentials(material),
            options=[
                ("grpc.ssl_target_name_override", self._authority),
                ("grpc.default_authority", self._authority),
            ],
            interceptors=interceptors,
        )

    def channel(self) -> aio.Channel:
        """The channel for the current SVID (rebuilt after a rotation)."""
        material = self._svids.require()
        if self._channel is None or material.serial != self._serial:
            old = self._channel
            self._channel, self._serial = self._build(material), material.serial
            if old is not None:
                task = asyncio.get_running_loop().create_task(self._retire(old))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        return self._channel

    async def _retire(self, channel: aio.Channel) -> None:
        await asyncio.sleep(self._retire_after_s)
        await channel.close(grace=self._retire_after_s)

    async def call(
        self,
        invoke: Callable[[aio.Channel, float], Awaitable[T]],
        *,
        idempotent: bool,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``invoke(channel, timeout)``; retry it only if ``idempotent``.

        ``timeout_s`` bounds each attempt; retries stop when the overall budget
        (attempts x timeout) is spent.
        """
        timeout = timeout_s or self.default_timeout_s
        if not idempotent:
            return await invoke(self.channel(), timeout)
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.05, max=2.0),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, aio.AioRpcError) and e.code() in RETRYABLE
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await invoke(self.channel(), timeout)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None

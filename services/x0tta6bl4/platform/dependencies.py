"""Probes of the services this one depends on: a WhoAmI over mTLS every interval.

Each dependency is ``name=host:port`` in ``X0_DEPENDENCIES``. A probe exercises the whole path
(this SVID, the peer's SVID and DNS SAN, the peer's OPA decision), so readiness means "I can
actually talk to what I need", and the metrics show any failed call, e.g. during SVID rotation.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import structlog
from grpc import aio
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import Counter, Gauge

from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.config import HostPort
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

log = structlog.get_logger(__name__)

PROBES = Counter(
    "x0tta6bl4_dependency_probes",
    "WhoAmI probes of dependencies, by result code.",
    ["service", "dependency", "code"],
)
UP = Gauge(
    "x0tta6bl4_dependency_up",
    "1 when the last probe of the dependency succeeded.",
    ["service", "dependency"],
)


class DependencyProbes:
    def __init__(
        self,
        service: str,
        namespace: str,
        svids: SvidSource,
        dependencies: dict[str, HostPort],
        *,
        interval_s: float,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._service = service
        self._interval_s = interval_s
        self._clients = {
            name: MeshClient(
                svids,
                address=str(addr),
                target_service=name,
                caller_service=service,
                namespace=namespace,
                default_timeout_s=max(1.0, interval_s * 2),
                tracer_provider=tracer_provider,
            )
            for name, addr in dependencies.items()
        }
        self._last_ok: dict[str, float] = {}
        self._last_error: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def probe(self, name: str) -> None:
        client = self._clients[name]
        try:
            await client.call(
                lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).WhoAmI(
                    diagnostics_pb2.WhoAmIRequest(), timeout=t
                ),
                idempotent=False,
            )
        except aio.AioRpcError as err:
            PROBES.labels(self._service, name, err.code().name).inc()
            UP.labels(self._service, name).set(0)
            if self._last_error.get(name) != err.code().name:
                log.warning(
                    "dependency_probe_failed",
                    dependency=name,
                    code=err.code().name,
                    details=err.details(),
                )
            self._last_error[name] = err.code().name
            return
        PROBES.labels(self._service, name, grpc.StatusCode.OK.name).inc()
        UP.labels(self._service, name).set(1)
        self._last_ok[name] = time.monotonic()
        self._last_error.pop(name, None)

    async def _loop(self) -> None:
        while True:
            await asyncio.gather(*(self.probe(name) for name in self._clients))
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        if self._clients:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def ready(self) -> tuple[bool, str]:
        stale_after = max(3 * self._interval_s, 5.0)
        now = time.monotonic()
        down = [n for n in self._clients if now - self._last_ok.get(n, -1e9) > stale_after]
        if down:
            return False, "no answer from " + ", ".join(
                f"{n} ({self._last_error.get(n, 'not probed yet')})" for n in sorted(down)
            )
        return True, ", ".join(sorted(self._clients))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for client in self._clients.values():
            await client.close()

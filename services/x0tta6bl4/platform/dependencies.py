"""Probes of the services this one depends on: a WhoAmI over mTLS every interval.

Each dependency is ``name=host:port`` in ``X0_DEPENDENCIES`` (``name=h1:p1|h2:p2|...`` for a
service with several members, e.g. consensus). A probe exercises the whole path (this SVID, the
peer's SVID and DNS SAN, the peer's OPA decision), so readiness means "I can actually talk to
what I need" — for a service with several members, to at least one of them, since the shared
clients move between members — and the metrics show any failed call, e.g. during SVID rotation.
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
        dependencies: dict[str, tuple[HostPort, ...]],
        *,
        interval_s: float,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._service = service
        self._interval_s = interval_s
        self._members = {name: [str(a) for a in addrs] for name, addrs in dependencies.items()}
        self._clients = {
            (name, address): MeshClient(
                svids,
                address=address,
                target_service=name,
                caller_service=service,
                namespace=namespace,
                default_timeout_s=max(1.0, interval_s * 2),
                tracer_provider=tracer_provider,
            )
            for name, addresses in self._members.items()
            for address in addresses
        }
        self._last_ok: dict[tuple[str, str], float] = {}
        self._last_error: dict[tuple[str, str], str] = {}
        self._task: asyncio.Task[None] | None = None

    async def probe(self, name: str, address: str) -> None:
        member = (name, address)
        client = self._clients[member]
        try:
            await client.call(
                lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).WhoAmI(
                    diagnostics_pb2.WhoAmIRequest(), timeout=t
                ),
                idempotent=False,
            )
        except aio.AioRpcError as err:
            PROBES.labels(self._service, name, err.code().name).inc()
            if self._last_error.get(member) != err.code().name:
                log.warning(
                    "dependency_probe_failed",
                    dependency=name,
                    address=address,
                    code=err.code().name,
                    details=err.details(),
                )
            self._last_error[member] = err.code().name
            return
        PROBES.labels(self._service, name, grpc.StatusCode.OK.name).inc()
        self._last_ok[member] = time.monotonic()
        self._last_error.pop(member, None)

    def _answering(self, name: str, now: float) -> list[str]:
        stale_after = max(3 * self._interval_s, 5.0)
        return [
            a
            for a in self._members[name]
            if now - self._last_ok.get((name, a), -1e9) <= stale_after
        ]

    async def _loop(self) -> None:
        while True:
            await asyncio.gather(*(self.probe(name, address) for name, address in self._clients))
            now = time.monotonic()
            for name in self._members:
                UP.labels(self._service, name).set(1 if self._answering(name, now) else 0)
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        if self._clients:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def ready(self) -> tuple[bool, str]:
        now = time.monotonic()
        down = [n for n in sorted(self._members) if not self._answering(n, now)]
        if down:
            return False, "no answer from " + ", ".join(f"{n} ({self._reasons(n)})" for n in down)
        return True, ", ".join(sorted(self._members))

    def _reasons(self, name: str) -> str:
        return "; ".join(
            f"{a}: {self._last_error.get((name, a), 'not probed yet')}" for a in self._members[name]
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for client in self._clients.values():
            await client.close()

"""Run one service process: SVID, OPA authz, mTLS gRPC server, HTTP health, graceful shutdown.

``serve(settings, register)`` is the whole life of a process:

1. start /healthz, /readyz (false until the SVID is loaded and OPA answers) and /metrics;
2. wait for the first SVID from the Workload API;
3. serve gRPC over mTLS (credentials fetched per handshake, bounded connection age) with the
   platform interceptor, health, reflection, Diagnostics and whatever ``register`` adds;
4. on SIGTERM/SIGINT: report NOT_SERVING and not ready, let in-flight RPCs finish within
   ``drain_timeout_s``, flush telemetry, return 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Awaitable, Callable

import structlog
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from x0tta6bl4.platform.authz import OpaAuthorizer
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.config import Settings
from x0tta6bl4.platform.credentials import server_credentials
from x0tta6bl4.platform.dependencies import DependencyProbes
from x0tta6bl4.platform.diagnostics import Diagnostics
from x0tta6bl4.platform.health import Readiness, add_probe_routes
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.interceptors import PlatformInterceptor
from x0tta6bl4.platform.svid import SvidMaterial, SvidSource
from x0tta6bl4.platform.telemetry import SVID_EXPIRY, SVID_ROTATIONS, Telemetry
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

log = structlog.get_logger(__name__)


Teardown = Callable[[], Awaitable[None]]
TEARDOWN_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class Runtime:
    """What a service's ``register`` hook gets to build its servicers with."""

    settings: Settings
    svids: SvidSource
    telemetry: Telemetry
    readiness: Readiness
    # the process's HTTP routes: register handlers here (served on X0_HTTP_ADDR, and over
    # mTLS once the service calls ``http.serve_mtls``); see platform/http_routes.py
    http: HttpRouter
    drains: list[Callable[[], None]] = dataclasses.field(default_factory=list)
    teardowns: list[Teardown] = dataclasses.field(default_factory=list)
    clients: dict[str, MeshClient] = dataclasses.field(default_factory=dict)

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the process starts draining (e.g. to end long-lived streams
        that would otherwise hold a graceful stop for the whole drain timeout)."""
        self.drains.append(callback)

    def on_stop(self, teardown: Teardown) -> None:
        """Await ``teardown`` when the process stops, after the gRPC server has stopped (no
        call is in flight any more), latest registered first, each bounded by
        TEARDOWN_TIMEOUT_S; e.g. to close files and peer channels the service opened."""
        self.teardowns.append(teardown)

    def members(self, service: str) -> list[str]:
        """The ``host:port`` of every member of ``service`` named in ``X0_DEPENDENCIES``
        (what the shared clients in ``x0tta6bl4.clients`` take as seeds)."""
        addresses = self.settings.dependencies.get(service)
        if not addresses:
            named = ", ".join(sorted(self.settings.dependencies)) or "none"
            raise ValueError(
                f"X0_DEPENDENCIES does not name {service} (it names: {named}); "
                f"add {service}=host:port to call it from {self.settings.service}"
            )
        return [str(a) for a in addresses]

    def client(self, service: str, *, timeout_s: float = 5.0) -> MeshClient:
        """An mTLS client of ``service`` (its first member in ``X0_DEPENDENCIES``) as this
        workload: verifies the callee's DNS SAN, rebuilt on SVID rotation, traced and counted.
        One per service, closed when the process stops."""
        client = self.clients.get(service)
        if client is None:
            client = MeshClient(
                self.svids,
                address=self.members(service)[0],
                target_service=service,
                caller_service=self.settings.service,
                namespace=self.settings.namespace,
                tracer_provider=self.telemetry.tracer_provider,
                default_timeout_s=timeout_s,
            )
            self.clients[service] = client
            self.on_stop(client.close)
        return client

    def peer_client(self, address: str, *, timeout_s: float, max_attempts: int) -> MeshClient:
        """An mTLS client to another replica of this same service at ``address``."""
        return MeshClient(
            self.svids,
            address=address,
            target_service=self.settings.service,
            caller_service=self.settings.service,
            namespace=self.settings.namespace,
            tracer_provider=self.telemetry.tracer_provider,
            default_timeout_s=timeout_s,
            max_attempts=max_attempts,
        )


# Adds the service's servicers to the server; returns their full service names.
Register = Callable[[aio.Server, Runtime], Awaitable[list[str]]]


def _record_svid(service: str) -> Callable[[SvidMaterial], None]:
    def record(material: SvidMaterial) -> None:
        SVID_EXPIRY.labels(material.spiffe_id).set(material.expires_at.timestamp())
        SVID_ROTATIONS.labels(service).inc()

    return record


async def serve(
    settings: Settings, register: Register | None = None, *, stop: asyncio.Event | None = None
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); return the process exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    telemetry = Telemetry(settings.service)
    readiness = Readiness()
    svids = SvidSource(settings.spiffe_socket)
    svids.subscribe(_record_svid(settings.service))
    authorizer = OpaAuthorizer(
        settings.opa_url,
        settings.service,
        settings.namespace,
        timeout_s=settings.authz_timeout_s,
        cache_ttl_s=settings.authz_cache_ttl_s,
    )

    async def svid_loaded() -> tuple[bool, str]:
        material = svids.current
        if material is None:
            return False, "waiting for an SVID from the Workload API"
        return True, f"{material.spiffe_id} until {material.expires_at.isoformat()}"

    async def opa_answers() -> tuple[bool, str]:
        return (True, "") if await authorizer.ping() else (False, "OPA sidecar does not answer")

    readiness.add("svid", svid_loaded)
    readiness.add("opa", opa_answers)
    probes = DependencyProbes(
        settings.service,
        settings.namespace,
        svids,
        settings.dependencies,
        interval_s=settings.dependency_probe_interval_s,
        tracer_provider=telemetry.tracer_provider,
    )
    if settings.dependencies:
        readiness.add("dependencies", probes.ready)
    http = HttpRouter(settings.service, telemetry.tracer)
    add_probe_routes(http, readiness)
    await http.serve(settings.http_addr.host, settings.http_addr.port)
    svids.start()
    log.info(
        "starting",
        spiffe_id=settings.spiffe_id,
        http_port=http.port,
        spiffe_socket=settings.spiffe_socket,
    )

    server: aio.Server | None = None
    health = HealthServicer()
    runtime = Runtime(settings, svids, telemetry, readiness, http)
    try:
        waiter = asyncio.ensure_future(
            asyncio.to_thread(svids.wait_loaded, settings.svid_timeout_s)
        )
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            waiter.cancel()
            return 0
        if not waiter.result():
            log.error(
                "no_svid",
                timeout_s=settings.svid_timeout_s,
                hint="is the SPIRE agent running and is there a registration entry?",
            )
            return 1

        server = aio.server(
            interceptors=[PlatformInterceptor(settings.service, authorizer, telemetry.tracer)],
            options=[
                ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(settings.drain_timeout_s * 1000)),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.so_reuseport", 0),
            ],
        )
        diagnostics_pb2_grpc.add_DiagnosticsServiceServicer_to_server(
            Diagnostics(settings.service, svids), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        names = [diagnostics_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"].full_name]
        if register is not None:
            names += await register(server, runtime)
        reflection.enable_server_reflection(
            [
                *names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        port = server.add_secure_port(str(settings.grpc_addr), server_credentials(svids))
        if port == 0:
            log.error("grpc_bind_failed", addr=str(settings.grpc_addr))
            return 1
        await server.start()
        for name in ["", *names]:
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        probes.start()
        log.info(
            "serving",
            grpc_port=port,
            http_port=http.port,
            services=names,
            event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        await stop.wait()

        log.info("draining", timeout_s=settings.drain_timeout_s)
        readiness.draining = True
        _start_draining(runtime.drains)
        await health.enter_graceful_shutdown()
        await server.stop(grace=settings.drain_timeout_s)
        log.info("stopped")
        return 0
    finally:
        if server is not None:
            await server.stop(grace=None)
        await _tear_down(runtime.teardowns)
        await probes.close()
        svids.close()
        await authorizer.close()
        await http.stop()
        telemetry.shutdown(timeout_s=min(5.0, settings.drain_timeout_s))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _tear_down(teardowns: list[Teardown]) -> None:
    """Run the services' teardowns, latest registered first; one that fails or hangs is
    logged and does not keep the others (or the exit) waiting."""
    for teardown in reversed(teardowns):
        try:
            async with asyncio.timeout(TEARDOWN_TIMEOUT_S):
                await teardown()
        except Exception:
            log.exception("teardown_failed", teardown=getattr(teardown, "__qualname__", "?"))


def _start_draining(drains: list[Callable[[], None]]) -> None:
    for callback in drains:
        try:
            callback()
        except Exception:
            log.exception("drain_callback_failed")

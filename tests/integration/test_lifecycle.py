"""Readiness follows the SVID; SIGTERM drains in-flight RPCs; bad settings stop the start."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc import aio

from tests.support.mesh import Mesh, client, http_status, run_with_settings, svid_source
from x0tta6bl4.devstack.procs import wait_until
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

pytestmark = pytest.mark.integration


def _readyz(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        return dict(json.loads(err.read()))


def test_readyz_is_false_until_the_svid_arrives(mesh: Mesh) -> None:
    workload = mesh.workload("sync", register=False)  # the agent runs, but has no entry for it
    service = mesh.service("sync", workload=workload, wait_ready=False)
    wait_until(
        lambda: http_status(service.url("/healthz")) == 200,
        timeout_s=20,
        what="sync /healthz",
        diagnose=service.process.log_tail,
    )
    for _ in range(10):  # a couple of seconds of asking: still not ready
        body = _readyz(service.url("/readyz"))
        assert http_status(service.url("/readyz")) == 503
        assert body["ready"] is False
        assert "waiting for an SVID" in str(body["checks"])
        time.sleep(0.2)
    mesh.register(workload)
    wait_until(
        service.ready,
        timeout_s=30,
        what="sync ready once registered",
        diagnose=service.process.log_tail,
    )
    body = _readyz(service.url("/readyz"))
    assert body["ready"] is True
    assert "spiffe://x0tta6bl4.mesh/ns/local/sa/sync" in str(body["checks"])


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_sigterm_during_an_rpc_lets_it_finish(mesh: Mesh, event_loop: str) -> None:
    service = mesh.service("healer", env={"X0_EVENT_LOOP": event_loop})
    async with svid_source(mesh.workload("operator")) as svids, client(svids, service) as c:
        slow = asyncio.ensure_future(
            c.call(
                lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).Ping(
                    diagnostics_pb2.PingRequest(payload=b"in flight", delay=Duration(seconds=2)),
                    timeout=t,
                ),
                idempotent=False,
                timeout_s=10,
            )
        )
        await asyncio.sleep(0.5)  # the call is now inside the handler
        os.kill(service.process.pid, signal.SIGTERM)
        await asyncio.sleep(0.3)
        with pytest.raises(aio.AioRpcError) as refused:  # new calls are refused while draining
            await c.call(
                lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).Ping(
                    diagnostics_pb2.PingRequest(), timeout=t
                ),
                idempotent=False,
                timeout_s=2,
            )
        response = await slow
    assert response.payload == b"in flight"
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert service.process.popen is not None
    assert await asyncio.to_thread(service.process.popen.wait, 20) == 0
    serving = [
        json.loads(line)
        for line in service.process.log_path.read_text().splitlines()
        if '"serving"' in line
    ]
    assert serving and serving[0]["event_loop"] == event_loop


async def test_bad_ping_arguments_are_invalid_argument_naming_the_field(mesh: Mesh) -> None:
    service = mesh.service("ops")
    async with svid_source(mesh.workload("operator")) as svids, client(svids, service) as c:
        for request, field in (
            (diagnostics_pb2.PingRequest(payload=b"x" * 70_000), "payload"),
            (diagnostics_pb2.PingRequest(delay=Duration(seconds=31)), "delay"),
            (diagnostics_pb2.PingRequest(delay=Duration(seconds=-1)), "delay"),
        ):
            with pytest.raises(aio.AioRpcError) as failure:
                await c.call(
                    lambda ch, t, r=request: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).Ping(
                        r, timeout=t
                    ),
                    idempotent=False,
                )
            assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (failure.value.details() or "").startswith(f"{field}:")
    assert service.process.running()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("X0_GRPC_ADDR", "no-port"),
        ("X0_GRPC_ADDR", "127.0.0.1:70000"),
        ("X0_HTTP_ADDR", ":8080"),
        ("X0_NAMESPACE", "Not_A_Label"),
        ("X0_TRUST_DOMAIN", "spiffe://x"),
        ("X0_OPA_URL", "localhost:8181"),
        ("X0_SPIFFE_SOCKET", "relative/agent.sock"),
        ("X0_AUTHZ_TIMEOUT_S", "0"),
        ("X0_AUTHZ_CACHE_TTL_S", "-1"),
        ("X0_MAX_CONNECTION_AGE_S", "soon"),
        ("X0_DRAIN_TIMEOUT_S", "-5"),
        ("X0_SVID_TIMEOUT_S", "nan"),
        ("X0_LOG_LEVEL", "loud"),
        ("X0_EVENT_LOOP", "trio"),
        ("X0_DEPENDENCIES", "nosuchservice=127.0.0.1:1"),
        ("X0_DEPENDENCY_PROBE_INTERVAL_S", "0"),
        ("X0_CONFIG_FILE", "/nonexistent/x0.yaml"),
    ],
)
def test_every_invalid_setting_exits_non_zero_naming_it(variable: str, value: str) -> None:
    result = run_with_settings(
        "identity", {"X0_SPIFFE_SOCKET": "unix:///tmp/none.sock", variable: value}
    )
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr, result.stderr

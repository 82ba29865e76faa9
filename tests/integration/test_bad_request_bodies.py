"""A body that does not parse, sent to a real service (SPIRE mTLS, OPA authz): the platform's
guard answers INVALID_ARGUMENT naming the message type, logs one line without a traceback,
counts the call in the RED metrics, and decides authorisation before it parses anything."""

from __future__ import annotations

import grpc
import pytest

from tests.support.mesh import Mesh, ServiceProcess, client, svid_source
from tests.support.metrics import metric
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.v1 import diagnostics_pb2

pytestmark = pytest.mark.integration

WHOAMI = "/x0tta6bl4.platform.v1.DiagnosticsService/WhoAmI"
PING = "/x0tta6bl4.platform.v1.DiagnosticsService/Ping"
HEALTH = "/grpc.health.v1.Health/Check"

# 120 nested groups of an unknown field 5: past protobuf's nesting limit of 100.
DEEP = b"\x2b" * 120 + b"\x2c" * 120

BAD_BODIES = [
    pytest.param(WHOAMI, b"\x01", "x0tta6bl4.platform.v1.WhoAmIRequest", id="corrupt-bytes"),
    pytest.param(HEALTH, bytes.fromhex("0a01ff"), "grpc.health.v1.HealthCheckRequest", id="utf8"),
    pytest.param(PING, DEEP, "x0tta6bl4.platform.v1.PingRequest", id="deep-nesting"),
]


@pytest.fixture(scope="module")
def healer(mesh: Mesh) -> ServiceProcess:
    return mesh.service("healer")


async def _raw(c: MeshClient, method: str, body: bytes) -> bytes:
    answer: bytes = await c.call(
        lambda ch, t: ch.unary_unary(method)(body, timeout=t), idempotent=False
    )
    return answer


def _requests(target: ServiceProcess, method: str, code: str) -> float:
    grpc_service, name = method.lstrip("/").rsplit("/", 1)
    return metric(
        target.metrics(),
        "x0tta6bl4_grpc_server_requests_total",
        0.0,
        grpc_service=grpc_service,
        method=name,
        code=code,
    )


def _log(target: ServiceProcess) -> str:
    return target.process.log_path.read_text(errors="replace")


@pytest.mark.parametrize(("method", "body", "message_type"), BAD_BODIES)
async def test_a_body_that_does_not_parse_is_invalid_argument_naming_the_type(
    mesh: Mesh, healer: ServiceProcess, method: str, body: bytes, message_type: str
) -> None:
    before = _requests(healer, method, "INVALID_ARGUMENT")
    lines_before = _log(healer).count("rpc_bad_body")
    async with svid_source(mesh.workload("operator")) as svids, client(svids, healer) as c:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _raw(c, method, body)
        # the service still answers a valid call afterwards
        pong = await _raw(c, PING, b"")
    assert diagnostics_pb2.PingResponse.FromString(pong).server_time.seconds > 0
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = failure.value.details() or ""
    assert details.startswith(f"request body is not a valid {message_type}: "), details
    assert _requests(healer, method, "INVALID_ARGUMENT") == before + 1
    log = _log(healer)
    assert log.count("rpc_bad_body") == lines_before + 1
    assert "Traceback" not in log
    assert "DecodeError" not in log.replace("Error parsing message", "")


async def test_authorisation_is_decided_before_the_body_is_parsed(
    mesh: Mesh, healer: ServiceProcess
) -> None:
    before = _requests(healer, WHOAMI, "PERMISSION_DENIED")
    async with (
        svid_source(mesh.workload("intruder")) as svids,
        client(svids, healer, caller="intruder") as c,
    ):
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await _raw(c, WHOAMI, b"\x01")
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "intruder may not call" in (failure.value.details() or "")
    assert _requests(healer, WHOAMI, "PERMISSION_DENIED") == before + 1


async def test_a_valid_body_still_parses(mesh: Mesh, healer: ServiceProcess) -> None:
    async with svid_source(mesh.workload("operator")) as svids, client(svids, healer) as c:
        raw = await _raw(c, PING, diagnostics_pb2.PingRequest(payload=b"abc").SerializeToString())
    assert diagnostics_pb2.PingResponse.FromString(raw).payload == b"abc"

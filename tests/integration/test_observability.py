"""Traces cross processes with one trace id; /metrics has per-method RED metrics after calls."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mesh import Mesh, client, svid_source, whoami
from tests.support.otlp import OtlpReceiver
from x0tta6bl4.devstack.procs import free_port, wait_until

pytestmark = pytest.mark.integration

WHOAMI = "/x0tta6bl4.platform.v1.DiagnosticsService/WhoAmI"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver().start()
    try:
        yield otlp
    finally:
        otlp.stop()


def test_client_and_server_spans_of_one_call_share_a_trace_id(
    mesh: Mesh, receiver: OtlpReceiver
) -> None:
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    }
    policy_port = free_port()
    # healer calls policy (its dependency probe): the client span is healer's, the server span
    # policy's.
    policy = mesh.service("policy", grpc_port=policy_port, env=otel)
    mesh.service(
        "healer",
        env={
            **otel,
            "X0_DEPENDENCIES": f"policy={policy.grpc_addr}",
            "X0_DEPENDENCY_PROBE_INTERVAL_S": "0.2",
        },
    )

    def linked() -> bool:
        spans = receiver.snapshot()
        clients = {
            s.trace_id: s
            for s in spans
            if s.service == "x0tta6bl4-healer"
            and s.kind == OtlpReceiver.SPAN_KIND_CLIENT
            and s.name == WHOAMI
        }
        return any(
            s.service == "x0tta6bl4-policy"
            and s.kind == OtlpReceiver.SPAN_KIND_SERVER
            and s.trace_id in clients
            and s.parent_span_id == clients[s.trace_id].span_id
            for s in spans
        )

    wait_until(
        linked,
        timeout_s=30,
        what="a healer client span and its policy server span",
        diagnose=lambda: repr(receiver.snapshot()[:20]),
    )
    server_spans = [
        s for s in receiver.snapshot() if s.service == "x0tta6bl4-policy" and s.name == WHOAMI
    ]
    caller = server_spans[0].attributes["x0.caller"].string_value
    assert caller == "spiffe://x0tta6bl4.mesh/ns/local/sa/healer"


def test_sampler_from_environment_can_drop_every_trace(mesh: Mesh, receiver: OtlpReceiver) -> None:
    otel = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    policy = mesh.service("policy", env=otel)
    healer = mesh.service(
        "healer",
        env={
            **otel,
            "X0_DEPENDENCIES": f"policy={policy.grpc_addr}",
            "X0_DEPENDENCY_PROBE_INTERVAL_S": "0.1",
        },
    )
    wait_until(lambda: 'code="OK"' in healer.metrics(), timeout_s=20, what="probes answered")
    healer.process.stop()  # flushes on SIGTERM
    policy.process.stop()
    assert receiver.snapshot() == []


async def test_metrics_show_per_method_counters_and_histograms(mesh: Mesh) -> None:
    service = mesh.service("ops")
    async with svid_source(mesh.workload("operator")) as svids, client(svids, service) as c:
        for _ in range(5):
            await whoami(c)
    families = {f.name: f for f in text_string_to_metric_families(service.metrics())}
    labels = {
        "service": "ops",
        "grpc_service": "x0tta6bl4.platform.v1.DiagnosticsService",
        "method": "WhoAmI",
    }
    requests = [
        s
        for s in families["x0tta6bl4_grpc_server_requests"].samples
        if s.name.endswith("_total") and labels.items() <= s.labels.items()
    ]
    assert [s.labels["code"] for s in requests] == ["OK"]
    assert requests[0].value >= 5
    histogram = families["x0tta6bl4_grpc_server_request_duration_seconds"].samples
    count = [
        s for s in histogram if s.name.endswith("_count") and labels.items() <= s.labels.items()
    ]
    buckets = [
        s for s in histogram if s.name.endswith("_bucket") and labels.items() <= s.labels.items()
    ]
    assert count and count[0].value >= 5
    assert len(buckets) > 5
    expiry = [
        s
        for s in families["spiffe_svid_x509_expiry_timestamp_seconds"].samples
        if s.labels["spiffe_id"] == "spiffe://x0tta6bl4.mesh/ns/local/sa/ops"
    ]
    assert expiry and expiry[0].value > 1.7e9

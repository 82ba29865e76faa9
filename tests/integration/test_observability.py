"""Traces cross processes with one trace id; /metrics has per-method RED metrics after calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.mesh import (
    Mesh,
    client,
    consensus_cluster,
    member_clients,
    svid_source,
    unary_call,
    whoami,
)
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.devstack.procs import free_port, wait_until

pytestmark = pytest.mark.integration

WHOAMI = "/x0tta6bl4.platform.v1.DiagnosticsService/WhoAmI"
PUT = "/x0tta6bl4.consensus.v1.KVService/Put"
FORWARD = "/x0tta6bl4.consensus.v1.RaftService/Forward"


def _otel(receiver: OtlpReceiver, sampler: str = "parentbased_always_on") -> dict[str, str]:
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_TRACES_SAMPLER": sampler,
    }


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
    otel = _otel(receiver)
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
    otel = _otel(receiver, "always_off")
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


async def test_every_write_has_a_proposal_span_from_receipt_to_apply(
    mesh: Mesh, receiver: OtlpReceiver, tmp_path: Path
) -> None:
    cluster = consensus_cluster(mesh, tmp_path / "raft", env=_otel(receiver))
    try:
        async with member_clients(mesh, cluster.members) as clients:
            status = await unary_call(
                clients[1],
                cluster_pb2_grpc.ClusterServiceStub,
                "Status",
                cluster_pb2.StatusRequest(),
            )
            follower = next(i for i in clients if i != status.leader_id)
            for member, key in ((status.leader_id, b"t/at-leader"), (follower, b"t/forwarded")):
                await unary_call(
                    clients[member],
                    kv_pb2_grpc.KVServiceStub,
                    "Put",
                    kv_pb2.PutRequest(key=key, value=b"v"),
                )

        def proposals() -> dict[bool, ReceivedSpan]:
            """The raft.propose spans that are children of a Put server span, by whether the
            write was forwarded to the leader."""
            spans = receiver.snapshot()
            puts = {
                s.span_id: s
                for s in spans
                if s.name == PUT and s.kind == OtlpReceiver.SPAN_KIND_SERVER
            }
            return {
                s.attributes["x0.raft.forwarded"].bool_value: s
                for s in spans
                if s.name == "raft.propose"
                and s.parent_span_id in puts
                and s.trace_id == puts[s.parent_span_id].trace_id
            }

        wait_until(
            lambda: len(proposals()) == 2,
            timeout_s=30,
            what="a raft.propose span under each Put (one at the leader, one forwarded)",
            diagnose=lambda: repr([s for s in receiver.snapshot() if s.name != WHOAMI][:20]),
        )
        at_leader, forwarded = proposals()[False], proposals()[True]
        assert at_leader.attributes["x0.raft.command"].string_value == "Put"
        assert forwarded.attributes["x0.raft.leader"].int_value == status.leader_id
        # The forwarded write reached the leader in the same trace.
        wait_until(
            lambda: any(
                s.name == FORWARD
                and s.kind == OtlpReceiver.SPAN_KIND_SERVER
                and s.trace_id == forwarded.trace_id
                for s in receiver.snapshot()
            ),
            timeout_s=30,
            what="the leader's Forward server span in the forwarded write's trace",
        )
    finally:
        for member in cluster.members.values():
            member.process.stop()

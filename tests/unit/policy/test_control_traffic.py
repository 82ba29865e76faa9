"""The suite's control-traffic list: every call names a real RPC of the protos, once, and turns
into the sidecar's authz input. (That the baseline authz.rego allows each call, and that each
grant of its matrix is in the list, is checked with the real OPA in
tests/integration/test_policy_validation.py.)"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from x0tta6bl4.platform.config import TRUST_DOMAIN, spiffe_id_for
from x0tta6bl4.policy.core import control_traffic
from x0tta6bl4.policy.core.control_traffic import CONTROL_TRAFFIC, ControlCall

PROTO = Path(__file__).resolve().parents[3] / "proto"
# Not in the repository's protos: the standard gRPC health service.
STANDARD = {"grpc.health.v1.Health": {"Check", "Watch"}}


def proto_methods() -> dict[str, set[str]]:
    """Fully-qualified gRPC service -> its RPC names, read from proto/**/*.proto."""
    found: dict[str, set[str]] = dict(STANDARD)
    for path in PROTO.rglob("*.proto"):
        text = path.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.MULTILINE)
        assert package, path
        for service, body in re.findall(r"^service\s+(\w+)\s*\{(.*?)^\}", text, re.M | re.S):
            found[f"{package[1]}.{service}"] = set(re.findall(r"\brpc\s+(\w+)\s*\(", body))
    return found


def test_every_call_names_an_rpc_of_the_protos() -> None:
    methods = proto_methods()
    unknown = [str(c) for c in CONTROL_TRAFFIC if c.method not in methods.get(c.grpc_service, ())]
    assert unknown == []


def test_the_peer_apis_are_covered_method_by_method() -> None:
    methods = proto_methods()
    for caller, grpc_service in [
        ("consensus", control_traffic.RAFT),
        ("sync", control_traffic.REPLICATION),
        ("operator", control_traffic.CLUSTER),
        ("operator", control_traffic.KV),
        ("operator", control_traffic.IDENTITY),
    ]:
        listed = {
            c.method
            for c in CONTROL_TRAFFIC
            if (c.caller, c.grpc_service) == (caller, grpc_service)
        }
        assert listed == methods[grpc_service], (caller, grpc_service)


def test_every_member_probes_every_service() -> None:
    for service in control_traffic.WORKLOADS:
        for member in control_traffic.MEMBERS:
            for grpc_service, method in [(control_traffic.HEALTH, "Check"),
                                         (control_traffic.DIAGNOSTICS, "WhoAmI")]:  # fmt: skip
                assert ControlCall(member, service, grpc_service, method) in {
                    ControlCall(c.caller, c.service, c.grpc_service, c.method)
                    for c in CONTROL_TRAFFIC
                }


def test_the_auditor_only_reads() -> None:
    auditor = {
        c.method
        for c in CONTROL_TRAFFIC
        if c.caller == "auditor" and c.grpc_service == control_traffic.KV
    }
    assert auditor == {"Get", "Range", "Watch"}


def test_no_call_is_listed_twice() -> None:
    keys = [(c.caller, c.service, c.grpc_service, c.method) for c in CONTROL_TRAFFIC]
    assert len(keys) == len(set(keys))


def test_a_call_becomes_the_sidecars_authz_input() -> None:
    call = ControlCall("consensus", "consensus", control_traffic.RAFT, "Send")
    at = dt.datetime(2026, 11, 30, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert call.input(namespace="prod", at=at) == {
        "caller": "spiffe://x0tta6bl4.mesh/ns/prod/sa/consensus",
        "namespace": "prod",
        "service": "consensus",
        "grpc_service": "x0tta6bl4.consensus.v1.RaftService",
        "method": "Send",
        "metadata": {},
        "source_address": "",
        "time": "2026-11-30T10:00:00.000000Z",
    }
    assert str(call) == "consensus -> consensus x0tta6bl4.consensus.v1.RaftService/Send"


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="at must be an aware datetime"):
        control_traffic.control_inputs(dt.datetime(2026, 11, 30))


def test_callers_are_the_platforms_spiffe_ids() -> None:
    assert control_traffic.TRUST_DOMAIN == TRUST_DOMAIN
    at = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    for call in CONTROL_TRAFFIC[:20]:
        assert call.input(namespace="ns1", at=at)["caller"] == spiffe_id_for(call.caller, "ns1")

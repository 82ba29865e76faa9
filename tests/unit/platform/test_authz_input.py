from __future__ import annotations

import datetime as dt

import pytest

from x0tta6bl4.platform.authz import authz_input, source_ip


def test_input_document_carries_caller_service_method_and_only_selected_metadata() -> None:
    document = authz_input(
        caller="spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
        namespace="local",
        service="consensus",
        full_method="/x0tta6bl4.consensus.v1.KVService/Put",
        metadata={"x0-tenant": "blue", "authorization": "secret", "user-agent": "grpc"},
        now=dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC),
        source_address="10.1.2.3",
    )
    assert document == {
        "caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
        "namespace": "local",
        "service": "consensus",
        "grpc_service": "x0tta6bl4.consensus.v1.KVService",
        "method": "Put",
        "metadata": {"x0-tenant": "blue"},
        "source_address": "10.1.2.3",
        "time": "2026-11-27T10:00:00.000000Z",
    }


@pytest.mark.parametrize(
    ("peer", "ip"),
    [
        ("ipv4:127.0.0.1:50123", "127.0.0.1"),
        ("ipv6:[::1]:50123", "::1"),
        ("ipv6:%5B2001:db8::7%5D:443", "2001:db8::7"),
        ("unix:/run/x0.sock", ""),
        ("", ""),
    ],
)
def test_source_ip_of_a_grpc_peer(peer: str, ip: str) -> None:
    assert source_ip(peer) == ip

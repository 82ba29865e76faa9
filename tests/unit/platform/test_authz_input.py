from __future__ import annotations

import datetime as dt

from x0tta6bl4.platform.authz import authz_input


def test_input_document_carries_caller_service_method_and_only_selected_metadata() -> None:
    document = authz_input(
        caller="spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
        namespace="local",
        service="consensus",
        full_method="/x0tta6bl4.consensus.v1.KVService/Put",
        metadata={"x0-tenant": "blue", "authorization": "secret", "user-agent": "grpc"},
        now=dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC),
    )
    assert document == {
        "caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
        "namespace": "local",
        "service": "consensus",
        "grpc_service": "x0tta6bl4.consensus.v1.KVService",
        "method": "Put",
        "metadata": {"x0-tenant": "blue"},
        "time": "2026-11-27T10:00:00.000000Z",
    }

"""The pure parts of the decision log and sidecar status: OPA events and reports into records,
masking, query filters, revision numbers, the rule-label cap."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from typing import Any

import pytest

from x0tta6bl4.platform.http_messages import HttpError
from x0tta6bl4.policy.decision_log import (
    MASKED,
    MalformedEvent,
    matches,
    parse_upload,
    record_from_event,
)
from x0tta6bl4.policy.metrics import OTHER_RULE, RuleLabels
from x0tta6bl4.policy.sidecar_status import SidecarStatus, parse_status, revision_number

OPS = "spiffe://x0tta6bl4.mesh/ns/local/sa/ops"
# as OPA 1.22 uploads it (captured from `opa run --server`)
EVENT: dict[str, Any] = {
    "labels": {
        "id": "8da7e340",
        "instance": "consensus-1",
        "service": "consensus",
        "version": "1.22.0",
    },
    "decision_id": "fe426052-c7fe-4c09-9f32-b38aad451c28",
    "bundles": {"mesh": {"revision": "7-0123456789ab"}},
    "path": "x0tta6bl4/mesh/decision",
    "input": {
        "caller": OPS,
        "grpc_service": "x0tta6bl4.consensus.v1.KVService",
        "method": "Put",
        "metadata": {"x0-break-glass": "secret", "x0-tenant": "t1"},
    },
    "result": {
        "allow": True,
        "decided_by": ["allow-ops"],
        "effect": "ALLOW",
        "explanation": "allowed by allow-ops",
    },
    "requested_by": "127.0.0.1:36888",
    "timestamp": "2026-12-04T23:01:09.148706985Z",
    "req_id": 1,
}


def test_an_opa_event_becomes_a_record_with_the_break_glass_token_masked() -> None:
    record = record_from_event(EVENT, "spiffe://x0tta6bl4.mesh/ns/local/sa/consensus")
    assert record.allowed and record.effect == "ALLOW" and record.decided_by == ("allow-ops",)
    assert record.metadata == {"x0-break-glass": MASKED, "x0-tenant": "t1"}
    assert record.time == dt.datetime(2026, 12, 4, 23, 1, 9, 148706, tzinfo=dt.UTC)
    assert record.bundles == {"mesh": "7-0123456789ab"} and record.instance == "consensus-1"
    assert record.full_method == "x0tta6bl4.consensus.v1.KVService/Put"
    assert "secret" not in json.dumps(record.to_json())


@pytest.mark.parametrize(
    ("change", "allowed", "effect"),
    [
        ({"result": True}, True, "BOOLEAN"),
        ({"result": False}, False, "BOOLEAN"),
        ({"result": "yes"}, False, "INVALID_RESULT"),
        ({"result": {"allow": "true"}}, False, "DENY"),
    ],
)
def test_results_of_every_shape_are_read_and_only_true_allows(
    change: dict[str, Any], allowed: bool, effect: str
) -> None:
    record = record_from_event({**EVENT, **change})
    assert (record.allowed, record.effect) == (allowed, effect)


def test_no_result_is_a_denial() -> None:
    undefined = {k: v for k, v in EVENT.items() if k != "result"}
    assert record_from_event(undefined).effect == "UNDEFINED"
    assert record_from_event({**undefined, "error": {"code": "eval_error"}}).effect == "ERROR"
    assert not record_from_event(undefined).allowed


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ([], "expected a JSON object"),
        ({**EVENT, "decision_id": 3}, "decision_id: is required"),
        ({**EVENT, "timestamp": "yesterday"}, "timestamp: expected RFC 3339"),
        ({**EVENT, "timestamp": "2026-12-04T23:01:09"}, "timestamp: expected RFC 3339"),
    ],
)
def test_malformed_events_name_the_field(event: Any, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        record_from_event(event)


def test_an_upload_keeps_the_good_events_and_names_the_bad_ones() -> None:
    body = gzip.compress(json.dumps([EVENT, {"x": 1}]).encode())
    records, problems = parse_upload(body, "", 1 << 20)
    assert [r.decision_id for r in records] == [EVENT["decision_id"]]
    assert problems == ["events[1]: decision_id: is required (a non-empty string)"]
    with pytest.raises(HttpError, match="expected a JSON array"):
        parse_upload(b'{"a": 1}', "", 1 << 20)
    with pytest.raises(HttpError, match="not valid gzip"):
        parse_upload(b"\x1f\x8bnot gzip", "", 1 << 20)
    with pytest.raises(HttpError, match="exceeds the limit of 100 bytes") as caught:
        parse_upload(gzip.compress(b"[" + b" " * 500 + b"]"), "", 100)
    assert caught.value.status == 413


def test_filters() -> None:
    record = record_from_event(EVENT)
    assert matches(record, caller=OPS)
    assert matches(record, caller="spiffe://x0tta6bl4.mesh/ns/*/sa/o*")
    assert not matches(record, caller="spiffe://x0tta6bl4.mesh/ns/local/sa/op")
    assert matches(record, method="Put") and matches(record, method="*.KVService/Put")
    assert not matches(record, method="Get") and not matches(record, method="Other/Put")
    assert matches(record, allowed=True) and not matches(record, allowed=False)
    assert matches(record, since=record.time) and not matches(record, until=record.time)


def test_revision_numbers_and_status_reports() -> None:
    assert revision_number("12-0123456789ab") == 12
    assert revision_number("12-0123456789AB") is None and revision_number("v12") is None
    report = {
        "labels": {"id": "8da7", "version": "1.22.0", "service": "consensus"},
        "bundles": {
            "mesh": {
                "name": "mesh",
                "active_revision": "7-0123456789ab",
                "last_successful_activation": "0001-01-01T00:00:00Z",
                "last_request": "2026-12-04T23:01:06.177810846Z",
                "code": "bundle_error",
                "message": "bad",
                "errors": [{"code": "rego_parse_error", "message": "x"}],
            }
        },
    }
    now = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    status = parse_status(report, "", now)
    assert status.instance == "8da7"  # no instance label: the OPA id
    (bundle,) = status.bundles
    assert bundle.last_successful_activation is None and bundle.revision_number == 7
    assert bundle.error_key.startswith("bundle_error|bad|2026-12-04T23:01:06.177810")
    assert json.loads(bundle.errors[0])["code"] == "rego_parse_error"
    assert SidecarStatus.from_json(status.to_json()) == status


def test_rule_labels_are_capped() -> None:
    labels = RuleLabels(limit=2)
    assert [labels.label(r) for r in ("a", "b", "c", "a")] == ["a", "b", OTHER_RULE, "a"]

"""Validation before activation and Explain, on the real opa binary: a good candidate passes
every step; Rego that does not compile, a failing test of the candidate, a rule that cuts the
consensus peers off and bad rule fields are refused, each naming what is wrong; the shadow
evaluation counts the recorded decisions a candidate would flip and names the pairs; Explain
names the rules that decided. Also the control-traffic list against the baseline authz.rego."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any

import pytest

from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.policy.core import control_traffic
from x0tta6bl4.policy.core.policy_set import PolicySet, from_document
from x0tta6bl4.policy.core.shadow import RecordedDecision
from x0tta6bl4.policy.opa_tool import Opa, OpaFailed, OpaTimeout
from x0tta6bl4.policy.validation import ValidationReport, explain, validate

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)  # a Monday
STAMP = NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
MEMBERS = list(control_traffic.MEMBERS)
STEPS = ["rules", "check", "build", "test", "control_traffic", "shadow"]


@pytest.fixture(scope="module")
def opa() -> str:
    return find("opa")


def sa(name: str) -> str:
    return f"spiffe://x0tta6bl4.mesh/ns/local/sa/{name}"


def call(caller: str, service: str, grpc_service: str, method: str) -> dict[str, Any]:
    return {
        "caller": sa(caller),
        "namespace": "local",
        "service": service,
        "grpc_service": grpc_service,
        "method": method,
        "metadata": {},
        "source_address": "127.0.0.1",
        "time": STAMP,
    }


def allow(rule_id: str, callers: list[str], grpc: list[str], **when: Any) -> dict[str, Any]:
    conditions = {"callers": {"service_accounts": callers, "same_namespace": True}}
    return {"id": rule_id, "effect": "ALLOW", "when": {**conditions, "grpc_services": grpc, **when}}


# The baseline matrix of platform/rego/authz.rego as rules.
MATRIX = [
    allow("members-open", MEMBERS, [control_traffic.HEALTH, control_traffic.DIAGNOSTICS]),
    allow("kv", ["policy", "ops", "healer", "identity", "operator", "auditor"],
          [control_traffic.KV], services=["consensus"]),
    allow("cluster", ["ops", "healer", "operator"], [control_traffic.CLUSTER]),
    allow("raft", ["consensus"], [control_traffic.RAFT], services=["consensus"]),
    allow("sync", ["healer", "ops", "policy", "identity", "operator"], [control_traffic.SYNC]),
    allow("replication", ["sync"], [control_traffic.REPLICATION]),
    allow("identity-admin", ["operator", "ops"], [control_traffic.IDENTITY]),
    allow("identity-open", MEMBERS, [control_traffic.IDENTITY],
          methods=list(control_traffic.IDENTITY_OPEN)),
]  # fmt: skip

OWN_TEST = """package x0tta6bl4.policy.custom.mine_test

import rego.v1

ops_get := {"caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/ops", "namespace": "local",
	"service": "consensus", "grpc_service": "x0tta6bl4.consensus.v1.KVService", "method": "Get",
	"metadata": {}, "time": "2026-11-30T10:00:00.000000Z"}

test_ops_reads_the_store if {
	data.x0tta6bl4.mesh.allow with input as ops_get
}
"""


def candidate(*extra_rules: dict[str, Any], **parts: Any) -> PolicySet:
    return from_document({"rules": [*MATRIX, *extra_rules], **parts})


def by_step(report: ValidationReport) -> dict[str, tuple[bool, tuple[str, ...]]]:
    return {s.name: (s.ok, s.messages) for s in report.steps}


async def run(ps: PolicySet, opa: str, **kw: Any) -> ValidationReport:
    kw.setdefault("recorded", [])
    kw.setdefault("force", False)
    return await validate(ps, opa=opa, version=2, now=NOW, **kw)


# ── validate ──────────────────────────────────────────────────────────────────────────────────


async def test_a_good_candidate_passes_every_step(opa: str) -> None:
    recorded = [
        RecordedDecision(call("ops", "consensus", control_traffic.KV, "Put"), True, NOW),
        RecordedDecision(call("intruder", "consensus", control_traffic.KV, "Put"), False, NOW),
    ]
    ps = candidate(tests={"mine_test.rego": OWN_TEST})
    report = await run(ps, opa, recorded=recorded)

    assert [s.name for s in report.steps] == STEPS
    assert report.ok and not report.forced, report.steps
    assert report.failed_steps == ()
    steps = by_step(report)
    assert "candidate tests: 1 of 1 passed" in steps["test"][1]
    assert any(m.startswith("baseline tests: ") for m in steps["test"][1])
    assert steps["control_traffic"][1] == (
        f"{len(control_traffic.CONTROL_TRAFFIC)} calls allowed at 1 instant(s)",
    )
    assert (report.shadow_decisions, report.flips_to_deny, report.flips_to_allow) == (2, 0, 0)
    assert all(s.seconds > 0 for s in report.steps)


async def test_rego_that_does_not_compile_fails_check_naming_file_and_line(opa: str) -> None:
    broken = "package x0tta6bl4.policy.custom.broken\n\nimport rego.v1\n\n" \
             "deny contains 1 if {\n\tinput.method ==\n}\n"  # fmt: skip
    report = await run(candidate(modules={"broken.rego": broken}), opa)

    assert not report.ok
    ok, messages = by_step(report)["check"]
    assert not ok
    assert any(m.startswith("modules/broken.rego:7: rego_parse_error") for m in messages), messages
    assert "build" in report.failed_steps
    # what cannot be evaluated is not reported as allowed
    assert not by_step(report)["control_traffic"][0]


async def test_strict_check_refuses_an_unused_variable(opa: str) -> None:
    lax = 'package x0tta6bl4.policy.custom.lax\n\nimport rego.v1\n\ndeny contains "x" if {\n' \
          "\tunused := 1\n\tinput.method == \"Nope\"\n}\n"  # fmt: skip
    report = await run(candidate(modules={"lax.rego": lax}), opa)

    ok, messages = by_step(report)["check"]
    assert not ok
    assert any("modules/lax.rego:6" in m and "unused" in m for m in messages), messages
    assert by_step(report)["build"][0]  # it builds: only --strict refuses it


async def test_a_failing_test_of_the_candidate_fails_the_test_step_naming_it(opa: str) -> None:
    failing = OWN_TEST + "\ntest_intruder_reads_the_store if {\n\tprint(\"checking intruder\")\n" \
        '\tdata.x0tta6bl4.mesh.allow with input as object.union(ops_get, ' \
        '{"caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/intruder"})\n}\n'  # fmt: skip
    report = await run(candidate(tests={"mine_test.rego": failing}), opa)

    assert not report.ok
    assert report.failed_steps == ("test",)
    messages = by_step(report)["test"][1]
    assert any(
        "x0tta6bl4.policy.custom.mine_test.test_intruder_reads_the_store" in m
        and "tests/mine_test.rego:" in m
        and "failed" in m
        and "(printed: checking intruder)" in m
        for m in messages
    ), messages
    assert "candidate tests: 1 of 2 passed" in messages


async def test_a_rule_cutting_consensus_peers_off_is_refused_unless_forced(opa: str) -> None:
    cut = {
        "id": "freeze-raft",
        "effect": "DENY",
        "when": {"grpc_services": [control_traffic.RAFT]},
    }
    refused = await run(candidate(cut), opa)

    assert not refused.ok and not refused.forced
    assert refused.failed_steps == ("control_traffic",)
    messages = by_step(refused)["control_traffic"][1]
    assert any(
        m.startswith(f"denied: consensus -> consensus {control_traffic.RAFT}/Send")
        and "freeze-raft" in m
        for m in messages
    ), messages

    forced = await run(candidate(cut), opa, force=True)
    assert forced.ok and forced.forced
    ok, messages = by_step(forced)["control_traffic"]
    assert not ok
    assert messages[-1].startswith("forced: ")


async def test_a_time_window_rule_cutting_traffic_on_saturdays_is_found(opa: str) -> None:
    weekend = {
        "id": "weekend-freeze",
        "effect": "DENY",
        "when": {
            "grpc_services": [control_traffic.REPLICATION],
            "time_windows": [{"days": ["sat"], "from": "00:00", "to": "24:00"}],
        },
    }
    report = await run(candidate(weekend), opa)  # validated on a Monday

    messages = by_step(report)["control_traffic"][1]
    assert not report.ok
    assert any(f"sync -> sync {control_traffic.REPLICATION}/PushDeltas" in m and
               "2026-12-05" in m for m in messages), messages  # fmt: skip


async def test_shadow_evaluation_counts_flips_and_names_the_pairs(opa: str) -> None:
    # An earlier revision let "reporter" read the store; the candidate does not, and lets
    # "intruder" read instead.
    reads = call("reporter", "consensus", control_traffic.KV, "Range")
    intruder = call("intruder", "consensus", control_traffic.KV, "Get")
    ops = call("ops", "consensus", control_traffic.KV, "Put")
    recorded = (
        [RecordedDecision(reads, True, NOW)] * 5
        + [RecordedDecision(ops, True, NOW)] * 3
        + [RecordedDecision(intruder, False, NOW)] * 2
        + [RecordedDecision(intruder, False, NOW, effect="REVOKED")]
    )
    let_in = allow("intruder-reads", ["intruder"], [control_traffic.KV], methods=["Get"])
    report = await run(candidate(let_in), opa, recorded=recorded)

    assert report.ok  # flips are reported, not refused
    assert (report.shadow_decisions, report.shadow_skipped) == (10, 1)
    assert (report.flips_to_deny, report.flips_to_allow) == (5, 2)
    pairs = [(p.caller, p.method, p.count, p.to_allow) for p in report.flipped_pairs]
    assert pairs == [
        (sa("reporter"), f"{control_traffic.KV}/Range", 5, False),
        (sa("intruder"), f"{control_traffic.KV}/Get", 2, True),
    ]
    messages = by_step(report)["shadow"][1]
    assert messages[0].startswith("10 recorded decisions re-evaluated (1 not comparable")
    assert f"{sa('reporter')} {control_traffic.KV}/Range: 5 allowed -> denied" in messages


async def test_bad_rule_fields_are_reported_by_the_gate_with_the_rule_id(opa: str) -> None:
    # Past the document schema (a PolicySet built directly), as a stored revision might be.
    bad = PolicySet(
        rules=(
            *MATRIX,
            {"id": "odd-meta", "effect": "ALLOW", "when": {"metadata": {"x-foo": {"equals": "1"}}}},
            {"id": "no-methods", "effect": "DENY", "when": {"methods": []}},
        )
    )
    report = await run(bad, opa)

    ok, messages = by_step(report)["rules"]
    assert not ok and not report.ok
    assert (
        'rules[8] "odd-meta": when.metadata: x-foo is not a metadata key the platform sends'
        in messages
    ), messages
    assert any(m.startswith('rules[9] "no-methods": when.methods must be') for m in messages)


# ── explain ───────────────────────────────────────────────────────────────────────────────────


async def test_explain_names_the_rules_that_decided(opa: str) -> None:
    freeze = {
        "id": "freeze-ops-writes",
        "effect": "DENY",
        "when": {"callers": {"service_accounts": ["ops"]}, "methods": ["Put"]},
    }
    watch = {
        "id": "watch-ops",
        "effect": "AUDIT",
        "when": {"callers": {"service_accounts": ["ops"]}},
    }
    ps = candidate(freeze, watch)

    put = await explain(ps, 4, call("ops", "consensus", control_traffic.KV, "Put"), opa=opa)
    assert put["allow"] is False and put["effect"] == "DENY"
    assert put["decided_by"] == ["freeze-ops-writes"]
    assert put["matched"] == ["freeze-ops-writes", "kv", "watch-ops"]
    assert put["revision"] == 4 and put["ruleset_version"] == 4
    assert "freeze-ops-writes" in put["explanation"]

    get = await explain(ps, 4, call("ops", "consensus", control_traffic.KV, "Get"), opa=opa)
    assert (get["allow"], get["decided_by"], get["audit"]) == (True, ["kv"], ["watch-ops"])


async def test_explain_reports_a_bad_input_as_the_engine_does(opa: str) -> None:
    decision = await explain(candidate(), 2, {"caller": 7}, opa=opa)
    assert decision["allow"] is False and decision["effect"] == "INVALID_INPUT"
    assert "input.caller must be a string" in decision["input_errors"]


async def test_explain_of_rego_that_does_not_compile_is_an_error_naming_the_file(opa: str) -> None:
    broken = candidate(modules={"broken.rego": "package x0tta6bl4.policy.custom.broken\n\nx := \n"})
    with pytest.raises(OpaFailed) as caught:
        await explain(broken, 2, call("ops", "consensus", control_traffic.KV, "Get"), opa=opa)
    assert any(e.file == "modules/broken.rego" and e.row > 0 for e in caught.value.errors)
    assert "modules/broken.rego:" in str(caught.value)


# ── the control-traffic list is the baseline matrix ───────────────────────────────────────────


def _platform_rego() -> str:
    return str(resources.files("x0tta6bl4.platform") / "rego")


async def test_the_baseline_allows_every_control_call(opa: str) -> None:
    inputs = control_traffic.control_inputs(NOW)
    allowed = await Opa(opa).eval_many([_platform_rego()], "data.x0tta6bl4.authz.allow", inputs)
    denied = [
        str(c) for c, ok in zip(control_traffic.CONTROL_TRAFFIC, allowed, strict=True) if not ok
    ]
    assert denied == []


async def test_every_grant_of_the_baseline_matrix_is_control_traffic(opa: str) -> None:
    tool = Opa(opa)
    grants = await tool.eval([_platform_rego()], "data.x0tta6bl4.authz.grants")
    members = await tool.eval([_platform_rego()], "data.x0tta6bl4.authz.members")
    covered = {(c.caller, c.service, c.grpc_service) for c in control_traffic.CONTROL_TRAFFIC}
    expected = {
        (caller, service, grpc_service)
        for service, apis in grants.items()
        for grpc_service, callers in apis.items()
        for caller in callers
    }
    assert expected - covered == set()
    assert set(members) == set(control_traffic.MEMBERS)


# ── the opa tool ──────────────────────────────────────────────────────────────────────────────


async def test_eval_many_keeps_the_order_and_marks_undefined(opa: str) -> None:
    inputs = [{"n": 3}, {"m": 1}, {"n": 1}]
    assert await Opa(opa).eval_many([_platform_rego()], "input.n * 2", inputs) == [6, None, 2]


async def test_an_opa_run_over_its_time_limit_is_killed_and_named(opa: str) -> None:
    with pytest.raises(OpaTimeout, match=r"opa check: did not finish within 0.001 s"):
        await Opa(opa, timeout_s=0.001).check([_platform_rego()])


def test_a_missing_opa_binary_is_named() -> None:
    with pytest.raises(ValueError, match="'/nonexistent/opa' is not an executable file"):
        Opa("/nonexistent/opa")

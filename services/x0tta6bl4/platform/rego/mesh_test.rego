# The sidecar's entry point over its three sources. Run with the rule engine loaded:
#   opa test services/x0tta6bl4/platform/rego services/x0tta6bl4/policy/rego   (make test-policy)
# (a sidecar without the engine is tested in tests/unit/policy/test_baseline_rules.py).
package x0tta6bl4.mesh_test

import rego.v1

import data.x0tta6bl4.mesh

sa(name) := concat("", ["spiffe://x0tta6bl4.mesh/ns/local/sa/", name])

call(caller, service, grpc_service, method) := {
	"caller": caller,
	"namespace": "local",
	"service": service,
	"grpc_service": grpc_service,
	"method": method,
	"metadata": {},
	"time": "2026-11-27T10:00:00.000000Z",
}

ops_put := call(sa("ops"), "consensus", "x0tta6bl4.consensus.v1.KVService", "Put")

sync_put := call(sa("sync"), "consensus", "x0tta6bl4.consensus.v1.KVService", "Put")

whoami(caller) := call(caller, "sync", "x0tta6bl4.platform.v1.DiagnosticsService", "WhoAmI")

allow_all := {"version": 7, "rules": [{"id": "allow-all", "effect": "ALLOW", "when": {}}]}

deny_ops_puts := {"version": 8, "rules": [
	{"id": "allow-all", "effect": "ALLOW", "when": {}},
	{"id": "freeze", "effect": "DENY", "when": {"callers": {"service_accounts": ["ops"]}, "methods": ["Put"]}},
]}

banned := {sa("ops"): {"reason": "INC-7: key leaked", "until": ""}}

the_keys := {
	"allow", "effect", "source", "decided_by", "explanation", "revocation", "overridden", "audit",
	"dry_run", "custom_deny", "would", "mode", "break_glass", "break_glass_rejected", "input_errors",
	"ruleset_version",
}

# ── 1. revocations ────────────────────────────────────────────────────────────────────────────

test_a_revoked_caller_is_denied_and_the_reason_is_named if {
	d := mesh.decision with input as ops_put with data.x0tta6bl4.revocations as banned
	d.allow == false
	d.effect == "REVOKED"
	d.source == "revocations"
	d.decided_by == []
	d.revocation == {"reason": "INC-7: key leaked", "until": ""}
	d.explanation == "denied: caller spiffe://x0tta6bl4.mesh/ns/local/sa/ops is revoked: INC-7: key leaked"
	not mesh.allow with input as ops_put with data.x0tta6bl4.revocations as banned
}

test_a_ban_beats_the_baseline_the_rules_and_a_dry_run_set if {
	every ruleset in [allow_all, object.union(allow_all, {"dry_run": true})] {
		d := mesh.decision with input as whoami(sa("ops")) with data.x0tta6bl4.revocations as banned
			with data.x0tta6bl4.policy.ruleset as ruleset
		d.effect == "REVOKED"
		d.allow == false
	}
	d := mesh.decision with input as whoami(sa("ops")) with data.x0tta6bl4.revocations as banned
	d.effect == "REVOKED"
}

token := "bg-token-5f0c2d7e9a41b3c8d6e0f1a2b3c4d5e6"

glass := {"rules": [], "break_glass": [{
	"id": "bg-1", "token_sha256": crypto.sha256(token), "expires": "2026-11-27T12:00:00Z",
	"justification": "INC-42", "callers": ["spiffe://x0tta6bl4.mesh/ns/*/sa/ops"],
}]}

with_token(c) := object.union(c, {"metadata": {"x0-break-glass": token}})

test_a_ban_beats_break_glass_and_the_refusal_is_reported if {
	# The token works for ops when ops is not banned ...
	ok := mesh.decision with input as with_token(ops_put) with data.x0tta6bl4.policy.ruleset as glass
	ok.effect == "BREAK_GLASS"
	ok.allow == true

	# ... and not once ops is.
	d := mesh.decision with input as with_token(ops_put) with data.x0tta6bl4.policy.ruleset as glass
		with data.x0tta6bl4.revocations as banned
	d.allow == false
	d.effect == "REVOKED"
	d.break_glass == null
	d.break_glass_rejected == "the caller is revoked"
	endswith(d.explanation, "; break-glass refused: the caller is revoked")
}

test_a_ban_until_a_time_holds_until_then if {
	until := {sa("ops"): {"reason": "rotating keys", "until": "2026-11-27T11:00:00.000000Z"}}
	d := mesh.decision with input as ops_put with data.x0tta6bl4.revocations as until
	d.effect == "REVOKED"
	d.explanation == concat("", [
		"denied: caller spiffe://x0tta6bl4.mesh/ns/local/sa/ops is revoked until ",
		"2026-11-27T11:00:00.000000Z: rotating keys",
	])
	later := object.union(ops_put, {"time": "2026-11-27T11:00:00.000000Z"})
	after := mesh.decision with input as later with data.x0tta6bl4.revocations as until
	after.effect == "BASELINE"
	after.allow == true
}

test_a_ban_without_a_reason_still_says_so if {
	d := mesh.decision with input as ops_put with data.x0tta6bl4.revocations as {sa("ops"): {"until": ""}}
	d.explanation == "denied: caller spiffe://x0tta6bl4.mesh/ns/local/sa/ops is revoked: no reason given"
}

test_a_ban_of_someone_else_changes_nothing if {
	d := mesh.decision with input as sync_put with data.x0tta6bl4.revocations as banned
		with data.x0tta6bl4.policy.ruleset as allow_all
	d.effect == "ALLOW"
	d.allow == true
}

# ── 2. the policy service's rule set ──────────────────────────────────────────────────────────

test_a_loaded_ruleset_decides_instead_of_the_baseline if {
	# The baseline lets ops put and denies sync; these rules say the opposite.
	d := mesh.decision with input as ops_put with data.x0tta6bl4.policy.ruleset as deny_ops_puts
	d.allow == false
	d.effect == "DENY"
	d.source == "policy"
	d.decided_by == ["freeze"]
	d.overridden == ["allow-all"]
	d.ruleset_version == 8
	d.revocation == null
	d.explanation == "denied by DENY rule(s) freeze (overriding ALLOW allow-all)"

	s := mesh.decision with input as sync_put with data.x0tta6bl4.policy.ruleset as deny_ops_puts
	s.allow == true
	s.decided_by == ["allow-all"]
}

test_the_rules_decision_is_passed_through_unchanged if {
	every c in [ops_put, sync_put, whoami(sa("intruder")), with_token(ops_put)] {
		every ruleset in [allow_all, deny_ops_puts, glass, {"rules": []}] {
			d := mesh.decision with input as c with data.x0tta6bl4.policy.ruleset as ruleset
			r := data.x0tta6bl4.policy.rules.decision with input as c with data.x0tta6bl4.policy.ruleset as ruleset
			object.remove(d, ["source", "revocation"]) == r
		}
	}
}

test_an_empty_ruleset_is_a_loaded_one_and_denies_by_default if {
	d := mesh.decision with input as ops_put with data.x0tta6bl4.policy.ruleset as {"rules": []}
	d.effect == "DEFAULT_DENY"
	d.allow == false
}

test_a_dry_run_set_enforces_the_baseline if {
	dry := object.union(deny_ops_puts, {"dry_run": true})
	d := mesh.decision with input as ops_put with data.x0tta6bl4.policy.ruleset as dry
	d.source == "policy"
	d.effect == "BASELINE"
	d.allow == true
	d.would.effect == "DENY"
}

# ── 3. no rule set: the baseline ──────────────────────────────────────────────────────────────

test_without_a_ruleset_the_baseline_decides if {
	d := mesh.decision with input as ops_put
	d.allow == true
	d.effect == "BASELINE"
	d.source == "baseline"
	d.decided_by == []
	d.explanation == "allowed by the baseline policy (no policy rule set loaded)"
	mesh.allow with input as ops_put
}

test_the_baseline_denial_names_its_reasons if {
	d := mesh.decision with input as sync_put
	d.allow == false
	d.effect == "BASELINE"
	d.explanation == "denied by the baseline policy (no policy rule set loaded): caller is not allowed to call this gRPC service"

	other := mesh.decision with input as whoami("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops")
	other.explanation == "denied by the baseline policy (no policy rule set loaded): caller is in another namespace"

	alien := mesh.decision with input as whoami("spiffe://evil.example/ns/local/sa/ops")
	alien.explanation == "denied by the baseline policy (no policy rule set loaded): caller is not a SPIFFE ID of this trust domain"
	not mesh.allow with input as whoami("spiffe://evil.example/ns/local/sa/ops")
}

test_the_baseline_equals_authz_allow if {
	every c in [ops_put, sync_put, whoami(sa("auditor")), whoami(sa("intruder")), {}] {
		mesh.decision.allow == data.x0tta6bl4.authz.allow with input as c
	}
}

test_break_glass_without_a_ruleset_is_refused_and_reported if {
	d := mesh.decision with input as with_token(sync_put)
	d.allow == false
	d.break_glass_rejected == "no policy rule set is loaded"
	endswith(d.explanation, "; break-glass refused: no policy rule set is loaded")
}

# ── the shape ─────────────────────────────────────────────────────────────────────────────────

test_every_source_gives_the_same_keys if {
	revoked := mesh.decision with input as ops_put with data.x0tta6bl4.revocations as banned
	ruled := mesh.decision with input as ops_put with data.x0tta6bl4.policy.ruleset as deny_ops_puts
	glassed := mesh.decision with input as with_token(ops_put) with data.x0tta6bl4.policy.ruleset as glass
	baseline := mesh.decision with input as ops_put
	nothing := mesh.decision with input as {}
	every d in [revoked, ruled, glassed, baseline, nothing] {
		object.keys(d) == the_keys
		is_boolean(d.allow)
		is_string(d.explanation)
	}
}

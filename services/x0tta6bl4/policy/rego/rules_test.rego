# Effects and their precedence, dry-run, break-glass, default deny and the explanations.
package x0tta6bl4.policy.rules_test

import rego.v1

import data.x0tta6bl4.policy.rules

sa(name) := concat("", ["spiffe://x0tta6bl4.mesh/ns/local/sa/", name])

call := {
	"caller": sa("ops"),
	"namespace": "local",
	"service": "consensus",
	"grpc_service": "x0tta6bl4.consensus.v1.KVService",
	"method": "Put",
	"metadata": {},
	"time": "2026-11-27T10:00:00.000000Z",
}

rule(id, effect, when) := {"id": id, "effect": effect, "when": when}

dry(r) := object.union(r, {"dry_run": true})

# A dry-run copy of a rule, under another id so that it can sit next to the original.
trial(r) := object.union(r, {"id": concat("", [r.id, "-trial"]), "dry_run": true})

allow_ops := rule("allow-ops", "ALLOW", {"callers": {"service_accounts": ["ops"]}})

allow_kv := rule("allow-kv", "ALLOW", {"grpc_services": ["x0tta6bl4.consensus.v1.KVService"]})

deny_put := rule("deny-put", "DENY", {"methods": ["Put"]})

audit_put := rule("audit-put", "AUDIT", {"methods": ["Put"]})

audit_ops := rule("audit-ops", "AUDIT", {"callers": {"service_accounts": ["ops"]}})

decide(ruleset, call_input) := d if {
	d := rules.decision with data.x0tta6bl4.policy.ruleset as ruleset with input as call_input
}

set(rule_list) := {"rules": rule_list}

# What enforcement does, without the reporting fields.
enforced(d) := object.filter(d, ["allow", "effect", "decided_by", "overridden"])

calls := [
	call,
	object.union(call, {"method": "Get"}),
	object.union(call, {"caller": sa("healer")}),
	object.union(call, {"caller": sa("healer"), "method": "Get"}),
]

# ── default deny ──────────────────────────────────────────────────────────────────────────────

test_default_deny_without_a_ruleset if {
	d := rules.decision with input as call
	d.allow == false
	d.effect == "DEFAULT_DENY"
	d.decided_by == []
	rules.allow == false with input as call
	d.explanation == "denied: no rule allows the call (default deny)"
}

test_default_deny_when_nothing_matches if {
	d := decide(set([rule("allow-healer", "ALLOW", {"callers": {"service_accounts": ["healer"]}})]), call)
	d.allow == false
	d.effect == "DEFAULT_DENY"
	rules.allow == false with data.x0tta6bl4.policy.ruleset as set([]) with input as call
}

# ── ALLOW, DENY ───────────────────────────────────────────────────────────────────────────────

test_allow_names_every_allowing_rule_in_rule_order if {
	d := decide(set([allow_kv, deny_put, allow_ops]), object.union(call, {"method": "Get"}))
	d.allow == true
	d.effect == "ALLOW"
	d.decided_by == ["allow-kv", "allow-ops"]
	d.explanation == "allowed by rule(s) allow-kv, allow-ops"
	rules.allow with data.x0tta6bl4.policy.ruleset as set([allow_ops]) with input as call
}

test_deny_overrides_allow_in_any_order if {
	every order in [[allow_ops, deny_put, allow_kv], [deny_put, allow_ops, allow_kv], [allow_kv, allow_ops, deny_put]] {
		d := decide(set(order), call)
		d.allow == false
		d.effect == "DENY"
		d.decided_by == ["deny-put"]
		contains(d.explanation, "denied by DENY rule(s) deny-put (overriding ALLOW ")
	}
	d := decide(set([allow_ops, deny_put]), call)
	d.overridden == ["allow-ops"]
	d.explanation == "denied by DENY rule(s) deny-put (overriding ALLOW allow-ops)"
}

test_deny_alone_is_a_deny_not_a_default_deny if {
	d := decide(set([deny_put, rule("deny-ops", "DENY", {"callers": {"service_accounts": ["ops"]}})]), call)
	d.effect == "DENY"
	d.decided_by == ["deny-put", "deny-ops"]
	d.overridden == []
	d.explanation == "denied by DENY rule(s) deny-put, deny-ops"
}

# ── AUDIT ─────────────────────────────────────────────────────────────────────────────────────

test_audit_never_denies if {
	d := decide(set([allow_ops, audit_put]), call)
	d.allow == true
	d.effect == "ALLOW"
	d.decided_by == ["allow-ops"]
	d.audit == ["audit-put"]
	d.explanation == "allowed by rule(s) allow-ops; AUDIT rule(s) audit-put would deny"
}

test_audit_never_grants if {
	d := decide(set([audit_put, audit_ops]), call)
	d.allow == false
	d.effect == "DEFAULT_DENY"
	d.decided_by == []
	d.audit == ["audit-put", "audit-ops"]
}

# Adding AUDIT rules changes no call's enforced decision, whatever else the set holds.
test_audit_rules_change_nothing_but_the_report if {
	every base in [[], [allow_ops], [allow_ops, deny_put], [deny_put], [allow_kv, dry(deny_put)]] {
		every c in calls {
			enforced(decide(set(array.concat(base, [audit_put, audit_ops])), c)) == enforced(decide(set(base), c))
		}
	}
}

test_audit_next_to_a_deny if {
	d := decide(set([allow_ops, deny_put, audit_ops]), call)
	d.effect == "DENY"
	d.decided_by == ["deny-put"]
	d.audit == ["audit-ops"]
}

# ── dry-run, per rule ─────────────────────────────────────────────────────────────────────────

test_a_dry_run_deny_never_denies_and_is_reported if {
	d := decide(set([allow_ops, dry(deny_put)]), call)
	d.allow == true
	d.effect == "ALLOW"
	d.decided_by == ["allow-ops"]
	d.dry_run == [{"id": "deny-put", "effect": "DENY"}]
	d.mode == "enforce"
	d.would.allow == false
	d.would.decided_by == ["deny-put"]
	d.explanation == "allowed by rule(s) allow-ops; dry-run rule(s) not enforced: deny-put (DENY)"
}

test_a_dry_run_allow_never_grants if {
	d := decide(set([dry(allow_ops)]), call)
	d.allow == false
	d.effect == "DEFAULT_DENY"
	d.dry_run == [{"id": "allow-ops", "effect": "ALLOW"}]
	d.would.allow == true
	d.would.decided_by == ["allow-ops"]
}

test_a_dry_run_audit_is_reported_as_dry_run if {
	d := decide(set([allow_ops, dry(audit_put)]), call)
	d.allow == true
	d.audit == []
	d.dry_run == [{"id": "audit-put", "effect": "AUDIT"}]
	d.would.audit == ["audit-put"]
}

test_a_dry_run_rule_that_does_not_match_is_not_reported if {
	d := decide(set([allow_ops, dry(deny_put)]), object.union(call, {"method": "Get"}))
	d.dry_run == []
	d.would.allow == true
}

# A dry-run rule changes no call's enforced decision.
test_dry_run_rules_change_nothing_but_the_report if {
	every base in [[], [allow_ops], [allow_kv, deny_put], [audit_ops]] {
		every c in calls {
			with_dry := set(array.concat(base, [trial(deny_put), trial(allow_ops), trial(audit_put)]))
			enforced(decide(with_dry, c)) == enforced(decide(set(base), c))
		}
	}
}

# ── dry-run, whole set ────────────────────────────────────────────────────────────────────────

deny_everything := {"dry_run": true, "rules": [rule("deny-all", "DENY", {}), allow_ops, audit_put]}

test_a_dry_run_set_never_denies if {
	d := rules.decision with data.x0tta6bl4.policy.ruleset as deny_everything with input as call
		with data.x0tta6bl4.authz.allow as true
	d.allow == true
	d.effect == "BASELINE"
	d.mode == "dry_run"
	d.decided_by == []
	d.audit == []
	d.dry_run == [
		{"id": "deny-all", "effect": "DENY"},
		{"id": "allow-ops", "effect": "ALLOW"},
		{"id": "audit-put", "effect": "AUDIT"},
	]
	d.would == {
		"allow": false, "effect": "DENY", "decided_by": ["deny-all"],
		"overridden": ["allow-ops"], "audit": ["audit-put"],
	}
	d.explanation == concat("", [
		"rule set in dry-run: allowed by the baseline policy; the set would have denied by DENY rule(s) ",
		"deny-all (overriding ALLOW allow-ops); dry-run rule(s) not enforced: deny-all (DENY), allow-ops (ALLOW), ",
		"audit-put (AUDIT)",
	])
}

test_a_dry_run_set_is_enforced_as_the_baseline_says if {
	allow_everything := {"dry_run": true, "rules": [rule("allow-all", "ALLOW", {})]}

	# An outsider: denied by the baseline whether or not platform/rego (authz.rego) is loaded.
	outsider := object.union(call, {"caller": "spiffe://elsewhere.example/ns/local/sa/ops"})
	d := decide(allow_everything, outsider)
	d.allow == false
	d.effect == "BASELINE"
	d.would.allow == true
	not rules.allow with data.x0tta6bl4.policy.ruleset as allow_everything with input as outsider
	not rules.allow with data.x0tta6bl4.policy.ruleset as allow_everything with input as call
		with data.x0tta6bl4.authz.allow as false
	rules.allow with data.x0tta6bl4.policy.ruleset as deny_everything with input as call
		with data.x0tta6bl4.authz.allow as true
}

test_a_dry_run_set_with_errors_reports_them_and_enforces_the_baseline if {
	broken := {"dry_run": true, "rules": [rule("bad", "ALLOW", {"methods": []})]}
	d := rules.decision with data.x0tta6bl4.policy.ruleset as broken with input as call
		with data.x0tta6bl4.authz.allow as true
	d.allow == true
	d.effect == "BASELINE"
	d.would.effect == "DEFAULT_DENY" # the invalid rule matches nothing
	count(rules.rule_errors) == 1 with data.x0tta6bl4.policy.ruleset as broken
}

# ── break-glass ───────────────────────────────────────────────────────────────────────────────

token := "bg-token-5f0c2d7e9a41b3c8d6e0f1a2b3c4d5e6"

entry := {
	"id": "bg-1", "token_sha256": crypto.sha256(token), "expires": "2026-11-27T12:00:00Z",
	"justification": "INC-42: consensus lost quorum", "callers": ["spiffe://x0tta6bl4.mesh/ns/*/sa/ops"],
	"issued_by": "alice",
}

glass(ruleset) := object.union(ruleset, {"break_glass": [entry]})

with_token(t) := object.union(call, {"metadata": {"x0-break-glass": t}})

test_break_glass_allows_over_a_deny_and_is_reported if {
	d := decide(glass(set([deny_put])), with_token(token))
	d.allow == true
	d.effect == "BREAK_GLASS"
	d.decided_by == ["bg-1"]
	d.break_glass == {
		"id": "bg-1", "justification": "INC-42: consensus lost quorum",
		"expires": "2026-11-27T12:00:00Z", "issued_by": "alice",
	}
	d.break_glass_rejected == null
	d.would.effect == "DENY" # what the rules alone say
	d.explanation == "allowed by break-glass entry bg-1 (INC-42: consensus lost quorum)"
	rules.allow with data.x0tta6bl4.policy.ruleset as glass(set([])) with input as with_token(token)
}

test_break_glass_expires if {
	ok := decide(glass(set([])), object.union(with_token(token), {"time": "2026-11-27T11:59:59.999999Z"}))
	ok.allow == true
	d := decide(glass(set([])), object.union(with_token(token), {"time": "2026-11-27T12:00:00.000000Z"}))
	d.allow == false
	d.effect == "DEFAULT_DENY"
	d.break_glass == null
	d.break_glass_rejected == "entry bg-1 expired at 2026-11-27T12:00:00Z"
	contains(d.explanation, "break-glass refused: entry bg-1 expired at 2026-11-27T12:00:00Z")
}

test_break_glass_with_a_wrong_token_grants_nothing if {
	every t in ["", "bg-token", upper(token), entry.token_sha256, concat("", [token, " "])] {
		d := decide(glass(set([])), with_token(t))
		d.allow == false
		d.break_glass == null
		d.break_glass_rejected == "the token matches no break-glass entry"
	}
}

test_break_glass_for_another_caller_grants_nothing if {
	d := decide(glass(set([])), object.union(with_token(token), {"caller": sa("healer")}))
	d.allow == false
	d.break_glass_rejected == "entry bg-1 is not issued to this caller"
	other_td := object.union(with_token(token), {"caller": "spiffe://elsewhere.example/ns/local/sa/ops"})
	decide(glass(set([])), other_td).allow == false
}

test_break_glass_without_a_token_is_not_mentioned if {
	d := decide(glass(set([allow_ops])), call)
	d.effect == "ALLOW"
	d.break_glass == null
	d.break_glass_rejected == null
}

test_an_invalid_break_glass_entry_grants_nothing if {
	bad := object.union(entry, {"callers": []})
	d := decide({"rules": [], "break_glass": [bad]}, with_token(token))
	d.allow == false
	d.effect == "DEFAULT_DENY"
	d.break_glass_rejected == "entry bg-1 is invalid"
}

test_break_glass_still_works_when_the_rules_are_broken_or_in_dry_run if {
	broken := glass(set([rule("bad", "ALLOW", {"methods": []})]))
	decide(broken, with_token(token)).effect == "BREAK_GLASS"
	dry_set := glass({"dry_run": true, "rules": [deny_put]})
	d := decide(dry_set, with_token(token))
	d.allow == true
	d.effect == "BREAK_GLASS"
}

test_break_glass_needs_a_valid_input if {
	d := decide(glass(set([])), object.remove(with_token(token), ["time"]))
	d.allow == false
	d.effect == "INVALID_INPUT"
	d.break_glass_rejected == "the call's input is invalid"
}

test_the_first_usable_break_glass_entry_decides if {
	second := object.union(entry, {"id": "bg-2", "callers": ["spiffe://x0tta6bl4.mesh/**"]})
	expired := object.union(entry, {"id": "bg-0", "expires": "2026-01-01T00:00:00Z"})
	d := decide({"rules": [], "break_glass": [expired, entry, second]}, with_token(token))
	d.decided_by == ["bg-1"]
}

# ── reporting ─────────────────────────────────────────────────────────────────────────────────

test_the_decision_carries_the_ruleset_version if {
	decide({"version": "2026-11-27.3", "rules": []}, call).ruleset_version == "2026-11-27.3"
	decide(set([]), call).ruleset_version == null
}

test_explanations_name_the_deciding_rules if {
	every case in [
		[set([allow_ops, allow_kv]), call, ["allow-ops", "allow-kv"]],
		[set([allow_ops, deny_put]), call, ["deny-put"]],
		[glass(set([deny_put])), with_token(token), ["bg-1"]],
	] {
		d := decide(case[0], case[1])
		d.decided_by == case[2]
		every id in case[2] {
			contains(d.explanation, id)
		}
	}
}

test_allow_is_the_decisions_allow if {
	every case in [
		[set([allow_ops]), call], [set([allow_ops, deny_put]), call], [set([dry(allow_ops)]), call],
		[glass(set([deny_put])), with_token(token)], [deny_everything, call], [set([]), {}],
	] {
		a := rules.allow with data.x0tta6bl4.policy.ruleset as case[0] with input as case[1]
		a == decide(case[0], case[1]).allow
	}
}

# rule_errors (the publication gate, also as candidate_errors) and input_errors (enforced per
# call); an invalid rule that is live anyway matches nothing rather than more.
package x0tta6bl4.policy.validate_test

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

token := "bg-token-5f0c2d7e9a41b3c8d6e0f1a2b3c4d5e6"

good_entry := {
	"id": "bg-1", "token_sha256": crypto.sha256(token), "expires": "2026-12-01T00:00:00Z",
	"justification": "INC-42: consensus lost quorum", "callers": ["spiffe://x0tta6bl4.mesh/ns/*/sa/ops"],
	"issued_by": "alice",
}

errors_of(ruleset) := errs if {
	errs := rules.rule_errors with data.x0tta6bl4.policy.ruleset as ruleset
}

rule_errors_of(when) := errors_of({"rules": [{"id": "r", "effect": "ALLOW", "when": when}]})

# The rule is rejected with exactly one error that mentions `part`.
rejected(when, part) if {
	errs := rule_errors_of(when)
	count(errs) == 1
	some e in errs
	contains(e, part)
}

test_a_complete_ruleset_is_valid if {
	count(errors_of({
		"version": "2026-11-27.3",
		"dry_run": false,
		"rules": [
			{"id": "a", "effect": "ALLOW", "description": "ops may use KV", "when": {
				"callers": {"trust_domains": ["x0tta6bl4.mesh"], "namespaces": ["local"], "service_accounts": ["ops"]},
				"services": ["consensus"], "grpc_services": ["x0tta6bl4.consensus.v1.*"], "methods": ["Get*", "**/Put"],
				"metadata": {"x0-tenant": {"in": ["blue"]}, "x0-request-id": {"present": true}},
				"time_windows": [{"tz": "Europe/Berlin", "days": ["mon", "fri"], "from": "22:00", "to": "24:00"}],
				"source_cidrs": ["10.0.0.0/8", "2001:db8::/32", "::1/128"],
			}},
			{"id": "b", "effect": "DENY", "dry_run": true, "when": {}},
			{"id": "c", "effect": "AUDIT", "when": {"callers": {"exact": [sa("ops")], "glob": ["spiffe://**"]}}},
		],
		"break_glass": [good_entry],
	})) == 0
	count(errors_of({})) == 0
}

test_empty_lists_are_errors if {
	rejected({"callers": {"exact": []}}, "when.callers.exact")
	rejected({"callers": {"glob": []}}, "when.callers.glob")
	rejected({"callers": {"trust_domains": []}}, "when.callers.trust_domains")
	rejected({"callers": {"namespaces": []}}, "when.callers.namespaces")
	rejected({"callers": {"service_accounts": []}}, "when.callers.service_accounts")
	rejected({"callers": {}}, "when.callers")
	rejected({"services": []}, "when.services")
	rejected({"grpc_services": []}, "when.grpc_services")
	rejected({"methods": []}, "when.methods")
	rejected({"metadata": {}}, "when.metadata")
	rejected({"metadata": {"x0-tenant": {"in": []}}}, "in must be")
	rejected({"time_windows": []}, "when.time_windows")
	rejected({"time_windows": [{"days": [], "from": "09:00", "to": "10:00"}]}, "days")
	rejected({"source_cidrs": []}, "when.source_cidrs")
}

# An empty list is an error, and a rule with one matches nothing: never everything.
test_an_empty_list_matches_nothing if {
	d := rules.decision with data.x0tta6bl4.policy.ruleset as {"rules": [{"id": "r", "effect": "ALLOW", "when": {"methods": []}}]}
		with input as call
	d.allow == false
	d.effect == "DEFAULT_DENY"
	not rules.rule_matches({"when": {"methods": []}}) with input as call
	not rules.rule_matches({"when": {"callers": {"exact": []}}}) with input as call
	not rules.rule_matches({"when": {"callers": {}}}) with input as call
	not rules.rule_matches({"when": {"metadata": {}}}) with input as call
	not rules.rule_matches({"when": {"source_cidrs": []}}) with input as object.union(call, {"source_address": "10.0.0.1:1"})
}

test_unknown_keys_are_errors if {
	rejected({"method": ["Put"]}, "unknown condition method")
	rejected({"callers": {"globs": ["spiffe://**"]}}, "unknown kind globs")
	rejected({"time_windows": [{"from": "09:00", "to": "10:00", "timezone": "UTC"}]}, "unknown key(s) timezone")
	some e in errors_of({"rules": [], "dryrun": true})
	contains(e, "ruleset: unknown key(s) dryrun")
	some f in errors_of({"rules": [{"id": "r", "effect": "ALLOW", "when": {}, "enabled": true}]})
	contains(f, "unknown key(s) enabled")
}

test_rule_shape_errors if {
	some a in errors_of({"rules": [{"effect": "ALLOW", "when": {}}]})
	contains(a, "id must be")
	some b in errors_of({"rules": [{"id": "r", "effect": "PERMIT", "when": {}}]})
	contains(b, "effect must be")
	some c in errors_of({"rules": [{"id": "r", "effect": "ALLOW"}]})
	contains(c, "when must be an object")
	some d in errors_of({"rules": [{"id": "r", "effect": "ALLOW", "when": {}, "dry_run": "yes"}]})
	contains(d, "dry_run must be a boolean")
	some e in errors_of({"rules": [{"id": "r", "effect": "ALLOW", "when": {}}, {"id": "r", "effect": "DENY", "when": {}}]})
	contains(e, "rules[1] \"r\": id is not unique")
	some f in errors_of({"rules": [{"id": "bg-1", "effect": "ALLOW", "when": {}}], "break_glass": [good_entry]})
	contains(f, "id is not unique")
	some g in errors_of({"rules": {"id": "r"}})
	g == "ruleset: rules must be a list"
	some h in errors_of({"rules": ["ALLOW"]})
	contains(h, "rules[0]: must be an object")
}

test_malformed_globs_are_errors if {
	rejected({"callers": {"glob": ["spiffe://x0tta6bl4.mesh/[ops"]}}, "malformed pattern")
	rejected({"methods": ["{Put"]}, "malformed pattern")
	rejected({"services": ["[a"]}, "malformed pattern")
}

test_metadata_errors if {
	rejected({"metadata": {"X0-Tenant": {"equals": "a"}}}, "lower-case")
	rejected({"metadata": {"x0-break-glass": {"present": true}}}, "reserved for break-glass")
	rejected({"metadata": {"authorization": {"present": true}}}, "not a metadata key the platform sends")
	rejected({"metadata": {"x0-tenant": {"equals": "a", "present": true}}}, "exactly one of")
	rejected({"metadata": {"x0-tenant": {"matches": "a*"}}}, "exactly one of")
	rejected({"metadata": {"x0-tenant": {"equals": 1}}}, "equals must be a string")
	rejected({"metadata": {"x0-tenant": {"present": "yes"}}}, "present must be a boolean")
}

test_time_window_errors if {
	rejected({"time_windows": [{"tz": "Local", "from": "09:00", "to": "10:00"}]}, "tz must be")
	rejected({"time_windows": [{"tz": "", "from": "09:00", "to": "10:00"}]}, "tz must be")
	rejected({"time_windows": [{"tz": "Mars/Olympus_Mons", "from": "09:00", "to": "10:00"}]}, "tz must be")
	rejected({"time_windows": [{"from": "9:00", "to": "10:00"}]}, "from must be")
	rejected({"time_windows": [{"from": "24:00", "to": "10:00"}]}, "from must be")
	rejected({"time_windows": [{"from": "09:00", "to": "10:60"}]}, "to must be")
	rejected({"time_windows": [{"to": "10:00"}]}, "from must be")
	rejected({"time_windows": [{"from": "09:00", "to": "09:00"}]}, "from == to")
	rejected({"time_windows": [{"days": ["monday"], "from": "09:00", "to": "10:00"}]}, "days")
	rejected({"time_windows": ["09:00-10:00"]}, "time_windows[0]: must be an object")
	count(rule_errors_of({"time_windows": [{"from": "00:00", "to": "24:00"}]})) == 0
}

test_cidr_errors if {
	rejected({"source_cidrs": ["10.1.2.3/8"]}, "not a canonical CIDR")
	rejected({"source_cidrs": ["10.0.0.0/33"]}, "not a canonical CIDR")
	rejected({"source_cidrs": ["10.0.0.1"]}, "not a canonical CIDR")
	rejected({"source_cidrs": ["2001:DB8::/32"]}, "not a canonical CIDR")
	rejected({"source_cidrs": ["2001:0db8::/32"]}, "not a canonical CIDR")
	rejected({"source_cidrs": ["::ffff:0:0/96"]}, "not a canonical CIDR") # Go reads it as 0.0.0.0/0
}

break_glass_errors(entry) := errors_of({"rules": [], "break_glass": [entry]})

test_break_glass_entry_errors if {
	some a in break_glass_errors(object.union(good_entry, {"token_sha256": upper(good_entry.token_sha256)}))
	contains(a, "token_sha256 must be 64 lower-case hex digits")
	some b in break_glass_errors(object.union(good_entry, {"expires": "tomorrow"}))
	contains(b, "expires must be an RFC 3339 time")
	some c in break_glass_errors(object.union(good_entry, {"callers": []}))
	contains(c, "callers must be")
	some d in break_glass_errors(object.union(good_entry, {"justification": ""}))
	contains(d, "justification must be a non-empty string")
	some e in break_glass_errors(object.remove(good_entry, ["id"]))
	contains(e, "id must be a non-empty string")
	some f in break_glass_errors(object.union(good_entry, {"services": ["consensus"]}))
	contains(f, "unknown key(s) services")
}

# A misspelt condition or window key would otherwise widen its rule (to any method, to UTC).
test_an_invalid_rule_never_matches_more_than_written if {
	not rules.rule_matches({"when": {"method": ["Get"]}}) with input as call
	not rules.rule_matches({"when": {"callers": {"sa": ["ops"]}}}) with input as call
	not rules.rule_matches({"when": {"metadata": {"x0-tenant": {"is": "blue"}}}}) with input as call
	window := {"timezone": "Asia/Tokyo", "from": "10:00", "to": "11:00"}
	not rules.rule_matches({"when": {"time_windows": [window]}}) with input as call
	rules.rule_matches({"when": {"time_windows": [object.remove(window, ["timezone"])]}}) with input as call
	not rules.rule_matches({"id": "r", "effect": "ALLOW"}) with input as call
}

test_candidate_errors_validate_a_ruleset_given_as_input if {
	broken := {"rules": [
		{"id": "ok", "effect": "ALLOW", "when": {}},
		{"id": "bad", "effect": "DENY", "when": {"source_cidrs": []}},
	]}
	rules.candidate_errors == {`rules[1] "bad": when.source_cidrs must be a non-empty list of non-empty strings`} with input as {"ruleset": broken}
	rules.candidate_errors == set() with input as {"ruleset": {"rules": [{"id": "ok", "effect": "ALLOW", "when": {}}]}}
	rules.candidate_errors == {"input.ruleset: missing"} with input as {}

	# the live set does not matter
	rules.candidate_errors == set() with input as {"ruleset": {}} with data.x0tta6bl4.policy.ruleset as broken
}

test_input_errors_deny if {
	every bad in [
		object.remove(call, ["time"]),
		object.union(call, {"time": "2026-11-27 10:00:00"}),
		object.union(call, {"caller": 7}),
		object.remove(call, ["method"]),
		object.union(call, {"metadata": {"x0-tenant": ["a", "b"]}}),
		object.union(call, {"metadata": "x0-tenant=a"}),
		object.union(call, {"source_address": 42}),
	] {
		d := rules.decision with data.x0tta6bl4.policy.ruleset as {"rules": [{"id": "all", "effect": "ALLOW", "when": {}}]}
			with input as bad
		d.allow == false
		d.effect == "INVALID_INPUT"
		count(d.input_errors) > 0
	}
	no_input := rules.decision with data.x0tta6bl4.policy.ruleset as {"rules": [{"id": "all", "effect": "ALLOW", "when": {}}]}
	no_input.effect == "INVALID_INPUT"
	not rules.allow with data.x0tta6bl4.policy.ruleset as {"rules": [{"id": "all", "effect": "ALLOW", "when": {}}]}
	count(rules.input_errors) == 0 with input as object.remove(call, ["metadata"])
}

has_error(errs, part) if {
	some e in errs
	contains(e, part)
}

test_wrongly_typed_parts_are_errors if {
	has_error(errors_of("ALLOW everything"), "ruleset: must be an object")
	has_error(errors_of({"dry_run": "yes"}), "ruleset: dry_run must be a boolean")
	has_error(rule_errors_of({"callers": [sa("ops")]}), "when.callers must be an object")
	has_error(rule_errors_of({"metadata": ["x0-tenant"]}), "when.metadata must be an object")
	has_error(rule_errors_of({"time_windows": {"from": "09:00", "to": "10:00"}}), "when.time_windows must be a non-empty list")
	has_error(errors_of({"break_glass": ["token"]}), "break_glass[0]: must be an object")
	has_error(break_glass_errors(object.union(good_entry, {"callers": ["spiffe://[x"]})), "callers: malformed pattern")
	has_error(break_glass_errors(object.union(good_entry, {"issued_by": 7})), "issued_by must be a string")
}

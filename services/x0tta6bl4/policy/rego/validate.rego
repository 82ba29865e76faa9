# Validation of the rule set (rule_errors, candidate_errors) and of the call's input
# (input_errors). rule_errors is the policy service's gate before it publishes a set, not part
# of each decision: it costs ~5x the decision (200 rules: ~20 ms vs ~4 ms per evaluation).
# A live set with errors still cannot widen: an invalid rule matches nothing (conditions.rego).
# input_errors is cheap and denies the call (INVALID_INPUT). Messages name the offending place:
# `rules[3] "freeze-ops": when.methods: ...`, `break_glass[0] "bg-1": ...`, `ruleset: ...`.
package x0tta6bl4.policy.rules

import rego.v1

ruleset_keys := {"version", "dry_run", "rules", "break_glass"}

rule_keys := {"id", "effect", "dry_run", "description", "when"}

effects := {"ALLOW", "DENY", "AUDIT"}

condition_keys := {"callers", "services", "grpc_services", "methods", "metadata", "time_windows", "source_cidrs"}

caller_kinds := {"exact", "glob", "trust_domains", "namespaces", "service_accounts", "same_namespace"}

# Kinds whose value is a list of strings (the rest: same_namespace, which is true).
caller_list_kinds := caller_kinds - {"same_namespace"}

# The metadata keys rules may test: x0tta6bl4/platform/authz.py SELECTED_METADATA without the
# break-glass token. A key the platform does not send could only ever be absent.
selected_metadata := {"x0-tenant", "x0-request-id"}

metadata_operators := {"equals", "in", "present"}

window_keys := {"tz", "days", "from", "to"}

break_glass_keys := {"id", "token_sha256", "expires", "justification", "callers", "issued_by"}

# ── helpers ───────────────────────────────────────────────────────────────────────────────────
# Builtin calls that may fail sit in helper functions: in `not f(g(x))` an undefined or failing
# g(x) makes the whole expression undefined (OPA evaluates the argument outside the negation),
# whereas `not helper(x)` is true. The same holds for an undefined argument: `not f(input.time)`
# is undefined, not true, without input.time; hence `not time_valid`.

rfc3339(s) if is_number(time.parse_rfc3339_ns(s))

input_string(key) if is_string(input[key])

string_list(x) if {
	is_array(x)
	count(x) > 0
	every s in x {
		is_string(s)
		s != ""
	}
}

# glob.match fails (undefined) on a malformed pattern such as "[a".
valid_glob(pattern, delimiters) if is_boolean(glob.match(pattern, delimiters, ""))

valid_tz(tz) if {
	is_string(tz)
	not tz in {"", "Local"}
	is_array(time.clock([0, tz]))
}

valid_clock(hhmm) if regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, hhmm)

# Canonical: net.cidr_merge gives it back unchanged (no host bits, lower-case, compressed).
canonical_cidr(cidr) if {
	net.cidr_is_valid(cidr)
	net.cidr_merge([cidr]) == {cidr}
}

label(entry) := concat("", [" \"", entry.id, "\""]) if {
	is_string(entry.id)
} else := ""

all_ids := array.concat(
	[r.id | some r in rule_list; is_string(r.id)],
	[e.id | some e in break_glass_list; is_string(e.id)],
)

# Sorted, so that equal ids are neighbours (linear, where counting each id would be quadratic).
sorted_ids := sort(all_ids)

duplicate_ids contains sorted_ids[k] if {
	count(sorted_ids) > 1
	some k in numbers.range(1, count(sorted_ids) - 1)
	sorted_ids[k] == sorted_ids[k - 1]
}

duplicate_id(id) if id in duplicate_ids

# "rego:<name>" names a custom Rego module's verdict in decisions (rules.rego).
reserved_id(id) if startswith(id, custom_prefix)

reserved_id_problem := concat("", ["id must not start with \"", custom_prefix, "\" (reserved for custom Rego modules)"])

unknown_keys(obj, known) := concat(", ", sort({k | some k, _ in obj; not k in known}))

# ── the rule set ──────────────────────────────────────────────────────────────────────────────

rule_errors contains "ruleset: must be an object" if not is_object(ruleset)

rule_errors contains concat("", ["ruleset: unknown key(s) ", unknown_keys(ruleset, ruleset_keys)]) if {
	is_object(ruleset)
	unknown_keys(ruleset, ruleset_keys) != ""
}

rule_errors contains "ruleset: dry_run must be a boolean" if {
	has_key(ruleset, "dry_run")
	not is_boolean(ruleset.dry_run)
}

rule_errors contains concat("", ["ruleset: ", key, " must be a list"]) if {
	some key in ["rules", "break_glass"]
	has_key(ruleset, key)
	not is_array(ruleset[key])
}

rule_errors contains concat("", ["rules[", format_int(i, 10), "]", label(rule_list[i]), ": ", msg]) if {
	some [i, msg] in rule_problems
}

rule_errors contains concat("", ["break_glass[", format_int(j, 10), "]", label(break_glass_list[j]), ": ", msg]) if {
	some [j, msg] in break_glass_problems
}

# ── rules ─────────────────────────────────────────────────────────────────────────────────────

rule_problems contains [i, "must be an object"] if {
	some i, rule in rule_list
	not is_object(rule)
}

rule_problems contains [i, concat("", ["unknown key(s) ", unknown_keys(rule, rule_keys)])] if {
	some i, rule in rule_list
	is_object(rule)
	unknown_keys(rule, rule_keys) != ""
}

rule_problems contains [i, "id must be a non-empty string"] if {
	some i, rule in rule_list
	is_object(rule)
	not string_list([object.get(rule, "id", null)])
}

rule_problems contains [i, "id is not unique"] if {
	some i, rule in rule_list
	duplicate_id(rule.id)
}

rule_problems contains [i, reserved_id_problem] if {
	some i, rule in rule_list
	reserved_id(rule.id)
}

rule_problems contains [i, "effect must be ALLOW, DENY or AUDIT"] if {
	some i, rule in rule_list
	is_object(rule)
	not object.get(rule, "effect", null) in effects
}

rule_problems contains [i, concat("", [key, " must be a ", type])] if {
	some i, rule in rule_list
	some [key, type] in [["dry_run", "boolean"], ["description", "string"]]
	has_key(rule, key)
	type_name(rule[key]) != type
}

rule_problems contains [i, "when must be an object ({} matches every call)"] if {
	some i, rule in rule_list
	is_object(rule)
	not is_object(object.get(rule, "when", null))
}

rule_problems contains [i, concat("", ["when: unknown condition ", key])] if {
	some i, rule in rule_list
	some key, _ in rule.when
	not key in condition_keys
}

# callers

rule_problems contains [i, "when.callers must be an object naming at least one kind"] if {
	some i, rule in rule_list
	callers := rule.when.callers
	callers == {}
}

rule_problems contains [i, "when.callers must be an object naming at least one kind"] if {
	some i, rule in rule_list
	callers := rule.when.callers
	not is_object(callers)
}

rule_problems contains [i, concat("", ["when.callers: unknown kind ", kind])] if {
	some i, rule in rule_list
	callers := rule.when.callers
	some kind, _ in callers
	not kind in caller_kinds
}

rule_problems contains [i, concat("", ["when.callers.", kind, " must be a non-empty list of non-empty strings"])] if {
	some i, rule in rule_list
	callers := rule.when.callers
	some kind, list in callers
	kind in caller_list_kinds
	not string_list(list)
}

rule_problems contains [i, "when.callers.same_namespace must be true (leave it out for callers of any namespace)"] if {
	some i, rule in rule_list
	rule.when.callers.same_namespace != true
}

rule_problems contains [i, concat("", ["when.callers.glob: malformed pattern ", pattern])] if {
	some i, rule in rule_list
	callers := rule.when.callers
	some pattern in callers.glob
	not valid_glob(pattern, ["/"])
}

# services, grpc_services, methods

rule_problems contains [i, concat("", ["when.", key, " must be a non-empty list of non-empty strings"])] if {
	some i, rule in rule_list
	some key, value in rule.when
	key in {"services", "grpc_services", "methods", "source_cidrs"}
	not string_list(value)
}

rule_problems contains [i, concat("", ["when.", key, ": malformed pattern ", pattern])] if {
	some i, rule in rule_list
	some key, value in rule.when
	key in {"services", "grpc_services", "methods"}
	some pattern in value
	not valid_glob(pattern, [".", "/"])
}

# metadata

rule_problems contains [i, "when.metadata must be an object with at least one key"] if {
	some i, rule in rule_list
	tests := rule.when.metadata
	not is_object(tests)
}

rule_problems contains [i, "when.metadata must be an object with at least one key"] if {
	some i, rule in rule_list
	tests := rule.when.metadata
	tests == {}
}

rule_problems contains [i, concat("", ["when.metadata: ", key, " ", msg])] if {
	some i, rule in rule_list
	tests := rule.when.metadata
	some key, test in tests
	some msg in metadata_problems(key, test)
}

metadata_problems(key, test) := union({
	{"is reserved for break-glass" | key == break_glass_key},
	{"is not a metadata key the platform sends" | not key in selected_metadata; key != break_glass_key; key == lower(key)},
	{"must be lower-case" | key != lower(key)},
	{`must be exactly one of {"equals": s}, {"in": [s, ...]}, {"present": bool}` | not one_operator(test)},
	{"equals must be a string" | has_key(test, "equals"); not is_string(test.equals)},
	{"in must be a non-empty list of strings" | has_key(test, "in"); not strings_in(test.in)},
	{"present must be a boolean" | has_key(test, "present"); not is_boolean(test.present)},
})

one_operator(test) if {
	is_object(test)
	count(test) == 1
	some op, _ in test
	op in metadata_operators
}

strings_in(list) if {
	is_array(list)
	count(list) > 0
	every s in list {
		is_string(s)
	}
}

# time windows

rule_problems contains [i, "when.time_windows must be a non-empty list"] if {
	some i, rule in rule_list
	windows := rule.when.time_windows
	windows == []
}

rule_problems contains [i, "when.time_windows must be a non-empty list"] if {
	some i, rule in rule_list
	windows := rule.when.time_windows
	not is_array(windows)
}

rule_problems contains [i, concat("", ["when.time_windows[", format_int(k, 10), "]: ", msg])] if {
	some i, rule in rule_list
	windows := rule.when.time_windows
	is_array(windows)
	some k, window in windows
	some msg in window_problems(window)
}

window_problems(window) := {"must be an object"} if not is_object(window)

window_problems(window) := union({
	{concat("", ["unknown key(s) ", unknown_keys(window, window_keys)]) | unknown_keys(window, window_keys) != ""},
	{`from must be "HH:MM" (00:00-23:59)` | not valid_clock(object.get(window, "from", null))},
	{`to must be "HH:MM" (00:01-24:00)` | not valid_to(object.get(window, "to", null))},
	{"from == to is ambiguous: use 00:00-24:00 for a whole day" | window.from == window.to},
	{`tz must be an IANA time zone name, not "" or "Local"` | not valid_tz(window_tz(window))},
	{"days must be a non-empty list of mon, tue, wed, thu, fri, sat, sun" | not valid_days(window_days(window))},
}) if is_object(window)

valid_to(hhmm) if valid_clock(hhmm)

valid_to("24:00")

valid_days(days) if {
	is_array(days)
	count(days) > 0
	every day in days {
		day in weekdays
	}
}

# source CIDRs

rule_problems contains [i, concat("", ["when.source_cidrs: ", cidr, " is not a canonical CIDR"])] if {
	some i, rule in rule_list
	cidrs := rule.when.source_cidrs
	some cidr in cidrs
	is_string(cidr)
	not canonical_cidr(cidr)
}

# ── break-glass entries ───────────────────────────────────────────────────────────────────────

break_glass_invalid := {j | some [j, _] in break_glass_problems}

break_glass_problems contains [j, "must be an object"] if {
	some j, entry in break_glass_list
	not is_object(entry)
}

break_glass_problems contains [j, concat("", ["unknown key(s) ", unknown_keys(entry, break_glass_keys)])] if {
	some j, entry in break_glass_list
	is_object(entry)
	unknown_keys(entry, break_glass_keys) != ""
}

break_glass_problems contains [j, concat("", [key, " must be a non-empty string"])] if {
	some j, entry in break_glass_list
	is_object(entry)
	some key in ["id", "justification", "expires", "token_sha256"]
	not string_list([object.get(entry, key, null)])
}

break_glass_problems contains [j, "id is not unique"] if {
	some j, entry in break_glass_list
	duplicate_id(entry.id)
}

break_glass_problems contains [j, reserved_id_problem] if {
	some j, entry in break_glass_list
	reserved_id(entry.id)
}

break_glass_problems contains [j, "token_sha256 must be 64 lower-case hex digits"] if {
	some j, entry in break_glass_list
	is_string(entry.token_sha256)
	not regex.match(`^[0-9a-f]{64}$`, entry.token_sha256)
}

break_glass_problems contains [j, "expires must be an RFC 3339 time"] if {
	some j, entry in break_glass_list
	is_string(entry.expires)
	not rfc3339(entry.expires)
}

break_glass_problems contains [j, "callers must be a non-empty list of SPIFFE ID globs"] if {
	some j, entry in break_glass_list
	is_object(entry)
	not string_list(object.get(entry, "callers", null))
}

break_glass_problems contains [j, concat("", ["callers: malformed pattern ", pattern])] if {
	some j, entry in break_glass_list
	some pattern in entry.callers
	not valid_glob(pattern, ["/"])
}

break_glass_problems contains [j, "issued_by must be a string"] if {
	some j, entry in break_glass_list
	has_key(entry, "issued_by")
	not is_string(entry.issued_by)
}

# The gate of the policy service: the errors of a candidate set sent as input.ruleset, e.g.
# POST /v1/data/x0tta6bl4/policy/rules/candidate_errors {"input": {"ruleset": {...}}}.
candidate_errors := errs if {
	candidate := input.ruleset
	errs := rule_errors with data.x0tta6bl4.policy.ruleset as candidate
} else := {"input.ruleset: missing"}

# ── the input ─────────────────────────────────────────────────────────────────────────────────

input_errors contains concat("", ["input.", key, " must be a string"]) if {
	some key in ["caller", "namespace", "service", "grpc_service", "method"]
	not input_string(key)
}

input_errors contains "input.time must be an RFC 3339 time" if not time_valid

time_valid if rfc3339(input.time)

input_errors contains "input.metadata must be an object of strings" if not is_object(metadata)

input_errors contains "input.metadata must be an object of strings" if {
	some value in metadata
	not is_string(value)
}

input_errors contains "input.source_address must be a string" if {
	has_key(input, "source_address")
	not is_string(input.source_address)
}

# Rule-condition engine of the policy service: evaluates the rule set that the policy service
# publishes as data against one gRPC call, and returns an explained decision. Pure: everything
# it reads is `input` (the call) and `data.x0tta6bl4.policy.ruleset` (the rules).
#
# Files of this package: rules.rego (this: schema, effects, custom Rego modules, the decision),
# conditions.rego (one matcher per condition type: the per-call hot path), validate.rego
# (rule_errors and candidate_errors: the publication gate; input_errors). They travel in the
# policy service's bundle (roots ["x0tta6bl4/policy"]) with the ruleset at
# x0tta6bl4/policy/ruleset/data.json and the set's custom modules. The sidecar's local files
# (platform/rego) hold the rest: authz.rego (the static baseline), log_mask.rego (package
# system.log: keeps break-glass tokens out of OPA's decision logs) and mesh.rego, the entry
# point the platform queries (data.x0tta6bl4.mesh.decision: revocations, then this decision
# when a ruleset is loaded, else the baseline).
#
# ── input ─────────────────────────────────────────────────────────────────────────────────────
# The platform's authz input (x0tta6bl4/platform/authz.py), plus one optional field:
#   caller          SPIFFE ID of the mTLS peer (string)
#   namespace       namespace of the called service (string; callers.same_namespace)
#   service         the called service: identity, policy, consensus, ...
#   grpc_service    e.g. x0tta6bl4.consensus.v1.KVService
#   method          e.g. Put
#   metadata        object of the *selected* gRPC metadata keys -> string values (optional)
#   time            RFC 3339, e.g. 2026-11-27T10:00:00.000000Z (any offset parses)
#   source_address  optional: "10.1.2.3:5000", "[::1]:5000", a bare IP, or gRPC's own peer
#                   string ("ipv4:10.1.2.3:5000", "ipv6:%5B::1%5D:5000"); "unix:..." and
#                   anything else that is no IP simply matches no source_cidrs.
# A wrong type in caller/namespace/service/grpc_service/method/metadata or an unparseable time
# puts the call in input_errors and it is denied (INVALID_INPUT), break-glass included.
#
# ── data.x0tta6bl4.policy.ruleset ─────────────────────────────────────────────────────────────
#   {"version": any (opaque, echoed as decision.ruleset_version),
#    "dry_run": bool (default false: whole-set dry-run, see below),
#    "rules": [{"id": non-empty string, unique across rules and break_glass entries,
#               "effect": "ALLOW" | "DENY" | "AUDIT",
#               "dry_run": bool (default false),
#               "description": string (optional),
#               "when": {conditions}}],          required; {} matches every call
#    "break_glass": [{"id", "token_sha256", "expires", "justification", "callers",
#                     "issued_by" (optional string)}]}
# No ruleset loaded = no rules = default deny.
#
# ── validation: once per publication, not per call ────────────────────────────────────────────
# rule_errors (validate.rego) lists every problem of the live set; candidate_errors the problems
# of a set sent as input.ruleset. The policy service must publish only a set whose errors are
# empty. Decisions do not re-validate (on 200 rules that costs ~20 ms a call, the whole
# decision ~3-4.5 ms); instead an invalid rule that got live anyway never matches more than it says: an
# empty list matches nothing, and an unknown condition key, caller kind, metadata operator or
# time-window key makes the rule match nothing rather than being ignored. (For a DENY rule
# "matches nothing" is fail-open; hence the gate.) Unknown keys anywhere are errors.
#
# ── conditions (inside "when") ────────────────────────────────────────────────────────────────
# Every condition given must hold (AND); a condition not given is "any". Every list is OR
# within itself and must be non-empty: an empty list is a rule error, and matches nothing.
#   callers: {"exact": [ids], "glob": [patterns], "trust_domains": [tds],
#             "namespaces": [nss], "service_accounts": [sas], "same_namespace": true}
#       every kind given must match (AND across kinds, OR within a kind's list).
#       exact: string equality with the caller SPIFFE ID.
#       glob: OPA glob with "/" as delimiter: `*` = any run within one path segment, `**` = any
#         run across segments (`spiffe://x0tta6bl4.mesh/**` needs at least the "/" after the
#         trust domain), also `?`, `[a-z]`, `{a,b}`; `\` escapes.
#       trust_domains: the caller's trust domain (spiffe://<td>/...), exact.
#       namespaces / service_accounts: from a caller of the form spiffe://<td>/ns/<ns>/sa/<sa>
#         (exactly, as in platform authz.rego); other forms never match. They match only
#         callers of the trust domains listed in this rule's trust_domains, or, when it has
#         none, of x0tta6bl4.mesh — a bare "service_accounts": ["ops"] never matches
#         spiffe://elsewhere/ns/local/sa/ops.
#       same_namespace: true (the only value): the caller's namespace, read as for
#         namespaces (same shape, same trust-domain scope), equals input.namespace, the
#         namespace of the called service. authz.rego's rule that a caller of another
#         namespace gets nothing is {"same_namespace": true} on every ALLOW rule.
#   services: globs on input.service ("." delimiter).
#   grpc_services: globs on input.grpc_service, "." delimiter: x0tta6bl4.*.v1.KVService,
#       x0tta6bl4.consensus.**.
#   methods: a pattern containing "/" is a glob on "<grpc_service>/<method>" with "." and "/"
#       delimiters (x0tta6bl4.consensus.v1.KVService/Get*, **/Put); a pattern without "/" is
#       a glob on the method name alone (Put, Get*, {Put,Delete}) of any gRPC service.
#   metadata: {key: {"equals": string} | {"in": [strings]} | {"present": bool}}, exactly one
#       operator per key, all keys must hold. Keys are lower-case and must be among the keys the
#       platform selects (selected_metadata below, = authz.py SELECTED_METADATA minus the
#       break-glass key, which no rule may read). The platform sends strings only (one value
#       per key). equals/in do not match an absent key; {"present": false} does.
#   time_windows: [{"tz": IANA zone (default "UTC"; "" and "Local" are errors),
#                   "days": ["mon".."sun"] (default every day), "from": "HH:MM",
#                   "to": "HH:MM" or "24:00"}], any window matching is enough.
#       Wall-clock time in tz, from inclusive, to exclusive, second resolution. from > to
#       crosses midnight and "days" names the day the window opens: fri 22:00-06:00 holds
#       Friday 22:00 to Saturday 06:00. from == to is an error (use 00:00-24:00 for all day).
#       DST follows the wall clock: on a spring-forward day the skipped hour never matches
#       (Berlin 2026-03-29: 02:00-03:00 does not exist), on a fall-back day the repeated hour
#       matches twice (Berlin 2026-10-25 02:00-03:00 = 00:00-02:00Z). Zones come from OPA's
#       embedded Go tzdata, so they do not depend on the sidecar's /usr/share/zoneinfo.
#   source_cidrs: ["10.0.0.0/8", "2001:db8::/32"], canonical form only, as net.cidr_merge
#       gives it back (no host bits, IPv6 lower-case compressed; Python's
#       str(ipaddress.ip_network(x)) agrees except for IPv4-mapped ranges). An IPv4 CIDR also
#       contains the IPv4-mapped IPv6 form of its addresses (::ffff:10.1.2.3); write mapped
#       ranges as IPv4 (::ffff:0:0/96 is read as 0.0.0.0/0 and so rejected as non-canonical).
#       ::/0 contains no IPv4 address and 0.0.0.0/0 no IPv6 one: "anywhere" is both. No
#       source_address, or one that is no IP: no match.
#
# ── effects and precedence ────────────────────────────────────────────────────────────────────
# Among the matching *enforced* rules: any DENY -> denied (DENY overrides ALLOW); else any
# ALLOW -> allowed; else DEFAULT_DENY. AUDIT is a DENY on probation: a matching AUDIT rule is
# reported in decision.audit ("would deny") and changes nothing — it never denies and never
# grants (a call it matches is allowed or denied exactly as if it were absent).
#
# ── custom Rego modules ───────────────────────────────────────────────────────────────────────
# A policy set may carry Rego modules; each has package x0tta6bl4.policy.custom.<name> (the
# policy service checks that; a package nested deeper is not read). Per call, for each:
#   a non-empty set `deny` -> a matching DENY rule with id "rego:<name>";
#   `allow == true`        -> a matching ALLOW rule with id "rego:<name>";
# both at once are both (and the DENY overrides the ALLOW, as for rules). These entries come
# after the rules, by name, and are decided exactly like rules: precedence, the whole-set
# dry-run, decided_by/overridden/would and the explanation; their deny messages are reported in
# decision.custom_deny ({"rego:<name>": [messages]}) and in the explanation. A module has no
# per-rule dry_run and no AUDIT (run it in a dry-run set first, or write the check as data).
# Anything else (deny of another type, allow not exactly true) counts as nothing. Rule and
# break-glass ids must not start with "rego:" (validate.rego). A module that fails at run time
# (a conflict, --strict-builtin-errors) fails the query: the platform denies.
#
# ── dry-run ───────────────────────────────────────────────────────────────────────────────────
# A rule with "dry_run": true is evaluated and reported in decision.dry_run ({id, effect}) and
# enforced never: the decision is exactly that of the set without it.
# A set with "dry_run": true is evaluated and reported (every matching rule in decision.dry_run,
# the set's verdict in decision.would) but not enforced: the call is decided by the baseline,
# data.x0tta6bl4.authz.allow (the platform's static policy; effect BASELINE). Not "allow all":
# dry-running a new set must not open the mesh. Undefined baseline = false. The baseline must
# not itself depend on this package (OPA rejects the recursion).
# decision.would is always the verdict if every rule and the set were enforced, so
# would.allow != allow is "enforcing this set would change this call".
#
# ── break-glass ───────────────────────────────────────────────────────────────────────────────
# A call with metadata x0-break-glass = T is allowed (effect BREAK_GLASS, above DENY, default
# deny and set dry-run; not above INVALID_INPUT) when some valid entry (no rule_errors) has
# token_sha256 == crypto.sha256(T) (lower-case hex), time < expires (RFC 3339) and a callers
# glob matching the caller. decision.break_glass = {id, justification, expires, issued_by} then,
# else null; a token presented that grants nothing is explained in break_glass_rejected.
# Entries are never dry-run; if several match, the first in list order decides. Tokens must
# be long random secrets (only their hash is in the bundle); log_mask.rego keeps the token out
# of decision logs. The key is authz.py's x0-break-glass (it selects no x-break-glass).
#
# ── decision ──────────────────────────────────────────────────────────────────────────────────
#   {"allow": bool, enforced
#    "effect": "ALLOW" | "DENY" | "DEFAULT_DENY" | "BREAK_GLASS" | "BASELINE"
#              | "INVALID_INPUT",
#    "decided_by": [ids]: the ALLOW or the DENY rules that decided, or the break-glass entry,
#    "overridden": [ids of matching ALLOW rules a DENY overrode],
#    "audit": [ids of enforced AUDIT rules that matched = would deny],
#    "dry_run": [{"id", "effect"}] of matching rules not enforced,
#    "custom_deny": {"rego:<name>": [messages]} of the custom modules denying this call,
#    "would": {"allow", "effect", "decided_by", "overridden", "audit"}: everything enforced,
#    "mode": "enforce" | "dry_run",
#    "break_glass": {...} | null, "break_glass_rejected": string | null,
#    "input_errors": [strings], "ruleset_version": any | null,
#    "explanation": one line naming the rule ids that decided}
# Id lists are in rule order. `allow` below is the bare boolean (== decision.allow).
#
# ── OPA notes ─────────────────────────────────────────────────────────────────────────────────
# Malformed values (a bad IP, tz, glob or time) rely on OPA's default non-strict builtin
# errors, under which a failing builtin call is undefined; with --strict-builtin-errors such a
# call aborts the query, which the platform reads as deny. `not f(g(x))` is undefined, not
# true, when g(x) fails or x is undefined, so validate.rego wraps such calls in helpers.
# Cost grows with the number of rules (every rule is tried on every call): measured on this
# 2-CPU machine with `opa run --server`: a decision ~0.8-1.4 ms for 30 rules, ~3-4.5 ms for
# 200 (the static platform authz.rego: ~0.2 ms); `allow` alone a little less, and
# --optimize-store-for-read-speed ~25% less on large sets.
package x0tta6bl4.policy.rules

import rego.v1

default allow := false

# The enforced boolean without the report (cheaper). Query `decision` instead where the
# report must reach OPA's decision log (break-glass use, audit, dry-run, explanation).
allow if enforced_verdict.allow == true

default ruleset := {}

ruleset := data.x0tta6bl4.policy.ruleset

rule_list := ruleset.rules if {
	is_array(ruleset.rules)
} else := []

break_glass_list := ruleset.break_glass if {
	is_array(ruleset.break_glass)
} else := []

set_dry_run if ruleset.dry_run == true

default baseline_allow := false

baseline_allow if data.x0tta6bl4.authz.allow == true

# The rules, then one entry per custom module verdict of this call (see the header).
entries := array.concat(rule_list, custom_entries)

# Indexes (into entries) of the rules whose conditions all hold for this call and of the
# custom module entries (each of which holds by construction).
matched contains i if {
	some i, rule in rule_list
	rule_matches(rule)
}

matched contains count(rule_list) + k if {
	some k, _ in custom_entries
}

not_enforced := matched if set_dry_run

not_enforced := {i | some i in matched; entries[i].dry_run == true} if not set_dry_run

enforced := matched - not_enforced

ids_with(idx, effect) := [entries[i].id | some i in sort(idx); entries[i].effect == effect]

verdict(idx) := {"allow": false, "effect": "INVALID_INPUT", "decided_by": [], "overridden": []} if {
	count(input_errors) > 0
} else := {"allow": false, "effect": "DENY", "decided_by": denies, "overridden": ids_with(idx, "ALLOW")} if {
	denies := ids_with(idx, "DENY")
	count(denies) > 0
} else := {"allow": true, "effect": "ALLOW", "decided_by": allows, "overridden": []} if {
	allows := ids_with(idx, "ALLOW")
	count(allows) > 0
} else := {"allow": false, "effect": "DEFAULT_DENY", "decided_by": [], "overridden": []}

would := object.union(verdict(matched), {"audit": ids_with(matched, "AUDIT")})

base := {"allow": baseline_allow, "effect": "BASELINE", "decided_by": [], "overridden": []} if set_dry_run

base := verdict(enforced) if not set_dry_run

enforced_verdict := {
	"allow": true, "effect": "BREAK_GLASS",
	"decided_by": [break_glass_grant.id], "overridden": [],
} if {
	break_glass_grant
} else := base

default break_glass := null

break_glass := {
	"id": break_glass_grant.id,
	"justification": break_glass_grant.justification,
	"expires": break_glass_grant.expires,
	"issued_by": object.get(break_glass_grant, "issued_by", null),
}

mode := "dry_run" if {
	set_dry_run
} else := "enforce"

dry_run_report := [{"id": entries[i].id, "effect": entries[i].effect} | some i in sort(not_enforced)]

decision := object.union(enforced_verdict, {
	"audit": ids_with(enforced, "AUDIT"),
	"dry_run": dry_run_report,
	"custom_deny": custom_deny,
	"would": would,
	"mode": mode,
	"break_glass": break_glass,
	"break_glass_rejected": break_glass_rejected,
	"input_errors": sort(input_errors),
	"ruleset_version": object.get(ruleset, "version", null),
	"explanation": explanation,
})

# ── custom Rego modules ───────────────────────────────────────────────────────────────────────

custom_prefix := "rego:"

custom_id(name) := concat("", [custom_prefix, name])

# Names of the custom packages whose `deny` is a non-empty set for this call.
custom_denying contains name if {
	some name
	denials := data.x0tta6bl4.policy.custom[name].deny
	is_set(denials)
	count(denials) > 0
}

custom_allowing contains name if {
	some name
	data.x0tta6bl4.policy.custom[name].allow == true
}

custom_entries := array.concat(
	[{"id": custom_id(name), "effect": "DENY"} | some name in sort(custom_denying)],
	[{"id": custom_id(name), "effect": "ALLOW"} | some name in sort(custom_allowing)],
)

message_text(m) := m if {
	is_string(m)
} else := json.marshal(m)

custom_deny := {custom_id(name): sort([message_text(m) | some m in data.x0tta6bl4.policy.custom[name].deny]) |
	some name in custom_denying
}

# ── break-glass ───────────────────────────────────────────────────────────────────────────────

break_glass_key := "x0-break-glass"

break_glass_token := metadata[break_glass_key] if is_string(metadata[break_glass_key])

# Indexes of the entries whose token hash is the presented token's.
break_glass_hits contains j if {
	hash := crypto.sha256(break_glass_token)
	some j, entry in break_glass_list
	entry.token_sha256 == hash
}

break_glass_for_caller(entry) if {
	some pattern in entry.callers
	glob.match(pattern, ["/"], input.caller)
}

break_glass_unexpired(entry) if now_ns < time.parse_rfc3339_ns(entry.expires)

break_glass_usable contains j if {
	count(input_errors) == 0
	some j in break_glass_hits
	not j in break_glass_invalid
	break_glass_for_caller(break_glass_list[j])
	break_glass_unexpired(break_glass_list[j])
}

# The first usable entry in list order.
break_glass_grant := break_glass_list[min(break_glass_usable)] if count(break_glass_usable) > 0

default break_glass_rejected := null

break_glass_rejected := reason if {
	break_glass_token
	not break_glass_grant
	reason := break_glass_rejection
}

break_glass_rejection := "the call's input is invalid" if {
	count(input_errors) > 0
} else := "the token matches no break-glass entry" if {
	count(break_glass_hits) == 0
} else := concat("", ["entry ", break_glass_list[j].id, " is invalid"]) if {
	some j in break_glass_hits
	j in break_glass_invalid
} else := concat("", ["entry ", break_glass_list[j].id, " is not issued to this caller"]) if {
	some j in break_glass_hits
	not break_glass_for_caller(break_glass_list[j])
} else := concat("", ["entry ", break_glass_list[j].id, " expired at ", break_glass_list[j].expires]) if {
	some j in break_glass_hits
}

# ── explanation ───────────────────────────────────────────────────────────────────────────────

ids_text(ids) := concat(", ", ids)

verdict_text(v) := concat("", ["allowed by rule(s) ", ids_text(v.decided_by)]) if {
	v.effect == "ALLOW"
} else := concat("", ["denied by DENY rule(s) ", ids_text(v.decided_by), overrides_text(v.overridden)]) if {
	v.effect == "DENY"
} else := "denied: no rule allows the call (default deny)" if {
	v.effect == "DEFAULT_DENY"
} else := concat("", ["denied: invalid input: ", concat("; ", sort(input_errors))]) if {
	v.effect == "INVALID_INPUT"
}

explanation_head := concat("", [
	"allowed by break-glass entry ", break_glass.id, " (", break_glass.justification, ")",
]) if {
	break_glass_grant
} else := concat("", [
	"rule set in dry-run: ", allowed_text(baseline_allow), " by the baseline policy; the set would have ",
	verdict_text(would),
]) if {
	set_dry_run
} else := verdict_text(base)

overrides_text(ids) := concat("", [" (overriding ALLOW ", ids_text(ids), ")"]) if {
	count(ids) > 0
} else := ""

allowed_text(true) := "allowed"

allowed_text(false) := "denied"

explanation_parts contains concat("", ["AUDIT rule(s) ", ids_text(audits), " would deny"]) if {
	audits := ids_with(enforced, "AUDIT")
	count(audits) > 0
}

explanation_parts contains concat("", ["dry-run rule(s) not enforced: ", ids_text(entries)]) if {
	count(dry_run_report) > 0
	entries := [concat("", [e.id, " (", e.effect, ")"]) | some e in dry_run_report]
}

explanation_parts contains concat("", [id, " denies: ", json.marshal(messages)]) if {
	some id, messages in custom_deny
}

explanation_parts contains concat("", ["break-glass refused: ", break_glass_rejected]) if {
	break_glass_rejected != null
}

explanation := concat("; ", array.concat([explanation_head], sort(explanation_parts)))

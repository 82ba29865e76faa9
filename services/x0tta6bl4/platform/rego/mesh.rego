# The entry point of every sidecar: the platform asks data.x0tta6bl4.mesh.decision for each RPC
# (x0tta6bl4/platform/authz.py) and allows the call only on decision.allow == true.
#
# A local static file, like authz.rego, the kv data and log_mask.rego: loaded before any bundle,
# so the mesh can start (consensus first) before the policy service exists. Three sources, in
# this order:
#   1. revocations (data.x0tta6bl4.revocations, the identity service's bundle): a revoked caller
#      is denied everything; a ban beats every rule, the baseline and break-glass.
#   2. the policy service's bundle (roots ["x0tta6bl4/policy"]: the rule engine
#      x0tta6bl4.policy.rules, the ruleset, custom modules): once data.x0tta6bl4.policy.ruleset
#      is an object, data.x0tta6bl4.policy.rules.decision decides; the baseline no longer does
#      (except as the enforced verdict of a whole-set dry-run, see rules.rego).
#      A ruleset without the engine (never so in a bundle of the policy service; only data
#      pushed by hand) is a broken deployment: denied, effect POLICY_ERROR.
#   3. no bundle yet: the static baseline, data.x0tta6bl4.authz.allow (undefined = false).
#
# decision: the same keys whichever source decided (those of rules.rego's decision, plus
# "source" and "revocation"):
#   {"allow": bool,
#    "effect": "REVOKED" | "POLICY_ERROR" | "BASELINE"            (sources 1, 2 broken, 3)
#              | "ALLOW" | "DENY" | "DEFAULT_DENY" | "BREAK_GLASS" | "BASELINE"
#              | "INVALID_INPUT"                                    (source 2, see rules.rego),
#    "source": "revocations" | "policy" | "baseline",
#    "decided_by": [ids] ([] outside the rules), "explanation": one line,
#    "revocation": {"reason", "until"} | null,
#    "overridden", "audit", "dry_run", "custom_deny", "would", "mode", "break_glass",
#    "break_glass_rejected", "input_errors", "ruleset_version": as in rules.rego; neutral
#    ([], {}, null, "enforce") outside the rules, except that a break-glass token presented to
#    source 1 or 3 is named in break_glass_rejected (break-glass use is always logged)}
# `allow` is the bare boolean (== decision.allow).
package x0tta6bl4.mesh

import rego.v1

import data.x0tta6bl4.authz

default allow := false

allow := decision.allow

policy_loaded if is_object(data.x0tta6bl4.policy.ruleset)

decision := revoked_decision if {
	authz.revoked
} else := object.union(rules_decision, {"source": "policy", "revocation": null}) if {
	policy_loaded
	rules_decision := data.x0tta6bl4.policy.rules.decision
} else := static_decision(
	false, "POLICY_ERROR", "policy",
	"denied: a policy rule set is loaded but not the rule engine (data.x0tta6bl4.policy.rules)",
	"no rule engine is loaded",
) if {
	policy_loaded
} else := static_decision(
	baseline_allow, "BASELINE", "baseline", baseline_explanation,
	"no policy rule set is loaded",
)

# ── revocations ───────────────────────────────────────────────────────────────────────────────

ban := data.x0tta6bl4.revocations[input.caller]

ban_reason := ban.reason if {
	is_string(ban.reason)
	ban.reason != ""
} else := "no reason given"

ban_until := ban.until if is_string(ban.until)

else := ""

ban_term := "" if {
	ban_until == ""
} else := concat("", [" until ", ban_until])

revoked_decision := object.union(
	static_decision(
		false, "REVOKED", "revocations",
		concat("", ["denied: caller ", input.caller, " is revoked", ban_term, ": ", ban_reason]),
		"the caller is revoked",
	),
	{"revocation": {"reason": ban_reason, "until": ban_until}},
)

# ── the baseline ──────────────────────────────────────────────────────────────────────────────

default baseline_allow := false

baseline_allow if authz.allow == true

baseline_explanation := "allowed by the baseline policy (no policy rule set loaded)" if {
	baseline_allow
} else := concat("", ["denied by the baseline policy (no policy rule set loaded): ", concat("; ", sort(authz.reasons))]) if {
	count(authz.reasons) > 0
} else := "denied by the baseline policy (no policy rule set loaded)"

# ── the decision's shape outside the rules ────────────────────────────────────────────────────

break_glass_presented if is_string(input.metadata["x0-break-glass"])

default break_glass_refusal(_) := null

break_glass_refusal(why) := why if break_glass_presented

static_decision(allowed, effect, source, explanation, break_glass_why) := {
	"allow": allowed,
	"effect": effect,
	"source": source,
	"decided_by": [],
	"explanation": explanation_with_break_glass(explanation, break_glass_refusal(break_glass_why)),
	"revocation": null,
	"overridden": [],
	"audit": [],
	"dry_run": [],
	"custom_deny": {},
	"would": {"allow": allowed, "effect": effect, "decided_by": [], "overridden": [], "audit": []},
	"mode": "enforce",
	"break_glass": null,
	"break_glass_rejected": break_glass_refusal(break_glass_why),
	"input_errors": [],
	"ruleset_version": null,
}

explanation_with_break_glass(text, null) := text

explanation_with_break_glass(text, why) := concat("", [text, "; break-glass refused: ", why]) if why != null

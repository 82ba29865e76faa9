package system.log_test

import rego.v1

import data.system.log

# OPA calls system.log.mask with the whole decision-log event as input.
event := {"input": {
	"caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
	"metadata": {"x0-break-glass": "bg-token-5f0c2d7e9a41b3c8d6e0f1a2b3c4d5e6", "x0-tenant": "t1"},
}}

test_break_glass_tokens_are_masked_in_decision_logs if {
	"/input/metadata/x0-break-glass" in log.mask with input as event
}

test_nothing_else_is_masked if {
	log.mask == {"/input/metadata/x0-break-glass"} with input as event
}

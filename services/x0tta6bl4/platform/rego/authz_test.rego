package x0tta6bl4.authz_test

import rego.v1

import data.x0tta6bl4.authz

call(caller, service, grpc_service) := {
	"caller": caller,
	"namespace": "local",
	"service": service,
	"grpc_service": grpc_service,
	"method": "M",
	"metadata": {},
	"time": "2026-11-27T10:00:00.000000Z",
}

sa(name) := concat("", ["spiffe://x0tta6bl4.mesh/ns/local/sa/", name])

test_members_may_ask_whoami if {
	every name in {"identity", "policy", "consensus", "sync", "healer", "ops", "operator"} {
		authz.allow with input as call(sa(name), "identity", "x0tta6bl4.platform.v1.DiagnosticsService")
	}
}

test_members_may_check_health if {
	authz.allow with input as call(sa("healer"), "sync", "grpc.health.v1.Health")
}

test_unknown_workload_is_denied_whoami if {
	not authz.allow with input as call(sa("intruder"), "identity", "x0tta6bl4.platform.v1.DiagnosticsService")
}

test_other_trust_domain_is_denied if {
	not authz.allow with input as call(
		"spiffe://evil.example/ns/local/sa/ops", "identity",
		"x0tta6bl4.platform.v1.DiagnosticsService",
	)
}

test_lookalike_trust_domain_is_denied if {
	not authz.allow with input as call(
		"spiffe://x0tta6bl4.mesh.evil/ns/local/sa/ops", "identity",
		"x0tta6bl4.platform.v1.DiagnosticsService",
	)
}

test_other_namespace_is_denied if {
	not authz.allow with input as call(
		"spiffe://x0tta6bl4.mesh/ns/prod/sa/ops", "identity",
		"x0tta6bl4.platform.v1.DiagnosticsService",
	)
}

test_malformed_ids_are_denied if {
	every id in {
		"", "spiffe://x0tta6bl4.mesh", "spiffe://x0tta6bl4.mesh/ns/local/sa/ops/extra",
		"spiffe://x0tta6bl4.mesh/sa/local/ns/ops", "https://x0tta6bl4.mesh/ns/local/sa/ops",
	} {
		not authz.allow with input as call(id, "identity", "x0tta6bl4.platform.v1.DiagnosticsService")
	}
}

test_only_consensus_peers_speak_raft if {
	authz.allow with input as call(sa("consensus"), "consensus", "x0tta6bl4.consensus.v1.RaftService")
	not authz.allow with input as call(sa("ops"), "consensus", "x0tta6bl4.consensus.v1.RaftService")
}

test_kv_grants if {
	authz.allow with input as call(sa("policy"), "consensus", "x0tta6bl4.consensus.v1.KVService")
	not authz.allow with input as call(sa("sync"), "consensus", "x0tta6bl4.consensus.v1.KVService")
}

test_grants_do_not_leak_across_services if {
	not authz.allow with input as call(sa("consensus"), "sync", "x0tta6bl4.consensus.v1.RaftService")
}

test_denial_reasons if {
	"caller is not allowed to call this gRPC service" in authz.reasons with input as call(sa("sync"), "consensus", "x0tta6bl4.consensus.v1.KVService")
	"caller is in another namespace" in authz.reasons with input as call("spiffe://x0tta6bl4.mesh/ns/prod/sa/ops", "identity", "x0tta6bl4.platform.v1.DiagnosticsService")
}

test_the_auditor_may_call_kv_but_not_change_the_cluster if {
	authz.allow with input as call(sa("auditor"), "consensus", "x0tta6bl4.consensus.v1.KVService")
	not authz.allow with input as call(sa("auditor"), "consensus", "x0tta6bl4.consensus.v1.ClusterService")
	not authz.allow with input as call(sa("auditor"), "sync", "x0tta6bl4.sync.v1.SyncService")
}

test_every_kv_caller_has_key_range_permissions if {
	every name in authz.grants.consensus["x0tta6bl4.consensus.v1.KVService"] {
		some grant in data.x0tta6bl4.kv.permissions
		some pattern in grant.callers
		glob.match(pattern, ["/"], sa(name))
	}
}

ops_banned := {"spiffe://x0tta6bl4.mesh/ns/local/sa/ops": {"reason": "stolen key", "until": ""}}

test_a_revoked_caller_is_denied_everything if {
	not authz.allow with input as call(sa("ops"), "identity", "x0tta6bl4.platform.v1.DiagnosticsService")
		with data.x0tta6bl4.revocations as ops_banned
	not authz.allow with input as call(sa("ops"), "consensus", "x0tta6bl4.consensus.v1.KVService")
		with data.x0tta6bl4.revocations as ops_banned
	"caller is revoked: stolen key" in authz.reasons with input as call(
		sa("ops"), "consensus",
		"x0tta6bl4.consensus.v1.KVService",
	)
		with data.x0tta6bl4.revocations as ops_banned
	authz.allow with input as call(sa("healer"), "consensus", "x0tta6bl4.consensus.v1.KVService")
		with data.x0tta6bl4.revocations as ops_banned
}

test_a_ban_ends_at_its_until_time if {
	bans := {"spiffe://x0tta6bl4.mesh/ns/local/sa/ops": {"reason": "drill", "until": "2026-11-27T10:00:00.500000Z"}}
	not authz.allow with input as call(sa("ops"), "consensus", "x0tta6bl4.consensus.v1.KVService")
		with data.x0tta6bl4.revocations as bans
	later := object.union(call(sa("ops"), "consensus", "x0tta6bl4.consensus.v1.KVService"), {"time": "2026-11-27T10:00:00.500000Z"})
	authz.allow with input as later with data.x0tta6bl4.revocations as bans
}

test_identity_admin_methods_are_the_operators if {
	admin := object.union(call(sa("operator"), "identity", "x0tta6bl4.identity.v1.IdentityService"), {"method": "ApplyWorkload"})
	authz.allow with input as admin
	not authz.allow with input as object.union(admin, {"caller": sa("healer")})
	validate := object.union(admin, {"caller": sa("healer"), "method": "ValidateCertificate"})
	authz.allow with input as validate
}

# Who may call what in the x0tta6bl4 mesh. Asked by every service's OPA sidecar for every RPC.
#
# input: {caller, namespace, service, grpc_service, method, metadata, time}
#   caller        SPIFFE ID from the client certificate (mTLS-authenticated)
#   namespace     the namespace of the service being called
#   service       the service being called (identity, policy, consensus, sync, healer, ops)
#   grpc_service  fully-qualified gRPC service name, e.g. x0tta6bl4.consensus.v1.KVService
#   method        the RPC method name
#
# Callers are identified by SPIFFE IDs of the form spiffe://x0tta6bl4.mesh/ns/<ns>/sa/<name>.
# A caller from another trust domain or another namespace is denied everything.
package x0tta6bl4.authz

import rego.v1

default allow := false

trust_domain := "x0tta6bl4.mesh"

# The suite's own workloads, plus "operator": the identity of a human's `x0` CLI, and
# "auditor": read-only access to the consensus store (its key-range permissions say so).
members := {"identity", "policy", "consensus", "sync", "healer", "ops", "operator", "auditor"}

# Parsed caller identity, defined only for a well-formed SPIFFE ID of our trust domain.
caller := {"namespace": parts[2], "name": parts[4]} if {
	prefix := concat("", ["spiffe://", trust_domain])
	startswith(input.caller, concat("", [prefix, "/"]))
	parts := split(substring(input.caller, count(prefix), -1), "/")
	count(parts) == 5
	parts[0] == ""
	parts[1] == "ns"
	parts[3] == "sa"
}

same_namespace if caller.namespace == input.namespace

# Every member may check health, use reflection and ask WhoAmI.
open_to_members := {
	"grpc.health.v1.Health",
	"grpc.reflection.v1alpha.ServerReflection",
	"grpc.reflection.v1.ServerReflection",
	"x0tta6bl4.platform.v1.DiagnosticsService",
}

# A revoked (banned) SPIFFE ID is denied everything, health and WhoAmI included. The identity
# service publishes the bans as a bundle (data.x0tta6bl4.revocations: id -> {reason, until});
# "until" is RFC 3339 UTC with microseconds like input.time, "" for a ban until lifted.
# Before the first bundle has loaded there is no ban to apply. mesh.rego reads it too
# (data.x0tta6bl4.authz.revoked, always a boolean): a ban beats every policy rule and break-glass.
default revoked := false

revoked if {
	ban := data.x0tta6bl4.revocations[input.caller]
	ban.until == ""
}

revoked if {
	ban := data.x0tta6bl4.revocations[input.caller]
	ban.until != ""
	input.time < ban.until
}

allow if {
	not revoked
	same_namespace
	caller.name in members
	input.grpc_service in open_to_members
}

# The service APIs: service -> gRPC service -> callers. Later issues extend this matrix.
grants := {
	"consensus": {
		# Which keys each may read or write: data.x0tta6bl4.kv.permissions (x0tta6bl4/kv/data.json).
		"x0tta6bl4.consensus.v1.KVService": {"policy", "ops", "healer", "identity", "operator", "auditor"},
		"x0tta6bl4.consensus.v1.ClusterService": {"ops", "healer", "operator"},
		"x0tta6bl4.consensus.v1.RaftService": {"consensus"},
	},
	"sync": {
		"x0tta6bl4.sync.v1.SyncService": {"healer", "ops", "policy", "identity", "operator"},
		"x0tta6bl4.sync.v1.ReplicationService": {"sync"},
	},
	# Workloads, revocations and reconcile passes are the operator's (and ops' runbooks');
	# every member may validate a certificate and read SPIRE's health.
	"identity": {"x0tta6bl4.identity.v1.IdentityService": {"operator", "ops"}},
}

identity_open_methods := {"ValidateCertificate", "ServerHealth", "GetWorkload", "ListWorkloads"}

allow if {
	not revoked
	same_namespace
	caller.name in grants[input.service][input.grpc_service]
}

allow if {
	not revoked
	same_namespace
	caller.name in members
	input.grpc_service == "x0tta6bl4.identity.v1.IdentityService"
	input.method in identity_open_methods
}

# Why a call was denied, for decision logs and debugging (`opa eval data.x0tta6bl4.authz.reasons`).
reasons contains "caller is not a SPIFFE ID of this trust domain" if not caller

reasons contains "caller is in another namespace" if {
	caller
	not same_namespace
}

reasons contains concat("", ["caller is revoked: ", data.x0tta6bl4.revocations[input.caller].reason]) if revoked

reasons contains "caller is not allowed to call this gRPC service" if {
	same_namespace
	not allow
}

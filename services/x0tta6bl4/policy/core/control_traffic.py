"""The suite's own control traffic: the calls every policy revision must keep allowed (pure).

Each :class:`ControlCall` is one (caller service account, called service, gRPC service,
method) the suite needs to work: consensus peers replicating Raft, sync replicas exchanging
deltas, every member probing health and asking WhoAmI, the services reading and writing their
consensus keys, the operator's admin APIs. The list is the static baseline's matrix
(platform/rego/authz.rego: ``open_to_members``, ``grants``, ``identity_open_methods``) spelled
out method by method from the protos (proto/x0tta6bl4/*/v1); tests/unit/policy/
test_control_traffic.py keeps the three in step. Validation evaluates every call against a
candidate's mesh decision (policy/validation.py) and refuses a candidate that denies one,
unless forced.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

# platform/config.py's TRUST_DOMAIN and spiffe_id_for, kept here so the core imports no
# platform (tests/unit/policy/test_control_traffic.py checks that they agree).
TRUST_DOMAIN = "x0tta6bl4.mesh"

WORKLOADS = ("identity", "policy", "consensus", "sync", "healer", "ops")
# authz.rego's members: the workloads, the operator's x0 CLI and the read-only auditor.
MEMBERS = (*WORKLOADS, "operator", "auditor")

HEALTH = "grpc.health.v1.Health"
DIAGNOSTICS = "x0tta6bl4.platform.v1.DiagnosticsService"
KV = "x0tta6bl4.consensus.v1.KVService"
CLUSTER = "x0tta6bl4.consensus.v1.ClusterService"
RAFT = "x0tta6bl4.consensus.v1.RaftService"
SYNC = "x0tta6bl4.sync.v1.SyncService"
REPLICATION = "x0tta6bl4.sync.v1.ReplicationService"
IDENTITY = "x0tta6bl4.identity.v1.IdentityService"

KV_READS = ("Get", "Range", "Watch")
KV_ALL = (*KV_READS, "Put", "Delete", "Txn", "LeaseGrant", "LeaseKeepAlive", "LeaseRevoke")
CLUSTER_ALL = ("Status", "MemberAdd", "MemberPromote", "MemberRemove", "TransferLeader")
RAFT_ALL = ("Send", "InstallSnapshot", "Forward")
SYNC_ALL = ("Update", "Get", "Watch", "Stats")
REPLICATION_ALL = ("PushDeltas", "ExchangeDigest", "Acknowledge", "FetchSnapshot", "Join", "Leave")
IDENTITY_OPEN = ("ValidateCertificate", "ServerHealth", "GetWorkload", "ListWorkloads")
IDENTITY_ALL = (
    "ApplyWorkload", "DeleteWorkload", "GetWorkload", "ListWorkloads", "Reconcile",
    "ServerHealth", "ValidateCertificate", "RevokeIdentity", "LiftRevocation",
    "ListRevocations", "Watch",
)  # fmt: skip


@dataclass(frozen=True, slots=True, order=True)
class ControlCall:
    caller: str  # service account: spiffe://<td>/ns/<namespace>/sa/<caller>
    service: str  # the called service
    grpc_service: str
    method: str
    why: str = ""

    @property
    def full_method(self) -> str:
        return f"{self.grpc_service}/{self.method}"

    def __str__(self) -> str:
        return f"{self.caller} -> {self.service} {self.full_method}"

    def input(
        self, *, namespace: str, at: dt.datetime, trust_domain: str = TRUST_DOMAIN
    ) -> dict[str, Any]:
        """The sidecar's authz input (platform/authz.py) for this call at ``at``."""
        if at.tzinfo is None:
            raise ValueError("at must be an aware datetime")
        return {
            "caller": f"spiffe://{trust_domain}/ns/{namespace}/sa/{self.caller}",
            "namespace": namespace,
            "service": self.service,
            "grpc_service": self.grpc_service,
            "method": self.method,
            "metadata": {},
            "source_address": "",
            "time": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


def _calls(
    callers: tuple[str, ...], service: str, grpc_service: str, methods: tuple[str, ...], why: str
) -> list[ControlCall]:
    return [ControlCall(c, service, grpc_service, m, why) for c in callers for m in methods]


def _build() -> tuple[ControlCall, ...]:
    calls: list[ControlCall] = []
    for service in WORKLOADS:  # open_to_members, on every service
        calls += _calls(MEMBERS, service, HEALTH, ("Check",), "health probes and readiness")
        calls += _calls(MEMBERS, service, DIAGNOSTICS, ("WhoAmI",), "who-am-I diagnostics")
    calls += _calls(("consensus",), "consensus", RAFT, RAFT_ALL, "Raft between consensus peers")
    calls += _calls(
        ("identity", "policy", "healer", "ops", "operator"), "consensus", KV, KV_ALL,
        "state in the consensus store (revisions, registry, runbooks, leases)",
    )  # fmt: skip
    calls += _calls(("auditor",), "consensus", KV, KV_READS, "read-only audit of the store")
    calls += _calls(
        ("ops", "healer", "operator"), "consensus", CLUSTER, CLUSTER_ALL,
        "membership and leader transfer",
    )  # fmt: skip
    calls += _calls(("sync",), "sync", REPLICATION, REPLICATION_ALL, "CRDT replication")
    calls += _calls(
        ("healer", "ops", "policy", "identity", "operator"), "sync", SYNC, SYNC_ALL,
        "replicated AP data",
    )  # fmt: skip
    calls += _calls(
        ("operator", "ops"), "identity", IDENTITY, IDENTITY_ALL,
        "workloads, revocations and reconcile passes",
    )  # fmt: skip
    others = tuple(m for m in MEMBERS if m not in ("operator", "ops"))
    calls += _calls(
        others, "identity", IDENTITY, IDENTITY_OPEN, "certificate validation and SPIRE health"
    )
    return tuple(calls)


CONTROL_TRAFFIC: tuple[ControlCall, ...] = _build()


def control_inputs(
    at: dt.datetime, *, namespace: str = "local", calls: tuple[ControlCall, ...] = CONTROL_TRAFFIC
) -> list[dict[str, Any]]:
    """The authz inputs of ``calls`` at ``at``, in order."""
    return [call.input(namespace=namespace, at=at) for call in calls]

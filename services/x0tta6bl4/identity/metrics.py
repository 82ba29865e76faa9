"""Prometheus metrics of the identity service (the SPIRE health ones are in spire_health)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENTRIES_DESIRED = Gauge(
    "x0tta6bl4_identity_entries_desired", "Workloads that should have a SPIRE entry (not banned)."
)
ENTRIES_ACTUAL = Gauge(
    "x0tta6bl4_identity_entries_actual", "SPIRE entries owned by the identity service."
)
ENTRIES_CHANGED = Counter(
    "x0tta6bl4_identity_entries_changed",
    "SPIRE entries the reconciler created, updated (drift repaired) or deleted.",
    ["action"],
)
RECONCILE_ERRORS = Counter(
    "x0tta6bl4_identity_reconcile_errors",
    "Per-entry failures and failed passes of the reconciler, by status code.",
    ["code"],
)
RECONCILE_SECONDS = Histogram(
    "x0tta6bl4_identity_reconcile_duration_seconds",
    "Time of one reconcile pass.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RECONCILER_ACTIVE = Gauge(
    "x0tta6bl4_identity_reconciler_active", "1 on the replica that holds the reconciler lease."
)
VALIDATIONS = Counter(
    "x0tta6bl4_identity_validations",
    "ValidateCertificate verdicts, by policy and result.",
    ["policy", "valid"],
)
REVOCATIONS_IN_FORCE = Gauge(
    "x0tta6bl4_identity_revocations_in_force", "Banned SPIFFE IDs, as last published."
)

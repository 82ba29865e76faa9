"""The identity service's pure core: SPIFFE IDs, workloads, the reconcile plan, revocations."""

"""Who registers the local suite's workloads in SPIRE, and how the chicken-and-egg is broken.

The identity service keeps SPIRE's entries in line with its registry, but it needs an SVID
itself, and its registry lives in consensus, which needs SVIDs too. So ``x0 up`` makes the
entries of :data:`BOOTSTRAP` (identity, consensus and the operator's CLI) with the
``spire-server`` CLI, as a cluster's installer would; they are not identity's (its entries
carry IDs it derives from the SPIFFE ID) and it leaves them alone. Once consensus and
identity answer, every other workload is applied through identity's API as the operator,
and identity's reconciler creates their entries; those services start after that.

Every agent of one service is known by one node alias (``spiffe://<td>/agent/<service>``),
so one entry per SPIFFE ID, parented on the alias, serves all replicas of the service.
"""

from __future__ import annotations

import os

from x0tta6bl4.devstack.plan import OPERATOR, SuitePlan
from x0tta6bl4.devstack.spire import Entry, SpireServer
from x0tta6bl4.identity.v1 import identity_pb2 as pb

BOOTSTRAP = frozenset({"identity", "consensus", OPERATOR})


def _selectors() -> tuple[str, ...]:
    return (f"unix:uid:{os.getuid()}",)


def is_bootstrap(plan: SuitePlan, workload: str) -> bool:
    return plan.service_of(workload) in BOOTSTRAP


def bootstrap_entry(plan: SuitePlan, server: SpireServer, workload: str) -> Entry:
    """The CLI-made entry of a :data:`BOOTSTRAP` workload (its replicas share it)."""
    return Entry(
        spiffe_id=plan.spiffe_id(workload),
        parent_id=server.agent_alias(plan.agent_alias_name(workload)),
        selectors=_selectors(),
        dns_names=plan.dns_names(workload),
        x509_svid_ttl_s=plan.svid_ttl_s,
    )


def applied_workloads(plan: SuitePlan, server: SpireServer) -> list[pb.Workload]:
    """What ``x0 up`` applies through the identity service: one workload per service outside
    :data:`BOOTSTRAP`, parented on that service's agent alias."""
    seen: dict[str, pb.Workload] = {}
    for workload in plan.workloads:
        if is_bootstrap(plan, workload):
            continue
        spiffe_id = plan.spiffe_id(workload)
        seen.setdefault(
            spiffe_id,
            pb.Workload(
                spiffe_id=spiffe_id,
                parent_id=server.agent_alias(plan.agent_alias_name(workload)),
                selectors=[
                    pb.Selector(type=t, value=v)
                    for t, _, v in (s.partition(":") for s in _selectors())
                ],
                x509_svid_ttl_seconds=plan.svid_ttl_s,
                dns_names=list(plan.dns_names(workload)),
            ),
        )
    return list(seen.values())


async def register_through_identity(plan: SuitePlan, server: SpireServer) -> tuple[int, int]:
    """Apply :func:`applied_workloads` as the operator and wait for the reconcile pass that
    creates their entries; (workloads applied, of which changed)."""
    from x0tta6bl4.devstack.operator import identity_client

    workloads = applied_workloads(plan, server)
    changed = 0
    async with identity_client(plan) as identity:
        for workload in workloads:
            changed += (await identity.apply(workload)).changed
        report = await identity.reconcile()
    if report.errors:
        raise RuntimeError("identity could not register: " + "; ".join(report.errors))
    return len(workloads), changed

"""What a reconcile pass must change in SPIRE to make its entries match the workloads (pure).

The identity service owns only the SPIRE entries it created. It gives each one an entry ID
derived from the workload's SPIFFE ID (:func:`entry_id`, prefix ``x0tta6bl4.``), so ownership
needs no side table, a pass that was cut off and runs again creates nothing twice (SPIRE
answers ALREADY_EXISTS for the same ID), and an entry made by anybody else — the bootstrap
script, ``spire-server entry create`` — is never touched. Level-triggered: the plan depends
only on the desired and the actual state, never on what the last pass did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from x0tta6bl4.identity.core.workloads import Workload

OWNED_PREFIX = "x0tta6bl4."


def entry_id(spiffe_id: str) -> str:
    """The SPIRE entry ID of the workload with this SPIFFE ID."""
    return OWNED_PREFIX + hashlib.sha256(spiffe_id.encode()).hexdigest()[:40]


def is_owned(entry: str) -> bool:
    return entry.startswith(OWNED_PREFIX)


def same_entry(a: Workload, b: Workload) -> bool:
    """Whether SPIRE would see the same entry (selector order and DNS-name case aside)."""
    return (
        a.spiffe_id == b.spiffe_id
        and a.parent_id == b.parent_id
        and sorted(set(a.selectors)) == sorted(set(b.selectors))
        and a.x509_svid_ttl_s == b.x509_svid_ttl_s
        and [d.lower() for d in a.dns_names] == [d.lower() for d in b.dns_names]
        and a.hint == b.hint
        and a.admin == b.admin
        and a.downstream == b.downstream
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """Entries to create and update as ``(entry id, workload)``, to delete as
    ``(entry id, spiffe id)``; each list in SPIFFE ID order."""

    create: tuple[tuple[str, Workload], ...] = ()
    update: tuple[tuple[str, Workload], ...] = ()
    delete: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan(
    desired: Iterable[Workload],
    banned: Collection[str],
    actual: Iterable[tuple[str, Workload]],
) -> Plan:
    """The changes that make the owned entries in ``actual`` exactly the ``desired`` workloads
    whose SPIFFE ID is not ``banned``; entries not owned are left alone."""
    want = {entry_id(w.spiffe_id): w for w in desired if w.spiffe_id not in banned}
    have = {eid: w for eid, w in actual if is_owned(eid)}
    create = [(eid, w) for eid, w in want.items() if eid not in have]
    update = [(eid, w) for eid, w in want.items() if eid in have and not same_entry(have[eid], w)]
    delete = [(eid, w.spiffe_id) for eid, w in have.items() if eid not in want]
    return Plan(
        tuple(sorted(create, key=lambda t: t[1].spiffe_id)),
        tuple(sorted(update, key=lambda t: t[1].spiffe_id)),
        tuple(sorted(delete, key=lambda t: t[1])),
    )

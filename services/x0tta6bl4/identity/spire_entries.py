"""The reconciler's view of SPIRE's entries (:class:`~.reconciler.EntryApi`) on the SPIRE
Server API client: entries as ``(entry id, Workload)``, results as :class:`Outcome`."""

from __future__ import annotations

from collections.abc import Sequence

from x0tta6bl4.identity.core.workloads import Workload
from x0tta6bl4.identity.reconciler import Outcome
from x0tta6bl4.identity.spire_api import SpireApi
from x0tta6bl4.identity.spire_types import SpireEntry


def _workload(e: SpireEntry) -> Workload:
    return Workload(
        spiffe_id=e.spiffe_id,
        parent_id=e.parent_id,
        selectors=tuple(sorted(e.selectors)),
        x509_svid_ttl_s=e.x509_svid_ttl_s,
        dns_names=tuple(e.dns_names),
        hint=e.hint,
        admin=e.admin,
        downstream=e.downstream,
    )


def _entry(entry_id: str, w: Workload) -> SpireEntry:
    return SpireEntry(
        id=entry_id,
        spiffe_id=w.spiffe_id,
        parent_id=w.parent_id,
        selectors=w.selectors,
        x509_svid_ttl_s=w.x509_svid_ttl_s,
        dns_names=w.dns_names,
        hint=w.hint,
        admin=w.admin,
        downstream=w.downstream,
    )


class SpireEntries:
    def __init__(self, api: SpireApi) -> None:
        self._api = api

    async def list_entries(self) -> list[tuple[str, Workload]]:
        return [(e.id, _workload(e)) for e in await self._api.list_entries()]

    async def create(self, entries: Sequence[tuple[str, Workload]]) -> list[Outcome]:
        results = await self._api.create_entries([_entry(i, w) for i, w in entries])
        out = []
        for (entry_id, _), r in zip(entries, results, strict=True):
            existing = (r.entry.id, _workload(r.entry)) if r.entry is not None else None
            out.append(Outcome(entry_id, r.code, r.message, existing))
        return out

    async def update(self, entries: Sequence[tuple[str, Workload]]) -> list[Outcome]:
        results = await self._api.update_entries([_entry(i, w) for i, w in entries])
        return [
            Outcome(entry_id, r.code, r.message)
            for (entry_id, _), r in zip(entries, results, strict=True)
        ]

    async def delete(self, entry_ids: Sequence[str]) -> list[Outcome]:
        results = await self._api.delete_entries(entry_ids)
        return [Outcome(r.id, r.code, r.message) for r in results]

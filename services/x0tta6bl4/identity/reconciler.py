"""The reconciler: keeps SPIRE's entries equal to the workloads in the consensus store.

Level-triggered, like a Kubernetes controller: each pass reads the whole desired state (the
workloads and the bans in force) and SPIRE's entries, asks the pure planner what differs
(:mod:`.core.reconcile_plan`) and applies that in batches. Passes run at start, after every
workload or revocation change (a watch on the store; changes that arrive during a pass
coalesce into one more pass) and every ``interval_s``, so an entry deleted or edited behind
the service's back with ``spire-server entry delete/update`` is repaired by the next pass.

Only the replica holding the single-actor lease ``/x0/identity/leader/reconciler`` runs passes.
SPIRE cannot check a fencing token, so a holder checks that its tenure still stands before
each batch; a paused old holder can at worst send one batch late, and since the plan depends
only on the state and entry ids are derived from SPIFFE IDs, the next pass undoes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import structlog

from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.clients.single_actor import SingleActor, Tenure
from x0tta6bl4.identity import metrics
from x0tta6bl4.identity.core.reconcile_plan import is_owned, plan, same_entry
from x0tta6bl4.identity.core.revocations import in_force
from x0tta6bl4.identity.core.workloads import Workload
from x0tta6bl4.identity.registry import Registry
from x0tta6bl4.platform.errors import Unavailable

log = structlog.get_logger(__name__)

BATCH = 50
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What SPIRE said about one entry of a batch."""

    entry_id: str
    code: str  # "OK", "ALREADY_EXISTS", "NOT_FOUND", ...
    message: str = ""
    existing: tuple[str, Workload] | None = None  # for ALREADY_EXISTS: the entry there


class EntryApi(Protocol):
    """SPIRE's registration entries as the reconciler needs them (see spire_entries)."""

    async def list_entries(self) -> list[tuple[str, Workload]]: ...

    async def create(self, entries: Sequence[tuple[str, Workload]]) -> list[Outcome]: ...

    async def update(self, entries: Sequence[tuple[str, Workload]]) -> list[Outcome]: ...

    async def delete(self, entry_ids: Sequence[str]) -> list[Outcome]: ...


@dataclass
class Report:
    desired: int = 0
    actual: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    revision: int = 0


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]


class Reconciler:
    def __init__(
        self,
        registry: Registry,
        spire: EntryApi,
        actor: SingleActor,
        *,
        interval_s: float,
    ) -> None:
        self._registry = registry
        self._spire = spire
        self._actor = actor
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.tenure: Tenure | None = None
        self.last: Report | None = None

    async def holder(self) -> str | None:
        """Who holds the reconciler lease now."""
        return await self._actor.holder_now()

    def poke(self) -> None:
        """Ask for a pass soon (changes during a pass coalesce into one more)."""
        self._wake.set()

    def _still_leading(self) -> None:
        if self.tenure is None or self.tenure.lost.is_set():
            raise Unavailable("lost the reconciler lease during the pass")

    async def pass_once(self) -> Report:
        """One full pass (only while holding the lease)."""
        async with self._lock:
            started = time.perf_counter()
            report = Report()
            try:
                await self._pass(report)
            except (ClientError, Unavailable) as err:
                metrics.RECONCILE_ERRORS.labels(
                    err.code.name if isinstance(err, ClientError) else "UNAVAILABLE"
                ).inc()
                raise
            finally:
                report.duration_s = time.perf_counter() - started
                metrics.RECONCILE_SECONDS.observe(report.duration_s)
            self.last = report
            log.info(
                "reconciled",
                desired=report.desired,
                actual=report.actual,
                created=len(report.created),
                updated=len(report.updated),
                deleted=len(report.deleted),
                errors=len(report.errors),
                seconds=round(report.duration_s, 3),
            )
            return report

    async def _pass(self, report: Report) -> None:
        self._still_leading()
        records, report.revision = await self._registry.all()
        banned = {r.spiffe_id for r in in_force(await self._registry.revocations(), time.time())}
        desired = [r.workload for r in records]
        actual = await self._spire.list_entries()
        owned = {eid: w for eid, w in actual if is_owned(eid)}
        report.desired = sum(1 for w in desired if w.spiffe_id not in banned)
        report.actual = len(owned)
        metrics.ENTRIES_DESIRED.set(report.desired)
        metrics.ENTRIES_ACTUAL.set(report.actual)
        todo = plan(desired, banned, actual)
        by_id = {eid: w for eid, w in (*todo.create, *todo.update)}
        retry_as_update: list[tuple[str, Workload]] = []
        for batch in _chunks(todo.create):
            self._still_leading()
            for out in await self._spire.create(batch):
                w = by_id[out.entry_id]
                if out.code == "OK":
                    report.created.append(w.spiffe_id)
                elif out.code == "ALREADY_EXISTS" and out.existing is None:
                    # our id is taken by an entry whose SPIFFE ID, parent or selectors were
                    # edited behind our back (SPIRE returns no entry then): repair it
                    retry_as_update.append((out.entry_id, w))
                elif out.code == "ALREADY_EXISTS" and out.existing is not None:
                    eid, there = out.existing
                    if eid != out.entry_id:
                        self._error(
                            report,
                            w.spiffe_id,
                            out.code,
                            f"registered by entry {eid}, which identity does not own; left alone",
                        )
                    elif not same_entry(there, w):
                        # ours, made by a pass that was cut off (or listed before it landed)
                        retry_as_update.append((out.entry_id, w))
                else:
                    self._error(report, w.spiffe_id, out.code, out.message)
        for batch in _chunks([*todo.update, *retry_as_update]):
            self._still_leading()
            for out in await self._spire.update(batch):
                w = by_id[out.entry_id]
                if out.code == "OK":
                    report.updated.append(w.spiffe_id)
                else:
                    self._error(report, w.spiffe_id, out.code, out.message)
        names = dict(todo.delete)
        for ids in _chunks([eid for eid, _ in todo.delete]):
            self._still_leading()
            for out in await self._spire.delete(ids):
                if out.code in ("OK", "NOT_FOUND"):
                    report.deleted.append(names[out.entry_id])
                else:
                    self._error(report, names[out.entry_id], out.code, out.message)
        for action, done in (
            ("create", report.created),
            ("update", report.updated),
            ("delete", report.deleted),
        ):
            if done:
                metrics.ENTRIES_CHANGED.labels(action).inc(len(done))

    @staticmethod
    def _error(report: Report, spiffe_id: str, code: str, message: str) -> None:
        metrics.RECONCILE_ERRORS.labels(code).inc()
        report.errors.append(f"{spiffe_id}: {code}: {message}")

    async def _watch_changes(self) -> None:
        async def workloads() -> None:
            async for _ in self._registry.watch():
                self.poke()

        async def revocations() -> None:
            async for _ in self._registry.watch_revocations():
                self.poke()

        await asyncio.gather(workloads(), revocations())

    async def run(self) -> None:
        """Contend for the lease; while holding it, pass at start, on change, every interval."""
        while True:
            tenure = await self._actor.acquire()
            self.tenure = tenure
            metrics.RECONCILER_ACTIVE.set(1)
            watcher = asyncio.create_task(self._watch_changes())
            try:
                self.poke()
                while not tenure.lost.is_set():
                    lost = asyncio.ensure_future(tenure.lost.wait())
                    woken = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait(
                        {lost, woken},
                        timeout=self._interval_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    lost.cancel()
                    woken.cancel()
                    if tenure.lost.is_set():
                        break
                    self._wake.clear()
                    try:
                        await self.pass_once()
                    except (ClientError, Unavailable) as err:
                        log.warning("reconcile_failed", error=str(err))
            finally:
                watcher.cancel()
                metrics.RECONCILER_ACTIVE.set(0)
                self.tenure = None
            log.warning("reconciler_lease_lost")

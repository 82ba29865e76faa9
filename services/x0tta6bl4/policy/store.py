"""The policy revisions, kept in the consensus store as versioned documents.

One document, ``mesh`` (the suite's policy set), under the ``policy`` owner: every revision is
immutable (content hash, parent, author, message, time) and the active pointer moves only by
compare-and-set (:mod:`x0tta6bl4.clients.versions`). A revision's content is the policy set in
its canonical form (:func:`~x0tta6bl4.policy.core.policy_set.canonical_bytes`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.errors import Conflict
from x0tta6bl4.clients.versions import Documents, Revision
from x0tta6bl4.policy.core.policy_set import (
    PolicySet,
    bundle_revision,
    canonical_bytes,
    from_canonical,
    parse_policy_set,
)

DOCUMENT = "mesh"
OWNER = "policy"


@dataclass(frozen=True, slots=True)
class PolicyRevision:
    revision: Revision
    policy_set: PolicySet

    @property
    def number(self) -> int:
        return self.revision.number

    @property
    def bundle_revision(self) -> str:
        return bundle_revision(self.revision.number, self.revision.sha256)


def baseline_policy_set() -> PolicySet:
    """The suite's baseline (the static authz matrix as rules), revision 1 of a new suite."""
    text = (resources.files("x0tta6bl4.policy") / "baseline.yaml").read_bytes()
    return parse_policy_set(text)


class PolicyStore:
    def __init__(self, client: ConsensusClient, own_spiffe_id: str) -> None:
        self._docs = Documents(client, OWNER, own_spiffe_id)

    @staticmethod
    def _wrap(revision: Revision) -> PolicyRevision:
        return PolicyRevision(revision, from_canonical(revision.content))

    async def propose(self, policy_set: PolicySet, message: str, author: str) -> PolicyRevision:
        revision = await self._docs.propose(
            DOCUMENT, canonical_bytes(policy_set), message, author=author
        )
        return PolicyRevision(revision, policy_set)

    async def get(self, number: int) -> PolicyRevision:
        return self._wrap(await self._docs.get(DOCUMENT, number))

    async def active_number(self) -> int:
        return await self._docs.current_number(DOCUMENT)

    async def active(self) -> PolicyRevision | None:
        revision = await self._docs.current(DOCUMENT)
        return self._wrap(revision) if revision else None

    async def activate(self, number: int, *, expected: int) -> PolicyRevision:
        return self._wrap(await self._docs.activate(DOCUMENT, number, expected=expected))

    async def rollback(self, to: int, *, expected: int, author: str) -> PolicyRevision:
        return self._wrap(await self._docs.rollback(DOCUMENT, to, expected=expected, author=author))

    async def newest(self, *, below: int = 0, limit: int = 50) -> list[PolicyRevision]:
        return [self._wrap(r) for r in await self._docs.newest(DOCUMENT, below=below, limit=limit)]

    async def watch_active(self) -> AsyncIterator[int]:
        async for number in self._docs.watch(DOCUMENT):
            yield number

    async def bootstrap(self, author: str) -> PolicyRevision | None:
        """Revision 1 = the baseline, active, on a store that has no revision yet (``None``
        if there is one, or another replica bootstrapped first)."""
        if await self._docs.head(DOCUMENT) > 0:
            return None
        first = await self.propose(baseline_policy_set(), "baseline (bootstrap)", author)
        try:
            return await self.activate(first.number, expected=0)
        except Conflict:
            return None

"""The desired state in the consensus store: workloads and revocations (the adapter).

Keys (the identity service's own prefix, which only it may write)::

    /x0/identity/workloads/<spiffe id, '/' as '%2F'>    a workload record (JSON)
    /x0/identity/revocations/<spiffe id, '/' as '%2F'>  a revocation (JSON)

SPIFFE IDs never contain ``%`` (the spec forbids percent-encoding), so the key is a one-to-one
name of the ID. Every change is a compare-and-set transaction on the key's revision: a change
is never lost to a concurrent one, and ``expected_revision`` gives callers the same guarantee.
Each record carries the author's SPIFFE ID; the store's revision is its version.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from x0tta6bl4.clients import keys
from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import (
    EventType,
    KeyValue,
    create_revision_is,
    delete_op,
    mod_revision_is,
    put_op,
)
from x0tta6bl4.identity.core import revocations as rev
from x0tta6bl4.identity.core.revocations import Revocation
from x0tta6bl4.identity.core.workloads import (
    Workload,
    WorkloadRecord,
    decode_record,
    encode_record,
)
from x0tta6bl4.platform.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable

WORKLOADS = keys.prefix("identity", "workloads")
REVOCATIONS = keys.prefix("identity", "revocations")
MAX_RACES = 8
READ_PAGE = 1000  # keys per Range when reading every workload


MAX_NAME_BYTES = 1024  # of an ID in a key ('/' counted as 3): well under the store's key limit


def _name(spiffe_id: str) -> str:
    return spiffe_id.replace("/", "%2F")


def check_storable(field: str, spiffe_id: str) -> str:
    """``spiffe_id`` if it fits in a key of the store; InvalidArgument naming ``field``."""
    size = len(_name(spiffe_id).encode())
    if size > MAX_NAME_BYTES:
        raise InvalidArgument(
            field,
            f"is too long to store: {size} bytes with each '/' counted as 3, at most "
            f"{MAX_NAME_BYTES}",
        )
    return spiffe_id


def workload_key(spiffe_id: str) -> bytes:
    return WORKLOADS + _name(spiffe_id).encode()


def revocation_key(spiffe_id: str) -> bytes:
    return REVOCATIONS + _name(spiffe_id).encode()


def _record(kv: KeyValue) -> WorkloadRecord:
    return decode_record(kv.value, kv.mod_revision, kv.create_revision)


def _records(kvs: Sequence[KeyValue]) -> list[WorkloadRecord]:
    """The workload records among ``kvs``; values that are not one are left out."""
    out = []
    for kv in kvs:
        try:
            out.append(_record(kv))
        except ValueError:
            continue
    return out


@dataclass(frozen=True, slots=True)
class Change:
    """One workload change from :meth:`Registry.watch`."""

    deleted: bool
    spiffe_id: str
    record: WorkloadRecord | None  # None for a deletion
    revision: int


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[WorkloadRecord, ...]
    next_token: str
    revision: int


class Registry:
    """Workloads and revocations on a :class:`ConsensusClient` of the identity service."""

    def __init__(self, kv: ConsensusClient) -> None:
        self._kv = kv

    # -- workloads --------------------------------------------------------------------------

    async def get(self, spiffe_id: str) -> WorkloadRecord | None:
        kv = await self._kv.get(workload_key(spiffe_id))
        return None if kv is None else _record(kv)

    async def apply(
        self, workload: Workload, *, expected_revision: int, author: str
    ) -> tuple[WorkloadRecord, bool]:
        """Store ``workload`` (already validated); ``(record, changed)``."""
        key = workload_key(workload.spiffe_id)
        for _ in range(MAX_RACES):
            current = await self._kv.get(key)
            _check_expected(current, expected_revision)
            if current is not None:
                stored = _record(current)
                if stored.workload == workload:
                    return stored, False
            now = time.time()
            compare = (
                create_revision_is(key, "=", 0)
                if current is None
                else mod_revision_is(key, "=", current.mod_revision)
            )
            done = await self._kv.txn(
                [compare], [put_op(key, encode_record(workload, author, now))]
            )
            if done.succeeded:
                created = done.revision if current is None else current.create_revision
                return WorkloadRecord(workload, done.revision, created, author, now), True
            if expected_revision != 0:
                raise FailedPrecondition(
                    f"workload {workload.spiffe_id} changed concurrently; read it and retry"
                )
        raise Unavailable(f"workload {workload.spiffe_id}: {MAX_RACES} concurrent changes won")

    async def delete(self, spiffe_id: str, *, expected_revision: int) -> int:
        """Remove the workload; the revision of the deletion."""
        key = workload_key(spiffe_id)
        for _ in range(MAX_RACES):
            current = await self._kv.get(key)
            if current is None:
                raise NotFound(f"no workload {spiffe_id}")
            _check_expected(current, expected_revision)
            done = await self._kv.txn(
                [mod_revision_is(key, "=", current.mod_revision)], [delete_op(key)]
            )
            if done.succeeded:
                return done.revision
        raise Unavailable(f"workload {spiffe_id}: {MAX_RACES} concurrent changes won")

    async def all(self, *, revision: int = 0) -> tuple[list[WorkloadRecord], int]:
        """Every workload (SPIFFE ID order) at ``revision`` (0 = now), and that revision, read
        in pages (any number of workloads, no response over gRPC's message limit). A value
        that is not a workload record (written behind the service's back) is left out."""
        records: list[WorkloadRecord] = []
        at = revision
        async for page in self._kv.range_pages(WORKLOADS, page_size=READ_PAGE, revision=revision):
            at = at or page.revision
            records += _records(page.kvs)
        records.sort(key=lambda r: r.workload.spiffe_id)
        return records, at

    async def page(self, *, prefix: str, size: int, token: str) -> Page:
        """One page of workloads whose ID starts with ``prefix`` (in key order), every page of
        a listing read at the first page's revision; reads only that page from the store."""
        revision, after = _parse_token(token)
        start = workload_key(after) + b"\x00" if after else b""
        result = await self._kv.range(
            workload_key(prefix), limit=size, revision=revision, start_key=start
        )
        at = revision or result.revision
        last = (
            result.kvs[-1].key[len(WORKLOADS) :].decode().replace("%2F", "/") if result.kvs else ""
        )
        next_token = _token(at, last) if result.more and last else ""
        return Page(tuple(_records(result.kvs)), next_token, at)

    async def watch(self, start_revision: int = 0) -> AsyncIterator[Change]:
        async for event in self._kv.watch(WORKLOADS, prefix=True, start_revision=start_revision):
            name = event.kv.key[len(WORKLOADS) :].decode().replace("%2F", "/")
            if event.type is EventType.DELETE:
                yield Change(True, name, None, event.kv.mod_revision)
                continue
            try:
                record = _record(event.kv)
            except ValueError:
                continue
            yield Change(False, name, record, event.kv.mod_revision)

    # -- revocations ------------------------------------------------------------------------

    async def revocations(self) -> list[Revocation]:
        result = await self._kv.range(REVOCATIONS)
        found = []
        for kv in result.kvs:
            try:
                found.append(rev.decode(kv.value, kv.mod_revision))
            except ValueError:
                continue
        return sorted(found, key=lambda r: r.spiffe_id)

    async def revoke(self, revocation: Revocation) -> Revocation:
        """Store (or replace) the revocation of its SPIFFE ID; the stored revocation."""
        result = await self._kv.put(revocation_key(revocation.spiffe_id), rev.encode(revocation))
        return Revocation(
            revocation.spiffe_id,
            revocation.reason,
            revocation.author,
            revocation.revoked_at,
            revocation.until,
            result.revision,
        )

    async def lift(self, spiffe_id: str) -> int:
        result = await self._kv.delete(revocation_key(spiffe_id))
        if result.deleted == 0:
            raise NotFound(f"{spiffe_id} is not revoked")
        return result.revision

    async def watch_revocations(self, start_revision: int = 0) -> AsyncIterator[int]:
        """The revision of every change to the revocations."""
        async for event in self._kv.watch(REVOCATIONS, prefix=True, start_revision=start_revision):
            yield event.kv.mod_revision


def _check_expected(current: KeyValue | None, expected: int) -> None:
    if expected == -1 and current is not None:
        raise FailedPrecondition(
            f"expected_revision: -1 creates only, but the workload exists at revision "
            f"{current.mod_revision}"
        )
    if expected > 0:
        have = 0 if current is None else current.mod_revision
        if have != expected:
            raise FailedPrecondition(
                f"expected_revision: the workload is at revision {have}, not {expected}"
            )


def _token(revision: int, after: str) -> str:
    raw = json.dumps({"r": revision, "a": after}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _parse_token(token: str) -> tuple[int, str]:
    if not token:
        return 0, ""
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        revision, after = int(doc["r"]), str(doc["a"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token", "not a token from a previous page") from None
    if revision < 1:
        raise InvalidArgument("page_token", "not a token from a previous page")
    return revision, after

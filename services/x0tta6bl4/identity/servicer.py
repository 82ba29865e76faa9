"""The gRPC servicer of ``x0tta6bl4.identity.v1.IdentityService``: checks each request's
fields (``INVALID_ARGUMENT`` naming the field), then hands it to the registry, the reconciler,
the SPIRE health poller or the certificate validator."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from x0tta6bl4.identity import convert
from x0tta6bl4.identity.core.revocations import Revocation
from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id
from x0tta6bl4.identity.core.workloads import FieldError, check_workload
from x0tta6bl4.identity.reconciler import Reconciler
from x0tta6bl4.identity.registry import Registry, check_storable
from x0tta6bl4.identity.v1 import identity_pb2 as pb
from x0tta6bl4.identity.v1 import identity_pb2_grpc
from x0tta6bl4.platform.errors import InvalidArgument, NotFound, Unavailable
from x0tta6bl4.platform.peer import current_caller
from x0tta6bl4.platform.request_fields import INT64_MAX, int_in, non_negative

MAX_REASON = 1024
DEFAULT_PAGE = 100
MAX_PAGE = 1000

# (request) -> response: the health poller's and validator's answers, wired in app.py
HealthAnswer = Callable[[], Awaitable[pb.ServerHealthResponse]]
ValidateAnswer = Callable[
    [pb.ValidateCertificateRequest], Awaitable[pb.ValidateCertificateResponse]
]
Revoked = Callable[[str], Awaitable[int]]  # delete the SPIRE entries of an ID now; how many


def _spiffe_id(field: str, value: str, *, require_path: bool = True) -> str:
    try:
        parse_spiffe_id(value, require_path=require_path)
    except ValueError as err:
        raise InvalidArgument(field, str(err)) from None
    return check_storable(field, value)


class IdentityServicer(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        *,
        trust_domain: str,
        registry: Registry,
        reconciler: Reconciler,
        health: HealthAnswer,
        validate: ValidateAnswer,
        revoked: Revoked,
    ) -> None:
        self._td = trust_domain
        self._registry = registry
        self._reconciler = reconciler
        self._health = health
        self._validate = validate
        self._revoked = revoked

    async def ApplyWorkload(
        self, request: pb.ApplyWorkloadRequest, context: Any
    ) -> pb.ApplyWorkloadResponse:
        expected = int_in("expected_revision", request.expected_revision, -1, INT64_MAX)
        if not request.HasField("workload"):
            raise InvalidArgument("workload", "is required")
        try:
            workload = check_workload(convert.workload_of(request.workload), self._td)
        except FieldError as err:
            raise InvalidArgument(err.field, err.problem) from None
        check_storable("workload.spiffe_id", workload.spiffe_id)
        record, changed = await self._registry.apply(
            workload, expected_revision=expected, author=current_caller()
        )
        if changed:
            self._reconciler.poke()
        return pb.ApplyWorkloadResponse(record=convert.record_pb(record), changed=changed)

    async def DeleteWorkload(
        self, request: pb.DeleteWorkloadRequest, context: Any
    ) -> pb.DeleteWorkloadResponse:
        spiffe_id = _spiffe_id("spiffe_id", request.spiffe_id)
        expected = non_negative("expected_revision", request.expected_revision)
        revision = await self._registry.delete(spiffe_id, expected_revision=expected)
        self._reconciler.poke()
        return pb.DeleteWorkloadResponse(revision=revision)

    async def GetWorkload(
        self, request: pb.GetWorkloadRequest, context: Any
    ) -> pb.GetWorkloadResponse:
        spiffe_id = _spiffe_id("spiffe_id", request.spiffe_id)
        record = await self._registry.get(spiffe_id)
        if record is None:
            raise NotFound(f"no workload {spiffe_id}")
        return pb.GetWorkloadResponse(record=convert.record_pb(record))

    async def ListWorkloads(
        self, request: pb.ListWorkloadsRequest, context: Any
    ) -> pb.ListWorkloadsResponse:
        size = int_in("page_size", request.page_size, 0, MAX_PAGE) or DEFAULT_PAGE
        check_storable("spiffe_id_prefix", request.spiffe_id_prefix)
        page = await self._registry.page(
            prefix=request.spiffe_id_prefix, size=size, token=request.page_token
        )
        return pb.ListWorkloadsResponse(
            workloads=[convert.record_pb(r) for r in page.records],
            next_page_token=page.next_token,
            revision=page.revision,
        )

    async def Reconcile(self, request: pb.ReconcileRequest, context: Any) -> pb.ReconcileResponse:
        if self._reconciler.tenure is None:
            holder = await self._reconciler.holder()
            raise Unavailable(
                f"this replica does not hold the reconciler lease (held by {holder or 'nobody'})"
            )
        report = await self._reconciler.pass_once()
        return pb.ReconcileResponse(report=convert.report_pb(report))

    async def ServerHealth(
        self, request: pb.ServerHealthRequest, context: Any
    ) -> pb.ServerHealthResponse:
        return await self._health()

    async def ValidateCertificate(
        self, request: pb.ValidateCertificateRequest, context: Any
    ) -> pb.ValidateCertificateResponse:
        if request.expected_spiffe_id:
            _spiffe_id("expected_spiffe_id", request.expected_spiffe_id, require_path=False)
        return await self._validate(request)

    async def RevokeIdentity(
        self, request: pb.RevokeIdentityRequest, context: Any
    ) -> pb.RevokeIdentityResponse:
        spiffe_id = _spiffe_id("spiffe_id", request.spiffe_id)
        reason = request.reason.strip()
        if not reason or len(reason) > MAX_REASON or not reason.isprintable():
            raise InvalidArgument("reason", f"is required: 1-{MAX_REASON} printable characters")
        now = time.time()
        until: float | None = None
        if request.HasField("until"):
            until = request.until.seconds + request.until.nanos / 1e9
            if not 0 <= request.until.nanos < 1_000_000_000 or until <= now:
                raise InvalidArgument("until", "must be a valid time in the future")
            if until > now + 100 * 365 * 86400:
                raise InvalidArgument("until", "must be within 100 years")
        stored = await self._registry.revoke(
            Revocation(spiffe_id, reason, current_caller(), now, until)
        )
        deleted = await self._revoked(spiffe_id)
        self._reconciler.poke()
        return pb.RevokeIdentityResponse(
            revocation=convert.revocation_pb(stored), entries_deleted=deleted
        )

    async def LiftRevocation(
        self, request: pb.LiftRevocationRequest, context: Any
    ) -> pb.LiftRevocationResponse:
        spiffe_id = _spiffe_id("spiffe_id", request.spiffe_id)
        revision = await self._registry.lift(spiffe_id)
        self._reconciler.poke()
        return pb.LiftRevocationResponse(revision=revision)

    async def ListRevocations(
        self, request: pb.ListRevocationsRequest, context: Any
    ) -> pb.ListRevocationsResponse:
        now = time.time()
        revs = [r for r in await self._registry.revocations() if r.in_force(now)]
        return pb.ListRevocationsResponse(revocations=[convert.revocation_pb(r) for r in revs])

    async def Watch(
        self, request: pb.WatchRequest, context: Any
    ) -> AsyncIterator[pb.WatchResponse]:
        start = non_negative("start_revision", request.start_revision)
        async for change in self._registry.watch(start):
            if change.record is None:
                yield pb.WatchResponse(
                    type=pb.CHANGE_TYPE_DELETED,
                    record=pb.WorkloadRecord(workload=pb.Workload(spiffe_id=change.spiffe_id)),
                    revision=change.revision,
                )
            else:
                yield pb.WatchResponse(
                    type=pb.CHANGE_TYPE_APPLIED,
                    record=convert.record_pb(change.record),
                    revision=change.revision,
                )

"""A client of ``x0tta6bl4.identity.v1.IdentityService`` on its replicas (the CLI's, ops').

Every replica serves every method except ``Reconcile``, which the replica holding the
reconciler lease runs: the pool moves on to another replica when one answers UNAVAILABLE.
Reads and the idempotent writes (apply of a full workload, delete, revoke, lift) are retried
on another replica; results are the API's messages, errors the typed
:mod:`~x0tta6bl4.clients.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.clients.errors import from_rpc_error
from x0tta6bl4.clients.members import MemberPool
from x0tta6bl4.identity.v1 import identity_pb2 as pb
from x0tta6bl4.identity.v1 import identity_pb2_grpc
from x0tta6bl4.platform.svid import SvidSource


class IdentityClient:
    def __init__(
        self,
        svids: SvidSource,
        replicas: Sequence[str],
        *,
        caller_service: str,
        namespace: str = "local",
        timeout_s: float = 10.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._pool = MemberPool(
            svids,
            replicas,
            service="identity",
            caller_service=caller_service,
            namespace=namespace,
            timeout_s=timeout_s,
            tracer_provider=tracer_provider,
        )

    async def _call(self, rpc: str, request: Any) -> Any:
        return await self._pool.call(
            f"IdentityService/{rpc}",
            lambda ch, t: getattr(identity_pb2_grpc.IdentityServiceStub(ch), rpc)(
                request, timeout=t
            ),
        )

    async def apply(
        self, workload: pb.Workload, *, expected_revision: int = 0
    ) -> pb.ApplyWorkloadResponse:
        request = pb.ApplyWorkloadRequest(workload=workload, expected_revision=expected_revision)
        response: pb.ApplyWorkloadResponse = await self._call("ApplyWorkload", request)
        return response

    async def get(self, spiffe_id: str) -> pb.WorkloadRecord:
        response: pb.GetWorkloadResponse = await self._call(
            "GetWorkload", pb.GetWorkloadRequest(spiffe_id=spiffe_id)
        )
        return response.record

    async def delete(self, spiffe_id: str, *, expected_revision: int = 0) -> int:
        response: pb.DeleteWorkloadResponse = await self._call(
            "DeleteWorkload",
            pb.DeleteWorkloadRequest(spiffe_id=spiffe_id, expected_revision=expected_revision),
        )
        return int(response.revision)

    async def workloads(self, *, prefix: str = "", page_size: int = 500) -> list[pb.WorkloadRecord]:
        """Every workload whose ID starts with ``prefix``, all pages (read at one revision)."""
        found: list[pb.WorkloadRecord] = []
        token = ""
        while True:
            page: pb.ListWorkloadsResponse = await self._call(
                "ListWorkloads",
                pb.ListWorkloadsRequest(
                    page_size=page_size, page_token=token, spiffe_id_prefix=prefix
                ),
            )
            found.extend(page.workloads)
            token = page.next_page_token
            if not token:
                return found

    async def reconcile(self) -> pb.ReconcileReport:
        response: pb.ReconcileResponse = await self._call("Reconcile", pb.ReconcileRequest())
        return response.report

    async def health(self) -> pb.ServerHealthResponse:
        response: pb.ServerHealthResponse = await self._call(
            "ServerHealth", pb.ServerHealthRequest()
        )
        return response

    async def validate(
        self,
        chain: bytes,
        *,
        expected_spiffe_id: str = "",
        expected_trust_domain: str = "",
        policy: str = "",
    ) -> pb.ValidateCertificateResponse:
        response: pb.ValidateCertificateResponse = await self._call(
            "ValidateCertificate",
            pb.ValidateCertificateRequest(
                chain=chain,
                expected_spiffe_id=expected_spiffe_id,
                expected_trust_domain=expected_trust_domain,
                policy=policy,
            ),
        )
        return response

    async def revoke(
        self, spiffe_id: str, reason: str, *, until_epoch_s: float | None = None
    ) -> pb.RevokeIdentityResponse:
        request = pb.RevokeIdentityRequest(spiffe_id=spiffe_id, reason=reason)
        if until_epoch_s is not None:
            until = Timestamp()
            until.FromNanoseconds(int(until_epoch_s * 1e9))
            request.until.CopyFrom(until)
        response: pb.RevokeIdentityResponse = await self._call("RevokeIdentity", request)
        return response

    async def lift(self, spiffe_id: str) -> int:
        response: pb.LiftRevocationResponse = await self._call(
            "LiftRevocation", pb.LiftRevocationRequest(spiffe_id=spiffe_id)
        )
        return int(response.revision)

    async def revocations(self) -> list[pb.Revocation]:
        response: pb.ListRevocationsResponse = await self._call(
            "ListRevocations", pb.ListRevocationsRequest()
        )
        return list(response.revocations)

    async def watch(self, *, start_revision: int = 0) -> AsyncIterator[pb.WatchResponse]:
        """Workload changes from one replica (no resumption: a caller that needs every change
        across failures watches the store itself)."""
        stream = identity_pb2_grpc.IdentityServiceStub(self._pool.current().channel()).Watch(
            pb.WatchRequest(start_revision=start_revision)
        )
        try:
            async for change in stream:
                yield change
        except aio.AioRpcError as err:
            raise from_rpc_error("IdentityService/Watch", err) from None
        finally:
            stream.cancel()

    async def close(self) -> None:
        await self._pool.close()

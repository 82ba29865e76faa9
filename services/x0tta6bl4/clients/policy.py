"""A client of ``x0tta6bl4.policy.v1.PolicyService`` on its replicas (the CLI's, ops').

Every replica serves every method. Reads, ``Validate`` and ``Explain`` are retried on another
replica; ``Activate`` and ``Rollback`` are compare-and-set on the active revision, so a retry
of one that did apply fails cleanly (FAILED_PRECONDITION naming the active revision) instead
of applying twice. ``Propose`` is sent once (a retry could store the document twice): on
UNAVAILABLE the caller may list the revisions and propose again. Results are the API's
messages, errors the typed :mod:`~x0tta6bl4.clients.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from grpc import aio
from opentelemetry.sdk.trace import TracerProvider

from x0tta6bl4.clients.errors import from_rpc_error
from x0tta6bl4.clients.members import MemberPool
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.policy.v1 import policy_pb2 as pb
from x0tta6bl4.policy.v1 import policy_pb2_grpc


class PolicyClient:
    def __init__(
        self,
        svids: SvidSource,
        replicas: Sequence[str],
        *,
        caller_service: str,
        namespace: str = "local",
        timeout_s: float = 30.0,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._pool = MemberPool(
            svids,
            replicas,
            service="policy",
            caller_service=caller_service,
            namespace=namespace,
            timeout_s=timeout_s,
            tracer_provider=tracer_provider,
        )
        self._timeout_s = timeout_s

    async def _call(self, rpc: str, request: Any) -> Any:
        return await self._pool.call(
            f"PolicyService/{rpc}",
            lambda ch, t: getattr(policy_pb2_grpc.PolicyServiceStub(ch), rpc)(request, timeout=t),
        )

    async def _once(self, rpc: str, request: Any) -> Any:
        stub = policy_pb2_grpc.PolicyServiceStub(self._pool.current().channel())
        try:
            return await getattr(stub, rpc)(request, timeout=self._timeout_s)
        except aio.AioRpcError as err:
            raise from_rpc_error(f"PolicyService/{rpc}", err) from None

    async def propose(self, document: bytes, message: str = "") -> pb.ProposeResponse:
        response: pb.ProposeResponse = await self._once(
            "Propose", pb.ProposeRequest(document=document, message=message)
        )
        return response

    async def validate(
        self, *, document: bytes | None = None, revision: int = 0
    ) -> pb.ValidationReport:
        request = (
            pb.ValidateRequest(document=document)
            if document is not None
            else pb.ValidateRequest(revision=revision)
        )
        response: pb.ValidateResponse = await self._call("Validate", request)
        return response.validation

    async def activate(
        self, revision: int, *, expected_active: int, force: bool = False
    ) -> pb.ActivateResponse:
        response: pb.ActivateResponse = await self._call(
            "Activate",
            pb.ActivateRequest(revision=revision, expected_active=expected_active, force=force),
        )
        return response

    async def rollback(
        self, to_revision: int, *, expected_active: int, force: bool = False
    ) -> pb.RollbackResponse:
        response: pb.RollbackResponse = await self._call(
            "Rollback",
            pb.RollbackRequest(
                to_revision=to_revision, expected_active=expected_active, force=force
            ),
        )
        return response

    async def diff(self, from_revision: int, to_revision: int) -> list[pb.RuleChange]:
        response: pb.DiffResponse = await self._call(
            "Diff", pb.DiffRequest(from_revision=from_revision, to_revision=to_revision)
        )
        return list(response.changes)

    async def revisions(self, *, limit: int = 50) -> pb.ListRevisionsResponse:
        """The newest ``limit`` revisions (newest first) and the active number."""
        out = pb.ListRevisionsResponse()
        token = ""
        while len(out.revisions) < limit:
            page: pb.ListRevisionsResponse = await self._call(
                "ListRevisions",
                pb.ListRevisionsRequest(
                    page_size=min(500, limit - len(out.revisions)), page_token=token
                ),
            )
            out.revisions.extend(page.revisions)
            out.active = page.active
            token = page.next_page_token
            if not token:
                break
        return out

    async def get(self, number: int = 0) -> pb.GetRevisionResponse:
        response: pb.GetRevisionResponse = await self._call(
            "GetRevision", pb.GetRevisionRequest(number=number)
        )
        return response

    async def status(self) -> pb.StatusResponse:
        response: pb.StatusResponse = await self._call("Status", pb.StatusRequest())
        return response

    async def explain(self, request: pb.ExplainRequest) -> pb.ExplainResponse:
        response: pb.ExplainResponse = await self._call("Explain", request)
        return response

    async def decisions(self, request: pb.QueryDecisionsRequest) -> pb.QueryDecisionsResponse:
        response: pb.QueryDecisionsResponse = await self._call("QueryDecisions", request)
        return response

    async def watch(self) -> AsyncIterator[pb.WatchResponse]:
        """The active revision, then each move (one replica; ends if it goes away)."""
        stub = policy_pb2_grpc.PolicyServiceStub(self._pool.current().channel())
        stream = stub.Watch(pb.WatchRequest())
        try:
            async for message in stream:
                yield message
        except aio.AioRpcError as err:
            raise from_rpc_error("PolicyService/Watch", err) from None
        finally:
            stream.cancel()

    async def close(self) -> None:
        await self._pool.close()

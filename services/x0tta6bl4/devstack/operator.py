"""Calls into the local suite as the operator (the identity of a human's `x0` CLI)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.identity import IdentityClient
from x0tta6bl4.clients.policy import PolicyClient
from x0tta6bl4.devstack.plan import OPERATOR, Instance, SuitePlan
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

ClientT = TypeVar("ClientT", ConsensusClient, IdentityClient, PolicyClient)


@contextlib.asynccontextmanager
async def operator_svids(plan: SuitePlan, timeout_s: float = 10.0) -> AsyncIterator[SvidSource]:
    """The operator's SVIDs from its agent in the local suite."""
    svids = SvidSource(str(plan.agent_socket(OPERATOR)))
    svids.start()
    try:
        if not await asyncio.to_thread(svids.wait_loaded, timeout_s):
            raise TimeoutError(f"no operator SVID from {plan.agent_socket(OPERATOR)}")
        yield svids
    finally:
        svids.close()


@contextlib.asynccontextmanager
async def _operator_client(
    plan: SuitePlan, service: str, make: Callable[..., ClientT]
) -> AsyncIterator[ClientT]:
    """``make(svids, members, ...)`` on every instance of ``service``, as the operator."""
    async with operator_svids(plan) as svids:
        client = make(
            svids,
            [f"127.0.0.1:{i.grpc_port}" for i in plan.instances(service)],
            caller_service=OPERATOR,
            namespace=plan.namespace,
        )
        try:
            yield client
        finally:
            await client.close()


def consensus_client(plan: SuitePlan) -> contextlib.AbstractAsyncContextManager[ConsensusClient]:
    """A consensus client on every member of the local suite, as the operator."""
    return _operator_client(plan, "consensus", ConsensusClient)


def identity_client(plan: SuitePlan) -> contextlib.AbstractAsyncContextManager[IdentityClient]:
    """An identity client on every identity replica of the local suite, as the operator."""
    return _operator_client(plan, "identity", IdentityClient)


def policy_client(plan: SuitePlan) -> contextlib.AbstractAsyncContextManager[PolicyClient]:
    """A policy client on every policy replica of the local suite, as the operator."""
    return _operator_client(plan, "policy", PolicyClient)


async def whoami(
    plan: SuitePlan, inst: Instance, *, timeout_s: float = 5.0
) -> diagnostics_pb2.WhoAmIResponse:
    svids = SvidSource(str(plan.agent_socket(OPERATOR)))
    svids.start()
    try:
        if not await asyncio.to_thread(svids.wait_loaded, timeout_s):
            raise TimeoutError(f"no operator SVID from {plan.agent_socket(OPERATOR)}")
        client = MeshClient(
            svids,
            address=f"127.0.0.1:{inst.grpc_port}",
            target_service=inst.service,
            caller_service=OPERATOR,
            namespace=plan.namespace,
            default_timeout_s=timeout_s,
        )
        try:
            return await client.call(
                lambda ch, t: diagnostics_pb2_grpc.DiagnosticsServiceStub(ch).WhoAmI(
                    diagnostics_pb2.WhoAmIRequest(), timeout=t
                ),
                idempotent=True,
            )
        finally:
            await client.close()
    finally:
        svids.close()

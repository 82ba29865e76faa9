"""Server interceptor: authorise with OPA, record RED metrics, map errors to status codes.

grpc.aio's interceptor hook does not see the peer, so the interceptor wraps the method handler
and does its work with the handler's ``ServicerContext``, which carries the TLS auth context.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from grpc import aio
from opentelemetry import trace

from x0tta6bl4.platform.authz import OpaAuthorizer
from x0tta6bl4.platform.errors import ServiceError
from x0tta6bl4.platform.peer import caller_spiffe_id
from x0tta6bl4.platform.telemetry import (
    AUTHZ_DECISIONS,
    GRPC_SERVER_DURATION,
    GRPC_SERVER_IN_FLIGHT,
    GRPC_SERVER_REQUESTS,
)

log = structlog.get_logger(__name__)

CALLER_KEY = "x0.caller"


class _Outcome:
    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK


def _split(full_method: str) -> tuple[str, str]:
    grpc_service, _, method = full_method.lstrip("/").rpartition("/")
    return grpc_service, method


class PlatformInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authorisation, metrics and error mapping for every RPC of one service."""

    def __init__(self, service: str, authorizer: OpaAuthorizer) -> None:
        self._service = service
        self._authz = authorizer

    async def _admit(
        self, context: aio.ServicerContext[Any, Any], full_method: str, outcome: _Outcome
    ) -> None:
        caller = caller_spiffe_id(context.auth_context())
        structlog.contextvars.bind_contextvars(caller=caller, method=full_method)
        span = trace.get_current_span()
        span.set_attribute("x0.caller", caller or "")
        if caller is None:
            outcome.code = grpc.StatusCode.UNAUTHENTICATED
            AUTHZ_DECISIONS.labels(self._service, "unauthenticated").inc()
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no SPIFFE ID in the client certificate"
            )
        assert caller is not None
        metadata = {str(k): str(v) for k, v in (context.invocation_metadata() or ())}
        decision = await self._authz.decide(caller, full_method, metadata)
        span.set_attribute("x0.authz.decision_id", decision.decision_id)
        span.set_attribute("x0.authz.allowed", decision.allowed)
        AUTHZ_DECISIONS.labels(self._service, "allow" if decision.allowed else "deny").inc()
        if not decision.allowed:
            log.warning("rpc_denied", reason=decision.reason, decision_id=decision.decision_id)
            outcome.code = grpc.StatusCode.PERMISSION_DENIED
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller} may not call {full_method}: {decision.reason}",
            )
        if decision.decision_id:
            structlog.contextvars.bind_contextvars(decision_id=decision.decision_id)

    async def _fail(
        self, context: aio.ServicerContext[Any, Any], err: Exception, outcome: _Outcome
    ) -> None:
        if isinstance(err, ServiceError):
            outcome.code = err.code
            await context.abort(err.code, err.message)
        outcome.code = grpc.StatusCode.INTERNAL
        log.exception("rpc_failed")
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace_id {trace_id})")

    def _record(
        self,
        full_method: str,
        started: float,
        outcome: _Outcome,
        context: aio.ServicerContext[Any, Any],
    ) -> None:
        grpc_service, method = _split(full_method)
        code = outcome.code
        if code == grpc.StatusCode.OK and context.cancelled():
            code = grpc.StatusCode.CANCELLED
        GRPC_SERVER_REQUESTS.labels(self._service, grpc_service, method, code.name).inc()
        GRPC_SERVER_DURATION.labels(self._service, grpc_service, method).observe(
            time.perf_counter() - started
        )
        GRPC_SERVER_IN_FLIGHT.labels(self._service).dec()
        structlog.contextvars.unbind_contextvars("caller", "method", "decision_id")

    def _unary_response(
        self, behavior: Callable[..., Awaitable[Any]], full_method: str
    ) -> Callable[..., Awaitable[Any]]:
        async def handle(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            outcome, started = _Outcome(), time.perf_counter()
            GRPC_SERVER_IN_FLIGHT.labels(self._service).inc()
            try:
                await self._admit(context, full_method, outcome)
                try:
                    return await behavior(request, context)
                except aio.AbortError:
                    raise
                except Exception as err:
                    await self._fail(context, err, outcome)
            finally:
                if outcome.code == grpc.StatusCode.OK and context.code() not in (None, 0):  # type: ignore[comparison-overlap]
                    outcome.code = _code_of(context)
                self._record(full_method, started, outcome, context)

        return handle

    def _stream_response(
        self, behavior: Callable[..., AsyncIterator[Any]], full_method: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def handle(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            outcome, started = _Outcome(), time.perf_counter()
            GRPC_SERVER_IN_FLIGHT.labels(self._service).inc()
            try:
                await self._admit(context, full_method, outcome)
                try:
                    async for response in behavior(request, context):
                        yield response
                except aio.AbortError:
                    raise
                except Exception as err:
                    await self._fail(context, err, outcome)
            finally:
                if outcome.code == grpc.StatusCode.OK and context.code() not in (None, 0):  # type: ignore[comparison-overlap]
                    outcome.code = _code_of(context)
                self._record(full_method, started, outcome, context)

        return handle

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        full_method = handler_call_details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_response(handler.unary_unary, full_method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(handler.stream_unary, full_method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream_response(handler.unary_stream, full_method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._stream_response(handler.stream_stream, full_method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_of(context: aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN

"""Server interceptor: a server span, authorisation with OPA, request parsing, RED metrics,
and errors mapped to status codes.

Request bodies are parsed here, after authorisation, not by gRPC before the handler runs: a
caller the policy denies gets ``PERMISSION_DENIED`` whatever it sent, and a body that does not
parse (corrupt bytes, invalid UTF-8 in a string, nesting past protobuf's limit) gets
``INVALID_ARGUMENT`` naming the message type, one log line without a traceback, and a count in
the RED metrics with its code, instead of gRPC's ``UNKNOWN`` and a traceback per call.

grpc.aio's interceptor hook does not see the peer, so the interceptor wraps the method handler
and does its work with the handler's ``ServicerContext``, which carries the TLS auth context.

The server span is started here rather than by opentelemetry-instrumentation-grpc's aio server
interceptor: that one wraps every call's context in Python objects and cost about a tenth of a
busy consensus leader's CPU. This span has the same name (the full method), kind (SERVER),
parent (the caller's ``traceparent``) and ``rpc.*`` attributes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError
from grpc import aio
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from x0tta6bl4.platform.authz import SELECTED_METADATA, Decision, OpaAuthorizer, source_ip
from x0tta6bl4.platform.errors import ServiceError
from x0tta6bl4.platform.peer import caller_spiffe_id, set_current_caller
from x0tta6bl4.platform.telemetry import (
    AUTHZ_DECISIONS,
    GRPC_SERVER_DURATION,
    GRPC_SERVER_IN_FLIGHT,
    GRPC_SERVER_REQUESTS,
)

log = structlog.get_logger(__name__)


class _Outcome:
    __slots__ = ("code",)

    def __init__(self) -> None:
        self.code = grpc.StatusCode.OK


def _split(full_method: str) -> tuple[str, str]:
    grpc_service, _, method = full_method.lstrip("/").rpartition("/")
    return grpc_service, method


_OK = grpc.StatusCode.OK
_SELECTED = frozenset(SELECTED_METADATA)
_AuthzKey = tuple[str, str, tuple[tuple[str, str], ...], str]


class _MethodMetrics:
    """The metric children of one method, looked up once instead of on every call
    (``.labels(...)`` hashes and locks on each lookup)."""

    __slots__ = ("_codes", "_labels", "duration", "span_attributes")

    def __init__(self, service: str, full_method: str) -> None:
        grpc_service, method = _split(full_method)
        self._labels = (service, grpc_service, method)
        self.span_attributes = {
            "rpc.system": "grpc",
            "rpc.service": grpc_service,
            "rpc.method": method,
        }
        self.duration = GRPC_SERVER_DURATION.labels(*self._labels)
        self._codes: dict[grpc.StatusCode, Any] = {}

    def requests(self, code: grpc.StatusCode) -> Any:
        child = self._codes.get(code)
        if child is None:
            child = GRPC_SERVER_REQUESTS.labels(*self._labels, code.name)
            self._codes[code] = child
        return child


class _BodyParser:
    """Turns one method's raw request bodies into messages, or a ``BadRequestBody``."""

    __slots__ = ("_parse", "message_type")

    def __init__(self, parse: Callable[[bytes], Any] | None, full_method: str) -> None:
        self._parse = parse
        owner = getattr(parse, "__self__", None)
        descriptor = getattr(owner, "DESCRIPTOR", None)
        self.message_type = str(getattr(descriptor, "full_name", "") or f"{full_method} request")

    def __call__(self, body: Any) -> Any:
        if self._parse is None or not isinstance(body, bytes):
            return body
        try:
            return self._parse(body)
        except (DecodeError, RecursionError, ValueError, UnicodeDecodeError) as err:
            raise BadRequestBody(self.message_type, err) from None

    async def stream(self, bodies: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for body in bodies:
            yield self(body)


class BadRequestBody(ServiceError):
    """A request body that is not a valid message of the method's request type."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message_type: str, err: Exception) -> None:
        super().__init__(f"request body is not a valid {message_type}: {err}")
        self.message_type = message_type


class PlatformInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authorisation, metrics and error mapping for every RPC of one service."""

    def __init__(self, service: str, authorizer: OpaAuthorizer, tracer: trace.Tracer) -> None:
        self._service = service
        self._authz = authorizer
        self._tracer = tracer
        # The metadata keys the trace propagators read (traceparent, tracestate, baggage).
        self._trace_keys = frozenset(propagate.get_global_textmap().fields)
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        self._in_flight = GRPC_SERVER_IN_FLIGHT.labels(service)
        self._allowed = AUTHZ_DECISIONS.labels(service, "allow")
        self._denied = AUTHZ_DECISIONS.labels(service, "deny")
        self._unauthenticated = AUTHZ_DECISIONS.labels(service, "unauthenticated")
        # Decisions being asked of OPA right now, by the authorizer's cache key: identical
        # calls that arrive meanwhile (e.g. every client when an allow expires from the
        # cache) wait for that one answer instead of each asking OPA again.
        self._deciding: dict[_AuthzKey, asyncio.Future[Decision]] = {}

    async def _decide(
        self, caller: str, full_method: str, metadata: dict[str, str], source: str
    ) -> Decision:
        key = (caller, full_method, tuple(sorted(metadata.items())), source)
        pending = self._deciding.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # the call that asked OPA went away: ask for ourselves below
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._deciding[key] = future
        try:
            decision = await self._authz.decide(caller, full_method, metadata, source)
        except BaseException as err:
            if isinstance(err, Exception):
                future.set_exception(err)
                future.exception()  # retrieved: waiters (if any) re-raise it themselves
            else:
                future.cancel()
            raise
        else:
            future.set_result(decision)
            return decision
        finally:
            if self._deciding.get(key) is future:
                del self._deciding[key]

    def _server_span(self, full_method: str, metadata: Any, metrics: _MethodMetrics) -> Any:
        """The call's SERVER span, a child of the caller's span when it sent a traceparent."""
        carrier = {k: v for k, v in metadata if k in self._trace_keys}
        return self._tracer.start_as_current_span(
            full_method,
            context=propagate.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes=metrics.span_attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    async def _admit(
        self,
        context: aio.ServicerContext[Any, Any],
        full_method: str,
        outcome: _Outcome,
        invocation_metadata: Any,
        span: trace.Span,
    ) -> None:
        caller = caller_spiffe_id(context.auth_context())
        structlog.contextvars.bind_contextvars(caller=caller, method=full_method)
        recording = span.is_recording()
        if recording:
            span.set_attribute("x0.caller", caller or "")
        if caller is None:
            outcome.code = grpc.StatusCode.UNAUTHENTICATED
            self._unauthenticated.inc()
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "no SPIFFE ID in the client certificate"
            )
        assert caller is not None
        set_current_caller(caller)
        # Only the keys the authorizer looks at (it selects the same ones).
        metadata = {str(k): str(v) for k, v in invocation_metadata if k in _SELECTED}
        decision = await self._decide(caller, full_method, metadata, source_ip(context.peer()))
        if recording:
            span.set_attribute("x0.authz.decision_id", decision.decision_id)
            span.set_attribute("x0.authz.allowed", decision.allowed)
        if not decision.allowed:
            self._denied.inc()
            log.warning("rpc_denied", reason=decision.reason, decision_id=decision.decision_id)
            outcome.code = grpc.StatusCode.PERMISSION_DENIED
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{caller} may not call {full_method}: {decision.reason}",
            )
        self._allowed.inc()
        if decision.decision_id:
            structlog.contextvars.bind_contextvars(decision_id=decision.decision_id)

    async def _fail(
        self, context: aio.ServicerContext[Any, Any], err: Exception, outcome: _Outcome
    ) -> None:
        """End the call for a handler's error: an abort goes on as it is, a ServiceError
        becomes its status, anything else INTERNAL (logged, with the trace id)."""
        if isinstance(err, aio.AbortError):
            raise err
        if isinstance(err, ServiceError):
            code, message = err.status()
            outcome.code = code
            if isinstance(err, BadRequestBody):  # one line, no traceback: see the docstring
                log.warning("rpc_bad_body", message_type=err.message_type, error=err.message)
            elif code is grpc.StatusCode.INTERNAL:
                log.error("rpc_dependency_failed", error=message)
            await context.abort(code, message)
        preset = context.code() not in (None, 0)  # type: ignore[comparison-overlap]
        if preset and _code_of(context) is not _OK:
            # The handler set a status before it raised; it stands (as in gRPC itself): e.g.
            # UNIMPLEMENTED from a generated base class for a method the servicer lacks.
            outcome.code = _code_of(context)
            log.warning("rpc_failed_with_status", code=outcome.code.name, error=repr(err))
            await context.abort(outcome.code, str(context.details() or err))
        outcome.code = grpc.StatusCode.INTERNAL
        log.exception("rpc_failed")
        trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error (trace_id {trace_id})")

    def _record(
        self,
        metrics: _MethodMetrics,
        started: float,
        outcome: _Outcome,
        context: aio.ServicerContext[Any, Any],
        span: trace.Span,
    ) -> None:
        code = outcome.code
        if code is _OK and context.code() not in (None, 0):  # type: ignore[comparison-overlap]
            code = _code_of(context)  # the handler set a status itself
        if code is _OK and context.cancelled():
            code = grpc.StatusCode.CANCELLED
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not _OK:
                span.set_status(Status(StatusCode.ERROR, code.name))
        metrics.requests(code).inc()
        metrics.duration.observe(time.perf_counter() - started)
        self._in_flight.dec()
        structlog.contextvars.unbind_contextvars("caller", "method", "decision_id")

    def _begin(
        self, context: aio.ServicerContext[Any, Any], full_method: str, metrics: _MethodMetrics
    ) -> tuple[_Outcome, float, Any, Any]:
        """A call starts: its outcome, start time, metadata and (not yet entered) server span.
        The unary and the streaming handler share everything but how they await the
        behaviour (a coroutine, an async generator), so they differ only in that."""
        self._in_flight.inc()
        metadata = context.invocation_metadata() or ()
        span = self._server_span(full_method, metadata, metrics)
        return _Outcome(), time.perf_counter(), metadata, span

    def _unary_response(
        self,
        behavior: Callable[..., Awaitable[Any]],
        full_method: str,
        parse: _BodyParser,
        streaming_request: bool,
    ) -> Callable[..., Awaitable[Any]]:
        metrics = _MethodMetrics(self._service, full_method)  # once per method: see _wrapped

        async def handle(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            outcome, started, metadata, server_span = self._begin(context, full_method, metrics)
            with server_span as span:
                try:
                    await self._admit(context, full_method, outcome, metadata, span)
                    try:
                        request = parse.stream(request) if streaming_request else parse(request)
                        return await behavior(request, context)
                    except Exception as err:
                        await self._fail(context, err, outcome)
                finally:
                    self._record(metrics, started, outcome, context, span)

        return handle

    def _stream_response(
        self,
        behavior: Callable[..., AsyncIterator[Any]],
        full_method: str,
        parse: _BodyParser,
        streaming_request: bool,
    ) -> Callable[..., AsyncIterator[Any]]:
        metrics = _MethodMetrics(self._service, full_method)  # once per method: see _wrapped

        async def handle(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            outcome, started, metadata, server_span = self._begin(context, full_method, metrics)
            with server_span as span:
                try:
                    await self._admit(context, full_method, outcome, metadata, span)
                    try:
                        request = parse.stream(request) if streaming_request else parse(request)
                        async for response in behavior(request, context):
                            yield response
                    except Exception as err:
                        await self._fail(context, err, outcome)
                finally:
                    self._record(metrics, started, outcome, context, span)

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
        # The services' handlers are fixed objects: wrap each once, not on every call.
        cached = self._wrapped.get(full_method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, full_method)
        self._wrapped[full_method] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: Any, full_method: str) -> Any:
        # gRPC hands the handler raw bytes (no request_deserializer): the body is parsed by
        # _BodyParser once the caller is authorised (see the module docstring).
        parse = _BodyParser(handler.request_deserializer, full_method)
        serialize = handler.response_serializer
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary_response(handler.unary_unary, full_method, parse, False),
                response_serializer=serialize,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary_response(handler.stream_unary, full_method, parse, True),
                response_serializer=serialize,
            )
        # A streaming handler is an async generator, or a coroutine that sends with
        # context.write() (grpc's own aio HealthServicer.Watch): that one is awaited.
        if handler.unary_stream:
            wrap = self._stream_response
            if not inspect.isasyncgenfunction(handler.unary_stream):
                wrap = self._unary_response  # type: ignore[assignment]
            return grpc.unary_stream_rpc_method_handler(
                wrap(handler.unary_stream, full_method, parse, False),
                response_serializer=serialize,
            )
        wrap = self._stream_response
        if not inspect.isasyncgenfunction(handler.stream_stream):
            wrap = self._unary_response  # type: ignore[assignment]
        return grpc.stream_stream_rpc_method_handler(
            wrap(handler.stream_stream, full_method, parse, True),
            response_serializer=serialize,
        )


def _code_of(context: aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status
    return grpc.StatusCode.UNKNOWN

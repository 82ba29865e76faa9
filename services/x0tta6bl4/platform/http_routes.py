"""The HTTP router of a service process: routes registered by the platform and the service,
served on a plain listener (``X0_HTTP_ADDR``) and optionally an mTLS one, with the same
metrics, trace context and error handling as the gRPC calls.

A service registers handlers from its ``register`` hook through ``runtime.http``::

    async def on_alerts(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"accepted": len(request.json["alerts"])}, status=202)

    runtime.http.post("/v1/alerts", on_alerts, max_body=1 << 20, schema=WEBHOOK_SCHEMA)
    runtime.http.get("/v1/bundles/{name}", serve_bundle, mtls_only=True)
    await runtime.http.serve_mtls("0.0.0.0", 8443, runtime.svids)

What every request gets, whatever its route:

- *Errors as JSON* ``{"error": ...}``: unknown path → 404; known path, other method → 405
  with ``Allow`` (HEAD and OPTIONS too: only registered methods are served); body over the
  route's ``max_body`` → 413 naming the limit; a JSON route's body that does not parse or
  fails its schema → 400 naming line/column or the field (see :mod:`.http_messages`); a body
  that cannot be read (bad chunking or gzip) → 400, one not received within
  ``BODY_TIMEOUT_S`` → 408; :class:`.HttpError` raised by a handler → its status; any other
  exception → 500 ``internal error (trace_id ...)``, logged once with its traceback (never
  the request's headers or body).
- *RED metrics* ``x0tta6bl4_http_server_requests_total{service,route,method,code}`` and
  ``x0tta6bl4_http_server_request_duration_seconds{service,route,method}``; ``route`` is the
  registered pattern (``unmatched`` for a 404), ``method`` one of the HTTP methods or
  ``_OTHER``, so label sets stay bounded whatever callers send.
- *A SERVER span* ``"{method} {route}"`` continuing the caller's W3C ``traceparent``, with
  ``http.request.method``, ``http.route``, ``http.response.status_code`` (ERROR for 5xx) and
  ``x0.caller``; routes registered with ``traced=False`` (the probes, scraped every few
  seconds) are counted but make no span.

The mTLS listener requires a client certificate chaining to the trust bundle (the handshake
fails without one), serves the SVID current at each handshake (:mod:`.http_mtls`) and gives
the handler the caller's SPIFFE ID (``request.caller``); a certificate without a SPIFFE ID of
this trust domain gets 403. It serves every route; the plain listener serves only the routes
not registered ``mtls_only`` — to it an mTLS-only route does not exist (404, and it is absent
from ``Allow``): nothing sent to the plain port can reach that handler, so there is no
authorisation decision to report, and the unauthenticated port does not tell what else the
service serves.

Routes may be added at any time (the routing table is looked up per request), so the probes
answer while the service's ``register`` hook is still adding its routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram

from x0tta6bl4.platform.http_messages import HttpError, HttpRequest, HttpResponse, JsonBody
from x0tta6bl4.platform.http_mtls import SvidServerContext, admitted_caller, peer_spiffe_id
from x0tta6bl4.platform.http_route_table import Match, NotAllowed, RouteTable, Unmatched
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.telemetry import _LATENCY_BUCKETS as LATENCY_BUCKETS

log = structlog.get_logger(__name__)

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
BodyKind = Literal["json", "raw", "none"]
DEFAULT_MAX_BODY = 1 << 20
BODY_TIMEOUT_S = 30.0  # a body trickling in slower than this gets 408
UNMATCHED = "unmatched"
# the methods counted by name (OpenTelemetry's list); any other is counted as _OTHER
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_CHUNK = 1 << 16
_MAX_ECHO = 200

HTTP_SERVER_REQUESTS = Counter(
    "x0tta6bl4_http_server_requests",
    "HTTP requests handled, by route pattern and status code.",
    ["service", "route", "method", "code"],
)
HTTP_SERVER_DURATION = Histogram(
    "x0tta6bl4_http_server_request_duration_seconds",
    "Time to handle an HTTP request, from its headers to the response.",
    ["service", "route", "method"],
    buckets=LATENCY_BUCKETS,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One registered route (see :meth:`HttpRouter.add`)."""

    method: str
    pattern: str
    handler: Handler
    body: BodyKind
    max_body: int
    decoder: JsonBody | None
    mtls_only: bool
    traced: bool


@dataclasses.dataclass(slots=True)
class _Listener:
    table: RouteTable[Route]
    svids: SvidSource | None  # the mTLS listener's; None for the plain one
    runner: web.ServerRunner | None = None
    port: int = 0


def _echo(text: str) -> str:
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 3] + "..."


async def _read_body(request: web.BaseRequest, route: Route) -> bytes:
    """The body, at most ``route.max_body`` bytes (413 past it, before reading when the
    Content-Length says so)."""
    limit = route.max_body
    too_large = HttpError(
        413,
        f"request body exceeds the limit of {limit} bytes for {route.method} {route.pattern}",
        detail={"limit_bytes": limit},
    )
    length = request.content_length
    if length is not None and length > limit:
        raise too_large
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise HttpError(408, f"request body not received within {BODY_TIMEOUT_S:.0f}s") from None
    except ConnectionError:  # the client went away: nobody reads the answer
        raise HttpError(400, "request body incomplete: the connection was lost") from None
    except (web.RequestPayloadError, HttpProcessingError) as err:  # bad chunks, bad gzip
        problem = " ".join(str(err).split())
        raise HttpError(400, f"request body could not be read: {problem}") from None
    return b"".join(chunks)


def _to_web(response: HttpResponse) -> web.Response:
    headers = dict(response.headers)
    if response.body or response.status not in (204, 304):
        headers["Content-Type"] = response.content_type
    return web.Response(status=response.status, body=response.body, headers=headers)


class HttpRouter:
    """The routes of one process and the listeners that serve them."""

    def __init__(
        self, service: str, tracer: trace.Tracer, *, shutdown_timeout_s: float = 5.0
    ) -> None:
        self._service = service
        self._tracer = tracer
        self._shutdown_timeout_s = shutdown_timeout_s
        self._plain = _Listener(RouteTable(), None)
        self._mtls = _Listener(RouteTable(), None)

    # -- registration ----------------------------------------------------------------------

    def add(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        body: BodyKind = "json",
        schema: Mapping[str, Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        mtls_only: bool = False,
        traced: bool = True,
    ) -> None:
        """Serve ``method pattern`` with ``handler``.

        ``body``: ``"json"`` — the handler gets ``request.json``, parsed and checked against
        ``schema`` (a JSON Schema) if given; ``"raw"`` — only ``request.body`` bytes (e.g. a
        bundle upload); ``"none"`` — the body is not read. ``max_body`` bounds the body in
        bytes (after any ``Content-Encoding`` is decoded). ``mtls_only``: served on the mTLS
        listener only. ``traced=False``: no span (metrics still count it). ValueError for a
        malformed pattern, an unknown method, a bad schema, or a route registered twice."""
        if max_body < 0:
            raise ValueError(f"max_body must not be negative, got {max_body}")
        if schema is not None and body != "json":
            raise ValueError(f"{method} {pattern}: a schema needs body='json', not {body!r}")
        decoder = JsonBody(schema) if body == "json" else None
        route = Route(method, pattern, handler, body, max_body, decoder, mtls_only, traced)
        self._mtls.table.add(method, pattern, route)
        if not mtls_only:
            self._plain.table.add(method, pattern, route)

    def get(
        self, pattern: str, handler: Handler, *, mtls_only: bool = False, traced: bool = True
    ) -> None:
        """Serve ``GET pattern`` (no body is read)."""
        self.add("GET", pattern, handler, body="none", mtls_only=mtls_only, traced=traced)

    def post(
        self,
        pattern: str,
        handler: Handler,
        *,
        body: BodyKind = "json",
        schema: Mapping[str, Any] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        mtls_only: bool = False,
        traced: bool = True,
    ) -> None:
        """Serve ``POST pattern``; see :meth:`add` for the options."""
        self.add(
            "POST",
            pattern,
            handler,
            body=body,
            schema=schema,
            max_body=max_body,
            mtls_only=mtls_only,
            traced=traced,
        )

    # -- listeners -------------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> int:
        """Serve the plain routes on ``host:port`` (0 picks a free port); the bound port."""
        return await self._start(self._plain, host, port, None)

    async def serve_mtls(self, host: str, port: int, svids: SvidSource) -> int:
        """Serve every route over mTLS on ``host:port`` with the current SVID of ``svids``
        (which must have one); the bound port."""
        self._mtls.svids = svids
        return await self._start(self._mtls, host, port, SvidServerContext(svids))

    @property
    def port(self) -> int:
        """The plain listener's port."""
        return self._bound(self._plain)

    @property
    def mtls_port(self) -> int:
        return self._bound(self._mtls)

    async def stop(self) -> None:
        """Stop both listeners; requests in flight get ``shutdown_timeout_s`` to finish."""
        for listener in (self._mtls, self._plain):
            runner, listener.runner = listener.runner, None
            if runner is not None:
                await runner.cleanup()

    @staticmethod
    def _bound(listener: _Listener) -> int:
        if listener.runner is None:
            raise RuntimeError("the listener is not serving")
        return listener.port

    async def _start(
        self, listener: _Listener, host: str, port: int, ssl_context: SvidServerContext | None
    ) -> int:
        if listener.runner is not None:
            raise RuntimeError(f"already serving on port {listener.port}")

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            return await self._handle(listener, request)

        server = web.Server(handle, access_log=None, keepalive_timeout=75)
        runner = web.ServerRunner(server, shutdown_timeout=self._shutdown_timeout_s)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        listener.runner, listener.port = runner, int(runner.addresses[0][1])
        return listener.port

    # -- one request -----------------------------------------------------------------------

    async def _handle(self, listener: _Listener, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        method = request.method if request.method in _KNOWN_METHODS else "_OTHER"
        found = listener.table.match(request.method, request.path)
        pattern = found.pattern if isinstance(found, Match | NotAllowed) else UNMATCHED
        traced = found.value.traced if isinstance(found, Match) else True
        span_name = method if pattern == UNMATCHED else f"{method} {pattern}"
        with (
            self._span(request, span_name, method, pattern, traced) as span,
            structlog.contextvars.bound_contextvars(http_route=pattern, http_method=method),
        ):
            response = await self._respond(listener, request, found)
            if span.is_recording():
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(response.status)))
        HTTP_SERVER_REQUESTS.labels(self._service, pattern, method, str(response.status)).inc()
        HTTP_SERVER_DURATION.labels(self._service, pattern, method).observe(
            time.perf_counter() - started
        )
        return _to_web(response)

    def _span(
        self, request: web.BaseRequest, name: str, method: str, pattern: str, traced: bool
    ) -> contextlib.AbstractContextManager[trace.Span]:
        if not traced:
            return contextlib.nullcontext(trace.INVALID_SPAN)
        return self._tracer.start_as_current_span(
            name,
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "http.route": pattern,
                "url.path": _echo(request.path),
                "url.scheme": request.scheme,
            },
            record_exception=False,
            set_status_on_exception=False,
        )

    async def _respond(
        self,
        listener: _Listener,
        request: web.BaseRequest,
        found: Match[Route] | NotAllowed | Unmatched,
    ) -> HttpResponse:
        """The response to one request: never raises (a failure is a 500, logged)."""
        try:
            caller = self._authenticate(listener, request)
            with structlog.contextvars.bound_contextvars(**({"caller": caller} if caller else {})):
                return await self._dispatch(request, found, caller)
        except HttpError as err:
            return err.response()
        except Exception:
            log.exception("http_handler_failed")
            trace_id = format(trace.get_current_span().get_span_context().trace_id, "032x")
            return HttpError(500, f"internal error (trace_id {trace_id})").response()

    @staticmethod
    async def _dispatch(
        request: web.BaseRequest, found: Match[Route] | NotAllowed | Unmatched, caller: str | None
    ) -> HttpResponse:
        if isinstance(found, NotAllowed):
            allowed = ", ".join(found.allowed)
            raise HttpError(
                405,
                f"method {_echo(request.method)} is not allowed on {found.pattern}; "
                f"allowed: {allowed}",
                headers={"Allow": allowed},
            )
        if isinstance(found, Unmatched):
            raise HttpError(404, f"no route for path {_echo(request.path)}")
        route = found.value
        body = b"" if route.body == "none" else await _read_body(request, route)
        value = route.decoder.decode(body) if route.decoder is not None else None
        return await route.handler(
            HttpRequest(
                method=request.method,
                path=request.path,
                route=route.pattern,
                params=found.params,
                query=request.query,
                headers=request.headers,
                body=body,
                json=value,
                caller=caller,
            )
        )

    @staticmethod
    def _authenticate(listener: _Listener, request: web.BaseRequest) -> str | None:
        """The caller's SPIFFE ID on the mTLS listener (403 if the certificate has none of this
        trust domain); None on the plain listener."""
        if listener.svids is None:
            return None
        caller = admitted_caller(
            peer_spiffe_id(request.transport), listener.svids.require().spiffe_id
        )
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("x0.caller", caller)
        return caller

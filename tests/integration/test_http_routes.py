"""The platform's HTTP router on real sockets: errors as a caller sees them, RED metrics and
SERVER spans per route, the probes through the same router, and the mTLS listener with real
SVIDs from SPIRE (client certificate required, the caller's SPIFFE ID handed to the handler,
rotated SVIDs served from the next handshake on)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from cryptography import x509
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.support.mesh import Mesh, eventually, svid_source
from tests.support.metrics import metric
from x0tta6bl4.devstack.procs import free_port
from x0tta6bl4.platform.config import dns_name_for
from x0tta6bl4.platform.health import Readiness, add_probe_routes
from x0tta6bl4.platform.http_messages import HttpError, HttpRequest, HttpResponse
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.svid import SvidMaterial

pytestmark = pytest.mark.integration

SERVICE = "httptest"
ALERTS_SCHEMA = {
    "type": "object",
    "required": ["alerts"],
    "properties": {
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"enum": ["firing", "resolved"]}},
            },
        }
    },
}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"


class App:
    """A router with one route of each kind, as a service would register them."""

    def __init__(self, tracer_provider: TracerProvider) -> None:
        self.readiness = Readiness()
        self.router = HttpRouter(SERVICE, tracer_provider.get_tracer("test"))
        self.seen: list[HttpRequest] = []
        add_probe_routes(self.router, self.readiness)
        self.router.post("/v1/alerts", self.alerts, max_body=1024, schema=ALERTS_SCHEMA)
        self.router.post("/v1/bundles/{name}", self.upload, body="raw", max_body=1 << 16)
        self.router.get("/v1/bundles/{name}", self.download)
        self.router.get("/v1/boom", self.boom)
        self.router.get("/v1/teapot", self.teapot)
        self.router.get("/v1/whoami", self.whoami, mtls_only=True)

    async def alerts(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        return HttpResponse.json({"accepted": len(request.json["alerts"])}, status=202)

    async def upload(self, request: HttpRequest) -> HttpResponse:
        self.seen.append(request)
        return HttpResponse.json({"name": request.params["name"], "bytes": len(request.body)})

    async def download(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.binary(
            b"\x1f\x8b" + request.params["name"].encode(),
            content_type="application/gzip",
            headers={"ETag": '"v1"'},
        )

    async def boom(self, request: HttpRequest) -> HttpResponse:
        raise RuntimeError("the handler broke: password=hunter2")

    async def teapot(self, request: HttpRequest) -> HttpResponse:
        raise HttpError(418, "short and stout", detail={"spout": True})

    async def whoami(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"caller": request.caller})


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        provider.shutdown()


@pytest.fixture
async def app(spans: tuple[TracerProvider, InMemorySpanExporter]) -> AsyncIterator[App]:
    app = App(spans[0])
    await app.router.serve("127.0.0.1", 0)
    try:
        yield app
    finally:
        await app.router.stop()


@pytest.fixture
async def http(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.router.port}") as client:
        yield client


def _counted(text: str, route: str, method: str, code: str) -> float:
    return metric(
        text,
        "x0tta6bl4_http_server_requests_total",
        default=0.0,
        service=SERVICE,
        route=route,
        method=method,
        code=code,
    )


async def test_a_json_route_gets_the_parsed_body(app: App, http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/alerts", json={"alerts": [{"status": "firing"}]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    (request,) = app.seen
    assert request.json == {"alerts": [{"status": "firing"}]}
    assert request.route == "/v1/alerts" and request.caller is None


async def test_a_raw_route_gets_bytes_and_path_parameters(
    app: App, http: httpx.AsyncClient
) -> None:
    upload = await http.post("/v1/bundles/authz", content=b"\x00\x01not json")
    assert upload.status_code == 200
    assert upload.json() == {"name": "authz", "bytes": 10}
    download = await http.get("/v1/bundles/authz")
    assert download.content == b"\x1f\x8bauthz"
    assert download.headers["content-type"] == "application/gzip"
    assert download.headers["etag"] == '"v1"'


async def test_a_body_over_the_route_limit_is_413_naming_the_limit(
    app: App, http: httpx.AsyncClient
) -> None:
    big = b'{"alerts": [' + b'{"status": "firing"},' * 100 + b"]}"
    response = await http.post("/v1/alerts", content=big)
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == 1024
    assert "limit of 1024 bytes for POST /v1/alerts" in response.json()["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(100):
            yield b" " * 100

    chunked = await http.post("/v1/alerts", content=chunks())
    assert chunked.status_code == 413
    assert app.seen == []


async def test_bad_json_is_400_naming_line_and_column(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/alerts", content=b'{"alerts": [\n  {"status": "firing",}]}')
    assert response.status_code == 400
    body = response.json()
    assert (body["line"], body["column"]) == (2, 23)
    assert "not valid JSON" in body["error"] and "line 2 column 23" in body["error"]


async def test_a_missing_or_mistyped_field_is_400_naming_the_field(
    http: httpx.AsyncClient,
) -> None:
    missing = await http.post("/v1/alerts", json={"alerts": [{}]})
    assert missing.status_code == 400
    assert missing.json()["field"] == "alerts[0].status"
    assert missing.json()["error"] == "field alerts[0].status: is required"
    mistyped = await http.post("/v1/alerts", json={"alerts": "all of them"})
    assert mistyped.status_code == 400
    assert mistyped.json()["field"] == "alerts"
    assert "is not of type 'array'" in mistyped.json()["error"]


async def test_unknown_path_is_404_and_wrong_method_is_405_with_allow(
    http: httpx.AsyncClient,
) -> None:
    unknown = await http.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no route for path /v1/nothing-here"}
    wrong = await http.delete("/v1/alerts")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    both = await http.put("/v1/bundles/x")
    assert both.status_code == 405
    assert both.headers["allow"] == "GET, POST"


async def test_a_handler_exception_is_a_generic_500_and_the_server_goes_on(
    http: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await http.get("/v1/boom")
    assert response.status_code == 500
    assert response.json()["error"].startswith("internal error (trace_id ")
    assert "hunter2" not in response.text
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("http_handler_failed") == 1
    assert (await http.get("/healthz")).status_code == 200
    teapot = await http.get("/v1/teapot")
    assert teapot.status_code == 418
    assert teapot.json() == {"error": "short and stout", "spout": True}


async def test_the_probes_answer_as_before_through_the_router(
    app: App, http: httpx.AsyncClient
) -> None:
    healthz = await http.get("/healthz")
    assert (healthz.status_code, healthz.text, healthz.headers["content-type"]) == (
        200,
        "ok\n",
        "text/plain",
    )
    assert (await http.get("/readyz")).json() == {"ready": True, "checks": {}}

    async def not_yet() -> tuple[bool, str]:
        return False, "waiting"

    app.readiness.add("svid", not_yet)
    readyz = await http.get("/readyz")
    assert readyz.status_code == 503
    assert readyz.json() == {"ready": False, "checks": {"svid": "not ready: waiting"}}
    metrics = await http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=")
    assert (await http.post("/healthz")).status_code == 405


async def test_red_metrics_count_by_route_pattern_method_and_code(
    http: httpx.AsyncClient,
) -> None:
    before = (await http.get("/metrics")).text
    await http.post("/v1/bundles/a", content=b"x")
    await http.post("/v1/bundles/b", content=b"y")
    await http.post("/v1/alerts", content=b"{")
    await http.get("/v1/no/such/path")
    await http.request("PROPFIND", "/v1/alerts")  # llhttp parses it; not counted by name
    after = (await http.get("/metrics")).text

    def moved(route: str, method: str, code: str) -> float:
        return _counted(after, route, method, code) - _counted(before, route, method, code)

    assert moved("/v1/bundles/{name}", "POST", "200") == 2
    assert moved("/v1/alerts", "POST", "400") == 1
    assert moved("unmatched", "GET", "404") == 1
    assert moved("/v1/alerts", "_OTHER", "405") == 1
    assert "/v1/bundles/a" not in after and "/v1/no/such/path" not in after
    histogram = metric(
        after,
        "x0tta6bl4_http_server_request_duration_seconds_count",
        service=SERVICE,
        route="/v1/bundles/{name}",
        method="POST",
    )
    assert histogram >= 2


def _server_spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_request_with_a_traceparent_continues_that_trace(
    http: httpx.AsyncClient, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    _, exporter = spans
    response = await http.post(
        "/v1/alerts",
        json={"alerts": []},
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"},
    )
    assert response.status_code == 202
    (span,) = _server_spans(exporter, "POST /v1/alerts")
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.parent.is_remote
    assert dict(span.attributes or {}) | {"url.scheme": "http"} == {
        "http.request.method": "POST",
        "http.route": "/v1/alerts",
        "http.response.status_code": 202,
        "url.path": "/v1/alerts",
        "url.scheme": "http",
    }


async def test_spans_mark_server_errors_and_leave_the_probes_out(
    http: httpx.AsyncClient, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    _, exporter = spans
    await http.get("/v1/boom")
    await http.get("/v1/missing")
    await http.get("/readyz")
    await http.get("/metrics")
    (boom,) = _server_spans(exporter, "GET /v1/boom")
    assert boom.status.is_ok is False and boom.attributes is not None
    assert boom.attributes["http.response.status_code"] == 500
    (missing,) = _server_spans(exporter, "GET")
    assert missing.attributes is not None and missing.attributes["http.route"] == "unmatched"
    names = {s.name for s in exporter.get_finished_spans()}
    assert names == {"GET /v1/boom", "GET"}


async def test_a_route_registered_while_serving_is_served(
    app: App, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/v1/late")).status_code == 404

    async def late(_: HttpRequest) -> HttpResponse:
        return HttpResponse.text("here")

    app.router.get("/v1/late", late)
    assert (await http.get("/v1/late")).text == "here"


# -- mTLS ----------------------------------------------------------------------------------


def _client_context(material: SvidMaterial, tmp: Path, *, present: bool = True) -> ssl.SSLContext:
    """What another workload would use: verify the server's SVID (its DNS SAN) against its
    trust bundle, and present its own SVID (unless ``present`` is false)."""
    context = ssl.create_default_context(cadata=material.bundle_pem.decode())
    if present:
        (tmp / "chain.pem").write_bytes(material.cert_chain_pem)
        (tmp / "key.pem").write_bytes(material.private_key_pem)
        context.load_cert_chain(tmp / "chain.pem", tmp / "key.pem")
    return context


async def _get(port: int, context: ssl.SSLContext, path: str, sni: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=context) as client:
        return await client.get(f"https://127.0.0.1:{port}{path}", extensions={"sni_hostname": sni})


async def _served_serial(port: int, context: ssl.SSLContext, sni: str) -> int:
    """The serial of the certificate the server presents on a new connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=sni)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return int(x509.load_der_x509_certificate(der).serial_number)
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await writer.wait_closed()


async def _mtls_scenario(mesh: Mesh, tmp: Path) -> dict[str, Any]:
    server_name = dns_name_for("policy", mesh.namespace)
    provider = TracerProvider()
    app = App(provider)
    async with (
        svid_source(mesh.workload("policy")) as server_svids,
        svid_source(mesh.workload("healer")) as client_svids,
    ):
        await app.router.serve("127.0.0.1", 0)
        port = await app.router.serve_mtls("127.0.0.1", 0, server_svids)
        try:
            with_cert = _client_context(client_svids.require(), tmp)
            without = _client_context(client_svids.require(), tmp, present=False)
            whoami = await _get(port, with_cert, "/v1/whoami", server_name)
            plain_route = await _get(port, with_cert, "/v1/bundles/x", server_name)
            refused: Exception | None = None
            try:
                await _get(port, without, "/v1/whoami", server_name)
            except httpx.TransportError as err:
                refused = err
            async with httpx.AsyncClient() as plain:
                on_plain = await plain.get(f"http://127.0.0.1:{app.router.port}/v1/whoami")
            return {
                "whoami": whoami,
                "plain_route": plain_route,
                "refused": refused,
                "on_plain": on_plain,
                "caller": client_svids.require().spiffe_id,
            }
        finally:
            await app.router.stop()
            provider.shutdown()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_mtls_route_needs_a_client_certificate_and_gets_the_callers_spiffe_id(
    mesh: Mesh, tmp_path: Path, loop: str
) -> None:
    scenario = _mtls_scenario(mesh, tmp_path)
    result = uvloop.run(scenario) if loop == "uvloop" else asyncio.run(scenario)
    assert result["whoami"].status_code == 200
    assert result["whoami"].json() == {"caller": result["caller"]}
    assert result["caller"] == f"spiffe://{mesh.trust_domain}/ns/{mesh.namespace}/sa/healer"
    assert result["plain_route"].status_code == 200  # plain routes are served over mTLS too
    assert result["refused"] is not None, "a client without a certificate got an answer"
    # To the plain listener an mTLS-only route does not exist.
    assert result["on_plain"].status_code == 404


async def test_the_mtls_listener_serves_a_rotated_svid_from_the_next_handshake(
    mesh: Mesh, tmp_path: Path
) -> None:
    server_name = dns_name_for("policy", mesh.namespace)
    router = HttpRouter(SERVICE, TracerProvider().get_tracer("test"))

    async def whoami(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"caller": request.caller})

    router.get("/v1/whoami", whoami, mtls_only=True)
    async with (
        svid_source(mesh.workload("policy", svid_ttl_s=20)) as server_svids,
        svid_source(mesh.workload("healer")) as client_svids,
    ):
        port = await router.serve_mtls("127.0.0.1", free_port(), server_svids)
        try:
            context = _client_context(client_svids.require(), tmp_path)
            first = server_svids.require().serial
            assert await _served_serial(port, context, server_name) == first

            async def rotated_svid() -> bool:
                return server_svids.require().serial != first

            await eventually(rotated_svid, timeout_s=60, what="the server SVID to rotate")
            rotated = server_svids.require().serial
            assert await _served_serial(port, context, server_name) == rotated
            response = await _get(port, context, "/v1/whoami", server_name)
            assert response.json() == {"caller": client_svids.require().spiffe_id}
        finally:
            await router.stop()


def test_a_service_process_serves_its_probes_through_the_router(mesh: Mesh) -> None:
    service = mesh.service("ops")  # waits until /readyz answers 200
    service.metrics()
    text = service.metrics()  # counts the scrape before it
    for route in ("/metrics", "/readyz"):
        counted = metric(
            text,
            "x0tta6bl4_http_server_requests_total",
            service="ops",
            route=route,
            method="GET",
            code="200",
        )
        assert counted >= 1, route

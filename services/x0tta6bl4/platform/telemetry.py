"""Traces, metrics and logs for one service process.

- Traces: OpenTelemetry SDK; sampler from ``OTEL_TRACES_SAMPLER``/``OTEL_TRACES_SAMPLER_ARG``
  (read by the SDK), W3C trace-context propagation (the SDK default), exporter chosen by
  ``OTEL_TRACES_EXPORTER`` (``otlp`` — the default when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is
  set —, ``console`` or ``none``). ``shutdown`` flushes within a bound.
- Metrics: Prometheus, prefixed ``x0tta6bl4_``: RED metrics per RPC for server and client side,
  authorisation decisions, SVID expiry.
- Logs: structlog JSON on stderr, each line carrying ``trace_id``/``span_id`` of the active span
  and whatever is bound in context (the caller's SPIFFE ID, the method).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import Counter, Gauge, Histogram

from x0tta6bl4 import __version__

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

GRPC_SERVER_REQUESTS = Counter(
    "x0tta6bl4_grpc_server_requests",
    "RPCs handled, by outcome status code.",
    ["service", "grpc_service", "method", "code"],
)
GRPC_SERVER_DURATION = Histogram(
    "x0tta6bl4_grpc_server_request_duration_seconds",
    "Time to handle an RPC, from receipt to the last response message.",
    ["service", "grpc_service", "method"],
    buckets=_LATENCY_BUCKETS,
)
GRPC_SERVER_IN_FLIGHT = Gauge(
    "x0tta6bl4_grpc_server_in_flight_requests",
    "RPCs being handled right now.",
    ["service"],
)
GRPC_CLIENT_REQUESTS = Counter(
    "x0tta6bl4_grpc_client_requests",
    "RPCs made to other services, by outcome status code.",
    ["service", "target", "grpc_service", "method", "code"],
)
GRPC_CLIENT_DURATION = Histogram(
    "x0tta6bl4_grpc_client_request_duration_seconds",
    "Time for an outbound RPC including retries.",
    ["service", "target", "grpc_service", "method"],
    buckets=_LATENCY_BUCKETS,
)
AUTHZ_DECISIONS = Counter(
    "x0tta6bl4_authz_decisions",
    "Authorisation decisions of the OPA sidecar, by result.",
    ["service", "result"],
)
SVID_EXPIRY = Gauge(
    "spiffe_svid_x509_expiry_timestamp_seconds",
    "Expiry of the current X.509 SVID, as a Unix timestamp.",
    ["spiffe_id"],
)
SVID_ROTATIONS = Counter(
    "x0tta6bl4_svid_rotations",
    "X.509 SVIDs received from the Workload API.",
    ["service"],
)
BUILD_INFO = Gauge(
    "x0tta6bl4_build_info", "Always 1; labels carry the build.", ["service", "version"]
)


def _add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def configure_logging(service: str, level: str = "info") -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    for noisy in ("httpx", "httpcore"):  # one line per OPA decision otherwise
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_trace_ids,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)


def _span_exporter() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if choice == "none" or (not choice and not endpoint):
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    if choice not in ("", "otlp"):
        raise ValueError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter {choice!r} (use otlp, console or none)"
        )
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


class Telemetry:
    """Owns the tracer provider of one process; ``shutdown`` flushes within a bound."""

    def __init__(self, service: str) -> None:
        self.service = service
        resource = Resource.create(
            {
                "service.name": f"x0tta6bl4-{service}",
                "service.namespace": "x0tta6bl4",
                "service.version": __version__,
            }
        )
        exporter = _span_exporter()
        # The sampler comes from OTEL_TRACES_SAMPLER. Without it and without an exporter, only
        # spans whose caller sampled them are recorded: nobody would see the others, and
        # recording a span per RPC is a large share of a small RPC's cost. Trace ids are still
        # made, propagated and logged.
        sampler = None
        if exporter is None and not os.environ.get("OTEL_TRACES_SAMPLER"):
            sampler = ParentBased(ALWAYS_OFF)
        self.tracer_provider = TracerProvider(resource=resource, sampler=sampler)
        if exporter is not None:
            self.tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.tracer_provider.get_tracer("x0tta6bl4." + service, __version__)
        BUILD_INFO.labels(service, __version__).set(1)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self.tracer_provider.force_flush(timeout_millis=int(timeout_s * 1000))
        self.tracer_provider.shutdown()

"""An OTLP/gRPC trace receiver for tests: what the services export, as a real collector gets it."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from x0tta6bl4.devstack.procs import free_port


class ReceivedSpan:
    def __init__(
        self,
        service: str,
        name: str,
        kind: int,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        attributes: dict[str, Any],
    ) -> None:
        self.service, self.name, self.kind = service, name, kind
        self.trace_id, self.span_id, self.parent_span_id = trace_id, span_id, parent_span_id
        self.attributes = attributes

    def __repr__(self) -> str:
        return f"<span {self.service} {self.name} kind={self.kind} trace={self.trace_id}>"


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    SPAN_KIND_SERVER = 2
    SPAN_KIND_CLIENT = 3

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def Export(self, request: Any, context: Any) -> Any:
        received = []
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            service = attrs.get("service.name", "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    received.append(
                        ReceivedSpan(
                            service,
                            span.name,
                            span.kind,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            {a.key: a.value for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def start(self) -> OtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

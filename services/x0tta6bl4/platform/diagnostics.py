"""The DiagnosticsService every service serves: WhoAmI and Ping."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from x0tta6bl4 import __version__
from x0tta6bl4.platform.errors import InvalidArgument
from x0tta6bl4.platform.peer import caller_spiffe_id
from x0tta6bl4.platform.request_fields import duration_seconds
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

MAX_PING_PAYLOAD = 64 * 1024
MAX_PING_DELAY_S = 30.0


class Diagnostics(diagnostics_pb2_grpc.DiagnosticsServiceServicer):
    def __init__(self, service: str, svids: SvidSource) -> None:
        self._service = service
        self._svids = svids

    async def WhoAmI(
        self,
        request: diagnostics_pb2.WhoAmIRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> diagnostics_pb2.WhoAmIResponse:
        material = self._svids.require()
        expires = Timestamp()
        expires.FromDatetime(material.expires_at)
        return diagnostics_pb2.WhoAmIResponse(
            caller_spiffe_id=caller_spiffe_id(context.auth_context()) or "",
            server_spiffe_id=material.spiffe_id,
            server_svid_expires_at=expires,
            server_svid_serial=material.serial_hex,
            service=self._service,
            version=__version__,
        )

    async def Ping(
        self,
        request: diagnostics_pb2.PingRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> diagnostics_pb2.PingResponse:
        if len(request.payload) > MAX_PING_PAYLOAD:
            raise InvalidArgument(
                "payload", f"at most {MAX_PING_PAYLOAD} bytes, got {len(request.payload)}"
            )
        delay_s = duration_seconds("delay", request.delay, 0, MAX_PING_DELAY_S)
        if delay_s:
            await asyncio.sleep(delay_s)
        now = Timestamp()
        now.GetCurrentTime()
        return diagnostics_pb2.PingResponse(payload=request.payload, server_time=now)

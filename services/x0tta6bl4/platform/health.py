"""Readiness of one process, and the HTTP endpoints /metrics, /healthz and /readyz.

The HTTP server is a small asyncio HTTP/1.1 responder: it serves three GET paths, nothing else,
so it needs no web framework.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = structlog.get_logger(__name__)

Check = Callable[[], Awaitable[tuple[bool, str]]]


class Readiness:
    """Named readiness checks; ready when all pass. Also tracks draining on shutdown."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self.draining = False

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def evaluate(self) -> tuple[bool, dict[str, str]]:
        results: dict[str, str] = {}
        ready = not self.draining
        if self.draining:
            results["draining"] = "shutting down"
        for name, check in list(self._checks.items()):
            try:
                ok, detail = await asyncio.wait_for(check(), timeout=2.0)
            except Exception as err:
                ok, detail = False, f"check failed: {err!r}"
            results[name] = ("ok" if ok else "not ready") + (f": {detail}" if detail else "")
            ready = ready and ok
        return ready, results


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class HttpEndpoints:
    """Serves /metrics, /healthz and /readyz on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, readiness: Readiness, host: str, port: int) -> None:
        self._readiness = readiness
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _route(self, path: str) -> bytes:
        if path == "/metrics":
            return _response("200 OK", CONTENT_TYPE_LATEST, generate_latest())
        if path == "/healthz":
            return _response("200 OK", "text/plain", b"ok\n")
        if path == "/readyz":
            ready, results = await self._readiness.evaluate()
            body = json.dumps({"ready": ready, "checks": results}).encode() + b"\n"
            return _response(
                "200 OK" if ready else "503 Service Unavailable", "application/json", body
            )
        return _response("404 Not Found", "text/plain", b"not found\n")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                pass
            parts = request_line.decode("latin-1").split()
            if len(parts) < 2 or parts[0] != "GET":
                writer.write(_response("405 Method Not Allowed", "text/plain", b"GET only\n"))
            else:
                writer.write(await self._route(parts[1].split("?", 1)[0]))
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

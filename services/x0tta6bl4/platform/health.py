"""Readiness of one process, and the probe routes /metrics, /healthz and /readyz.

``/healthz`` answers 200 ``ok`` while the process serves HTTP at all; ``/readyz`` answers 200
when every readiness check passes and 503 otherwise, with ``{"ready": bool, "checks": {name:
"ok[: detail]" | "not ready[: detail]"}}``; ``/metrics`` is the Prometheus text exposition.
They are ordinary routes of the process's :class:`.HttpRouter` (counted in its metrics, not
traced: they are polled every few seconds and a span each would bury the traces that matter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from x0tta6bl4.platform.http_messages import HttpRequest, HttpResponse
from x0tta6bl4.platform.http_routes import HttpRouter

log = structlog.get_logger(__name__)

CHECK_TIMEOUT_S = 2.0
Check = Callable[[], Awaitable[tuple[bool, str]]]


class Readiness:
    """Named readiness checks; ready when all pass. Also tracks draining on shutdown."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self.draining = False

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def evaluate(self) -> tuple[bool, dict[str, str]]:
        """Every check at once, each bounded by CHECK_TIMEOUT_S (a slow one is "not ready"
        and does not delay the others)."""
        results: dict[str, str] = {}
        ready = not self.draining
        if self.draining:
            results["draining"] = "shutting down"
        checks = list(self._checks.items())
        outcomes = await asyncio.gather(*(self._run(check) for _, check in checks))
        for (name, _), (ok, detail) in zip(checks, outcomes, strict=True):
            results[name] = ("ok" if ok else "not ready") + (f": {detail}" if detail else "")
            ready = ready and ok
        return ready, results

    @staticmethod
    async def _run(check: Check) -> tuple[bool, str]:
        try:
            return await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_S)
        except TimeoutError:
            return False, f"check gave no answer within {CHECK_TIMEOUT_S:g} s"
        except Exception as err:
            return False, f"check failed: {err!r}"


def add_probe_routes(router: HttpRouter, readiness: Readiness) -> None:
    """Register ``GET /metrics``, ``/healthz`` and ``/readyz`` on ``router``."""

    async def metrics(_: HttpRequest) -> HttpResponse:
        return HttpResponse.binary(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    async def healthz(_: HttpRequest) -> HttpResponse:
        return HttpResponse.text("ok\n", content_type="text/plain")

    async def readyz(_: HttpRequest) -> HttpResponse:
        ready, results = await readiness.evaluate()
        return HttpResponse.json({"ready": ready, "checks": results}, status=200 if ready else 503)

    router.get("/metrics", metrics, traced=False)
    router.get("/healthz", healthz, traced=False)
    router.get("/readyz", readyz, traced=False)

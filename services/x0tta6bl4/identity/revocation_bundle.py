"""The revocation list as an OPA bundle, served to every OPA sidecar by the identity service.

``GET /v1/bundles/revocations`` answers a gzipped tar in OPA's bundle format: ``.manifest``
(``roots: ["x0tta6bl4/revocations"]``, ``revision``: the store revision it was built at) and
``x0tta6bl4/revocations/data.json`` (:func:`~x0tta6bl4.identity.core.revocations.opa_data`).
Each sidecar polls it (``bundles.revocations`` in its config, every 1-2 s) with the ETag of
the bundle it has, and gets ``304 Not Modified`` while nothing changed. The bundle is rebuilt
on every change of the revocations in the store (a watch) and once a minute (bans that ended
drop out; the policy already ignores them from their end time on).

The route is on the plain listener, which ``make up`` binds to 127.0.0.1 like the sidecars;
the bundle holds only banned SPIFFE IDs and reasons. (Signed bundles come with the policy
service, which serves the policy bundles.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import tarfile
import time

import structlog

from x0tta6bl4.identity import metrics
from x0tta6bl4.identity.core.revocations import opa_data
from x0tta6bl4.identity.registry import Registry
from x0tta6bl4.platform.http_messages import HttpRequest, HttpResponse

log = structlog.get_logger(__name__)

PATH = "/v1/bundles/revocations"
ROOT = "x0tta6bl4/revocations"
REFRESH_S = 60.0


def bundle_bytes(data: dict[str, object], revision: int) -> bytes:
    """A deterministic bundle (same data and revision -> same bytes)."""
    files = {
        ".manifest": json.dumps({"revision": str(revision), "roots": [ROOT]}).encode(),
        f"{ROOT}/data.json": json.dumps(data, sort_keys=True).encode(),
    }
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


class RevocationBundle:
    """The current bundle, kept up to date from the store."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._body = b""
        self._etag = ""
        self.loaded = asyncio.Event()

    async def rebuild(self) -> None:
        revocations = await self._registry.revocations()
        data = opa_data(revocations, time.time())
        revision = max((r.revision for r in revocations), default=0)
        body = bundle_bytes(data, revision)
        self._body = body
        self._etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        metrics.REVOCATIONS_IN_FORCE.set(len(data))
        self.loaded.set()

    async def _watch(self, changed: asyncio.Event) -> None:
        async for _ in self._registry.watch_revocations():
            changed.set()

    async def run(self) -> None:
        """Rebuild now, on every change and every REFRESH_S, until cancelled."""
        changed = asyncio.Event()
        watcher: asyncio.Task[None] | None = None
        try:
            while True:
                if watcher is None or watcher.done():
                    watcher = asyncio.create_task(self._watch(changed))
                try:
                    await self.rebuild()
                except Exception as err:  # the store is away: keep serving the last bundle
                    log.warning("revocation_bundle_refresh_failed", error=str(err))
                    changed.set()  # try again after a short pause
                    await asyncio.sleep(1.0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), REFRESH_S)
                changed.clear()
        finally:
            if watcher is not None:
                watcher.cancel()

    async def serve(self, request: HttpRequest) -> HttpResponse:
        if not self.loaded.is_set():
            return HttpResponse.json({"error": "revocations not loaded yet"}, status=503)
        if request.headers.get("If-None-Match") == self._etag:
            return HttpResponse.empty(304, headers={"ETag": self._etag})
        return HttpResponse.binary(
            self._body, content_type="application/gzip", headers={"ETag": self._etag}
        )

    async def ready(self) -> tuple[bool, str]:
        if not self.loaded.is_set():
            return False, "revocation list not loaded from the store yet"
        return True, ""

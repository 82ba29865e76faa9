"""Where the consensus service gets its key-range permissions: the local OPA sidecar.

The permission set is policy data (``data.x0tta6bl4.kv.permissions``): the static data file
shipped with the policy until the policy service serves bundles, then whatever bundle the
sidecar runs. :class:`PermissionSource` reads it from the sidecar's data API every
``X0_KV_AUTHZ_REFRESH_S`` seconds and swaps in a new :class:`Permissions` when it changed, so
a change takes effect without a restart and no request waits for a network round trip.
Fail closed: until a set is loaded every KV request is refused (and the member is not
ready); a set that does not parse is refused and the last good one stays.

Settings: ``X0_KV_AUTHZ`` (``on``, the default, or ``off`` — for benchmarks comparing the
cost; never in production) and ``X0_KV_AUTHZ_REFRESH_S`` (default 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
import structlog

from x0tta6bl4.consensus.key_permissions import Permissions, parse_permissions
from x0tta6bl4.consensus.metrics import KV_PERMISSION_GRANTS, KV_PERMISSION_LOADS
from x0tta6bl4.platform.config import EnvReader, seconds_between
from x0tta6bl4.platform.errors import ConfigError

log = structlog.get_logger(__name__)

DATA_PATH = "x0tta6bl4/kv/permissions"


def _on_off(value: str) -> bool:
    if value.lower() not in ("on", "off"):
        raise ValueError(f"must be on or off, got {value!r}")
    return value.lower() == "on"


@dataclass(frozen=True, slots=True)
class KvAuthzSettings:
    enforce: bool = True
    refresh_s: float = 2.0


def load_kv_authz_settings(env: Mapping[str, str]) -> KvAuthzSettings:
    reader = EnvReader(env)
    settings = KvAuthzSettings(
        enforce=reader.get("X0_KV_AUTHZ", _on_off, True),
        refresh_s=reader.get("X0_KV_AUTHZ_REFRESH_S", seconds_between(0.05, 300), 2.0),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings


class PermissionSource:
    """The current permission set, refreshed from the OPA sidecar in the background."""

    def __init__(self, opa_url: str, settings: KvAuthzSettings) -> None:
        self.settings = settings
        self.permissions: Permissions | None = None
        self._client = httpx.AsyncClient(base_url=opa_url, timeout=2.0)
        self._digest = ""
        self._last_error = ""
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Load the set once; whether a (new or unchanged) valid set is in force."""
        try:
            response = await self._client.get(f"/v1/data/{DATA_PATH}")
            response.raise_for_status()
            body = response.json()
            if "result" not in body:
                raise ValueError(f"the sidecar has no data.{DATA_PATH.replace('/', '.')}")
            raw = json.dumps(body["result"], sort_keys=True).encode()
            digest = hashlib.sha256(raw).hexdigest()[:16]
            if digest != self._digest:
                grants = parse_permissions(body["result"])
                self.permissions = Permissions(grants, digest)
                self._digest = digest
                KV_PERMISSION_GRANTS.set(len(grants))
                KV_PERMISSION_LOADS.labels("loaded").inc()
                log.info("kv_permissions_loaded", grants=len(grants), version=digest)
            self._last_error = ""
            return True
        except (httpx.HTTPError, ValueError) as err:
            KV_PERMISSION_LOADS.labels("failed").inc()
            message = f"{type(err).__name__}: {err}"
            if message != self._last_error:  # once per distinct problem, not every poll
                log.warning("kv_permissions_load_failed", error=message, keeps=self._digest)
                self._last_error = message
            return self.permissions is not None

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.settings.refresh_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def ready(self) -> tuple[bool, str]:
        if not self.settings.enforce:
            return True, "key-range permissions off (X0_KV_AUTHZ=off)"
        if self.permissions is None:
            return False, f"no key-range permissions loaded yet: {self._last_error or 'loading'}"
        return True, f"{len(self.permissions.grants)} grants, version {self.permissions.version}"

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

"""Sidecar status: receives each OPA sidecar's status reports and keeps, per sidecar, which
bundle revision it runs, when it loaded it and the errors it reports, for ``Status`` and the
``x0tta6bl4_policy_sidecar_*`` metrics.

**Report** (OPA's Status Service API, verified in OPA 1.22 ``v1/plugins/status``): OPA POSTs
plain JSON to ``<service url>/status`` (``/status/<partition_name>`` with a partition) after
every bundle download attempt and on plugin changes — not retried on failure; the next attempt
reports again. Body: ``{labels: {id, version, <configured labels: instance, service>},
bundles: {name: {name, active_revision, last_successful_activation, last_successful_download,
last_successful_request, last_request, code, message, errors, http_code, ...}}, plugins,
decision_logs, metrics}`` (~60 KB with OPA's Prometheus metrics). Go's zero time
``0001-01-01T00:00:00Z`` means "never".

**Kept** per sidecar, keyed by ``labels.instance`` (else ``labels.id``): in memory and in a
Redis hash with a TTL (``status_ttl_s``), indexed by a sorted set of report times, so a
restarted policy service (or another replica) still knows each sidecar until its status
expires. A report that cannot be written to Redis is kept in memory and answered 503.

A bundle error is counted once per failed attempt (its code, message and ``last_request``),
however many later reports repeat it — also across a restart, the last one counted being
stored with the status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import time
from typing import Any

import structlog

from x0tta6bl4.platform.http_messages import HttpError, HttpRequest, HttpResponse
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.redis_store import RedisStore, RedisStoreError
from x0tta6bl4.policy import metrics

log = structlog.get_logger(__name__)

INDEX_KEY = "x0:policy:sidecars"
KEY_PREFIX = "x0:policy:sidecar:"
_REVISION = re.compile(r"\A([0-9]{1,18})-[0-9a-f]{12}\Z")
_GO_ZERO_YEAR = 1
_TIME = {"type": "string"}
STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["labels"],
    "properties": {
        "labels": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "version": {"type": "string"},
                "instance": {"type": "string", "minLength": 1, "maxLength": 253},
                "service": {"type": "string"},
            },
            "additionalProperties": {"type": "string"},
        },
        "bundles": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "active_revision": {"type": "string"},
                    "last_successful_activation": _TIME,
                    "last_successful_download": _TIME,
                    "last_successful_request": _TIME,
                    "last_request": _TIME,
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "errors": {"type": "array"},
                },
            },
        },
    },
}


@dataclasses.dataclass(frozen=True, slots=True)
class SidecarStatusSettings:
    """How long a sidecar's last report is kept (``status_ttl_s``) and the bound of a report
    body (``max_body_bytes``; OPA's reports carry its metrics, ~60 KB)."""

    status_ttl_s: float = 600.0
    max_body_bytes: int = 4 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class BundleStatus:
    """One bundle of one sidecar. Times are None for "never"; ``revision_number`` is the
    number of a ``"<number>-<12 hex>"`` revision, else None; ``errors`` the error details as
    JSON text each."""

    name: str
    active_revision: str
    revision_number: int | None
    last_successful_activation: dt.datetime | None
    last_successful_download: dt.datetime | None
    last_successful_request: dt.datetime | None
    last_request: dt.datetime | None
    code: str
    message: str
    errors: tuple[str, ...]

    @property
    def error_key(self) -> str:
        """Identifies one failed attempt ("" when the bundle reports no error)."""
        if not self.code and not self.message:
            return ""
        stamp = self.last_request.isoformat() if self.last_request else ""
        return f"{self.code}|{self.message}|{stamp}"


@dataclasses.dataclass(frozen=True, slots=True)
class SidecarStatus:
    """The last report of one sidecar: ``instance`` (its key), ``opa_id`` (labels.id),
    ``service`` (labels.service), ``caller`` (the SPIFFE ID that posted it, "" on a plain
    listener), ``opa_version``, its bundles by name order, and when it was received."""

    instance: str
    opa_id: str
    service: str
    caller: str
    opa_version: str
    bundles: tuple[BundleStatus, ...]
    received_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=_iso))  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SidecarStatus:
        bundles = tuple(
            BundleStatus(
                **{
                    **b,
                    **{k: _parse_time(b[k]) for k in _TIME_FIELDS},
                    "errors": tuple(b["errors"]),
                }
            )
            for b in value["bundles"]
        )
        return cls(
            **{
                **value,
                "bundles": bundles,
                "received_at": dt.datetime.fromisoformat(value["received_at"]),
            }
        )


_TIME_FIELDS = (
    "last_successful_activation",
    "last_successful_download",
    "last_successful_request",
    "last_request",
)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.year <= _GO_ZERO_YEAR or when.tzinfo is None:
        return None
    return when.astimezone(dt.UTC)


def revision_number(revision: str) -> int | None:
    """The number of one of our revisions (``"12-0123456789ab"`` → 12), else None."""
    found = _REVISION.match(revision)
    return int(found.group(1)) if found else None


def parse_status(report: dict[str, Any], caller: str, now: dt.datetime) -> SidecarStatus:
    """The status of one schema-checked OPA report (pure)."""
    labels = report["labels"]
    bundles = []
    for name, raw in sorted((report.get("bundles") or {}).items()):
        revision = str(raw.get("active_revision", ""))
        errors = raw.get("errors") or []
        bundles.append(
            BundleStatus(
                name=str(raw.get("name") or name),
                active_revision=revision,
                revision_number=revision_number(revision),
                **{k: _parse_time(raw.get(k)) for k in _TIME_FIELDS},
                code=str(raw.get("code", "")),
                message=str(raw.get("message", "")),
                errors=tuple(e if isinstance(e, str) else json.dumps(e) for e in errors),
            )
        )
    return SidecarStatus(
        instance=labels.get("instance") or labels["id"],
        opa_id=labels["id"],
        service=labels.get("service", ""),
        caller=caller,
        opa_version=labels.get("version", ""),
        bundles=tuple(bundles),
        received_at=now,
    )


class SidecarStatuses:
    """The sidecars' last reports (see the module docstring)."""

    def __init__(
        self, store: RedisStore | None, settings: SidecarStatusSettings | None = None
    ) -> None:
        self._store = store
        self.settings = settings or SidecarStatusSettings()
        self._memory: dict[str, SidecarStatus] = {}
        self._counted: dict[str, dict[str, str]] = {}  # instance -> bundle -> error_key

    def register(self, router: HttpRouter, prefix: str = "/v1", *, mtls_only: bool = True) -> None:
        """Serve ``POST {prefix}/status`` (and ``{prefix}/status/{partition}``): OPA's status
        report for a service url ending in ``prefix``."""
        for pattern in (f"{prefix}/status", f"{prefix}/status/{{partition}}"):
            router.post(
                pattern,
                self.handle,
                schema=STATUS_SCHEMA,
                max_body=self.settings.max_body_bytes,
                mtls_only=mtls_only,
            )

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """One report: 204 when kept, 503 when kept in memory only (Redis failed)."""
        status = parse_status(request.json, request.caller or "", dt.datetime.now(dt.UTC))
        try:
            await self.record(status)
        except RedisStoreError as err:
            raise HttpError(
                503, f"sidecar status kept in memory only: {err}", headers={"Retry-After": "5"}
            ) from None
        return HttpResponse.empty(204)

    async def record(self, status: SidecarStatus) -> None:
        """Keep ``status`` and update the metrics; RedisStoreError (after it is kept in memory
        and counted) if Redis fails."""
        instance = status.instance
        self._memory[instance] = status
        counted = self._counted.get(instance)
        if counted is None:
            counted = self._counted[instance] = await self._stored_counted(instance)
        for bundle in status.bundles:
            if bundle.revision_number is not None:
                metrics.SIDECAR_REVISION.labels(instance, bundle.name).set(bundle.revision_number)
            key = bundle.error_key
            if key and counted.get(bundle.name) != key:
                metrics.SIDECAR_LOAD_ERRORS.labels(instance, bundle.name).inc()
                log.warning(
                    "sidecar_bundle_error",
                    instance=instance,
                    bundle=bundle.name,
                    code=bundle.code,
                    message=bundle.message,
                )
            counted[bundle.name] = key or counted.get(bundle.name, "")
        metrics.SIDECAR_LAST_REPORT.labels(instance).set(status.received_at.timestamp())
        if self._store is None:
            return
        ttl = self.settings.status_ttl_s
        stamp = status.received_at.timestamp()
        await (
            self._store.batch()
            .hset(
                KEY_PREFIX + instance,
                {"status": json.dumps(status.to_json()), "counted": json.dumps(counted)},
            )
            .expire(KEY_PREFIX + instance, ttl)
            .zadd(INDEX_KEY, {instance: stamp})
            .zrem_by_score(INDEX_KEY, float("-inf"), time.time() - ttl)
            .execute()
        )

    async def _stored_counted(self, instance: str) -> dict[str, str]:
        if self._store is None:
            return {}
        try:
            fields = await self._store.hgetall(KEY_PREFIX + instance)
            value = json.loads(fields.get("counted", b"{}"))
        except (RedisStoreError, ValueError):
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}

    async def snapshot(self) -> list[SidecarStatus]:
        """Every sidecar that reported within ``status_ttl_s``, by instance: the newest of
        this process's memory and Redis (memory alone while Redis fails)."""
        cutoff = time.time() - self.settings.status_ttl_s
        latest = {k: s for k, s in self._memory.items() if s.received_at.timestamp() >= cutoff}
        for status in await self._from_redis(cutoff):
            mine = latest.get(status.instance)
            if mine is None or status.received_at > mine.received_at:
                latest[status.instance] = status
        return [latest[k] for k in sorted(latest)]

    async def _from_redis(self, cutoff: float) -> list[SidecarStatus]:
        if self._store is None:
            return []
        try:
            instances = await self._store.zrange_by_score(INDEX_KEY, cutoff)
            if not instances:
                return []
            batch = self._store.batch(transaction=False)
            for instance in instances:
                batch.hgetall(KEY_PREFIX + instance)
            replies = await batch.execute()
        except RedisStoreError as err:
            log.warning("sidecar_status_from_memory_only", error=str(err))
            return []
        found = []
        for fields in replies:
            try:
                found.append(SidecarStatus.from_json(json.loads(fields["status"])))
            except (KeyError, ValueError, TypeError):
                continue  # expired between the two reads, or written by another version
        return found

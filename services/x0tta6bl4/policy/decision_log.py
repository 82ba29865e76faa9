"""The decision log: receives the sidecars' OPA decision-log uploads, keeps each decision
bounded in a Redis stream, counts every event it does not keep, and answers queries on it.

**Upload** (OPA's Decision Log Service API, verified in OPA 1.22 ``v1/plugins/logs``): OPA
POSTs to ``<service url>/logs`` (``/logs/<partition_name>`` with a partition) a gzip'd
(``Content-Encoding: gzip``) JSON array of events ``{labels: {id, version, instance, service},
decision_id, bundles: {name: {revision}}, path, input, result, requested_by, timestamp,
metrics, erased, masked, error, ...}``, and on any non-2xx answer re-queues the chunk and
re-sends it later. So:

- a body that is no gzip'd/plain JSON array → 400 naming the problem; nothing is stored;
- an event of the array that is no decision event (no ``decision_id``, bad ``timestamp``) is
  dropped and counted as ``malformed`` — refusing the whole upload would make OPA re-send the
  same poison chunk forever — and the answer names it;
- Redis unavailable → 503 (``Retry-After``), the events counted as ``redis_unavailable``;
  OPA keeps them and they arrive once Redis is back. All events of one upload go into Redis in
  one MULTI/EXEC, so an upload is stored whole or not at all (a Redis *timeout* may still have
  stored it, and OPA's re-send then stores it twice: ``decision_id`` tells the copies apart).

**Kept** per decision (:class:`DecisionRecord`): decision id, decision time, the sidecar's
``instance``/``service`` labels and the uploader's SPIFFE ID, the authz input's caller,
service, gRPC service, method, namespace, source address and metadata — the
``x0-break-glass`` token masked whether or not OPA's ``system.log.mask`` already removed it —
the decision (``allow``, ``effect``, ``decided_by``, ``explanation`` of
``data.x0tta6bl4.mesh.decision``-style objects; a bare boolean result is ``effect``
``BOOLEAN``; no result is a denial, ``UNDEFINED`` or ``ERROR``), and the bundle revisions.

**Bounded** by count (``max_events``) and age (``max_age_s``, by arrival): after each upload
the stream is trimmed exactly (XTRIM MINID, then MAXLEN) and the removed entries are counted as
``retention_age`` / ``retention_count`` drops. Redis holds rebuildable state: a Redis restart
empties the log (no decision is enforced from it; shadow evaluation then has less history).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import json
import re
import time
import zlib
from collections.abc import Callable
from typing import Any

from x0tta6bl4.platform.errors import InvalidArgument
from x0tta6bl4.platform.http_messages import HttpError, HttpRequest, HttpResponse, JsonBody
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.redis_store import RedisStore, RedisStoreError, StreamEntry
from x0tta6bl4.policy import metrics

STREAM_KEY = "x0:policy:decisions"
BREAK_GLASS_KEY = "x0-break-glass"
MASKED = "**masked**"
MAX_LIMIT = 1000
MAX_RECENT = 100_000
_CURSOR = re.compile(r"\A[0-9]{1,20}-[0-9]{1,20}\Z")
_SKEW_MS = 5 * 60 * 1000  # a decision may be uploaded up to this long after it was taken
_MAX_PROBLEMS = 10
_JSON = JsonBody()


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionLogSettings:
    """Retention by count (``max_events``: ``X0_POLICY_DECISIONS_MAX`` of
    :mod:`.settings`) and by age (``max_age_s``: ``X0_POLICY_DECISIONS_MAX_AGE_S``), and the
    bound of an upload body after gzip decoding (``max_body_bytes``)."""

    max_events: int = 100_000
    max_age_s: float = 86_400.0
    max_body_bytes: int = 16 << 20


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One decision as kept. ``cursor`` is its position in the log (a stream id, "" before it
    is stored); ``bundles`` maps bundle name → revision; ``metadata`` has the break-glass
    token masked."""

    decision_id: str
    time: dt.datetime
    instance: str
    sidecar_service: str
    reported_by: str
    path: str
    caller: str
    service: str
    grpc_service: str
    method: str
    namespace: str
    source_address: str
    metadata: dict[str, str]
    allowed: bool
    effect: str
    decided_by: tuple[str, ...]
    explanation: str
    result: Any
    bundles: dict[str, str]
    cursor: str = ""

    @property
    def full_method(self) -> str:
        return f"{self.grpc_service}/{self.method}"

    def authz_input(self) -> dict[str, Any]:
        """The input document of this decision again (break-glass token masked), for shadow
        evaluation against another revision."""
        document: dict[str, Any] = {
            "caller": self.caller,
            "namespace": self.namespace,
            "service": self.service,
            "grpc_service": self.grpc_service,
            "method": self.method,
            "metadata": dict(self.metadata),
            "time": self.time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if self.source_address:
            document["source_address"] = self.source_address
        return document

    def to_json(self) -> dict[str, Any]:
        value = dataclasses.asdict(self)
        value["time"] = self.time.isoformat()
        value["decided_by"] = list(self.decided_by)
        del value["cursor"]
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any], cursor: str) -> DecisionRecord:
        fields = dict(value, time=dt.datetime.fromisoformat(value["time"]), cursor=cursor)
        fields["decided_by"] = tuple(value["decided_by"])
        return cls(**fields)


class MalformedEvent(ValueError):
    """An uploaded event that is no decision event; the message names the field."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _decision(event: dict[str, Any]) -> tuple[bool, str, tuple[str, ...], str]:
    """allowed, effect, decided_by, explanation of an event's result."""
    if "result" not in event:
        return False, ("ERROR" if event.get("error") else "UNDEFINED"), (), ""
    result = event["result"]
    if isinstance(result, bool):
        return result, "BOOLEAN", (), ""
    if isinstance(result, dict):
        decided = result.get("decided_by")
        ids = tuple(str(i) for i in decided) if isinstance(decided, list) else ()
        allowed = result.get("allow") is True
        effect = _text(result.get("effect")) or ("ALLOW" if allowed else "DENY")
        return allowed, effect, ids, _text(result.get("explanation"))
    return False, "INVALID_RESULT", (), ""  # a string or number is never an allow


def record_from_event(event: Any, reported_by: str = "") -> DecisionRecord:
    """The record of one OPA decision-log event (pure); MalformedEvent naming the field."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(event).__name__}")
    decision_id = event.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id:
        raise MalformedEvent("decision_id: is required (a non-empty string)")
    stamp = event.get("timestamp")
    try:
        when = dt.datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise MalformedEvent(f"timestamp: expected RFC 3339 with offset, got {stamp!r:.60}")
    raw_labels = event.get("labels")
    labels: dict[str, Any] = raw_labels if isinstance(raw_labels, dict) else {}
    raw_input = event.get("input")
    document: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
    raw_metadata = document.get("metadata")
    metadata = {
        str(k): (MASKED if k == BREAK_GLASS_KEY else str(v))
        for k, v in (raw_metadata.items() if isinstance(raw_metadata, dict) else ())
    }
    raw_bundles = event.get("bundles")
    bundles = {
        str(name): _text(info.get("revision"))
        for name, info in (raw_bundles.items() if isinstance(raw_bundles, dict) else ())
        if isinstance(info, dict)
    }
    allowed, effect, decided_by, explanation = _decision(event)
    return DecisionRecord(
        decision_id=decision_id,
        time=when.astimezone(dt.UTC),
        instance=_text(labels.get("instance")) or _text(labels.get("id")),
        sidecar_service=_text(labels.get("service")),
        reported_by=reported_by,
        path=_text(event.get("path")),
        caller=_text(document.get("caller")),
        service=_text(document.get("service")),
        grpc_service=_text(document.get("grpc_service")),
        method=_text(document.get("method")),
        namespace=_text(document.get("namespace")),
        source_address=_text(document.get("source_address")),
        metadata=metadata,
        allowed=allowed,
        effect=effect,
        decided_by=decided_by,
        explanation=explanation,
        result=event.get("result"),
        bundles=bundles,
    )


def parse_upload(
    body: bytes, reported_by: str, max_bytes: int
) -> tuple[list[DecisionRecord], list[str]]:
    """The records of one upload body (gzip'd or plain JSON array) and the problems of the
    events dropped as malformed (pure); HttpError(400/413) for a body that is no such array."""
    if body[:2] == b"\x1f\x8b":  # gzip the router did not decode (no Content-Encoding)
        try:
            body = zlib.decompressobj(wbits=31).decompress(body, max_bytes + 1)
        except zlib.error as err:
            raise HttpError(400, f"request body is not valid gzip: {err}") from None
        if len(body) > max_bytes:
            raise HttpError(413, f"request body exceeds the limit of {max_bytes} bytes")
    events = _JSON.decode(body)
    if not isinstance(events, list):
        raise HttpError(
            400,
            f"request body: expected a JSON array of decision events, got {type(events).__name__}",
        )
    records, problems = [], []
    for index, event in enumerate(events):
        try:
            records.append(record_from_event(event, reported_by))
        except MalformedEvent as err:
            problems.append(f"events[{index}]: {err}")
    return records, problems


def matches(
    record: DecisionRecord,
    *,
    caller: str | None = None,
    method: str | None = None,
    allowed: bool | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> bool:
    """Whether ``record`` passes the filters of :meth:`DecisionLog.query` (pure)."""
    if caller is not None and not fnmatch.fnmatchcase(record.caller, caller):
        return False
    if method is not None:
        subject = record.full_method if "/" in method else record.method
        if not fnmatch.fnmatchcase(subject, method):
            return False
    if allowed is not None and record.allowed != allowed:
        return False
    if since is not None and record.time < since:
        return False
    return until is None or record.time < until


def _aware(field: str, value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidArgument(field, "must carry a time zone")
    return value


class DecisionLog:
    """The decision log on ``store`` (see the module docstring)."""

    def __init__(
        self,
        store: RedisStore,
        settings: DecisionLogSettings | None = None,
        *,
        key: str = STREAM_KEY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (Unix seconds) sets the age retention is measured against."""
        self._store = store
        self.settings = settings or DecisionLogSettings()
        self._key = key
        self._clock = clock

    def register(self, router: HttpRouter, prefix: str = "/v1", *, mtls_only: bool = True) -> None:
        """Serve ``POST {prefix}/logs`` (and ``{prefix}/logs/{partition}``): OPA's decision-log
        upload for a service url ending in ``prefix``."""
        for pattern in (f"{prefix}/logs", f"{prefix}/logs/{{partition}}"):
            router.post(
                pattern,
                self.handle,
                body="raw",
                max_body=self.settings.max_body_bytes,
                mtls_only=mtls_only,
            )

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """One upload: 200 ``{"accepted", "malformed", "problems"}``, 400, or 503."""
        try:
            records, problems = parse_upload(
                request.body, request.caller or "", self.settings.max_body_bytes
            )
        except HttpError as err:
            metrics.DECISION_UPLOADS.labels(str(err.status)).inc()
            raise
        if problems:
            metrics.DECISIONS_DROPPED.labels("malformed").inc(len(problems))
        try:
            stored = await self.append(records)
        except RedisStoreError as err:
            metrics.DECISIONS_DROPPED.labels("redis_unavailable").inc(len(records))
            metrics.DECISION_UPLOADS.labels("503").inc()
            raise HttpError(
                503,
                f"decision log unavailable, retry later: {err}",
                headers={"Retry-After": "5"},
            ) from None
        metrics.DECISION_UPLOADS.labels("200").inc()
        return HttpResponse.json(
            {
                "accepted": len(stored),
                "malformed": len(problems),
                "problems": problems[:_MAX_PROBLEMS],
            }
        )

    async def append(self, records: list[DecisionRecord]) -> list[DecisionRecord]:
        """Store ``records`` in one transaction, trim the log and count the decisions and the
        trimmed entries; the records with their cursors. RedisStoreError if Redis fails."""
        if not records:
            return []
        batch = self._store.batch()
        for record in records:
            batch.xadd(self._key, {"r": json.dumps(record.to_json(), separators=(",", ":"))})
        batch.xtrim(self._key, minid=self._min_id())
        batch.xtrim(self._key, maxlen=self.settings.max_events)
        replies = await batch.execute()
        *ids, by_age, by_count = replies
        _count_trimmed(by_age, by_count)
        for record in records:
            metrics.DECISIONS.labels("allow" if record.allowed else "deny", record.effect).inc()
            for rule in record.decided_by:
                metrics.RULE_DECISIONS.labels(metrics.RULE_LABELS.label(rule)).inc()
        return [dataclasses.replace(r, cursor=i) for r, i in zip(records, ids, strict=True)]

    async def trim(self) -> tuple[int, int]:
        """Apply retention now (uploads do it too); (removed by age, removed by count)."""
        replies = await (
            self._store.batch()
            .xtrim(self._key, minid=self._min_id())
            .xtrim(self._key, maxlen=self.settings.max_events)
            .execute()
        )
        by_age, by_count = int(replies[0]), int(replies[1])
        _count_trimmed(by_age, by_count)
        return by_age, by_count

    def _min_id(self) -> str:
        return f"{max(0, int((self._clock() - self.settings.max_age_s) * 1000))}-0"

    async def query(
        self,
        *,
        caller: str | None = None,
        method: str | None = None,
        allowed: bool | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[DecisionRecord], str | None]:
        """Decisions newest first (by arrival) passing the filters, at most ``limit``, and the
        cursor to pass for the next page (None when the log holds no more).

        ``caller``: SPIFFE ID, exact or fnmatch glob (``spiffe://x0tta6bl4.mesh/ns/*/sa/ops``);
        ``method``: ``"<grpc_service>/<method>"`` or a bare method name, exact or glob;
        ``allowed``: only allowed (True) or denied (False); ``since`` (inclusive) / ``until``
        (exclusive): the decision time, time-zone aware. One call reads at most
        ``MAX_RECENT`` entries; a page may thus be short with a cursor to continue from.
        InvalidArgument for a bad argument, RedisStoreError if Redis fails."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
        if cursor is not None and not _CURSOR.match(cursor):
            raise InvalidArgument(
                "cursor", f"must be a cursor this log returned, got {cursor!r:.60}"
            )
        since, until = _aware("since", since), _aware("until", until)
        floor = self._min_id()
        if since is not None:
            floor = max(floor, f"{int(since.timestamp() * 1000) - _SKEW_MS}-0", key=_id_key)
        end = f"({cursor}" if cursor else "+"
        found: list[DecisionRecord] = []
        scanned, page = 0, max(2 * limit, 256)
        while True:
            entries = await self._store.xrevrange(self._key, end, floor, count=page)
            for entry in entries:
                record = _record(entry)
                if record is not None and matches(
                    record, caller=caller, method=method, allowed=allowed, since=since, until=until
                ):
                    found.append(record)
                    if len(found) == limit:
                        return found, entry[0]
            scanned += len(entries)
            if len(entries) < page:
                return found, None
            end = f"({entries[-1][0]}"
            if scanned >= MAX_RECENT:
                return found, entries[-1][0]

    async def recent(self, limit: int) -> list[DecisionRecord]:
        """The last ``limit`` decisions kept (at most ``MAX_RECENT``), newest first: the
        inputs and verdicts that shadow evaluation replays."""
        if not 1 <= limit <= MAX_RECENT:
            raise InvalidArgument("limit", f"must be between 1 and {MAX_RECENT}, got {limit}")
        entries = await self._store.xrevrange(self._key, "+", self._min_id(), count=limit)
        return [r for r in map(_record, entries) if r is not None]


def _count_trimmed(by_age: int, by_count: int) -> None:
    if by_age:
        metrics.DECISIONS_DROPPED.labels("retention_age").inc(by_age)
    if by_count:
        metrics.DECISIONS_DROPPED.labels("retention_count").inc(by_count)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _record(entry: StreamEntry) -> DecisionRecord | None:
    """The record of a stream entry; None for an entry this version cannot read."""
    entry_id, fields = entry
    try:
        return DecisionRecord.from_json(json.loads(fields["r"]), entry_id)
    except (KeyError, ValueError, TypeError):
        return None

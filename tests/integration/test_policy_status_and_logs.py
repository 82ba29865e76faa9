"""The policy service's receivers of OPA's status and decision-log uploads, fed by a real
``opa run --server`` (its bundle, status and decision_logs pointed at an HttpRouter on
loopback) and stored in a real redis-server: what Status and QueryDecisions will show, the
metrics, retention with its drop counters, 503 while Redis is down with OPA re-sending
afterwards, masking of break-glass tokens, and bad bodies refused with nothing stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from prometheus_client import REGISTRY

from tests.integration.test_redis_store import RedisServer
from tests.support.mesh import eventually
from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.devstack.procs import ManagedProcess, free_port
from x0tta6bl4.platform.http_messages import HttpRequest, HttpResponse
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.redis_store import RedisStore
from x0tta6bl4.policy.decision_log import MASKED, DecisionLog, DecisionLogSettings
from x0tta6bl4.policy.sidecar_status import SidecarStatuses

pytestmark = pytest.mark.integration

REVISION = "7-0123456789ab"
OPS = "spiffe://x0tta6bl4.mesh/ns/local/sa/ops"
HEALER = "spiffe://x0tta6bl4.mesh/ns/local/sa/healer"
KV = "x0tta6bl4.consensus.v1.KVService"
TOKEN = "bg-0f3c9a1e77d24b6b8f1e2d3c4b5a6978"
POLICY = """package x0tta6bl4.mesh

import rego.v1

default decision := {"allow": false, "effect": "DEFAULT_DENY", "decided_by": [],
	"explanation": "no rule matched (default deny)"}

decision := {"allow": true, "effect": "ALLOW", "decided_by": ["ops-may-write"],
	"explanation": "allowed by ops-may-write"} if {
	input.caller == "spiffe://x0tta6bl4.mesh/ns/local/sa/ops"
}

default allow := false

allow if decision.allow
"""


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _dropped(reason: str) -> float:
    return _sample("x0tta6bl4_policy_decisions_dropped_total", reason=reason)


@dataclasses.dataclass
class Rig:
    """Redis, the receivers on a router's plain listener at /v1, and a real OPA sidecar
    (instance "consensus-1") reporting to them."""

    redis: RedisServer
    store: RedisStore
    statuses: SidecarStatuses
    log: DecisionLog
    router: HttpRouter
    opa_url: str
    bundle: dict[str, bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.router.port}/v1"

    async def decide(
        self,
        caller: str,
        method: str,
        path: str = "x0tta6bl4/mesh/decision",
        metadata: dict[str, str] | None = None,
    ) -> str:
        document = {
            "caller": caller,
            "namespace": "local",
            "service": "consensus",
            "grpc_service": KV,
            "method": method,
            "metadata": metadata or {},
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "source_address": "127.0.0.1:40000",
        }
        async with httpx.AsyncClient(base_url=self.opa_url, timeout=5) as client:
            answer = await client.post(f"/v1/data/{path}", json={"input": document})
        answer.raise_for_status()
        return str(answer.json()["decision_id"])

    async def logged(self, *decision_ids: str) -> bool:
        found, _ = await self.log.query(limit=1000)
        return set(decision_ids) <= {r.decision_id for r in found}


def _build_bundle(root: Path) -> bytes:
    src = root / "src" / "x0tta6bl4" / "mesh"
    src.mkdir(parents=True)
    (src / "decision.rego").write_text(POLICY)
    out = root / "bundle.tar.gz"
    subprocess.run(
        [find("opa"), "build", "-b", str(root / "src"), "--revision", REVISION, "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def _opa_config(root: Path, service_url: str) -> Path:
    config = {
        "services": {"policy": {"url": service_url}},
        "labels": {"instance": "consensus-1", "service": "consensus"},
        "bundles": {
            "mesh": {
                "service": "policy",
                "resource": "bundles/mesh.tar.gz",
                "polling": {"min_delay_seconds": 1, "max_delay_seconds": 2},
            }
        },
        "status": {"service": "policy"},
        "decision_logs": {
            "service": "policy",
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1},
        },
    }
    path = root / "opa.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def rig(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[Rig]:
    store = RedisStore(redis_server.url, service="policy", timeout_s=0.5, retries=0)
    statuses = SidecarStatuses(store)
    log = DecisionLog(store)
    router = HttpRouter("policy", trace.get_tracer("test"))
    statuses.register(router, "/v1", mtls_only=False)
    log.register(router, "/v1", mtls_only=False)
    bundle = {"mesh": _build_bundle(tmp_path)}

    async def serve_bundle(request: HttpRequest) -> HttpResponse:
        return HttpResponse.binary(bundle["mesh"], content_type="application/gzip")

    router.get("/v1/bundles/mesh.tar.gz", serve_bundle)
    await router.serve("127.0.0.1", 0)
    port = free_port()
    config = _opa_config(tmp_path, f"http://127.0.0.1:{router.port}/v1")
    opa = ManagedProcess(
        "opa",
        [find("opa"), "run", "--server", "--addr", f"127.0.0.1:{port}", "-c", str(config)],
        log_path=tmp_path / "opa.log",
    ).start()
    try:
        rig = Rig(redis_server, store, statuses, log, router, f"http://127.0.0.1:{port}", bundle)

        async def healthy() -> bool:  # async: this loop serves the bundle OPA waits for
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    answer = await client.get(f"{rig.opa_url}/health?bundles")
            except httpx.HTTPError:
                return False
            return answer.status_code == 200

        try:
            await eventually(healthy, timeout_s=30, what="OPA with the bundle")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{opa.log_tail()}") from None
        yield rig
    finally:
        opa.stop()
        await router.stop()
        await store.close()


async def test_status_shows_the_revision_each_sidecar_runs_and_counts_load_errors_once(
    rig: Rig,
) -> None:
    async def reported() -> bool:
        found = await rig.statuses.snapshot()
        return bool(found) and found[0].bundles[0].active_revision == REVISION

    await eventually(reported, timeout_s=30, what="a status report of the sidecar")
    (status,) = await rig.statuses.snapshot()
    assert (status.instance, status.service, status.opa_version) == (
        "consensus-1",
        "consensus",
        "1.22.0",
    )
    assert status.caller == ""  # the plain listener; on the mTLS one, the sidecar's SPIFFE ID
    bundle = status.bundles[0]
    assert (bundle.name, bundle.revision_number, bundle.code) == ("mesh", 7, "")
    assert bundle.last_successful_activation is not None
    assert bundle.last_successful_download is not None
    assert _sample("x0tta6bl4_policy_sidecar_revision", instance="consensus-1", bundle="mesh") == 7

    errors = "x0tta6bl4_policy_sidecar_load_errors_total"
    before = _sample(errors, instance="consensus-1", bundle="mesh")
    rig.bundle["mesh"] = b"this is no tar.gz"

    async def failing() -> bool:
        (now,) = await rig.statuses.snapshot()
        return now.bundles[0].code != ""

    await eventually(failing, timeout_s=30, what="the sidecar to report the broken bundle")
    (broken,) = await rig.statuses.snapshot()
    assert broken.bundles[0].active_revision == REVISION  # the last good one keeps serving
    assert broken.bundles[0].code == "bundle_error" and broken.bundles[0].message
    counted = _sample(errors, instance="consensus-1", bundle="mesh")
    assert counted > before
    # The same report again (a repeat of the same failed attempt) is not a new error...
    await rig.statuses.record(broken)
    await rig.statuses.record(broken)
    assert _sample(errors, instance="consensus-1", bundle="mesh") == counted
    # ...not even for a restarted policy service, which knows the sidecar from Redis.
    restarted = SidecarStatuses(rig.store)
    (remembered,) = await restarted.snapshot()
    assert remembered.bundles[0].code == "bundle_error"
    await restarted.record(broken)
    assert _sample(errors, instance="consensus-1", bundle="mesh") == counted


async def test_decisions_of_a_real_sidecar_are_kept_masked_and_queryable(rig: Rig) -> None:
    allowed = "x0tta6bl4_policy_decisions_total"
    before_allow = _sample(allowed, result="allow", effect="ALLOW")
    before_rule = _sample("x0tta6bl4_policy_rule_decisions_total", rule="ops-may-write")
    put = await rig.decide(OPS, "Put")
    glass = await rig.decide(HEALER, "Delete", metadata={"x0-break-glass": TOKEN})
    bare = await rig.decide(HEALER, "Get", path="x0tta6bl4/mesh/allow")
    await eventually(lambda: rig.logged(put, glass, bare), timeout_s=30, what="3 decisions")

    records, cursor = await rig.log.query()
    assert cursor is None
    assert [r.decision_id for r in records] == [bare, glass, put]  # newest first
    by_id = {r.decision_id: r for r in records}
    first = by_id[put]
    assert (first.caller, first.service, first.grpc_service, first.method) == (
        OPS,
        "consensus",
        KV,
        "Put",
    )
    assert (first.allowed, first.effect, first.decided_by) == (True, "ALLOW", ("ops-may-write",))
    assert first.explanation == "allowed by ops-may-write"
    assert (first.instance, first.sidecar_service, first.bundles) == (
        "consensus-1",
        "consensus",
        {"mesh": REVISION},
    )
    assert first.path == "x0tta6bl4/mesh/decision"
    assert first.namespace == "local" and first.source_address == "127.0.0.1:40000"
    assert (by_id[glass].allowed, by_id[glass].effect) == (False, "DEFAULT_DENY")
    assert by_id[glass].metadata == {"x0-break-glass": MASKED}
    assert (by_id[bare].allowed, by_id[bare].effect, by_id[bare].result) == (
        False,
        "BOOLEAN",
        False,
    )
    raw = await rig.store.xrange("x0:policy:decisions")
    assert raw and all(TOKEN.encode() not in fields["r"] for _, fields in raw)

    assert _sample(allowed, result="allow", effect="ALLOW") == before_allow + 1
    assert _sample("x0tta6bl4_policy_rule_decisions_total", rule="ops-may-write") == before_rule + 1

    async def ids(**filters: object) -> list[str]:
        found, _ = await rig.log.query(**filters)  # type: ignore[arg-type]
        return [r.decision_id for r in found]

    assert await ids(caller=OPS) == [put]
    assert await ids(caller="spiffe://x0tta6bl4.mesh/ns/*/sa/heal*") == [bare, glass]
    assert await ids(method=f"{KV}/Delete") == [glass]
    assert await ids(method="Get") == [bare]
    assert await ids(method="x0tta6bl4.*.v1.KVService/P*") == [put]
    assert await ids(allowed=True) == [put]
    assert await ids(allowed=False) == [bare, glass]
    later = max(r.time for r in records) + dt.timedelta(seconds=1)
    assert await ids(since=later) == []
    assert await ids(until=by_id[glass].time) == [put]
    page, cursor = await rig.log.query(limit=2)
    assert [r.decision_id for r in page] == [bare, glass] and cursor is not None
    rest, end = await rig.log.query(limit=2, cursor=cursor)
    assert [r.decision_id for r in rest] == [put] and end is None
    recent = await rig.log.recent(2)
    assert [r.decision_id for r in recent] == [bare, glass]
    assert recent[1].authz_input()["metadata"] == {"x0-break-glass": MASKED}


async def test_while_redis_is_down_uploads_get_503_and_opa_resends_them(rig: Rig) -> None:
    refused = _sample("x0tta6bl4_policy_decision_uploads_total", code="503")
    unavailable = _dropped("redis_unavailable")
    rig.redis.stop()
    during = await rig.decide(OPS, "Put")

    async def got_503() -> bool:
        return _sample("x0tta6bl4_policy_decision_uploads_total", code="503") > refused

    await eventually(got_503, timeout_s=30, what="an upload answered 503")
    assert _dropped("redis_unavailable") > unavailable
    rig.redis.start()

    async def arrived() -> bool:
        try:
            return await rig.logged(during)
        except Exception:
            return False

    await eventually(arrived, timeout_s=60, what="OPA to re-send the refused decision")


async def test_bad_bodies_get_400_naming_the_problem_and_store_nothing(rig: Rig) -> None:
    good_event = {
        "labels": {"id": "x", "instance": "consensus-1", "service": "consensus"},
        "decision_id": "d-good",
        "path": "x0tta6bl4/mesh/decision",
        "input": {"caller": OPS, "method": "Put"},
        "result": {"allow": True, "effect": "ALLOW", "decided_by": ["ops-may-write"]},
        "timestamp": "2026-12-04T23:01:09.148706985Z",
    }
    malformed_before = _dropped("malformed")
    async with httpx.AsyncClient(base_url=rig.url, timeout=5) as client:
        zipped = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        answer = await client.post("/logs", content=b'[{"decision_id": ', headers=zipped)
        assert answer.status_code == 400  # not gzip although it says so
        answer = await client.post(
            "/logs", content=gzip.compress(b'[{"decision_id": '), headers=zipped
        )
        assert answer.status_code == 400 and "line 1 column" in answer.json()["error"]
        answer = await client.post(
            "/logs", content=gzip.compress(b'{"decision_id": "x"}'), headers=zipped
        )
        assert answer.status_code == 400
        assert "expected a JSON array of decision events" in answer.json()["error"]
        assert await rig.store.xlen("x0:policy:decisions") == 0

        mixed = [good_event, {**good_event, "decision_id": ""}, "junk"]
        answer = await client.post(
            "/logs", content=gzip.compress(json.dumps(mixed).encode()), headers=zipped
        )
        assert answer.status_code == 200
        assert answer.json()["accepted"] == 1 and answer.json()["malformed"] == 2
        assert answer.json()["problems"][0].startswith("events[1]: decision_id")
        assert _dropped("malformed") == malformed_before + 2
        assert [r.decision_id for r in (await rig.log.query())[0]] == ["d-good"]

        answer = await client.post("/status", json={"labels": {"version": "1.22.0"}})
        assert answer.status_code == 400
        assert answer.json()["field"] == "labels.id"
        answer = await client.post("/status/p1", content=b"not json")
        assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    # Only the real sidecar's reports were kept.
    assert {s.instance for s in await rig.statuses.snapshot()} <= {"consensus-1"}


async def test_retention_by_count_and_age_counts_every_entry_removed(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, service="policy", timeout_s=0.5)
    now = [time.time()]
    log = DecisionLog(
        store,
        DecisionLogSettings(max_events=3, max_age_s=3600),
        key="x0:test:decisions",
        clock=lambda: now[0],
    )
    events = [
        {
            "decision_id": f"d{i}",
            "labels": {"id": "x"},
            "input": {"caller": OPS, "method": "Put"},
            "result": True,
            "timestamp": "2026-12-04T23:01:09Z",
        }
        for i in range(5)
    ]
    try:
        by_count, by_age = _dropped("retention_count"), _dropped("retention_age")
        body = gzip.compress(json.dumps(events).encode())
        request = HttpRequest("POST", "/v1/logs", "/v1/logs", {}, {}, {}, body=body)
        assert (await log.handle(request)).status == 200
        assert await store.xlen("x0:test:decisions") == 3
        assert _dropped("retention_count") == by_count + 2
        assert [r.decision_id for r in await log.recent(10)] == ["d4", "d3", "d2"]

        now[0] += 3601  # an hour later every entry is past max_age_s
        assert [r.decision_id for r in (await log.query())[0]] == []
        assert await log.trim() == (3, 0)
        assert _dropped("retention_age") == by_age + 3
        assert await store.xlen("x0:test:decisions") == 0
    finally:
        await store.close()

"""Authorisation of each RPC by the local OPA sidecar. Fail closed.

The input document is::

    {"caller": "spiffe://x0tta6bl4.mesh/ns/local/sa/ops",
     "namespace": "local",                         # the namespace of the called service
     "service": "consensus",                       # the service being called
     "grpc_service": "x0tta6bl4.consensus.v1.KVService",
     "method": "Put",
     "metadata": {"x0-tenant": "..."},             # only the selected keys
     "source_address": "10.1.2.3",                 # the peer's IP ("" over a unix socket)
     "time": "2026-11-27T10:00:00.000000Z"}

and the decision is ``data.x0tta6bl4.mesh.decision`` (platform/rego/mesh.rego): an object whose
``allow`` is the answer and whose ``explanation`` names the rules that decided. Anything but
``allow: true`` — false, undefined, a non-200 answer, a timeout, a refused connection — denies.
Allow decisions are cached briefly per (caller, method, metadata, source IP); denials are never
cached, so a fixed policy or a restarted sidecar takes effect on the next call. (So an allow
may outlive a rule's time window or a break-glass entry's expiry by at most the cache TTL.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import urllib.parse
from collections.abc import Mapping

import httpx
import structlog

log = structlog.get_logger(__name__)

DECISION_PATH = "/v1/data/x0tta6bl4/mesh/decision"
SELECTED_METADATA = ("x0-tenant", "x0-request-id", "x0-break-glass")


@dataclasses.dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    decision_id: str = ""
    cached: bool = False


def authz_input(
    *,
    caller: str,
    namespace: str,
    service: str,
    full_method: str,
    metadata: Mapping[str, str],
    now: dt.datetime,
    source_address: str = "",
) -> dict[str, object]:
    """The OPA input document for one call (pure)."""
    grpc_service, _, method = full_method.lstrip("/").rpartition("/")
    return {
        "caller": caller,
        "namespace": namespace,
        "service": service,
        "grpc_service": grpc_service,
        "method": method,
        "metadata": {k: v for k, v in metadata.items() if k in SELECTED_METADATA},
        "source_address": source_address,
        "time": now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def source_ip(peer: str) -> str:
    """The IP of a gRPC peer string (``ipv4:10.1.2.3:5000``, ``ipv6:[::1]:5000``, also
    percent-encoded); ``""`` for a unix socket or anything else (pure)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        host = urllib.parse.unquote(rest).rpartition(":")[0]
        return host.removeprefix("[").removesuffix("]")
    return ""


class OpaAuthorizer:
    """Asks OPA at ``base_url`` for each decision, with a short cache of allows."""

    def __init__(
        self, base_url: str, service: str, namespace: str, *, timeout_s: float, cache_ttl_s: float
    ) -> None:
        self._service = service
        self._namespace = namespace
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, str, tuple[tuple[str, str], ...], str], float] = {}
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def close(self) -> None:
        await self._client.aclose()

    async def ping(self) -> bool:
        """True when the sidecar answers its health endpoint."""
        try:
            response = await self._client.get("/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def decide(
        self, caller: str, full_method: str, metadata: Mapping[str, str], source: str = ""
    ) -> Decision:
        selected = tuple(sorted((k, v) for k, v in metadata.items() if k in SELECTED_METADATA))
        key = (caller, full_method, selected, source)
        now = time.monotonic()
        expiry = self._cache.get(key)
        if expiry is not None and expiry > now:
            return Decision(True, "allowed (cached)", cached=True)
        document = authz_input(
            caller=caller,
            namespace=self._namespace,
            service=self._service,
            full_method=full_method,
            metadata=dict(selected),
            now=dt.datetime.now(dt.UTC),
            source_address=source,
        )
        try:
            response = await self._client.post(DECISION_PATH, json={"input": document})
        except httpx.TimeoutException:
            return Decision(False, "authorisation sidecar timed out (fail closed)")
        except httpx.HTTPError as err:
            return Decision(False, f"authorisation sidecar unreachable (fail closed): {err!s}")
        if response.status_code != 200:
            return Decision(False, f"authorisation sidecar answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            return Decision(False, "authorisation sidecar answered something other than JSON")
        decision_id = str(body.get("decision_id", ""))
        result = body.get("result")
        explanation = str(result.get("explanation", "")) if isinstance(result, dict) else ""
        if isinstance(result, dict) and result.get("allow") is True:
            if self._cache_ttl_s > 0:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = now + self._cache_ttl_s
            return Decision(True, explanation or "allowed by policy", decision_id)
        if result is None:
            return Decision(False, "policy decision undefined (is the policy loaded?)", decision_id)
        return Decision(False, explanation or "denied by policy", decision_id)

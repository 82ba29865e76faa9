"""Health of the SPIRE server: what a poll observed, the verdict drawn from it, and the poller.

Each poll, at the same time: ``GET /live`` and ``GET /ready`` on the server's health listener
(``health_checks`` in its config; SPIRE answers 200, or 500 with a JSON body naming the failing
subsystem), and on the admin API a timed ``GetBundle`` and ``ListAgents``. :func:`assess` turns
that :class:`Observation` into a :class:`ServerHealthSnapshot` (pure, no I/O, so every verdict
can be tested from plain values); :class:`SpireHealth` does the I/O every ``interval_s`` and
publishes the metrics.

The server is *up* when the admin API answers both calls, the bundle holds an X.509 authority
that has not expired and (with a health URL) both endpoints answer 200. Without a health URL
``live`` and ``ready`` rest on the admin API alone. Each probe has a deadline of half the
interval (at most 5 s), so the first poll that starts after the server stops, hangs or turns
unready reports it, with the reason: "connection refused" on the health port, ``/ready``'s
status and body, the admin socket missing, the API's status and message.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import structlog
from cryptography import x509
from prometheus_client import Gauge, Histogram

from x0tta6bl4.identity.spire_api import SpireApi, SpireApiError
from x0tta6bl4.identity.spire_types import Agent, Bundle

log = structlog.get_logger(__name__)

AGENT_STATES = ("active", "banned", "expired")
_MAX_BODY = 300

SERVER_UP = Gauge(
    "x0tta6bl4_spire_server_up",
    "1 while the SPIRE server is live, ready and answers on its admin API, else 0.",
)
AGENTS = Gauge(
    "x0tta6bl4_spire_agents", "Attested SPIRE agents by state (active, banned, expired).", ["state"]
)
BUNDLE_EXPIRY = Gauge(
    "x0tta6bl4_spire_bundle_expiry_timestamp_seconds",
    "When the first X.509 authority of the trust bundle expires, as a Unix timestamp.",
)
SVIDS_EXPIRING_SOON = Gauge(
    "x0tta6bl4_spire_agent_svids_expiring_soon",
    "Active agents whose X.509 SVID expires within the warning window (not renewed in time).",
)
BUNDLE_FETCH = Histogram(
    "x0tta6bl4_spire_bundle_fetch_seconds",
    "Time of a successful GetBundle on the SPIRE server's admin API.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


@dataclass(frozen=True, slots=True)
class EndpointProbe:
    """One GET of a health endpoint: ``status`` 0 when there was no HTTP answer (``error``
    says why), else the status and the start of the body."""

    url: str
    status: int
    body: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """The raw results of one poll. ``live``/``ready`` are None without a health URL; an
    admin call that failed has its result None and its error in ``*_error``."""

    checked_at: float
    live: EndpointProbe | None
    ready: EndpointProbe | None
    bundle: Bundle | None
    bundle_latency_s: float | None
    bundle_error: str
    agents: tuple[Agent, ...] | None
    agents_error: str


@dataclass(frozen=True, slots=True)
class AgentHealth:
    spiffe_id: str
    attestation_type: str
    svid_expires_at: float
    banned: bool
    state: str  # one of AGENT_STATES


@dataclass(frozen=True, slots=True)
class ServerHealthSnapshot:
    """The verdict of one poll; ``reason`` is "" when up, else every failure, "; "-joined.
    ``bundle_expires_at`` is the earliest ``not_after`` of the bundle's X.509 authorities;
    ``agents_by_state`` has a count for each of :data:`AGENT_STATES`, or is empty when the
    agents could not be listed (None/empty likewise for the bundle fields)."""

    up: bool
    live: bool
    ready: bool
    reason: str
    checked_at: float
    bundle_latency_s: float | None = None
    bundle_expires_at: float | None = None
    agents: tuple[AgentHealth, ...] = ()
    agents_by_state: dict[str, int] = field(default_factory=dict)
    svids_expiring_soon: int = 0


def endpoint_verdict(probe: EndpointProbe) -> tuple[bool, str]:
    """200 passes; anything else fails with a reason naming the URL and what came back."""
    if probe.status == 200:
        return True, ""
    if probe.status == 0:
        return False, f"{probe.url}: {probe.error}"
    return False, f"{probe.url} answered {probe.status}: {probe.body}"


def agent_state(agent: Agent, now: float) -> str:
    """``banned`` if banned, else ``expired`` once its SVID's expiry has passed, else active."""
    if agent.banned:
        return "banned"
    return "expired" if agent.x509svid_expires_at <= now else "active"


def authority_expiry(authorities: tuple[bytes, ...]) -> tuple[float | None, float | None]:
    """(earliest, latest) ``not_after`` of these DER certificates as Unix times (None, None
    if there are none; unparseable ones are skipped)."""
    times: list[float] = []
    for der in authorities:
        try:
            times.append(x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp())
        except ValueError:
            continue
    return (min(times), max(times)) if times else (None, None)


def admin_reasons(errors: list[str]) -> list[str]:
    """``"<method>: <problem>"`` errors as reasons, one per problem naming its methods."""
    methods: dict[str, list[str]] = {}
    for error in errors:
        method, _, problem = error.partition(": ")
        methods.setdefault(problem, []).append(method)
    return [f"admin API {', '.join(m)}: {problem}" for problem, m in methods.items()]


def assess(obs: Observation, *, expiring_within_s: float) -> ServerHealthSnapshot:
    """The health verdict of one poll (see the module docstring for what *up* means)."""
    now = obs.checked_at
    admin_ok = obs.bundle is not None and obs.agents is not None
    reasons = admin_reasons([e for e in (obs.bundle_error, obs.agents_error) if e])
    live = ready = admin_ok
    if obs.live is not None and obs.ready is not None:
        live, live_why = endpoint_verdict(obs.live)
        ready, ready_why = endpoint_verdict(obs.ready)
        reasons += [why for why in (live_why, ready_why) if why]
    first = None
    if obs.bundle is not None:
        first, last = authority_expiry(obs.bundle.x509_authorities)
        if last is None:
            reasons.append("trust bundle has no X.509 authority")
        elif last <= now:
            reasons.append("every X.509 authority of the trust bundle has expired")
    agents = tuple(
        AgentHealth(
            a.spiffe_id,
            a.attestation_type,
            float(a.x509svid_expires_at),
            a.banned,
            agent_state(a, now),
        )
        for a in obs.agents or ()
    )
    by_state = (
        {state: sum(1 for a in agents if a.state == state) for state in AGENT_STATES}
        if obs.agents is not None
        else {}  # not known: the agents could not be listed
    )
    soon = sum(
        1 for a in agents if a.state == "active" and a.svid_expires_at < now + expiring_within_s
    )
    return ServerHealthSnapshot(
        up=not reasons and live and ready and admin_ok,
        live=live,
        ready=ready,
        reason="; ".join(reasons),
        checked_at=now,
        bundle_latency_s=obs.bundle_latency_s,
        bundle_expires_at=first,
        agents=agents,
        agents_by_state=by_state,
        svids_expiring_soon=soon,
    )


def _os_cause(err: BaseException) -> str:
    """What the OS said (e.g. "connection refused") under an httpx error, else its text."""
    cause: BaseException | None = err
    for _ in range(8):  # a short chain; never follow a cycle
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    return str(err) or type(err).__name__


def _compact(body: str) -> str:
    try:
        body = json.dumps(json.loads(body), separators=(",", ":"), sort_keys=True)
    except ValueError:
        body = " ".join(body.split())
    return body[:_MAX_BODY]


class SpireHealth:
    """Polls the SPIRE server every ``interval_s`` (:meth:`run`); :attr:`latest` is the last
    snapshot and :meth:`ready` the process readiness check built on it.

    ``socket_path`` is the admin socket; ``health_url`` (``http://127.0.0.1:8080``, "" = not
    polled) the health listener. Agents whose SVID expires within ``expiring_within_s`` count
    as expiring soon."""

    def __init__(
        self,
        socket_path: str,
        *,
        health_url: str = "",
        interval_s: float = 2.0,
        expiring_within_s: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self.timeout_s = min(max(interval_s / 2, 0.1), 5.0)
        self._health_url = health_url.rstrip("/")
        self._expiring_within_s = expiring_within_s
        self._clock = clock
        self._api = SpireApi(socket_path, timeout_s=self.timeout_s, read_attempts=1)
        self._http: httpx.AsyncClient | None = None
        self.latest: ServerHealthSnapshot | None = None

    async def close(self) -> None:
        await self._api.close()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _probe(self, path: str) -> EndpointProbe:
        url = f"{self._health_url}{path}"
        if self._http is None:
            # trust_env=False: a proxy from HTTP_PROXY must not sit between us and loopback
            self._http = httpx.AsyncClient(timeout=self.timeout_s, trust_env=False)
        try:
            response = await self._http.get(url)
        except httpx.ConnectError as err:
            return EndpointProbe(url, 0, error=f"cannot connect ({_os_cause(err)})")
        except httpx.TimeoutException:
            return EndpointProbe(url, 0, error=f"no answer within {self.timeout_s:g}s")
        except httpx.HTTPError as err:
            return EndpointProbe(url, 0, error=f"{type(err).__name__}: {err}")
        return EndpointProbe(url, response.status_code, _compact(response.text))

    async def _bundle(self) -> tuple[Bundle | None, float | None, str]:
        started = time.perf_counter()
        try:
            bundle = await self._api.get_bundle()
        except SpireApiError as err:
            return None, None, str(err)
        return bundle, time.perf_counter() - started, ""

    async def _agents(self) -> tuple[tuple[Agent, ...] | None, str]:
        try:
            return tuple(await self._api.list_agents()), ""
        except SpireApiError as err:
            return None, str(err)

    async def observe(self) -> Observation:
        """One poll's raw observations (every probe at once)."""
        checked_at = self._clock()
        probes = (self._probe("/live"), self._probe("/ready")) if self._health_url else ()
        (bundle, latency, bundle_error), (agents, agents_error), *answers = await asyncio.gather(
            self._bundle(), self._agents(), *probes
        )
        live, ready = answers if answers else (None, None)
        return Observation(
            checked_at, live, ready, bundle, latency, bundle_error, agents, agents_error
        )

    async def check(self) -> ServerHealthSnapshot:
        """Poll once now; keeps and publishes the snapshot."""
        snapshot = assess(await self.observe(), expiring_within_s=self._expiring_within_s)
        if (self.latest is None or self.latest.up) and not snapshot.up:
            log.warning("spire_server_down", reason=snapshot.reason)
        elif self.latest is not None and not self.latest.up and snapshot.up:
            log.info("spire_server_up")
        self.latest = snapshot
        SERVER_UP.set(1 if snapshot.up else 0)
        if snapshot.agents_by_state:  # else the agents were not listed: keep the last counts
            for state, count in snapshot.agents_by_state.items():
                AGENTS.labels(state).set(count)
            SVIDS_EXPIRING_SOON.set(snapshot.svids_expiring_soon)
        if snapshot.bundle_expires_at is not None:
            BUNDLE_EXPIRY.set(snapshot.bundle_expires_at)
        if snapshot.bundle_latency_s is not None:
            BUNDLE_FETCH.observe(snapshot.bundle_latency_s)
        return snapshot

    async def run(self) -> None:
        """Poll every ``interval_s`` until cancelled."""
        while True:
            started = time.monotonic()
            try:
                await self.check()
            except Exception as err:  # a bug here must not end the polling
                log.exception("spire_health_check_failed", error=str(err))
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def ready(self) -> tuple[bool, str]:
        """Readiness check for the process: the last snapshot's verdict, not ready before the
        first poll or when the last one is older than three intervals (the poller stalled)."""
        snapshot = self.latest
        if snapshot is None:
            return False, "SPIRE server not checked yet"
        age = self._clock() - snapshot.checked_at
        if age > 3 * self.interval_s + self.timeout_s:
            return False, f"last SPIRE server check {age:.0f}s ago"
        return snapshot.up, snapshot.reason

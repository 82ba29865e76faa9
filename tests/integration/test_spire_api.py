"""The SPIRE Server API client and the SPIRE health poller against a real SPIRE 1.13.3 server.

Entries (create in batches, paged listing, ALREADY_EXISTS, masked update, delete, filters,
entries made by the ``spire-server`` CLI), agents and bundles through the admin socket; the
health verdicts from plain observations; and the poller following a server that stops, hangs
and comes back (on a mesh of its own, so the other tests keep their server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from tests.support.mesh import Mesh, Workload, eventually
from x0tta6bl4.devstack.spire import Entry
from x0tta6bl4.identity.core.workloads import Selector
from x0tta6bl4.identity.spire_api import SpireApi, SpireApiError
from x0tta6bl4.identity.spire_health import (
    EndpointProbe,
    Observation,
    ServerHealthSnapshot,
    SpireHealth,
    assess,
)
from x0tta6bl4.identity.spire_types import Agent, Bundle, SpireEntry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

UID = Selector("unix", f"uid:{os.getuid()}")


@pytest.fixture(scope="module")
def workloads(mesh: Mesh) -> list[Workload]:
    """Two workloads, each with its own agent (attested with a join token)."""
    return [mesh.workload("spire-api-a"), mesh.workload("spire-api-b")]


@pytest.fixture
async def api(mesh: Mesh) -> AsyncIterator[SpireApi]:
    async with SpireApi(str(mesh.server.socket_path)) as client:
        yield client


def _entries(mesh: Mesh, n: int, *, hint: str = "", ttl: int = 600) -> list[SpireEntry]:
    run = uuid.uuid4().hex[:8]
    return [
        SpireEntry(
            id=f"x0tta6bl4.test-{run}-{i}",
            spiffe_id=f"spiffe://{mesh.trust_domain}/ns/test/sa/{run}-{i}",
            parent_id=mesh.server.agent_alias(f"node-{run}"),
            selectors=(Selector("unix", f"uid:{1000 + i}"), Selector("unix", f"gid:{i}")),
            x509_svid_ttl_s=ttl,
            dns_names=(f"w{i}.{run}.test",),
            hint=hint,
        )
        for i in range(n)
    ]


def _stored(entry: SpireEntry, got: SpireEntry | None) -> bool:
    """``got`` is ``entry`` as SPIRE keeps it (bookkeeping fields aside)."""
    assert got is not None
    return (
        got.id,
        got.spiffe_id,
        got.parent_id,
        sorted(got.selectors),
        got.x509_svid_ttl_s,
        got.dns_names,
        got.hint,
    ) == (
        entry.id,
        entry.spiffe_id,
        entry.parent_id,
        sorted(entry.selectors),
        entry.x509_svid_ttl_s,
        entry.dns_names,
        entry.hint,
    )


async def test_create_three_then_list_across_pages_and_by_hint(mesh: Mesh, api: SpireApi) -> None:
    hint = f"hint-{uuid.uuid4().hex[:8]}"
    mine = _entries(mesh, 3, hint=hint)
    results = await api.create_entries(mine)
    assert [r.code for r in results] == ["OK"] * 3
    assert all(_stored(e, r.entry) for e, r in zip(mine, results, strict=True))

    everything = await api.list_entries()
    paged = await api.list_entries(page_size=2)
    assert len(everything) > 2  # so page_size=2 took several pages
    assert sorted(e.id for e in paged) == sorted(e.id for e in everything)
    listed = {e.id: e for e in paged}
    assert all(_stored(e, listed.get(e.id)) for e in mine)
    assert all(e.created_at > 0 for e in paged)

    by_hint = await api.list_entries(by_hint=hint, page_size=2)
    assert sorted(e.id for e in by_hint) == sorted(e.id for e in mine)
    assert [e.id for e in await api.list_entries(by_spiffe_id=mine[1].spiffe_id)] == [mine[1].id]
    assert len(await api.list_entries(by_parent_id=mine[0].parent_id)) == 3
    with pytest.raises(ValueError, match="by_hint"):
        await api.list_entries(by_hint="")


async def test_recreating_returns_the_existing_entry(mesh: Mesh, api: SpireApi) -> None:
    mine = _entries(mesh, 3)
    created = await api.create_entries(mine)
    again = await api.create_entries(mine)
    assert [r.code for r in again] == ["ALREADY_EXISTS"] * 3
    assert [r.entry for r in again] == [r.entry for r in created]

    # Similar (same SPIFFE ID, parent, selectors) under another ID and TTL: the one there wins.
    twin = SpireEntry(
        id=mine[0].id + "-twin",
        spiffe_id=mine[0].spiffe_id,
        parent_id=mine[0].parent_id,
        selectors=tuple(reversed(mine[0].selectors)),
        x509_svid_ttl_s=1234,
    )
    (result,) = await api.create_entries([twin])
    assert result.code == "ALREADY_EXISTS"
    assert result.entry == created[0].entry
    assert await api.get_entry(twin.id) is None

    # An ID that is taken by an entry that is not similar: ALREADY_EXISTS without an entry.
    (taken,) = await api.create_entries(
        [
            SpireEntry(
                id=mine[1].id,
                spiffe_id=mine[2].spiffe_id + "-x",
                parent_id=mine[1].parent_id,
                selectors=(UID,),
            )
        ]
    )
    assert (taken.code, taken.entry) == ("ALREADY_EXISTS", None)
    assert "UNIQUE" in taken.message


async def test_a_bad_entry_is_refused_alone_and_batches_keep_order(mesh: Mesh) -> None:
    good = _entries(mesh, 5)
    bad = SpireEntry(spiffe_id="not-a-spiffe-id", parent_id=good[0].parent_id, selectors=(UID,))
    async with SpireApi(str(mesh.server.socket_path), batch_size=2) as small_batches:
        results = await small_batches.create_entries([good[0], bad, *good[1:]])
    assert [r.code for r in results] == ["OK", "INVALID_ARGUMENT", "OK", "OK", "OK", "OK"]
    assert "spiffe" in results[1].message.lower()
    assert [r.entry.id if r.entry else None for r in results] == [
        good[0].id,
        None,
        *(e.id for e in good[1:]),
    ]


async def test_update_with_a_mask_changes_only_those_fields(mesh: Mesh, api: SpireApi) -> None:
    (entry,) = _entries(mesh, 1, hint="keep-me")
    (created,) = await api.create_entries([entry])
    change = SpireEntry(
        id=entry.id,
        spiffe_id="",  # outside the mask: ignored, not cleared
        parent_id="",
        selectors=(),
        x509_svid_ttl_s=1800,
        dns_names=("a.example.test", "b.example.test"),
    )
    (updated,) = await api.update_entries([change], mask=["x509_svid_ttl_s", "dns_names"])
    assert updated.code == "OK", updated.message
    assert created.entry is not None and updated.entry is not None
    assert updated.entry.revision_number == created.entry.revision_number + 1
    fetched = await api.get_entry(entry.id)
    assert fetched == updated.entry
    assert (fetched.x509_svid_ttl_s, fetched.dns_names) == (1800, change.dns_names)
    assert (fetched.spiffe_id, fetched.hint, sorted(fetched.selectors)) == (
        entry.spiffe_id,
        "keep-me",
        sorted(entry.selectors),
    )

    (missing,) = await api.update_entries([dataclasses.replace(entry, id="no-such-entry")])
    assert missing.code == "NOT_FOUND"
    with pytest.raises(ValueError, match="revision_number"):
        await api.update_entries([entry], mask=["revision_number"])
    with pytest.raises(ValueError, match="id"):
        await api.update_entries([dataclasses.replace(entry, id="")])


async def test_delete_then_gone(mesh: Mesh, api: SpireApi) -> None:
    mine = _entries(mesh, 2)
    await api.create_entries(mine)
    ids = [e.id for e in mine]
    assert [(r.id, r.code) for r in await api.delete_entries(ids)] == [(i, "OK") for i in ids]
    assert [r.code for r in await api.delete_entries(ids)] == ["NOT_FOUND", "NOT_FOUND"]
    assert await api.get_entry(ids[0]) is None
    assert not {e.id for e in await api.list_entries()} & set(ids)


async def test_entries_made_by_the_cli_are_listed(
    mesh: Mesh, api: SpireApi, workloads: list[Workload]
) -> None:
    run = uuid.uuid4().hex[:8]
    cli = Entry(
        spiffe_id=f"spiffe://{mesh.trust_domain}/ns/test/sa/cli-{run}",
        parent_id=mesh.server.agent_alias(f"cli-{run}"),
        selectors=(f"unix:uid:{os.getuid()}", "unix:gid:0"),
        dns_names=(f"cli-{run}.test",),
        x509_svid_ttl_s=900,
    )
    entry_id = await asyncio.to_thread(mesh.server.create_entry, cli)
    (got,) = await api.list_entries(by_spiffe_id=cli.spiffe_id)
    assert got.id == entry_id
    assert (got.parent_id, got.x509_svid_ttl_s, got.dns_names) == (
        cli.parent_id,
        900,
        cli.dns_names,
    )
    assert sorted(map(str, got.selectors)) == sorted(cli.selectors)
    listed = {e.spiffe_id for e in await api.list_entries(page_size=3)}
    assert {w.spiffe_id for w in workloads} <= listed  # the mesh registers them with the CLI


async def test_agents_are_the_mesh_agents(
    mesh: Mesh, api: SpireApi, workloads: list[Workload]
) -> None:
    agents = {a.spiffe_id: a for a in await api.list_agents(page_size=1)}
    for w in workloads:
        # the join token's alias entry: agent ID (parent) -> alias (spiffe_id)
        (alias,) = await api.list_entries(by_spiffe_id=mesh.server.agent_alias(w.agent.name))
        agent = agents[alias.parent_id]
        assert agent.attestation_type == "join_token"
        assert not agent.banned
        assert agent.x509svid_expires_at > time.time()
        assert agent.x509svid_serial_number


async def test_bundle_matches_the_cli(mesh: Mesh, api: SpireApi) -> None:
    bundle = await api.get_bundle()
    pem = await asyncio.to_thread(mesh.server.bundle_pem)
    cli_der = {
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(pem.encode())
    }
    assert bundle.trust_domain == mesh.trust_domain
    assert set(bundle.x509_authorities) == cli_der
    assert bundle.sequence_number >= 1
    assert await api.list_federated_bundles() == []


async def test_a_missing_socket_is_unavailable_naming_it(tmp_path: Path) -> None:
    absent = tmp_path / "nothing" / "api.sock"
    async with SpireApi(f"unix://{absent}", read_attempts=2, timeout_s=1) as client:
        with pytest.raises(SpireApiError) as caught:
            await client.list_entries()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.method == "Entry/ListEntries"
    assert f"admin socket {absent} does not exist" in str(caught.value)


def _sample(name: str, labels: dict[str, str] | None = None) -> float | None:
    return REGISTRY.get_sample_value(name, labels or {})


async def test_health_of_a_running_server(mesh: Mesh, workloads: list[Workload]) -> None:
    health = SpireHealth(
        str(mesh.server.socket_path),
        health_url=mesh.server.health_url,
        interval_s=0.5,
        expiring_within_s=30 * 24 * 3600,  # longer than any SVID here: every agent counts
    )
    try:
        assert await health.ready() == (False, "SPIRE server not checked yet")
        snap = await health.check()
        assert (snap.up, snap.live, snap.ready, snap.reason) == (True, True, True, "")
        assert await health.ready() == (True, "")
        assert snap.bundle_latency_s is not None and snap.bundle_latency_s > 0
        pem = await asyncio.to_thread(mesh.server.bundle_pem)
        not_after = min(
            c.not_valid_after_utc.timestamp() for c in x509.load_pem_x509_certificates(pem.encode())
        )
        assert snap.bundle_expires_at == not_after
        assert snap.agents_by_state["active"] >= len(workloads)
        assert snap.agents_by_state["banned"] == snap.agents_by_state["expired"] == 0
        assert {a.attestation_type for a in snap.agents} == {"join_token"}
        assert snap.svids_expiring_soon == snap.agents_by_state["active"]
        assert _sample("x0tta6bl4_spire_server_up") == 1
        assert _sample("x0tta6bl4_spire_agents", {"state": "active"}) == len(snap.agents)
        assert _sample("x0tta6bl4_spire_bundle_expiry_timestamp_seconds") == not_after
        assert _sample("x0tta6bl4_spire_agent_svids_expiring_soon") == len(snap.agents)
        assert (_sample("x0tta6bl4_spire_bundle_fetch_seconds_count") or 0) >= 1
    finally:
        await health.close()


@pytest.fixture(scope="module")
def own_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A mesh whose SPIRE server this module stops and starts."""
    mesh = Mesh(tmp_path_factory.mktemp("spire-restart"))
    try:
        mesh.workload("spire-health")
        yield mesh
    finally:
        mesh.close()


async def _first_poll_after(health: SpireHealth, moment: float) -> ServerHealthSnapshot:
    """The snapshot of the first poll that started after ``moment``."""

    async def polled() -> bool:
        return health.latest is not None and health.latest.checked_at > moment

    await eventually(polled, timeout_s=10 * health.interval_s + 10, what="a poll after the change")
    assert health.latest is not None
    return health.latest


async def test_health_follows_the_server_going_away_and_back(own_mesh: Mesh) -> None:
    server = next(p for p in own_mesh.processes if p.name == "spire-server")
    health = SpireHealth(
        str(own_mesh.server.socket_path), health_url=own_mesh.server.health_url, interval_s=0.5
    )
    poller = asyncio.create_task(health.run())
    try:
        up = await _first_poll_after(health, time.time())
        assert up.up, up.reason

        server.signal(signal.SIGSTOP)  # hung: the listener accepts, nothing answers
        try:
            hung = await _first_poll_after(health, time.time())
        finally:
            server.signal(signal.SIGCONT)
        assert not hung.up
        assert f"no answer within {health.timeout_s:g}s" in hung.reason
        assert "admin API Bundle/GetBundle, Agent/ListAgents: DEADLINE_EXCEEDED" in hung.reason

        await asyncio.to_thread(server.stop)
        down = await _first_poll_after(health, time.time())
        assert (down.up, down.live, down.ready) == (False, False, False)
        url = own_mesh.server.health_url
        assert f"{url}/live: cannot connect (connection refused)" in down.reason
        assert f"{url}/ready: cannot connect (connection refused)" in down.reason
        socket = own_mesh.server.socket_path
        assert (
            f"admin API Bundle/GetBundle, Agent/ListAgents: UNAVAILABLE: admin socket {socket} "
            "does not exist"
        ) in down.reason
        ready, why = await health.ready()
        assert not ready and "cannot connect" in why
        assert _sample("x0tta6bl4_spire_server_up") == 0

        server.start()

        async def healthy() -> bool:
            return (await health.ready())[0]

        await eventually(healthy, timeout_s=60, what="SPIRE healthy again after a restart")
        assert health.latest is not None and health.latest.reason == ""
        assert _sample("x0tta6bl4_spire_server_up") == 1
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await health.close()


# -- verdicts from plain observations (no SPIRE needed) ----------------------------------------

NOW = 1_800_000_000.0


def _cert(not_after: float) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime.fromtimestamp(NOW - 3600, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(not_after, dt.UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def _agent(name: str, expires_in: float, *, banned: bool = False) -> Agent:
    return Agent(
        f"spiffe://td/spire/agent/{name}",
        "join_token",
        "1",
        int(NOW + expires_in),
        (),
        banned,
        False,
    )


def _observation(**changes: object) -> Observation:
    base: dict[str, object] = {
        "checked_at": NOW,
        "live": EndpointProbe("http://h/live", 200, "{}"),
        "ready": EndpointProbe("http://h/ready", 200, "{}"),
        "bundle": Bundle("td", (_cert(NOW + 86400), _cert(NOW + 7200)), 0, 1),
        "bundle_latency_s": 0.002,
        "bundle_error": "",
        "agents": (
            _agent("a", 3000),
            _agent("b", 60),
            _agent("c", -1),
            _agent("d", 9e3, banned=True),
        ),
        "agents_error": "",
    }
    base.update(changes)
    return Observation(**base)  # type: ignore[arg-type]


def test_verdict_of_a_healthy_server_counts_agents_by_state() -> None:
    snap = assess(_observation(), expiring_within_s=600)
    assert (snap.up, snap.reason) == (True, "")
    assert snap.bundle_expires_at == NOW + 7200
    assert snap.agents_by_state == {"active": 2, "banned": 1, "expired": 1}
    assert snap.svids_expiring_soon == 1  # b; c has expired, d is banned
    assert [a.state for a in snap.agents] == ["active", "active", "expired", "banned"]


def test_an_unready_server_is_down_with_the_status_and_body() -> None:
    body = '{"server.ca":{"message":"no x509 CA"}}'
    snap = assess(
        _observation(ready=EndpointProbe("http://h/ready", 500, body)), expiring_within_s=0
    )
    assert (snap.up, snap.live, snap.ready) == (False, True, False)
    assert snap.reason == f"http://h/ready answered 500: {body}"


def test_admin_api_failures_and_a_dead_bundle_are_reasons() -> None:
    error = "Bundle/GetBundle: UNAVAILABLE: admin socket /s does not exist"
    snap = assess(
        _observation(
            bundle=None,
            bundle_error=error,
            agents=None,
            agents_error=error.replace("Bundle/GetBundle", "Agent/ListAgents"),
        ),
        expiring_within_s=0,
    )
    assert not snap.up and snap.live and snap.ready  # the endpoints still answer
    assert snap.reason == (
        "admin API Bundle/GetBundle, Agent/ListAgents: UNAVAILABLE: admin socket /s does not exist"
    )
    expired = assess(
        _observation(bundle=Bundle("td", (_cert(NOW - 1),), 0, 1)), expiring_within_s=0
    )
    assert not expired.up and "expired" in expired.reason
    empty = assess(_observation(bundle=Bundle("td", (), 0, 1)), expiring_within_s=0)
    assert not empty.up and "no X.509 authority" in empty.reason


def test_without_a_health_url_the_admin_api_decides() -> None:
    assert assess(_observation(live=None, ready=None), expiring_within_s=0).up
    down = assess(
        _observation(live=None, ready=None, agents=None, agents_error="Agent/ListAgents: X"),
        expiring_within_s=0,
    )
    assert (down.up, down.live, down.ready, down.reason) == (
        False,
        False,
        False,
        "admin API Agent/ListAgents: X",
    )
    assert down.agents_by_state == {}  # unknown, not zero

"""The identity service as a process, against a real SPIRE 1.13.3 server and agents and a real
3-member consensus cluster: workloads applied through its API become SPIRE entries and SVIDs,
entries changed behind its back are repaired, entries it does not own are left alone, and a
ban denies the banned caller within 5 s until it is lifted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc import aio

from tests.support.identity import identity_client, identity_suite
from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    ServiceProcess,
    Workload,
    client,
    svid_source,
    whoami,
)
from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.devstack.spire import Entry
from x0tta6bl4.identity.core.reconcile_plan import entry_id
from x0tta6bl4.identity.v1 import identity_pb2 as pb

pytestmark = pytest.mark.timeout(300)


@dataclass
class Suite:
    mesh: Mesh
    cluster: ConsensusCluster
    identity: ServiceProcess
    operator: Workload


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with identity_suite(tmp_path_factory.mktemp("identity")) as s:
        yield Suite(s.mesh, s.cluster, s.identity, s.mesh.workload("operator"))


def _workload(w: Workload) -> pb.Workload:
    return pb.Workload(
        spiffe_id=w.spiffe_id,
        parent_id=w.entry.parent_id,
        selectors=[
            pb.Selector(type=t, value=v)
            for t, _, v in (s.partition(":") for s in w.entry.selectors)
        ],
        x509_svid_ttl_seconds=w.entry.x509_svid_ttl_s,
        dns_names=list(w.entry.dns_names),
    )


def _entries(mesh: Mesh, spiffe_id: str) -> list[dict[str, object]]:
    """The server's entries for ``spiffe_id``, as ``spire-server entry show -output json``."""
    out = subprocess.run(
        [
            find("spire-server"),
            "entry",
            "show",
            "-spiffeID",
            spiffe_id,
            "-socketPath",
            str(mesh.server.socket_path),
            "-output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return list(json.loads(out).get("entries") or [])


def _fetch_svid(w: Workload, out: Path) -> x509.Certificate | None:
    """The SVID the workload's agent issues it now (``spire-agent api fetch x509``), or None."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            find("spire-agent"),
            "api",
            "fetch",
            "x509",
            "-socketPath",
            str(w.socket_path),
            "-write",
            str(out),
            "-timeout",
            "3s",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        return None
    return x509.load_pem_x509_certificates((out / "svid.0.pem").read_bytes())[0]


def _edit_entry(mesh: Mesh, spiffe_id: str, parent: str) -> None:
    """``spire-server entry update`` of an entry identity owns: other selectors and TTL."""
    subprocess.run(
        [
            find("spire-server"),
            "entry",
            "update",
            "-entryID",
            entry_id(spiffe_id),
            "-spiffeID",
            spiffe_id,
            "-parentID",
            parent,
            "-selector",
            "unix:uid:666",
            "-x509SVIDTTL",
            "120",
            "-socketPath",
            str(mesh.server.socket_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


async def _until(check, timeout_s: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not await check():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def test_an_applied_workload_gets_an_entry_and_an_svid_with_its_dns_names(
    suite: Suite, tmp_path: Path
) -> None:
    web = suite.mesh.workload("web", register=False, dns_names=("web.local.svc", "web.example"))
    assert _fetch_svid(web, tmp_path / "before") is None
    async with identity_client(suite.operator, suite.identity) as identity:
        applied = await identity.apply(_workload(web))
        assert applied.changed and applied.record.author == suite.operator.spiffe_id
        entries = _entries(suite.mesh, web.spiffe_id)
        if not entries:
            await _until(
                lambda: asyncio.to_thread(lambda: bool(_entries(suite.mesh, web.spiffe_id))),
                15,
                "the entry in SPIRE",
            )
            entries = _entries(suite.mesh, web.spiffe_id)
        assert [e["id"] for e in entries] == [entry_id(web.spiffe_id)]
        svid: list[x509.Certificate] = []

        async def issued() -> bool:
            cert = await asyncio.to_thread(_fetch_svid, web, tmp_path / "svid")
            svid[:] = [cert] if cert else []
            return cert is not None

        await _until(issued, 30, "an SVID on web's agent")
        san = svid[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.UniformResourceIdentifier) == [web.spiffe_id]
        assert set(san.get_values_for_type(x509.DNSName)) == {"web.local.svc", "web.example"}

        await identity.delete(web.spiffe_id)
        with pytest.raises(ClientError) as missing:
            await identity.get(web.spiffe_id)
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
        await _until(
            lambda: asyncio.to_thread(lambda: not _entries(suite.mesh, web.spiffe_id)),
            15,
            "the entry removed from SPIRE",
        )

        async def gone() -> bool:
            return await asyncio.to_thread(_fetch_svid, web, tmp_path / "after") is None

        await _until(gone, 30, "no SVID for web once its workload is deleted")


async def test_entries_changed_behind_its_back_are_repaired_and_foreign_ones_left_alone(
    suite: Suite,
) -> None:
    mesh = suite.mesh
    parent = mesh.server.agent_alias("nobody")
    names = [f"repair-{i}" for i in range(6)]
    foreign = Entry(
        spiffe_id=f"spiffe://{mesh.trust_domain}/ns/local/sa/hand-made",
        parent_id=parent,
        selectors=("unix:uid:4242",),
    )
    foreign_id = mesh.server.create_entry(foreign)
    async with identity_client(suite.operator, suite.identity) as identity:
        for name in names:
            await identity.apply(
                pb.Workload(
                    spiffe_id=f"spiffe://{mesh.trust_domain}/ns/local/sa/{name}",
                    parent_id=parent,
                    selectors=[pb.Selector(type="unix", value="uid:1000")],
                    x509_svid_ttl_seconds=600,
                )
            )
        await identity.reconcile()
        ids = [f"spiffe://{mesh.trust_domain}/ns/local/sa/{n}" for n in names]
        assert all(len(_entries(mesh, s)) == 1 for s in ids)
        # Behind its back: delete three, and edit three (TTL and selectors) with the CLI.
        for s in ids[:3]:
            mesh.server.delete_entry(entry_id(s))
        for s in ids[3:]:
            _edit_entry(mesh, s, parent)
        report = await identity.reconcile()
        assert sorted(report.created) == sorted(ids[:3])
        assert sorted(report.updated) == sorted(ids[3:])
        for s in ids:
            (entry,) = _entries(mesh, s)
            assert entry["x509_svid_ttl"] == 600
            assert entry["selectors"] == [{"type": "unix", "value": "uid:1000"}]
        (kept,) = _entries(mesh, foreign.spiffe_id)
        assert kept["id"] == foreign_id and kept["selectors"] == [
            {"type": "unix", "value": "uid:4242"}
        ]
        for s in ids:
            await identity.delete(s)
        await identity.reconcile()
        assert all(not _entries(mesh, s) for s in ids)
        assert len(_entries(mesh, foreign.spiffe_id)) == 1


async def test_bad_workloads_are_refused_naming_the_field(suite: Suite) -> None:
    td = suite.mesh.trust_domain
    good = pb.Workload(
        spiffe_id=f"spiffe://{td}/ns/local/sa/ok",
        parent_id=suite.mesh.server.agent_alias("x"),
        selectors=[pb.Selector(type="unix", value="uid:1")],
        x509_svid_ttl_seconds=600,
    )
    cases = {
        "spiffe_id": pb.Workload(spiffe_id="spiffe://other.domain/x"),
        "selectors": pb.Workload(
            spiffe_id=good.spiffe_id, parent_id=good.parent_id, x509_svid_ttl_seconds=600
        ),
        "x509_svid_ttl_seconds": pb.Workload(
            spiffe_id=good.spiffe_id,
            parent_id=good.parent_id,
            selectors=good.selectors,
            x509_svid_ttl_seconds=-5,
        ),
    }
    async with identity_client(suite.operator, suite.identity) as identity:
        for field, workload in cases.items():
            with pytest.raises(ClientError) as refused:
                await identity.apply(workload)
            assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in str(refused.value), (field, str(refused.value))
        assert not await identity.workloads(prefix=good.spiffe_id)


async def test_a_banned_caller_is_denied_within_5_s_until_the_ban_is_lifted(
    suite: Suite,
) -> None:
    # A member of the suite (any member may call WhoAmI), banned as if its key leaked.
    rogue = suite.mesh.workload("healer")
    async with (
        identity_client(suite.operator, suite.identity) as identity,
        svid_source(rogue) as svids,
        client(svids, suite.identity) as as_rogue,
    ):
        assert (await whoami(as_rogue)).caller_spiffe_id == rogue.spiffe_id

        async def denied() -> bool:
            try:
                await whoami(as_rogue)
            except aio.AioRpcError as err:
                assert err.code() is grpc.StatusCode.PERMISSION_DENIED, err
                return True
            return False

        revoked = await identity.revoke(rogue.spiffe_id, "compromised key (test)")
        assert revoked.revocation.spiffe_id == rogue.spiffe_id
        assert revoked.entries_deleted == 0  # registered by the mesh, not owned by identity
        took = await _until(denied, 5, "the banned caller denied")
        assert [r.spiffe_id for r in await identity.revocations()] == [rogue.spiffe_id]

        await identity.lift(rogue.spiffe_id)

        async def allowed() -> bool:
            return not await denied()

        await _until(allowed, 5, "the caller allowed again after the ban is lifted")
        assert took <= 5


async def test_server_health_and_readiness_follow_the_spire_server(suite: Suite) -> None:
    async with identity_client(suite.operator, suite.identity) as identity:
        health = await identity.health()
        assert health.up and health.live and health.ready, health.reason
        assert health.bundle_expires_at.seconds > time.time()
        assert any(a.attestation_type == "join_token" for a in health.agents)
    assert "x0tta6bl4_spire_server_up 1.0" in suite.identity.metrics()


async def test_watch_streams_every_change_from_a_revision_and_list_pages(suite: Suite) -> None:
    td = suite.mesh.trust_domain
    parent = suite.mesh.server.agent_alias("watch-node")
    ids = [f"spiffe://{td}/ns/watch/sa/w{i}" for i in range(5)]
    async with identity_client(suite.operator, suite.identity) as identity:
        first = await identity.apply(
            pb.Workload(
                spiffe_id=ids[0],
                parent_id=parent,
                selectors=[pb.Selector(type="unix", value="uid:7")],
                x509_svid_ttl_seconds=600,
            )
        )
        for s in ids[1:]:
            await identity.apply(
                pb.Workload(
                    spiffe_id=s,
                    parent_id=parent,
                    selectors=[pb.Selector(type="unix", value="uid:7")],
                    x509_svid_ttl_seconds=600,
                )
            )
        await identity.delete(ids[0])
        seen: list[tuple[int, str]] = []

        async def collect() -> None:
            async for change in identity.watch(start_revision=first.record.revision):
                seen.append((change.type, change.record.workload.spiffe_id))
                if len(seen) == 6:
                    return

        await asyncio.wait_for(collect(), 30)
        applied, deleted = pb.CHANGE_TYPE_APPLIED, pb.CHANGE_TYPE_DELETED
        assert seen == [(applied, s) for s in ids] + [(deleted, ids[0])]
        listed = await identity.workloads(prefix=f"spiffe://{td}/ns/watch/", page_size=2)
        assert [r.workload.spiffe_id for r in listed] == ids[1:]
        for s in ids[1:]:
            await identity.delete(s)


async def test_validate_certificate_accepts_a_real_svid_and_names_a_wrong_id(
    suite: Suite, tmp_path: Path
) -> None:
    svid = _fetch_svid(suite.operator, tmp_path)
    assert svid is not None
    chain = (tmp_path / "svid.0.pem").read_bytes()
    async with identity_client(suite.operator, suite.identity) as identity:
        ok = await identity.validate(chain, expected_spiffe_id=suite.operator.spiffe_id)
        assert ok.valid and ok.spiffe_id == suite.operator.spiffe_id and ok.policy == "default"
        assert {c.name for c in ok.checks if c.result == pb.CHECK_RESULT_PASS} >= {"chain"}
        wrong = await identity.validate(
            chain, expected_spiffe_id=f"spiffe://{suite.mesh.trust_domain}/ns/local/sa/other"
        )
        assert not wrong.valid
        failed = [c for c in wrong.checks if c.result == pb.CHECK_RESULT_FAIL]
        assert [c.name for c in failed] == ["profile.expected_spiffe_id"], failed
        garbage = await identity.validate(b"-----BEGIN CERTIFICATE-----\nnot base64\n")
        assert not garbage.valid and garbage.checks[0].reason


async def test_a_stopped_spire_server_is_reported_within_an_interval_and_recovers(
    suite: Suite,
) -> None:
    """Last in the module: it stops the mesh's SPIRE server (and starts it again)."""
    (server,) = [p for p in suite.mesh.processes if p.name == "spire-server"]
    async with identity_client(suite.operator, suite.identity) as identity:
        assert (await identity.health()).up
        server.stop()

        async def reported_down() -> bool:
            health = await identity.health()
            return not health.up and bool(health.reason)

        # X0_IDENTITY_HEALTH_INTERVAL_S is 1: one interval, plus the poll's own timeout.
        took = await _until(reported_down, 5, "ServerHealth reporting the server down")
        assert "x0tta6bl4_spire_server_up 0.0" in suite.identity.metrics()
        assert not suite.identity.ready()
        reason = (await identity.health()).reason
        server.start()

        async def healthy() -> bool:
            health = await identity.health()
            return health.up and health.ready

        await _until(healthy, 60, "ServerHealth healthy after the server is back")
        assert "x0tta6bl4_spire_server_up 1.0" in suite.identity.metrics()
        await _until(lambda: asyncio.to_thread(suite.identity.ready), 30, "identity ready again")
    assert took <= 5, (took, reason)

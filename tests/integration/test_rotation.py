"""SVIDs with a 20 s TTL rotate under continuous traffic in both directions: zero failed calls."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.mesh import Mesh, ServiceProcess, client, svid_source, whoami
from tests.support.metrics import metric, samples
from x0tta6bl4.devstack.procs import free_port, wait_until

pytestmark = pytest.mark.integration

SVID_TTL_S = 20
ROTATIONS = 3


def _probe_failures(service: ServiceProcess) -> float:
    return sum(
        v
        for labels, v in samples(service.metrics(), "x0tta6bl4_dependency_probes_total")
        if labels["code"] != "OK"
    )


def _rotations(service: ServiceProcess) -> float:
    return metric(service.metrics(), "x0tta6bl4_svid_rotations_total", default=0.0)


async def test_two_processes_call_each_other_across_rotations_without_a_failure(mesh: Mesh) -> None:
    healer_wl = mesh.workload("healer", svid_ttl_s=SVID_TTL_S)
    ops_wl = mesh.workload("ops", svid_ttl_s=SVID_TTL_S)
    operator_wl = mesh.workload("operator", svid_ttl_s=SVID_TTL_S)
    # Each service probes the other with WhoAmI every 50 ms; connections are re-handshaken
    # every 3 s, so rotated credentials are really presented and checked.
    common = {"X0_DEPENDENCY_PROBE_INTERVAL_S": "0.05", "X0_MAX_CONNECTION_AGE_S": "3"}
    healer_port, ops_port = free_port(), free_port()
    ops = mesh.service(
        "ops",
        workload=ops_wl,
        grpc_port=ops_port,
        wait_ready=False,
        env={**common, "X0_DEPENDENCIES": f"healer=127.0.0.1:{healer_port}"},
    )
    healer = mesh.service(
        "healer",
        workload=healer_wl,
        grpc_port=healer_port,
        env={**common, "X0_DEPENDENCIES": f"ops={ops.grpc_addr}"},
    )
    wait_until(ops.ready, timeout_s=30, what="ops ready (its probe of healer answers)")
    # Probes that ran before the peer was listening failed; count only what happens from now on.
    before = {s.service: _probe_failures(s) for s in (healer, ops)}

    serials: dict[str, set[str]] = {"healer": set(), "ops": set()}
    client_serials: set[int] = set()
    calls = failures = 0
    deadline = time.monotonic() + SVID_TTL_S * (ROTATIONS + 2)
    async with (
        svid_source(operator_wl) as svids,
        client(svids, healer) as to_healer,
        client(svids, ops) as to_ops,
    ):
        while time.monotonic() < deadline:
            for name, target in (("healer", to_healer), ("ops", to_ops)):
                calls += 1
                try:
                    serials[name].add((await whoami(target)).server_svid_serial)
                except Exception as err:  # count, don't stop: every failure matters
                    failures += 1
                    print(f"call to {name} failed: {err!r}")
            client_serials.add(svids.require().serial)
            if (
                min(len(s) for s in serials.values()) > ROTATIONS
                and len(client_serials) > ROTATIONS
            ):
                break
            await asyncio.sleep(0.05)

    assert failures == 0, f"{failures} of {calls} calls failed during rotation"
    for name, seen in serials.items():
        assert len(seen) > ROTATIONS, f"{name} presented {len(seen)} certificates: {seen}"
    assert len(client_serials) > ROTATIONS
    for service, peer in ((healer, "ops"), (ops, "healer")):
        probes = service.metrics()
        ok = metric(probes, "x0tta6bl4_dependency_probes_total", 0.0, dependency=peer, code="OK")
        failed = _probe_failures(service) - before[service.service]
        assert ok > 100, f"{service.service} probed {peer} only {ok} times"
        assert failed == 0, f"{service.service} → {peer}: {failed} probes failed"
        assert _rotations(service) > ROTATIONS

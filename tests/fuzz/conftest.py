"""Fixtures of the fuzz tier: one running suite for all its modules, ports nobody listens
on, and the campaign summary at the end of pytest's output."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.fuzz.suite import STUB_SERVICES, SUMMARY, FuzzSuite
from tests.support.identity import identity_service
from tests.support.mesh import Mesh, consensus_cluster, sync_cluster
from x0tta6bl4.devstack.procs import wait_until


@pytest.fixture(scope="package")
def fuzz_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzSuite]:
    """The suite (see tests.fuzz.suite), started once for the whole tier."""
    mesh = Mesh(tmp_path_factory.mktemp("fuzz-mesh"))
    try:
        consensus = consensus_cluster(mesh, tmp_path_factory.mktemp("raft"))
        replicas = sync_cluster(mesh, tmp_path_factory.mktemp("sync"))
        stubs = {name: mesh.service(name, wait_ready=False) for name in STUB_SERVICES}
        stubs["identity"] = identity_service(mesh, consensus, wait_ready=False)
        for name, stub in stubs.items():
            wait_until(
                stub.ready, timeout_s=60, what=f"{name} ready", diagnose=stub.process.log_tail
            )
        yield FuzzSuite(mesh, consensus, replicas, stubs, mesh.workload("operator"))
    finally:
        mesh.close()


@pytest.fixture(scope="package")
def dead_ports() -> Iterator[tuple[int, ...]]:
    """Ports on 127.0.0.1 that nobody listens on: bound here, never listened on, so a
    connection to one is refused and no other process can take it meanwhile."""
    sockets = [socket.socket() for _ in range(4)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        yield tuple(int(s.getsockname()[1]) for s in sockets)
    finally:
        for sock in sockets:
            sock.close()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SUMMARY] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in terminalreporter.config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)

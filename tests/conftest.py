"""Fixtures shared by the integration and system tiers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultNetwork
from tests.support.mesh import Mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A real SPIRE trust domain (server + agents on demand) for the tests of one module."""
    mesh = Mesh(tmp_path_factory.mktemp("mesh"))
    try:
        yield mesh
    finally:
        mesh.close()


@pytest.fixture(scope="module")
def network() -> Iterator[FaultNetwork]:
    """Fault-injecting proxies for the tests of one module."""
    net = FaultNetwork()
    try:
        yield net
    finally:
        net.close()

"""The running suite the fuzz tier sends to, its settings, and operator clients of it.

A real trust domain: a 3-member consensus cluster, 3 sync replicas, identity (on that
cluster and the mesh's SPIRE server), and policy, healer and ops, each process with its own
SPIRE agent and OPA sidecar, started by the helpers of ``tests/support/`` (the fixture is in
this directory's conftest).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator

import pytest

from tests.support.mesh import (
    ConsensusCluster,
    Mesh,
    ServiceProcess,
    SyncCluster,
    Workload,
    client,
    svid_source,
)
from x0tta6bl4.platform.client import MeshClient

STUB_SERVICES = ("policy", "healer", "ops")  # identity is started with its dependencies
DEFAULT_BUDGET_S = 60.0
SUMMARY = pytest.StashKey[list[str]]()


def budget_s() -> float:
    """``X0_FUZZ_BUDGET``: seconds of generated requests (default 60)."""
    raw = os.environ.get("X0_FUZZ_BUDGET", "").strip()
    value = float(raw) if raw else DEFAULT_BUDGET_S
    if value < 0:
        raise ValueError(f"X0_FUZZ_BUDGET must be >= 0 seconds, got {raw!r}")
    return value


def seed() -> int:
    """``X0_FUZZ_SEED``, or a fresh random seed (printed, so a failure can be repeated)."""
    raw = os.environ.get("X0_FUZZ_SEED", "").strip()
    return int(raw, 0) if raw else secrets.randbits(32)


@dataclasses.dataclass(frozen=True)
class FuzzSuite:
    mesh: Mesh
    consensus: ConsensusCluster
    sync: SyncCluster
    stubs: dict[str, ServiceProcess]
    operator: Workload

    def services(self) -> dict[str, ServiceProcess]:
        """Every serving process by a unique name (consensus-1, sync-a, identity, ...)."""
        named = {f"consensus-{i}": m for i, m in self.consensus.members.items()}
        named |= {f"sync-{rid}": m for rid, m in self.sync.members.items()}
        return named | self.stubs


@contextlib.asynccontextmanager
async def operator_clients(suite: FuzzSuite) -> AsyncIterator[dict[str, MeshClient]]:
    """A client of every serving process (by :meth:`FuzzSuite.services` name), as the
    operator."""
    async with svid_source(suite.operator) as svids, contextlib.AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(client(svids, process))
            for name, process in suite.services().items()
        }

"""The bad-input contract, checked by fuzzing the running suite over real mTLS as the operator.

Every method of every service found in the generated APIs gets generated requests for
``X0_FUZZ_BUDGET`` seconds (default 60) after the whole corpus is replayed (seed:
``X0_FUZZ_SEED``, printed). No answer may be UNKNOWN, INTERNAL or DATA_LOSS, no process may
die or restart, and afterwards a valid request of each kind still succeeds everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.fuzz import corpus, still_works
from tests.fuzz.apis import discover
from tests.fuzz.campaign import PEER_ONLY, Campaign, Report, Target
from tests.fuzz.safety import Safety
from tests.fuzz.suite import SUMMARY, FuzzSuite, budget_s, operator_clients, seed
from x0tta6bl4.devstack.procs import ManagedProcess

BUDGET_S = budget_s()

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(BUDGET_S + 420)]


def _identity(process: ManagedProcess) -> tuple[int, float] | None:
    """(pid, start time) of a running process, None if it is gone."""
    if not process.running():
        return None
    try:
        return process.pid, psutil.Process(process.pid).create_time()
    except psutil.NoSuchProcess:
        return None


def _announce(config: pytest.Config, line: str) -> None:
    """Print ``line`` now, past pytest's output capture (and again in the final summary)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\n{line}", flush=True)


async def _run(suite: FuzzSuite, safety: Safety, fuzz_seed: int) -> Report:
    methods = discover()
    async with operator_clients(suite) as clients:
        targets = [
            Target(name, p.service, p.process, clients[name].channel())
            for name, p in suite.services().items()
        ]
        campaign = Campaign(
            methods,
            targets,
            [p for p in suite.mesh.processes if p.running()],
            safety,
            seed=fuzz_seed,
            corpus_root=corpus.CORPUS,
        )
        await campaign.check_peer_only()
        await campaign.replay(corpus.load())
        return await campaign.fuzz(BUDGET_S)


@pytest.fixture(scope="module")
def campaign(
    fuzz_suite: FuzzSuite, dead_ports: tuple[int, ...], pytestconfig: pytest.Config
) -> Iterator[tuple[Report, dict[str, tuple[int, float] | None]]]:
    """The campaign's report, and which watched processes changed (None: gone) meanwhile."""
    fuzz_seed = seed()
    _announce(pytestconfig, f"fuzz: seed {fuzz_seed}, budget {BUDGET_S:g} s")
    before = {p.name: _identity(p) for p in fuzz_suite.mesh.processes if p.running()}
    started = time.monotonic()
    report = asyncio.run(_run(fuzz_suite, Safety(dead_ports), fuzz_seed))
    report.elapsed_s = time.monotonic() - started
    after = {p.name: _identity(p) for p in fuzz_suite.mesh.processes}
    changed = {name: after.get(name) for name, was in before.items() if after.get(name) != was}
    _announce(pytestconfig, report.summary())
    print(report.table())  # shown with a failure (or with -s)
    pytestconfig.stash[SUMMARY].append(report.summary())
    yield report, changed


def test_peer_only_services_refuse_the_operator(
    campaign: tuple[Report, dict[str, tuple[int, float] | None]],
) -> None:
    report, _ = campaign
    assert not report.not_denied, (
        f"{sorted(PEER_ONLY)} must refuse the operator (they were not fuzzed):\n"
        + "\n".join(report.not_denied)
    )


def test_no_input_gets_unknown_internal_or_data_loss(
    campaign: tuple[Report, dict[str, tuple[int, float] | None]],
) -> None:
    report, _ = campaign
    listed = "\n".join(map(str, report.findings[:50]))
    assert not report.findings, (
        f"{len(report.findings)} requests broke the bad-input contract "
        f"({report.summary()}); the inputs are saved in the corpus:\n{listed}\n"
        f"requests by method and status:\n{report.table()}"
    )


def test_no_process_died_or_restarted(
    campaign: tuple[Report, dict[str, tuple[int, float] | None]],
) -> None:
    report, changed = campaign
    assert not changed and not report.deaths, (
        f"processes gone or restarted during the campaign ({report.summary()}): "
        f"{changed}\n" + "\n".join(report.deaths)
    )


def test_every_method_was_fuzzed(
    campaign: tuple[Report, dict[str, tuple[int, float] | None]],
) -> None:
    report, _ = campaign
    if report.deaths or BUDGET_S < 10:
        pytest.skip("the campaign was cut short")
    missing = [m.path for m in discover() if report.per_method[m.path] < 10]
    assert not missing, f"methods with fewer than 10 requests: {missing}\n{report.table()}"


async def test_valid_requests_still_succeed_afterwards(
    campaign: tuple[Report, dict[str, tuple[int, float] | None]], fuzz_suite: FuzzSuite
) -> None:
    async with operator_clients(fuzz_suite) as clients:
        members = {i: clients[f"consensus-{i}"] for i in fuzz_suite.consensus.members}
        replicas = {rid: clients[f"sync-{rid}"] for rid in fuzz_suite.sync.members}
        for name, c in clients.items():
            await still_works.diagnostics(name, c)
        await still_works.cluster_membership(members)
        await still_works.kv_api(members)
        await still_works.sync_api(replicas)
        await still_works.identity_api(clients["identity"], fuzz_suite.mesh.trust_domain)

"""Seeded fault-injection simulation of the Raft core (see raft_sim.py for the model).

``pytest tests/simulation`` runs SCHEDULES seeded schedules in chunks. A failure names its
seed; replay exactly that schedule with::

    X0_RAFT_SEED=1234 pytest tests/simulation/test_raft_simulation.py -k single_seed
"""

from __future__ import annotations

import os

import pytest
from raft_sim import Simulation, Stats

SCHEDULES = int(os.environ.get("X0_RAFT_SCHEDULES", "10000"))
CHUNK = 250
FIRST_SEED = int(os.environ.get("X0_RAFT_FIRST_SEED", "0"))

pytestmark = pytest.mark.simulation


def _run(seed: int) -> Stats:
    try:
        return Simulation(seed).run()
    except Exception as exc:
        raise AssertionError(
            f"simulation seed {seed} failed: {type(exc).__name__}: {exc}\n"
            f"replay: X0_RAFT_SEED={seed} pytest tests/simulation/test_raft_simulation.py "
            f"-k single_seed"
        ) from exc


@pytest.mark.parametrize(
    "first", range(FIRST_SEED, FIRST_SEED + SCHEDULES, CHUNK), ids=lambda s: f"seeds{s}"
)
def test_schedules(first: int) -> None:
    seeds = range(first, min(first + CHUNK, FIRST_SEED + SCHEDULES))
    runs = [_run(seed) for seed in seeds]
    n = len(runs)
    # The schedules must exercise what they claim to, or passing them means nothing.
    assert all(r.leaders_elected > 0 for r in runs), "a schedule never elected a leader"
    assert sum(r.writes_acked > 0 for r in runs) >= 0.6 * n, "too few schedules commit writes"
    assert sum(r.reads_acked > 0 for r in runs) >= 0.4 * n, "too few schedules serve reads"
    assert sum(r.crashes > 0 for r in runs) >= 0.4 * n, "too few schedules crash nodes"
    assert sum(r.snapshots_installed > 0 for r in runs) >= 0.1 * n, "snapshots not exercised"
    assert sum(r.conf_changes_applied > 0 for r in runs) >= 0.03 * n, "no membership changes"
    assert max(r.max_term for r in runs) >= 4, "no leader churn"


def test_single_seed() -> None:
    """Replays X0_RAFT_SEED (seed 0 when unset) and shows what the schedule did."""
    seed = int(os.environ.get("X0_RAFT_SEED", "0"))
    stats = _run(seed)
    print(f"seed {seed}: {stats}")
    assert stats.leaders_elected > 0


def test_schedules_are_deterministic() -> None:
    a = Simulation(4242).run()
    b = Simulation(4242).run()
    assert a == b
    assert a.messages > 0

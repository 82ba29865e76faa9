"""Seeded convergence simulation of 3-7 sync replicas (loss, duplication, reordering,
partitions, a late joiner), with exact oracles and a bound on anti-entropy rounds after heal.

Replay one seed: ``X0_SYNC_SEED=<seed> .venv/bin/python -m pytest -s
tests/simulation/test_sync_convergence.py``.
"""

from __future__ import annotations

import os
import statistics

import pytest
from sync_sim import Result, Simulation

pytestmark = pytest.mark.simulation

SEEDS = [int(os.environ["X0_SYNC_SEED"])] if "X0_SYNC_SEED" in os.environ else list(range(8))
SIZES = [3, 4, 5, 6, 7]

# Rounds after heal on a loss-free network. Every client write applied everywhere and equal
# reads: the target of 2 rounds. The complete state, including GC's own work (the
# two-phase stability cut and the replicated collection of remove-wins tokens it enables, which
# keeps producing events for a few rounds after a heal): a looser bound.
VALUES_BOUND = 2
STATE_BOUND = 6
LOSSY_BOUND = 12  # with 20% loss continuing after the heal
LEAVE_BOUND = 30  # a replica left mid-run: the remaining ones also settle and prune it


def _run(seed: int, n: int, post_heal_loss: float = 0.0) -> Result:
    sim = Simulation(seed * 100 + n, n, join_late=seed % 2 == 1)
    try:
        return sim.run(post_heal_loss=post_heal_loss)
    except AssertionError as e:
        raise AssertionError(
            f"{e}\nreplay: X0_SYNC_SEED={seed} .venv/bin/python -m pytest -s "
            f"'tests/simulation/test_sync_convergence.py' -k 'n{n}'"
        ) from e


@pytest.mark.parametrize("n", SIZES, ids=[f"n{n}" for n in SIZES])
def test_replicas_converge_within_the_round_bound_after_heal(n: int) -> None:
    results = [_run(seed, n) for seed in SEEDS]
    worst_v = max(r.values_rounds for r in results)
    worst_s = max(r.state_rounds for r in results)
    print(
        f"\nn={n}: rounds to equal values max={worst_v} "
        f"mean={statistics.mean(r.values_rounds for r in results):.2f}; "
        f"to equal state max={worst_s}; tokens collected="
        f"{sum(r.collected_tokens for r in results)}; log events dropped="
        f"{sum(r.dropped_events for r in results)}; "
        f"messages={sum(r.messages for r in results)} "
        f"(dropped {sum(r.dropped for r in results)})"
    )
    bad = [r for r in results if r.values_rounds > VALUES_BOUND or r.state_rounds > STATE_BOUND]
    assert not bad, "over the bound: " + ", ".join(
        f"X0_SYNC_SEED={r.seed // 100} (values {r.values_rounds}, state {r.state_rounds})"
        for r in bad
    )
    # Not vacuous: faults happened, GC ran, and remove-wins tokens were actually collected
    # (checked over the whole seed set; a single replayed seed may legitimately collect none).
    if len(SEEDS) == 1:
        return
    assert sum(r.dropped for r in results) > 0
    assert sum(r.dropped_events for r in results) > 0
    assert sum(r.collected_tokens for r in results) > 0


@pytest.mark.parametrize("n", [3, 5], ids=["n3", "n5"])
def test_replicas_converge_when_loss_continues_after_heal(n: int) -> None:
    results = [_run(seed, n, post_heal_loss=0.2) for seed in SEEDS]
    worst = max(r.state_rounds for r in results)
    print(
        f"\nn={n} with 20% loss after heal: rounds to equal values max="
        f"{max(r.values_rounds for r in results)}, to equal state max={worst}"
    )
    assert worst <= LOSSY_BOUND


@pytest.mark.parametrize("n", [3, 4, 5], ids=["n3", "n4", "n5"])
def test_a_replica_leaving_mid_run_is_pruned_everywhere(n: int) -> None:
    """One replica drains and stops mid-run; the others are told at random ticks; old
    batches and snapshots from before the leave are delivered again later. The remaining
    replicas converge, no removed element comes back (checked every tick), and at the end no
    context, vector or log of theirs mentions the departed replica."""
    results = []
    for seed in SEEDS:
        sim = Simulation(seed * 100 + n, n, join_late=seed % 2 == 1, leave_mid=True)
        try:
            results.append(sim.run(max_rounds=LEAVE_BOUND))
        except AssertionError as e:
            raise AssertionError(
                f"{e}\nreplay: X0_SYNC_SEED={seed} .venv/bin/python -m pytest -s "
                f"'tests/simulation/test_sync_convergence.py' -k 'leaving and n{n}'"
            ) from e
    print(
        f"\nn={n} with a leaver: rounds to equal state max={max(r.state_rounds for r in results)}"
    )

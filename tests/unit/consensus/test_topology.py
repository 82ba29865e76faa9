from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from x0tta6bl4.consensus.core.messages import NONE
from x0tta6bl4.consensus.core.topology import (
    Member,
    check_placement,
    preferred_leader,
    timers_for_rtt,
)


def test_three_zones_one_voter_each_is_fine() -> None:
    assert check_placement([Member(1, "a"), Member(2, "b"), Member(3, "c")]) == []


def test_a_zone_with_a_quorum_is_reported() -> None:
    warnings = check_placement([Member(1, "a"), Member(2, "a"), Member(3, "b")])
    assert any("zone 'a' holds 2 of 3 voters, a quorum on its own" in w for w in warnings)


def test_learners_do_not_count_towards_placement() -> None:
    members = [
        Member(1, "a"),
        Member(2, "b"),
        Member(3, "c"),
        Member(4, "a", voter=False),
        Member(5, "a", voter=False),
    ]
    assert check_placement(members) == []


def test_single_zone_cluster_is_reported() -> None:
    warnings = check_placement([Member(1, "a"), Member(2, "a"), Member(3, "a")])
    assert any("all voters are in one zone" in w for w in warnings)


def test_lan_defaults_are_the_suites_timing() -> None:
    timers = timers_for_rtt({2: 0.3, 3: 0.4}, tick_ms=10)
    assert (timers.heartbeat_ms, timers.election_ms) == (100, 500)  # randomised to 0.5-1 s


def test_wan_link_stretches_the_timers() -> None:
    timers = timers_for_rtt({2: 0.3, 3: 80.0}, tick_ms=10)
    assert timers.heartbeat_ms == 160
    assert timers.election_ms == 800


@given(st.dictionaries(st.integers(1, 9), st.floats(0, 5000), max_size=6), st.integers(1, 50))
def test_timers_always_keep_election_well_above_heartbeat_and_rtt(
    rtt: dict[int, float], tick_ms: int
) -> None:
    timers = timers_for_rtt(rtt, tick_ms=tick_ms)
    worst = max(rtt.values(), default=0.0)
    assert timers.heartbeat_ms >= 2 * worst
    assert timers.election_ticks > timers.heartbeat_ticks
    assert timers.election_ms >= 3 * timers.heartbeat_ms or timers.election_ticks == (
        timers.heartbeat_ticks + 1
    )


def test_negative_rtt_is_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="round-trip times"):
        timers_for_rtt({2: -1.0})


def test_preferred_leader_is_a_caught_up_voter_in_the_preferred_zone() -> None:
    members = [
        Member(1, "east"),
        Member(2, "west"),
        Member(3, "west"),
        Member(4, "west", voter=False),
    ]
    assert preferred_leader(members, "west", {2: 90, 3: 100, 4: 100}, last_index=100) == 3
    assert preferred_leader(members, "west", {2: 100, 3: 100}, last_index=100) == 2
    assert preferred_leader(members, "west", {2: 90, 3: 95}, last_index=100) == NONE
    assert preferred_leader(members, "north", {1: 100}, last_index=100) == NONE

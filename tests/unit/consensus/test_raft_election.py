"""Scenario tests: elections, randomised timeouts, pre-vote, check-quorum and leader lease."""

from __future__ import annotations

import random

import pytest

from x0tta6bl4.consensus.core.config import ConfigError, RaftConfig
from x0tta6bl4.consensus.core.log_store import MemoryLogStore
from x0tta6bl4.consensus.core.messages import MessageType, Role
from x0tta6bl4.consensus.core.node import RaftNode
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType


def test_randomized_election_timeout_in_range_and_seeded() -> None:
    store = MemoryLogStore.bootstrap([1, 2, 3])
    seen = set()
    for seed in range(200):
        node = RaftNode(RaftConfig(node_id=1, election_ticks=10), store, random.Random(seed))
        seen.add(node.randomized_election_timeout)
    assert seen == set(range(10, 20))
    a = RaftNode(RaftConfig(node_id=1), store, random.Random(7)).randomized_election_timeout
    b = RaftNode(RaftConfig(node_id=1), store, random.Random(7)).randomized_election_timeout
    assert a == b


def test_follower_campaigns_after_its_randomized_timeout() -> None:
    net = Network([1, 2, 3], seed=3)
    timeouts = {i: net.node(i).randomized_election_timeout for i in (1, 2, 3)}
    first = min(timeouts, key=lambda i: (timeouts[i], i))
    net.tick(n=timeouts[first] - 1)
    net.stabilize()
    assert net.leaders() == []
    net.tick([first])
    net.stabilize()
    assert net.leaders() == [first]
    assert all(net.node(i).lead == first for i in (1, 2, 3))
    assert all(net.node(i).term == 2 for i in (1, 2, 3))


def test_election_commits_a_noop_of_the_new_term() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    leader = net.node(1)
    assert leader.log.committed == 2
    assert leader.log.term(2) == leader.term == 2
    for i in (2, 3):
        assert net.peers[i].applied[-1].index == 2


def test_candidate_with_stale_log_loses() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.heal()
    net.node(3).campaign()
    net.stabilize()
    assert net.node(3).role is not Role.LEADER
    assert net.leader() == 1


def test_prevote_rejoining_partitioned_node_does_not_disrupt() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    term = net.node(1).term
    net.isolate(3)
    # Node 3 times out again and again while cut off: pre-vote keeps its term unchanged.
    for _ in range(100):
        net.tick([3])
        net.stabilize()
    assert net.node(3).term == term
    assert net.node(3).role is Role.PRE_CANDIDATE
    net.heal()
    net.tick_and_stabilize(5)
    assert net.leader() == 1
    assert {net.node(i).term for i in (1, 2, 3)} == {term}
    net.propose(1, b"after-heal")
    assert net.peers[3].applied_data()[-1] == b"after-heal"


def test_without_prevote_rejoining_node_bumps_terms() -> None:
    """The contrast case that motivates pre-vote (and leader lease for check-quorum)."""
    net = Network(
        [1, 2, 3],
        config=lambda i: RaftConfig(node_id=i, pre_vote=False, check_quorum=False),
    )
    net.elect(1)
    term = net.node(1).term
    net.isolate(3)
    for _ in range(100):
        net.tick([3])
        net.stabilize()
    assert net.node(3).term > term + 1
    net.heal()
    net.tick_and_stabilize(25)
    assert net.node(1).term > term + 1  # the healthy leader was deposed


def test_check_quorum_leader_steps_down_without_quorum() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    cfg = net.node(1).config
    # The followers' acks to the no-op arrived during the current check window ...
    net.tick([1], n=cfg.election_ticks)
    net.stabilize()
    assert net.node(1).role is Role.LEADER
    # ... but nothing arrives during the next one: the leader steps down at its end.
    net.tick([1], n=cfg.election_ticks - 1)
    net.stabilize()
    assert net.node(1).role is Role.LEADER
    net.tick([1])
    net.stabilize()
    assert net.node(1).role is Role.FOLLOWER
    assert net.node(1).lead == 0
    # Meanwhile the majority elected a new leader and keeps committing.
    net.heal()
    net.isolate(1)
    for _ in range(40):
        net.tick([2, 3])
        net.stabilize()
    new_leader = [i for i in (2, 3) if net.node(i).role is Role.LEADER]
    assert len(new_leader) == 1
    net.propose(new_leader[0], b"still-available")
    assert b"still-available" in net.peers[5 - new_leader[0]].applied_data()


def test_leader_lease_follower_ignores_votes_while_leader_is_live() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, pre_vote=False))
    net.elect(1)
    term = net.node(1).term
    # Node 3 is cut off from the leader only, and campaigns (no pre-vote, so a real vote).
    net.cut |= {(1, 3), (3, 1)}
    net.node(3).campaign()
    net.stabilize()
    assert net.node(3).term == term + 1
    # Node 2 heard from the leader recently: it ignores the vote and keeps its term.
    assert net.node(2).term == term
    assert net.node(2).vote == 1
    assert net.node(1).role is Role.LEADER and net.node(1).term == term


def test_learners_never_campaign() -> None:
    net = Network([1, 2, 3], learners=[4])
    net.tick([4], n=100)
    net.stabilize()
    assert net.node(4).role is Role.FOLLOWER
    assert net.node(4).term == 1


def test_per_node_timers_from_config() -> None:
    """A far-away node gets a longer election timeout (set by the multi-DC adapter)."""

    def config(i: int) -> RaftConfig:
        if i == 3:
            return RaftConfig(node_id=i, election_ticks=50, heartbeat_ticks=5)
        return RaftConfig(node_id=i, election_ticks=10, heartbeat_ticks=1)

    net = Network([1, 2, 3], config=config)
    assert 50 <= net.node(3).randomized_election_timeout < 100
    assert 10 <= net.node(1).randomized_election_timeout < 20
    net.tick(n=25)
    net.stabilize()
    assert net.leaders() in ([1], [2])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"node_id": 0}, "node_id"),
        ({"node_id": 1, "heartbeat_ticks": 0}, "heartbeat_ticks"),
        ({"node_id": 1, "election_ticks": 2, "heartbeat_ticks": 2}, "election_ticks"),
        ({"node_id": 1, "max_inflight_msgs": 0}, "max_inflight_msgs"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RaftConfig(**kwargs)

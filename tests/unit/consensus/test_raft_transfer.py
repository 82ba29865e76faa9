"""Scenario tests: leadership transfer (TimeoutNow) and the preferred leader."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.config import RaftConfig
from x0tta6bl4.consensus.core.messages import MessageType, Role
from x0tta6bl4.consensus.core.node import NotLeaderError, ProposalDroppedError
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType


def test_transfer_to_caught_up_follower() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    term = net.node(1).term
    net.node(1).transfer_leadership(3)
    net.stabilize()
    assert net.leader() == 3
    assert net.node(3).term == term + 1
    assert any(m.type is MT.TIMEOUT_NOW and m.to == 3 for m in net.delivered)
    net.propose(3, b"under-new-leader")
    assert b"under-new-leader" in net.peers[1].applied_data()


def test_transfer_waits_for_target_to_catch_up_and_blocks_proposals() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, f"v{i}".encode())
    net.node(1).transfer_leadership(3)
    with pytest.raises(ProposalDroppedError):
        net.node(1).propose(b"during-transfer")
    net.stabilize()
    assert net.node(1).role is Role.LEADER  # target unreachable: no TimeoutNow yet
    net.heal()
    net.tick_and_stabilize(2)  # heartbeat -> target catches up -> TimeoutNow
    assert net.leader() == 3
    assert net.peers[3].applied_data()[-5:] == [f"v{i}".encode() for i in range(5)]


def test_transfer_aborts_after_an_election_timeout() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.node(1).transfer_leadership(3)
    with pytest.raises(ProposalDroppedError):
        net.node(1).propose(b"x")
    # Ticks keep the quorum {1, 2} alive; the transfer gives up after election_ticks.
    net.tick_and_stabilize(net.node(1).config.election_ticks)
    assert net.node(1).role is Role.LEADER
    assert net.node(1).lead_transferee == 0
    net.propose(1, b"accepted-again")
    assert b"accepted-again" in net.peers[2].applied_data()


def test_transfer_rejects_non_voters_and_followers() -> None:
    net = Network([1, 2, 3], learners=[4])
    net.elect(1)
    with pytest.raises(ValueError):
        net.node(1).transfer_leadership(4)
    with pytest.raises(NotLeaderError) as exc:
        net.node(2).transfer_leadership(3)
    assert exc.value.leader == 1


def test_transfer_forces_through_leader_lease() -> None:
    """TimeoutNow's election bypasses the lease that makes followers ignore votes."""
    net = Network([1, 2, 3, 4, 5])
    net.elect(1)
    net.node(1).transfer_leadership(5)
    net.stabilize()
    assert net.leader() == 5


def test_preferred_leader_takes_over_when_caught_up() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, preferred_leader=3))
    net.elect(1)
    net.propose(1, b"x")
    net.tick_and_stabilize(3)
    assert net.leader() == 3


def test_preferred_leader_comes_back_after_failover() -> None:
    """The preferred (e.g. primary-DC) node fails, another leads, and leadership returns
    automatically once the preferred node is back and has caught up."""
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, preferred_leader=1))
    net.elect(1)
    net.isolate(1)
    for _ in range(60):
        net.tick()
        net.stabilize()
    failover = [i for i in (2, 3) if net.node(i).role is Role.LEADER]
    assert len(failover) == 1
    for i in range(3):
        net.propose(failover[0], f"during-failover-{i}".encode())
    assert net.node(1).role is not Role.LEADER
    net.heal()
    net.tick_and_stabilize(30)
    assert net.leader() == 1
    assert net.peers[1].applied_data()[-3:] == [f"during-failover-{i}".encode() for i in range(3)]


def test_preferred_leader_not_a_voter_is_ignored() -> None:
    net = Network(
        [1, 2, 3], learners=[4], config=lambda i: RaftConfig(node_id=i, preferred_leader=4)
    )
    net.elect(1)
    net.tick_and_stabilize(30)
    assert net.leader() == 1

"""Scenario tests: linearizable reads through ReadIndex, on the leader and on followers."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.config import RaftConfig
from x0tta6bl4.consensus.core.messages import MessageType, ReadState, Role
from x0tta6bl4.consensus.core.node import NotLeaderError
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType


def test_leader_read_index_needs_a_heartbeat_quorum() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    committed = net.node(1).log.committed
    net.isolate(1)
    net.node(1).read_index(b"req-1")
    net.stabilize()
    assert net.peers[1].read_states == []  # leadership not confirmed: nothing released
    net.heal()
    net.tick_and_stabilize(1)  # next heartbeat carries the pending context
    assert net.peers[1].read_states == [ReadState(committed, b"req-1")]
    hb = [m for m in net.delivered if m.type is MT.HEARTBEAT and m.context == b"req-1"]
    assert hb


def test_read_waits_for_noop_commit_of_new_leader() -> None:
    # (no check-quorum: the restarted node may win at once, without waiting out the lease)
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, check_quorum=False))
    net.elect(1)
    net.propose(1, b"x")
    net.isolate(2)
    net.isolate(3)
    net.restart(1)
    net.heal()
    net.node(1).campaign()
    # Win the election but hold back every append: the no-op of the new term is not
    # committed, so our commit index may be stale and the read must wait.
    net.stabilize(drop=lambda m: m.type is MT.APP)
    leader = net.node(1)
    assert leader.role is Role.LEADER
    leader.read_index(b"early")
    net.stabilize(drop=lambda m: m.type is MT.APP)
    assert net.peers[1].read_states == []
    net.tick_and_stabilize(1)
    assert net.peers[1].read_states == [ReadState(leader.log.committed, b"early")]
    assert leader.log.term(leader.log.committed) == leader.term


def test_follower_read_is_forwarded_to_the_leader() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    net.node(3).read_index(b"follower-read")
    net.stabilize()
    assert [(m.type, m.to) for m in net.delivered if m.context == b"follower-read"][:1] == [
        (MT.READ_INDEX, 1)
    ]
    (rs,) = net.peers[3].read_states
    assert rs.context == b"follower-read"
    assert rs.index == net.node(1).log.committed
    assert net.node(3).log.applied >= rs.index  # serviceable locally


def test_deposed_leader_never_releases_a_stale_read() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.node(1).read_index(b"stale?")
    for _ in range(30):
        net.tick([2, 3])
        net.stabilize()
    new = next(i for i in (2, 3) if net.node(i).role is Role.LEADER)
    net.propose(new, b"newer-write")
    net.heal()
    net.tick_and_stabilize(3)
    assert net.node(1).role is Role.FOLLOWER
    assert net.peers[1].read_states == []


def test_read_without_known_leader_fails() -> None:
    net = Network([1, 2, 3])
    with pytest.raises(NotLeaderError):
        net.node(2).read_index(b"x")
    with pytest.raises(ValueError):
        net.node(2).read_index(b"")


def test_single_node_read_is_immediate_after_noop() -> None:
    net = Network([1])
    net.elect(1)
    net.node(1).read_index(b"solo")
    net.process_all_ready()
    assert net.peers[1].read_states == [ReadState(net.node(1).log.committed, b"solo")]

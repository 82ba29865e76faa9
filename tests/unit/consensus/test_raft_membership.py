"""Scenario tests: learners, promotion and removal through joint consensus."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.membership import (
    ConfChange,
    ConfChangeError,
    ConfChangeSingle,
    ConfChangeType,
    Membership,
)
from x0tta6bl4.consensus.core.messages import ConfState, EntryType, MessageType, Role
from x0tta6bl4.consensus.core.node import ProposalDroppedError
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType
T = ConfChangeType


def cc(*changes: tuple[ConfChangeType, int]) -> ConfChange:
    return ConfChange(tuple(ConfChangeSingle(t, n) for t, n in changes))


def conf_entries(net: Network, node_id: int) -> list[ConfChange]:
    return [
        ConfChange.decode(e.data)
        for e in net.peers[node_id].applied
        if e.type is EntryType.CONF_CHANGE
    ]


def test_membership_apply_rules() -> None:
    m = Membership.from_conf_state(ConfState(voters=frozenset({1, 2, 3})))
    learner = m.apply(cc((T.ADD_LEARNER, 4)))
    assert not learner.is_joint and learner.learners == {4}  # learners: no joint phase
    joint = learner.apply(cc((T.ADD_VOTER, 4), (T.REMOVE_NODE, 1)))
    assert joint.is_joint
    assert joint.voters.incoming.voters == {2, 3, 4}
    assert joint.voters.outgoing.voters == {1, 2, 3}
    with pytest.raises(ConfChangeError):
        joint.apply(cc((T.ADD_VOTER, 5)))
    final = joint.apply(ConfChange())
    assert final.conf_state() == ConfState(voters=frozenset({2, 3, 4}))
    demote = final.apply(cc((T.ADD_LEARNER, 2)))
    assert demote.learners_next == {2} and 2 in demote.voters.outgoing.voters
    assert demote.apply(ConfChange()).learners == {2}
    with pytest.raises(ConfChangeError):
        m.apply(cc((T.REMOVE_NODE, 1), (T.REMOVE_NODE, 2), (T.REMOVE_NODE, 3)))
    assert ConfChange.decode(joint_cc().encode()) == joint_cc()


def joint_cc() -> ConfChange:
    return cc((T.ADD_VOTER, 4), (T.REMOVE_NODE, 1))


def test_learner_receives_log_but_does_not_count_for_quorum() -> None:
    net = Network([1, 2, 3], learners=[4])
    net.elect(1)
    net.isolate(2)
    net.isolate(3)
    net.node(1).propose(b"x")
    net.stabilize()
    assert net.node(4).log.last_index() == net.node(1).log.last_index()  # replicated
    assert net.node(1).log.committed == 2  # but 1 + learner is not a quorum
    net.heal()
    net.tick_and_stabilize(1)
    assert net.peers[4].applied_data() == [b"x"]


def test_learner_vote_is_not_counted() -> None:
    net = Network([1, 2, 3], learners=[4])
    net.isolate(2)
    net.isolate(3)
    net.node(1).campaign()
    net.stabilize()
    assert net.node(1).role is not Role.LEADER


def test_add_learner_then_promote_with_joint_consensus() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"before")
    net.add_peer(4)
    net.node(1).propose_conf_change(cc((T.ADD_LEARNER, 4)))
    net.tick_and_stabilize(2)
    assert net.node(4).membership.learners == {4}
    assert net.peers[4].applied_data() == [b"before"]  # caught up (bootstrap snapshot + log)
    net.node(1).propose_conf_change(cc((T.ADD_VOTER, 4)))
    net.tick_and_stabilize(2)
    # Both the joint entry and the automatic leave-joint entry were applied everywhere.
    for i in (1, 2, 3, 4):
        assert net.node(i).conf_state.voters == {1, 2, 3, 4}
        assert not net.node(i).membership.is_joint
        assert conf_entries(net, i)[-2:] == [cc((T.ADD_VOTER, 4)), ConfChange()]
    # Node 4 now counts: with 1 and 2 down, {3, 4} is not a majority of 4 ...
    net.isolate(1)
    net.isolate(2)
    net.tick_and_stabilize(50)
    assert not [i for i in (3, 4) if net.node(i).role is Role.LEADER]
    # ... but with 2 back, {2, 3, 4} is.
    net.heal()
    net.isolate(1)
    net.tick_and_stabilize(50)
    assert [i for i in (2, 3, 4) if net.node(i).role is Role.LEADER]


def test_joint_state_requires_both_majorities() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    # Replace 2 and 3 by 4 and 5 in one change: C_old={1,2,3}, C_new={1,4,5}.
    for i in (4, 5):
        net.add_peer(i)
    net.node(1).propose_conf_change(cc((T.ADD_LEARNER, 4), (T.ADD_LEARNER, 5)))
    net.tick_and_stabilize(2)
    # Hold back the leave-joint so the cluster stays joint; cut C_old's other members.
    net.node(1).propose_conf_change(
        cc((T.ADD_VOTER, 4), (T.ADD_VOTER, 5), (T.REMOVE_NODE, 2), (T.REMOVE_NODE, 3))
    )
    net.stabilize()
    leader = net.node(1)
    assert leader.membership.is_joint or leader.conf_state.voters == {1, 4, 5}
    if leader.membership.is_joint:
        net.isolate(2)
        net.isolate(3)
        net.cut -= {(1, 4), (4, 1), (1, 5), (5, 1)}
        committed = leader.log.committed
        with pytest.raises(ProposalDroppedError):
            leader.propose_conf_change(cc((T.ADD_LEARNER, 6)))
        leader.propose(b"needs-both")
        net.stabilize()
        assert leader.log.committed == committed  # C_new majority alone is not enough
        net.heal()
        net.tick_and_stabilize(2)
    net.tick_and_stabilize(2)
    assert net.node(1).conf_state.voters == {1, 4, 5}
    assert net.node(1).role is Role.LEADER


def test_removed_leader_steps_down_after_new_config_commits() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    net.node(1).propose_conf_change(cc((T.REMOVE_NODE, 1)))
    net.tick_and_stabilize(1)
    assert net.node(1).role is Role.FOLLOWER
    assert net.node(1).conf_state.voters == {2, 3}
    net.tick_and_stabilize(30)
    new = [i for i in (2, 3) if net.node(i).role is Role.LEADER]
    assert len(new) == 1
    assert any(m.type is MT.TIMEOUT_NOW and m.frm == 1 for m in net.delivered)
    net.propose(new[0], b"without-1")
    assert b"without-1" in net.peers[5 - new[0]].applied_data()
    # The removed node never campaigns again.
    net.tick([1], n=100)
    net.stabilize()
    assert net.node(1).role is Role.FOLLOWER


def test_one_conf_change_at_a_time() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.add_peer(4)
    net.node(1).propose_conf_change(cc((T.ADD_LEARNER, 4)))
    with pytest.raises(ProposalDroppedError):
        net.node(1).propose_conf_change(cc((T.ADD_LEARNER, 5)))
    net.stabilize()
    with pytest.raises(ConfChangeError):
        net.node(1).propose_conf_change(ConfChange())  # leaving joint is automatic

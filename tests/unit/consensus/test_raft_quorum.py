"""Quorum arithmetic: majority and joint configurations."""

from __future__ import annotations

from x0tta6bl4.consensus.core.quorum import (
    INFINITE_INDEX,
    JointConfig,
    MajorityConfig,
    VoteResult,
)


def maj(*ids: int) -> MajorityConfig:
    return MajorityConfig(frozenset(ids))


def test_majority_committed_index_is_the_quorum_th_highest_match() -> None:
    c = maj(1, 2, 3)
    assert c.committed_index({1: 5, 2: 3, 3: 9}) == 5
    assert c.committed_index({1: 5}) == 0  # missing voters count as 0
    assert maj(1, 2, 3, 4).committed_index({1: 4, 2: 4, 3: 2, 4: 9}) == 4
    assert maj(1, 2, 3, 4, 5).committed_index({1: 1, 2: 2, 3: 3, 4: 4, 5: 5}) == 3


def test_empty_majority_never_constrains() -> None:
    assert maj().committed_index({1: 3}) == INFINITE_INDEX
    assert maj().vote_result({}) is VoteResult.WON


def test_majority_vote_result() -> None:
    c = maj(1, 2, 3)
    assert c.vote_result({1: True}) is VoteResult.PENDING
    assert c.vote_result({1: True, 2: True}) is VoteResult.WON
    assert c.vote_result({1: True, 2: False}) is VoteResult.PENDING
    assert c.vote_result({1: False, 2: False}) is VoteResult.LOST
    # votes from non-members do not count
    assert c.vote_result({1: True, 7: True, 8: True}) is VoteResult.PENDING


def test_joint_commit_needs_both_majorities() -> None:
    j = JointConfig(maj(1, 2, 3), maj(3, 4, 5))
    acked = {1: 10, 2: 10, 3: 4, 4: 2, 5: 1}
    assert j.incoming.committed_index(acked) == 10
    assert j.outgoing.committed_index(acked) == 2
    assert j.committed_index(acked) == 2


def test_joint_vote_needs_both_majorities() -> None:
    j = JointConfig(maj(1, 2, 3), maj(3, 4, 5))
    assert j.vote_result({1: True, 2: True}) is VoteResult.PENDING
    assert j.vote_result({1: True, 2: True, 4: True, 5: True}) is VoteResult.WON
    assert j.vote_result({1: True, 2: True, 4: False, 5: False}) is VoteResult.LOST
    assert j.is_joint and not JointConfig(maj(1)).is_joint


def test_joint_with_empty_outgoing_is_the_incoming_majority() -> None:
    j = JointConfig(maj(1, 2, 3))
    assert j.committed_index({1: 7, 2: 6, 3: 1}) == 6
    assert j.vote_result({2: True, 3: True}) is VoteResult.WON

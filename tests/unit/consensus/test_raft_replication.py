"""Scenario tests: pipelined replication, flow control, batching, fast backtracking,
slow followers, and the commit rule for entries of earlier terms."""

from __future__ import annotations

from x0tta6bl4.consensus.core.config import RaftConfig
from x0tta6bl4.consensus.core.messages import Entry, Message, MessageType, Role
from x0tta6bl4.consensus.core.progress import ProgressState
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType


def apps_to(msgs: list[Message], to: int) -> list[Message]:
    return [m for m in msgs if m.type is MT.APP and m.to == to and m.entries]


def test_many_proposals_batched_into_one_persist_and_one_message() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    before = net.peers[2].persists
    for i in range(50):
        net.node(1).propose(f"p{i}".encode())
    rd = net.node(1).ready()
    assert len(rd.entries) == 50
    assert rd.must_sync
    # The leader's appends go out in parallel with its own persist: one message per follower.
    assert len(apps_to(list(rd.messages), 2)) == 1
    assert len(apps_to(list(rd.messages), 3)) == 1
    assert not rd.messages_after_persist
    net.queue.extend(rd.messages)
    net.peers[1].store.append(rd.entries)
    net.node(1).advance(rd)
    net.stabilize()
    assert net.peers[2].persists == before + 1  # the follower also persisted them at once
    assert net.peers[2].applied_data() == [f"p{i}".encode() for i in range(50)]


def test_leader_does_not_count_its_own_unpersisted_entries() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.node(1).propose(b"x")
    rd = net.node(1).ready()
    net.queue.extend(rd.messages)
    # Followers 2 acks; the leader has not persisted yet. 1 of 3 durable copies (the
    # follower's) plus an unpersisted leader copy is not a quorum.
    net.take(lambda m: m.to == 3)
    net.deliver_one(net.queue.pop(0))
    net.process_ready(2)
    for m in net.take(lambda m: m.to == 1):
        net.node(1).step(m)
    assert net.node(1).log.committed == 2
    net.peers[1].store.append(rd.entries)
    net.node(1).advance(rd)
    assert net.node(1).log.committed == 3


def test_vote_and_acks_wait_for_persist() -> None:
    net = Network([1, 2, 3])
    net.node(1).campaign()
    net.process_ready(1)
    pre = net.take(lambda m: m.to == 2)
    for m in pre:
        net.node(2).step(m)
    net.process_ready(2)
    for m in net.take(lambda m: m.to == 1):
        net.node(1).step(m)
    rd = net.node(1).ready()  # candidate: term and self-vote changed
    assert rd.hard_state is not None and rd.hard_state.vote == 1
    assert not rd.messages
    assert {m.type for m in rd.messages_after_persist} == {MT.VOTE}
    net.node(1).advance(rd)


def test_pipelining_window_bounded_by_message_count() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, max_inflight_msgs=3))
    net.elect(1)
    held: list[Message] = []
    for i in range(6):
        net.node(1).propose(f"p{i}".encode())
        net.stabilize(drop=lambda m: m.to == 2 and (held.append(m) or True))  # 2 is slow
    sent = [m for m in held if m.type is MT.APP and m.entries]
    assert len(sent) == 3  # window full: further entries wait for acks
    assert net.node(1).progress[2].state is ProgressState.REPLICATE
    assert net.node(1).progress[2].is_paused()
    assert net.node(1).log.committed == 8  # the fast follower keeps commits going
    for m in sent:
        net.deliver_one(m)
    net.stabilize()
    assert net.peers[2].applied_data() == [f"p{i}".encode() for i in range(6)]


def test_pipelining_window_bounded_by_bytes() -> None:
    net = Network(
        [1, 2, 3],
        config=lambda i: RaftConfig(node_id=i, max_inflight_msgs=100, max_inflight_bytes=300),
    )
    net.elect(1)
    held: list[Message] = []
    for _ in range(6):
        net.node(1).propose(b"x" * 100)
        net.stabilize(drop=lambda m: m.to == 2 and (held.append(m) or True))
    sent = [m for m in held if m.type is MT.APP and m.entries]
    assert len(sent) == 3  # 3 x 116 bytes reach the 300-byte budget
    assert net.node(1).progress[2].inflights.bytes >= 300


def test_max_size_per_msg_splits_large_backlogs() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, max_size_per_msg=100))
    net.elect(1)
    net.isolate(3)
    for _ in range(10):
        net.propose(1, b"y" * 50)
    net.heal()
    net.tick_and_stabilize(2)
    apps = [m for m in net.delivered if m.type is MT.APP and m.to == 3 and m.entries]
    # Two 66-byte entries exceed the 100-byte budget: the backlog goes one entry per APP.
    assert len(apps) >= 10
    assert all(len(m.entries) == 1 for m in apps)
    assert len(net.peers[3].applied_data()) == 10


def test_slow_follower_does_not_block_commits() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(20):
        net.propose(1, f"v{i}".encode())
    assert len(net.peers[2].applied_data()) == 20
    assert net.peers[3].applied_data() == []
    net.heal()
    net.tick_and_stabilize(3)
    assert len(net.peers[3].applied_data()) == 20


NO_LEASE = {"check_quorum": False}


def test_fast_backtracking_skips_a_diverged_term_in_one_round_trip() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, **NO_LEASE))
    net.elect(1)
    # Leader 1 writes 30 entries in term 2 that reach nobody, then loses leadership.
    net.isolate(1)
    for i in range(30):
        net.node(1).propose(f"lost{i}".encode())
    net.process_all_ready()
    net.queue.clear()
    # Leader 2 (term 3) writes 30 entries of its own at the same indexes, restarts and is
    # elected again (term 4): it starts probing node 1 at its own last index.
    net.elect(2)
    for i in range(30):
        net.propose(2, f"kept{i}".encode())
    net.restart(2)
    net.elect(2)
    net.heal()
    before = len(net.delivered)
    net.tick_and_stabilize(3)
    rejects = [
        m for m in net.delivered[before:] if m.type is MT.APP_RESP and m.reject and m.frm == 1
    ]
    # One rejection carries (index, term) of node 1's last term-2 entry; the leader jumps
    # straight to the last index where both logs can agree. Naive backtracking: ~30 probes.
    assert len(rejects) == 1
    assert rejects[0].log_term == 2
    assert net.peers[1].applied_data()[-30:] == [f"kept{i}".encode() for i in range(30)]
    assert all(not e.data.startswith(b"lost") for e in net.node(1).log.all_entries())


def test_entries_of_an_earlier_term_are_not_committed_by_counting() -> None:
    """Raft Figure 8: a majority of replicas of an old-term entry does not commit it."""
    net = Network(
        [1, 2, 3, 4, 5],
        config=lambda i: RaftConfig(
            node_id=i, check_quorum=False, pre_vote=False, max_size_per_msg=1
        ),
    )
    net.elect(1)  # term 2; no-op at index 2 committed everywhere
    # Leader 1 replicates entry 3 (term 2) to node 2 only.
    net.cut |= {(1, 3), (1, 4), (1, 5)}
    net.node(1).propose(b"old")
    net.stabilize()
    assert net.node(2).log.term(3) == 2 and net.node(1).log.committed == 2
    # Node 5 becomes leader of term 3 with 3 and 4; its no-op reaches nobody.
    net.heal()
    net.isolate(1)
    net.isolate(2)
    net.node(5).campaign()
    net.stabilize(drop=lambda m: m.frm == 5 and m.type is MT.APP)
    assert net.node(5).role is Role.LEADER and net.node(5).term == 3
    # Node 1 leads term 4 (votes of 2, 3, 4) and copies entry 3 to a majority, but the
    # messages carrying its term-4 no-op are lost for now.
    net.heal()
    net.isolate(5)
    net.restart(1)  # node 1 crashed meanwhile (it would otherwise still lead term 2)
    net.node(1).campaign()  # term 3: 3 and 4 already voted for 5, so this one is lost
    net.stabilize()
    net.node(1).campaign()  # term 4

    def term4_entry_to_node_with_entry3(m: Message) -> bool:
        # Probes that nodes 3 and 4 will reject still go through, so that the leader
        # backtracks and re-sends entry 3 alone (max_size_per_msg=1).
        has3 = net.node(m.to).log.last_index() >= 3
        return m.type is MT.APP and has3 and any(e.term == 4 for e in m.entries)

    net.stabilize(drop=term4_entry_to_node_with_entry3)
    leader = net.node(1)
    assert leader.role is Role.LEADER and leader.term == 4
    assert [net.node(i).log.term(3) for i in (1, 2, 3, 4)] == [2, 2, 2, 2]
    assert leader.log.committed == 2  # counted on 4 of 5, but from an earlier term
    # Once the term-4 entry is replicated, both commit together.
    net.tick_and_stabilize(2)
    assert leader.log.committed == 4
    assert net.peers[3].applied_data() == [b"old"]


def test_stale_leader_steps_down_on_higher_term_response() -> None:
    net = Network([1, 2, 3], config=lambda i: RaftConfig(node_id=i, **NO_LEASE))
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    net.heal()
    net.node(1).propose(b"stale")
    net.stabilize()
    assert net.node(1).role is Role.FOLLOWER
    net.tick_and_stabilize(2)  # the new leader's heartbeat, then its log overwrites ours
    assert net.node(1).term == net.node(2).term
    assert all(e.data != b"stale" for e in net.node(1).log.all_entries())


def test_entries_have_consecutive_indexes() -> None:
    net = Network([1])
    net.elect(1)
    idx = [net.propose(1, f"{i}".encode()) for i in range(5)]
    assert idx == list(range(idx[0], idx[0] + 5))
    assert isinstance(net.node(1).log.all_entries()[0], Entry)

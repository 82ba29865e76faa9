"""Scenario tests: compaction, InstallSnapshot to a lagging follower, snapshot restore."""

from __future__ import annotations

from x0tta6bl4.consensus.core.messages import MessageType
from x0tta6bl4.consensus.core.progress import ProgressState
from x0tta6bl4.consensus.core.rafttest import Network

MT = MessageType


def snapshot_and_compact(net: Network, node_id: int) -> int:
    peer = net.peers[node_id]
    applied = peer.node.log.applied
    data = b"|".join(peer.applied_data())
    peer.store.create_snapshot(applied, peer.node.conf_state, data)
    peer.store.compact(applied)
    return applied


def test_leader_sends_snapshot_when_follower_needs_compacted_entries() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, f"v{i}".encode())
    snap_index = snapshot_and_compact(net, 1)
    assert net.node(1).log.first_index() == snap_index + 1
    net.heal()
    net.tick_and_stabilize(1)  # heartbeat -> probe -> entries compacted -> snapshot
    snaps = [m for m in net.delivered if m.type is MT.SNAP and m.to == 3]
    assert len(snaps) == 1
    snap = snaps[0].snapshot
    assert snap is not None
    assert snap.index == snap_index
    assert snap.metadata.conf_state.voters == {1, 2, 3}
    assert snap.data == b"|".join(f"v{i}".encode() for i in range(10))
    # The follower persisted it, acknowledged it and replicates normally afterwards.
    assert net.peers[3].store.snapshot().index == snap_index
    assert net.node(3).log.committed >= snap_index
    assert net.node(1).progress[3].state is ProgressState.REPLICATE
    net.propose(1, b"after-snapshot")
    assert net.peers[3].applied_data() == [b"after-snapshot"]  # earlier ones came as the image


def test_snapshot_is_not_resent_while_pending_and_resumes_on_failure() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, f"v{i}".encode())
    snapshot_and_compact(net, 1)
    net.heal()
    dropped: list[object] = []
    net.tick_and_stabilize(3, drop=lambda m: m.type is MT.SNAP and (dropped.append(m) or True))
    assert len(dropped) == 1  # paused in SNAPSHOT state: no flood of snapshots
    assert net.node(1).progress[3].state is ProgressState.SNAPSHOT
    net.node(1).report_snapshot(3, success=False)
    assert net.node(1).progress[3].state is ProgressState.PROBE
    net.tick_and_stabilize(2)
    assert net.peers[3].store.snapshot().index > 1
    assert net.node(3).log.committed == net.node(1).log.committed


def test_stale_snapshot_is_ignored() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    for i in range(3):
        net.propose(1, f"v{i}".encode())
    snapshot_and_compact(net, 1)
    old = net.peers[1].store.snapshot()
    committed = net.node(2).log.committed
    from x0tta6bl4.consensus.core.messages import Message

    net.node(2).step(Message(MT.SNAP, 2, 1, net.node(1).term, snapshot=old))
    net.stabilize()
    assert net.node(2).log.committed == committed
    assert net.peers[2].store.snapshot().index == 1  # nothing installed


def test_restart_from_snapshot_and_log() -> None:
    net = Network([1, 2, 3])
    net.elect(1)
    for i in range(4):
        net.propose(1, f"v{i}".encode())
    snap_index = snapshot_and_compact(net, 2)
    net.propose(1, b"v4")
    net.restart(2)
    node = net.node(2)
    assert node.log.applied == snap_index
    assert node.log.committed == net.node(1).log.committed
    net.tick_and_stabilize(2)
    # Only the entries after the snapshot are re-applied.
    assert net.peers[2].applied_data() == [b"v4"]

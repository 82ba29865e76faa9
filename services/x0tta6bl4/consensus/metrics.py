"""Prometheus metrics of the consensus service (``x0tta6bl4_raft_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_FSYNC_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)

TERM = Gauge("x0tta6bl4_raft_term", "Current Raft term of this member.")
IS_LEADER = Gauge("x0tta6bl4_raft_is_leader", "1 when this member is the leader.")
HAS_LEADER = Gauge("x0tta6bl4_raft_has_leader", "1 when this member knows a leader.")
COMMIT_INDEX = Gauge("x0tta6bl4_raft_commit_index", "Highest log index known to be committed.")
APPLIED_INDEX = Gauge("x0tta6bl4_raft_applied_index", "Highest log index applied to the store.")
ELECTION_TIMEOUT_MS = Gauge(
    "x0tta6bl4_raft_election_timeout_ms",
    "Base election timeout of this member (drawn from [t, 2t)); raised by X0_RAFT_LINK_RTT_MS.",
)
HEARTBEAT_INTERVAL_MS = Gauge(
    "x0tta6bl4_raft_heartbeat_interval_ms", "Heartbeat interval of this member (as a leader)."
)
LEADER_CHANGES = Counter(
    "x0tta6bl4_raft_leader_changes", "Times this member saw the leader change."
)
PROPOSALS_FAILED = Counter(
    "x0tta6bl4_raft_proposals_failed",
    "Proposals that failed (no leader, leadership lost, storage error), by reason.",
    ["reason"],
)
PROPOSALS_COMMITTED = Counter(
    "x0tta6bl4_raft_proposals_applied", "Proposals of this member committed and applied."
)
FSYNC_DURATION = Histogram(
    "x0tta6bl4_raft_fsync_duration_seconds",
    "Time to write and fsync one Ready (group commit) to the write-ahead log.",
    buckets=_FSYNC_BUCKETS,
)
ENTRIES_PER_FSYNC = Histogram(
    "x0tta6bl4_raft_entries_per_fsync",
    "Log entries made durable by one fsync.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
SNAPSHOT_BYTES = Gauge(
    "x0tta6bl4_raft_snapshot_bytes", "Size of the latest snapshot file (compressed)."
)
SNAPSHOT_RAW_BYTES = Gauge(
    "x0tta6bl4_raft_snapshot_raw_bytes", "Size of the latest snapshot image (uncompressed)."
)
SNAPSHOT_RATIO = Gauge(
    "x0tta6bl4_raft_snapshot_compression_ratio",
    "Raw over compressed size of the latest snapshot.",
)
SNAPSHOTS = Counter("x0tta6bl4_raft_snapshots", "Snapshots taken, sent and installed.", ["kind"])
FOLLOWER_LAG = Gauge(
    "x0tta6bl4_raft_follower_lag_entries",
    "Entries a follower is behind the leader's last index (reported by the leader).",
    ["peer"],
)
PEER_RTT = Gauge(
    "x0tta6bl4_raft_peer_rtt_seconds",
    "Round trip to a member, measured from heartbeats (leader only; moving average).",
    ["peer"],
)
SEND_FAILURES = Counter(
    "x0tta6bl4_raft_send_failures",
    "Batches of Raft messages that could not be delivered.",
    ["peer"],
)
STORAGE_FAILURES = Counter(
    "x0tta6bl4_raft_storage_failures", "Write-ahead log failures (e.g. disk full).", ["kind"]
)

KV_DENIED = Counter(
    "x0tta6bl4_kv_permission_denied",
    "KV requests refused by the key-range permissions, by caller and missing permission.",
    ["caller", "access"],
)
KV_PERMISSION_GRANTS = Gauge(
    "x0tta6bl4_kv_permission_grants", "Grants in the loaded key-range permission set."
)
KV_PERMISSION_LOADS = Counter(
    "x0tta6bl4_kv_permission_loads",
    "Loads of the key-range permission set from the OPA sidecar, by outcome.",
    ["outcome"],
)

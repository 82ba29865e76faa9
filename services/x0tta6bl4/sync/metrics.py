"""Prometheus metrics of the sync service (``x0tta6bl4_sync_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELTA_BYTES_SENT = Counter(
    "x0tta6bl4_sync_delta_bytes_sent", "Encoded delta-event bytes sent to peers.", ["peer"]
)
DELTA_BYTES_RECEIVED = Counter(
    "x0tta6bl4_sync_delta_bytes_received", "Encoded delta-event bytes received.", ["peer"]
)
SNAPSHOT_BYTES_RECEIVED = Counter(
    "x0tta6bl4_sync_snapshot_bytes_received", "Full-state transfer bytes received.", ["peer"]
)
SNAPSHOTS_RECEIVED = Counter(
    "x0tta6bl4_sync_snapshots_received", "Full-state transfers applied.", ["peer"]
)
MERGE_DURATION = Histogram(
    "x0tta6bl4_sync_merge_duration_seconds",
    "Time to merge one received batch or snapshot into the replica.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
)
UNACKED_DELTAS = Gauge(
    "x0tta6bl4_sync_unacked_deltas", "Logged deltas a peer has not acknowledged.", ["peer"]
)
GC_COLLECTED = Counter(
    "x0tta6bl4_sync_gc_collected",
    "Remove-wins metadata dots collected after becoming strongly stable.",
)
GC_DROPPED_EVENTS = Counter(
    "x0tta6bl4_sync_gc_dropped_events", "Delta-log entries dropped once every member had them."
)
REPLICAS_PRUNED = Counter(
    "x0tta6bl4_sync_replicas_pruned",
    "Departed replicas removed from every version vector once their events were stable.",
)
SECONDS_SINCE_EXCHANGE = Gauge(
    "x0tta6bl4_sync_seconds_since_last_exchange",
    "Seconds since the last successful exchange with a peer (-1 before the first).",
    ["peer"],
)
ANTI_ENTROPY_ROUNDS = Counter(
    "x0tta6bl4_sync_anti_entropy_rounds", "Digest exchanges completed, by peer.", ["peer"]
)
EXCHANGE_FAILURES = Counter(
    "x0tta6bl4_sync_exchange_failures",
    "Failed replication calls, by peer and call.",
    ["peer", "call"],
)
LOG_FSYNC_DURATION = Histogram(
    "x0tta6bl4_sync_log_fsync_duration_seconds",
    "Time to append and fsync events to the durable log.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)

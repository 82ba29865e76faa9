"""Per-node Raft configuration.

Timers are counted in ticks, not seconds: the adapter decides how long a tick is and may set
``election_ticks``/``heartbeat_ticks`` per node from the measured round-trip times of its
links (a node in a far datacenter gets a longer election timeout, so it does not start
needless elections across a slow WAN link).
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import NONE


class ConfigError(ValueError):
    """An invalid Raft configuration value; the message names the field."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    node_id: int
    election_ticks: int = 10
    """Base election timeout; the effective timeout is drawn from [e, 2e) after each reset."""
    heartbeat_ticks: int = 1
    max_size_per_msg: int = 1 << 20
    """Byte budget of the entries carried by one APP message (at least one entry is sent)."""
    max_inflight_msgs: int = 256
    """Pipelining window per follower, in APP messages."""
    max_inflight_bytes: int = 0
    """Pipelining window per follower, in entry bytes (0 = unlimited)."""
    pre_vote: bool = True
    check_quorum: bool = True
    preferred_leader: int = NONE
    """If set, a leader transfers leadership to this voter whenever it is caught up."""
    applied: int = 0
    """Index the application's state machine has already applied (on restart)."""

    def __post_init__(self) -> None:
        if self.node_id <= 0:
            raise ConfigError(f"node_id must be positive, got {self.node_id}")
        if self.heartbeat_ticks <= 0:
            raise ConfigError(f"heartbeat_ticks must be positive, got {self.heartbeat_ticks}")
        if self.election_ticks <= self.heartbeat_ticks:
            raise ConfigError(
                f"election_ticks ({self.election_ticks}) must exceed heartbeat_ticks "
                f"({self.heartbeat_ticks})"
            )
        if self.max_inflight_msgs <= 0:
            raise ConfigError(f"max_inflight_msgs must be positive, got {self.max_inflight_msgs}")
        if self.max_inflight_bytes < 0:
            raise ConfigError(f"max_inflight_bytes must be >= 0, got {self.max_inflight_bytes}")
        if self.max_size_per_msg <= 0:
            raise ConfigError(f"max_size_per_msg must be positive, got {self.max_size_per_msg}")
        if self.preferred_leader < 0:
            raise ConfigError(f"preferred_leader must be >= 0, got {self.preferred_leader}")
        if self.applied < 0:
            raise ConfigError(f"applied must be >= 0, got {self.applied}")

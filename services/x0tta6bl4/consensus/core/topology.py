"""Multi-datacenter topology of a Raft cluster (pure): zones, quorum placement, timers, leader.

- ``check_placement`` warns when one zone holds a quorum of the voters (losing that zone loses
  nothing, but that zone alone decides — and losing it stops the cluster), or when a zone
  holding voters can take the cluster down with it (its loss leaves no quorum).
- ``timers_for_rtt`` derives a node's heartbeat and election timers from the round-trip times
  of its links: the heartbeat must be well above the RTT to its farthest voter, and the
  election timeout an order of magnitude above the heartbeat (Raft §9.3: broadcast time ≪
  election timeout ≪ MTBF). Defaults inside one DC are the suite's 100 ms / 0.5-1 s.
- ``preferred_leader`` picks the voter a leader should hand leadership to: the lowest-id voter
  in the preferred zone that is caught up (the Raft core transfers to it with TimeoutNow once
  it is, so leadership comes back to the preferred DC after a failover).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from .messages import NONE


@dataclass(frozen=True, slots=True)
class Member:
    node_id: int
    zone: str
    voter: bool = True


@dataclass(frozen=True, slots=True)
class Timers:
    tick_ms: int
    heartbeat_ticks: int
    election_ticks: int

    @property
    def heartbeat_ms(self) -> int:
        return self.heartbeat_ticks * self.tick_ms

    @property
    def election_ms(self) -> int:
        return self.election_ticks * self.tick_ms


def quorum(voters: int) -> int:
    return voters // 2 + 1


def check_placement(members: list[Member]) -> list[str]:
    """Human-readable warnings about how the voters are spread over zones (empty if fine)."""
    voters = [m for m in members if m.voter]
    if not voters:
        return ["no voters"]
    per_zone = Counter(m.zone for m in voters)
    needed = quorum(len(voters))
    warnings = []
    for zone, count in sorted(per_zone.items()):
        if count >= needed:
            warnings.append(
                f"zone {zone!r} holds {count} of {len(voters)} voters, a quorum on its own: "
                "losing that zone stops the cluster, and other zones are never needed to commit"
            )
        elif len(voters) - count < needed:
            warnings.append(
                f"losing zone {zone!r} ({count} voters) leaves {len(voters) - count} of "
                f"{len(voters)}, less than the quorum of {needed}"
            )
    if len(per_zone) == 1 and len(voters) > 1:
        warnings.append("all voters are in one zone: the cluster does not survive losing it")
    return warnings


def timers_for_rtt(
    rtt_ms: Mapping[int, float],
    *,
    tick_ms: int = 10,
    min_heartbeat_ms: int = 100,
    election_factor: int = 5,
) -> Timers:
    """Timers of one node given the RTT (ms) to each voter it talks to.

    heartbeat = max(min_heartbeat, 2 x worst RTT); the election timeout base is
    ``election_factor`` heartbeats (drawn from [e, 2e) by the core), so with the default the
    suite's LAN timing is 100 ms heartbeat and 0.5-1 s election.
    """
    if tick_ms <= 0:
        raise ValueError(f"tick_ms must be positive, got {tick_ms}")
    if any(r < 0 or math.isnan(r) for r in rtt_ms.values()):
        raise ValueError(f"round-trip times must be >= 0, got {dict(rtt_ms)}")
    worst = max(rtt_ms.values(), default=0.0)
    heartbeat_ms = max(float(min_heartbeat_ms), 2.0 * worst)
    heartbeat_ticks = max(1, math.ceil(heartbeat_ms / tick_ms))
    election_ticks = max(heartbeat_ticks + 1, election_factor * heartbeat_ticks)
    return Timers(tick_ms, heartbeat_ticks, election_ticks)


def preferred_leader(
    members: list[Member],
    preferred_zone: str,
    match_index: Mapping[int, int],
    last_index: int,
    max_lag: int = 0,
) -> int:
    """The voter in ``preferred_zone`` to transfer leadership to, or NONE.

    Only a voter within ``max_lag`` entries of ``last_index`` qualifies (a lagging one would
    stall writes while it catches up); ties go to the lowest node id, so every leader agrees.
    """
    candidates = sorted(
        m.node_id
        for m in members
        if m.voter
        and m.zone == preferred_zone
        and last_index - match_index.get(m.node_id, 0) <= max_lag
    )
    return candidates[0] if candidates else NONE

"""Hybrid logical clock as a pure value.

A timestamp is ``(wall_ms, logical, replica)`` ordered lexicographically, so two replicas never
produce equal timestamps and the replica id breaks ties deterministically. The physical time is
always an argument: the core never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidOperation

MAX_LOGICAL = (1 << 32) - 1
_new, _set = object.__new__, object.__setattr__


@dataclass(frozen=True, order=True, slots=True)
class HLC:
    """A hybrid-logical-clock timestamp, and the clock state of the replica that owns it."""

    wall_ms: int
    logical: int
    replica: str

    def __post_init__(self) -> None:
        if self.wall_ms < 0:
            raise InvalidOperation("hlc.wall_ms", "must be >= 0")
        if not 0 <= self.logical <= MAX_LOGICAL:
            raise InvalidOperation("hlc.logical", f"must be in [0, {MAX_LOGICAL}]")
        if not self.replica:
            raise InvalidOperation("hlc.replica", "must be a non-empty replica id")

    @staticmethod
    def zero(replica: str) -> HLC:
        return HLC(0, 0, replica)

    def now(self, physical_ms: int) -> HLC:
        """The next local timestamp: strictly greater than ``self``, close to ``physical_ms``."""
        if physical_ms > self.wall_ms:
            return self._bump(physical_ms, 0)
        return self._bump(self.wall_ms, self.logical + 1)

    def receive(self, remote: HLC, physical_ms: int, max_drift_ms: int | None = None) -> HLC:
        """Advance past a timestamp seen from another replica.

        With ``max_drift_ms`` set, a remote wall clock further than that ahead of
        ``physical_ms`` is rejected instead of dragging this clock into the future.
        """
        if max_drift_ms is not None and remote.wall_ms - physical_ms > max_drift_ms:
            raise InvalidOperation(
                "hlc.wall_ms",
                f"remote clock {remote.wall_ms} is more than {max_drift_ms} ms ahead of "
                f"local physical time {physical_ms}",
            )
        wall = max(self.wall_ms, remote.wall_ms, physical_ms)
        if wall == self.wall_ms and wall == remote.wall_ms:
            logical = max(self.logical, remote.logical) + 1
        elif wall == self.wall_ms:
            logical = self.logical + 1
        elif wall == remote.wall_ms:
            logical = remote.logical + 1
        else:
            logical = 0
        return self._bump(wall, logical)

    def _bump(self, wall: int, logical: int) -> HLC:
        if logical > MAX_LOGICAL:  # 2^32 events in one millisecond: move the wall part on
            wall, logical = wall + 1, 0
        # Valid by construction (both parts only grow from a valid clock): no re-check.
        h = _new(HLC)
        _set(h, "wall_ms", wall)
        _set(h, "logical", logical)
        _set(h, "replica", self.replica)
        return h

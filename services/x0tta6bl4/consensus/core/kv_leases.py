"""Leases: the replicated lease table, and a pure leader-side expiry tracker.

The state machine never reads a clock. It knows each lease's granted TTL, the keys bound to
it and, optionally, the remaining time the leader last checkpointed. The leader decides when a
lease runs out with :class:`LeaseDeadlines` (``now`` is passed in) and proposes a
``LeaseExpire`` command; every replica then deletes the lease and its keys at the same log
position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .kv_codec import Reader, Writer
from .kv_errors import DecodeError


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """A lease as seen from outside: id, granted ``ttl`` (s), checkpointed remaining (ms), keys."""

    lease_id: int
    ttl: int
    remaining_ms: int | None
    keys: tuple[bytes, ...]


@dataclass(slots=True)
class _Lease:
    ttl: int
    remaining_ms: int | None = None
    keys: set[bytes] = field(default_factory=set)


MAX_LEASE_ID = (1 << 63) - 1
"""The largest lease id: ids travel in the API's int64 fields."""


class LeaseTable:
    """Replicated lease state. Ids chosen by the state machine are deterministic.

    The counter moves past every granted id; once it passes :data:`MAX_LEASE_ID` (a caller
    chose that id, or a snapshot of an older release saved such a counter), the next chosen id
    is the lowest free one from 1, so an id the API cannot carry is never chosen.
    """

    def __init__(self) -> None:
        self._leases: dict[int, _Lease] = {}
        self._next_id = 1

    def __contains__(self, lease_id: int) -> bool:
        return lease_id in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    def choose_id(self) -> int:
        """The lowest unused id at or above the internal counter, wrapping to 1 past
        :data:`MAX_LEASE_ID` (there are never that many leases, so one is free)."""
        lease_id = self._next_id if 1 <= self._next_id <= MAX_LEASE_ID else 1
        while lease_id in self._leases:
            lease_id = lease_id + 1 if lease_id < MAX_LEASE_ID else 1
        return lease_id

    def grant(self, lease_id: int, ttl: int) -> None:
        """Create a lease (the caller checked the id is free)."""
        self._leases[lease_id] = _Lease(ttl)
        if lease_id >= self._next_id or self._next_id > MAX_LEASE_ID:
            self._next_id = lease_id + 1

    def ttl(self, lease_id: int) -> int:
        """The granted TTL of a lease."""
        return self._leases[lease_id].ttl

    def renew(self, lease_id: int) -> None:
        """Forget any checkpoint: the lease has its full TTL again."""
        self._leases[lease_id].remaining_ms = None

    def checkpoint(self, lease_id: int, remaining_ms: int) -> None:
        """Record the leader's remaining time of a lease, if it still exists."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.remaining_ms = remaining_ms

    def remove(self, lease_id: int) -> list[bytes]:
        """Drop the lease; returns its keys, sorted."""
        return sorted(self._leases.pop(lease_id).keys)

    def attach(self, lease_id: int, key: bytes) -> None:
        """Bind ``key`` to a lease (0 = no lease)."""
        if lease_id:
            self._leases[lease_id].keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        """Unbind ``key`` from a lease if both exist."""
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)

    def info(self, lease_id: int) -> LeaseInfo | None:
        """The lease as a value, or None."""
        lease = self._leases.get(lease_id)
        if lease is None:
            return None
        return LeaseInfo(lease_id, lease.ttl, lease.remaining_ms, tuple(sorted(lease.keys)))

    def all(self) -> list[LeaseInfo]:
        """Every lease, by id."""
        return [info for i in sorted(self._leases) if (info := self.info(i)) is not None]

    def encode_into(self, w: Writer) -> None:
        """Deterministic encoding: counter, then leases by id with sorted keys."""
        w.uint(self._next_id).uint(len(self._leases))
        for lease_id in sorted(self._leases):
            lease = self._leases[lease_id]
            w.uint(lease_id).uint(lease.ttl)
            w.boolean(lease.remaining_ms is not None).uint(lease.remaining_ms or 0)
            w.uint(len(lease.keys))
            for key in sorted(lease.keys):
                w.blob(key)

    @staticmethod
    def decode_from(r: Reader) -> LeaseTable:
        """Rebuild a table from :meth:`encode_into` output."""
        table = LeaseTable()
        table._next_id = r.uint("snapshot.lease_next_id")
        previous = 0
        for _ in range(r.count("snapshot.leases", 1 << 40)):
            lease_id = r.uint("snapshot.lease.id")
            if lease_id <= previous:
                raise DecodeError("snapshot.lease.id", "lease ids are not increasing")
            previous = lease_id
            ttl = r.uint("snapshot.lease.ttl")
            has_remaining = r.boolean("snapshot.lease.has_remaining")
            remaining = r.uint("snapshot.lease.remaining_ms")
            lease = _Lease(ttl, remaining if has_remaining else None)
            for _ in range(r.count("snapshot.lease.keys", 1 << 40)):
                lease.keys.add(r.blob("snapshot.lease.key"))
            table._leases[lease_id] = lease
        return table


class LeaseDeadlines:
    """Leader-side expiry clock for leases. Pure: every method takes ``now_ms``.

    ``now_ms`` must come from a monotonic clock of the leader. A new leader calls
    :meth:`start` with the replicated leases: each gets its checkpointed remaining time or its
    full TTL from that moment, so no lease expires early because leadership moved.
    """

    def __init__(self) -> None:
        self._deadline_ms: dict[int, int] = {}

    def start(self, leases: Iterable[LeaseInfo], now_ms: int) -> None:
        """Track every lease afresh (on becoming leader)."""
        self._deadline_ms = {
            info.lease_id: now_ms
            + (info.remaining_ms if info.remaining_ms is not None else info.ttl * 1000)
            for info in leases
        }

    def renew(self, lease_id: int, ttl: int, now_ms: int) -> None:
        """A grant or keep-alive was applied: the lease lives ``ttl`` seconds from now."""
        self._deadline_ms[lease_id] = now_ms + ttl * 1000

    def forget(self, lease_id: int) -> None:
        """The lease was revoked or expired."""
        self._deadline_ms.pop(lease_id, None)

    def remaining_ms(self, lease_id: int, now_ms: int) -> int | None:
        """Time left, never negative; None if not tracked."""
        deadline = self._deadline_ms.get(lease_id)
        return None if deadline is None else max(0, deadline - now_ms)

    def expired(self, now_ms: int) -> list[int]:
        """Ids whose deadline has passed, by id: propose ``LeaseExpire`` for each."""
        return sorted(i for i, d in self._deadline_ms.items() if d <= now_ms)

    def next_deadline_ms(self) -> int | None:
        """The earliest deadline, to schedule the next check."""
        return min(self._deadline_ms.values(), default=None)

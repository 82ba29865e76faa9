"""The stable-storage contract of the Raft core, and an in-memory implementation.

The core only *reads* stable storage (:class:`LogReader`). The application writes to it while
handling a :class:`~.node.Ready` (append entries, save hard state, install a snapshot) and
when it compacts the log after taking a snapshot (:class:`LogStore`). A durable WAL adapter
implements the same protocol; :class:`MemoryLogStore` is used by tests and the simulator.

Index conventions (as in etcd): the log holds entries ``first_index() .. last_index()``; the
entry just before ``first_index()`` is covered by the snapshot, whose term is still
answerable by ``term(first_index() - 1)``. An empty log has ``last_index() == first_index()-1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .messages import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


class LogError(Exception):
    """Base class for storage lookups that cannot be answered."""


class CompactedError(LogError):
    """The requested index lies before the first available index (compacted)."""


class UnavailableError(LogError):
    """The requested index lies after the last index."""


class SnapshotTemporarilyUnavailableError(LogError):
    """The snapshot is being produced; the leader retries later."""


def limit_size(entries: Sequence[Entry], max_bytes: int) -> list[Entry]:
    """Longest prefix of ``entries`` within ``max_bytes``; always keeps the first entry."""
    total = 0
    for i, e in enumerate(entries):
        total += e.size()
        if i > 0 and total > max_bytes:
            return list(entries[:i])
    return list(entries)


class LogReader(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def term(self, index: int) -> int:
        """Term of entry ``index`` for ``first_index()-1 <= index <= last_index()``."""
        ...

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries ``[lo, hi)`` limited to ``max_bytes`` (at least one entry if any)."""
        ...

    def snapshot(self) -> Snapshot: ...


class LogStore(LogReader, Protocol):
    def append(self, entries: Sequence[Entry]) -> None:
        """Append, first truncating any existing suffix from ``entries[0].index``."""
        ...

    def set_hard_state(self, hard_state: HardState) -> None: ...

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (received from the leader)."""
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record the application's snapshot taken at applied index ``index``."""
        ...

    def compact(self, index: int) -> None:
        """Discard entries up to and including ``index`` (which must be covered by the
        current snapshot, i.e. ``index <= snapshot().index``)."""
        ...


class MemoryLogStore:
    """A :class:`LogStore` in memory. ``bootstrap`` creates the state of a brand-new cluster."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        # _entries[0] is a dummy entry at the snapshot index carrying the snapshot term.
        self._entries: list[Entry] = [Entry(term=0, index=0)]

    @classmethod
    def bootstrap(cls, voters: Sequence[int], learners: Sequence[int] = ()) -> MemoryLogStore:
        """Storage of an initial member: a snapshot at index 1, term 1 holding the first
        configuration. Nodes joining later start from an empty store and get this (or a
        later) snapshot from the leader, so they always learn the full configuration."""
        store = cls()
        cs = ConfState(voters=frozenset(voters), learners=frozenset(learners))
        store.apply_snapshot(Snapshot(SnapshotMetadata(index=1, term=1, conf_state=cs)))
        store.set_hard_state(HardState(term=1, vote=0, commit=1))
        return store

    # --- LogReader -------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def first_index(self) -> int:
        return self._entries[0].index + 1

    def last_index(self) -> int:
        return self._entries[0].index + len(self._entries) - 1

    def term(self, index: int) -> int:
        offset = self._entries[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self._entries):
            raise UnavailableError(index)
        return self._entries[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        offset = self._entries[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self._entries[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- LogStore --------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # entirely covered by the snapshot
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self._entries[0].index
        if offset > len(self._entries):
            raise UnavailableError(
                f"missing log entries [last: {self.last_index()}, append at: {entries[0].index}]"
            )
        del self._entries[offset:]
        self._entries.extend(entries)

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        if snapshot.index < self._snapshot.index:
            return
        self._snapshot = snapshot
        self._entries = [Entry(term=snapshot.term, index=snapshot.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snapshot.index:
            return self._snapshot
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} > last index {self.last_index()}")
        meta = SnapshotMetadata(index=index, term=self.term(index), conf_state=conf_state)
        self._snapshot = Snapshot(meta, data)
        return self._snapshot

    def compact(self, index: int) -> None:
        offset = self._entries[0].index
        if index <= offset:
            return
        if index > self._snapshot.index:
            raise ValueError(
                f"compact({index}) beyond the snapshot index {self._snapshot.index}; "
                "create a snapshot first"
            )
        self._entries = self._entries[index - offset :]

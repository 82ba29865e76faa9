"""The node's view of the replicated log: stable storage plus not-yet-persisted entries.

``RaftLog`` = a :class:`LogReader` (what the application has persisted) + an unstable tail
(entries and possibly a snapshot handed out in a Ready but not yet acknowledged by
``advance``). Unstable entries always win over stable ones at the same index: when a
follower truncates a conflicting suffix, the stale stable entries are overwritten by the
next persist.
"""

from __future__ import annotations

from collections.abc import Sequence

from .log_store import CompactedError, LogError, LogReader, UnavailableError, limit_size
from .messages import Entry, Snapshot


class Unstable:
    """Entries ``offset ..`` (and maybe a snapshot) not yet written to stable storage."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.index if self.snapshot is not None else None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.index == index:
                return self.snapshot.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` (with term ``term``) reached stable storage."""
        if self.maybe_term(index) != term or index < self.offset:
            return  # overwritten meanwhile, or already stable
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        after = entries[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif after <= self.offset:
            # Replaces everything unstable (and, once persisted, the stable suffix too).
            self.offset = after
            self.entries = list(entries)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(entries)


class RaftLog:
    __slots__ = ("applied", "committed", "persisted", "storage", "unstable")

    def __init__(self, storage: LogReader, committed: int, applied: int) -> None:
        self.storage = storage
        first, last = storage.first_index(), storage.last_index()
        self.unstable = Unstable(last + 1)
        if not first - 1 <= committed <= last:
            raise ValueError(f"commit {committed} out of range [{first - 1}, {last}]")
        self.committed = committed
        self.applied = max(applied, first - 1)
        if self.applied > committed:
            raise ValueError(f"applied {applied} > committed {committed}")
        self.persisted = last
        """Highest index whose entry (as in this log) is known to be on stable storage."""

    # --- indexes and terms -----------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, index: int) -> int | None:
        """Term of entry ``index``, or None if compacted away or beyond the last index."""
        t = self.unstable.maybe_term(index)
        if t is not None:
            return t
        if index < self.first_index() - 1 or index > self.last_index():
            return None
        if index >= self.unstable.offset:
            return None
        try:
            return self.storage.term(index)
        except LogError:
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        assert t is not None, "the last entry's term is always known"
        return t

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Raft §5.4.1: is a candidate's log (last_index, term) at least as up to date?"""
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    # --- reading entries -------------------------------------------------------------

    def entries(self, lo: int, max_bytes: int, hi: int | None = None) -> list[Entry]:
        """Entries ``[lo, hi)`` (default: to the end) within ``max_bytes``.

        Raises CompactedError if ``lo`` is no longer in the log.
        """
        last = self.last_index()
        hi = last + 1 if hi is None else min(hi, last + 1)
        if lo < self.first_index():
            raise CompactedError(lo)
        if lo >= hi:
            return []
        offset = self.unstable.offset
        out: list[Entry] = []
        if lo < offset:
            out = self.storage.entries(lo, min(hi, offset), max_bytes)
            if len(out) < min(hi, offset) - lo:
                return out  # size limit reached inside stable storage
        if hi > offset:
            u = self.unstable.entries[max(lo, offset) - offset : hi - offset]
            out.extend(u)
        return limit_size(out, max_bytes) if out else out

    def all_entries(self) -> list[Entry]:
        """Every entry still in the log (tests and invariant checks only)."""
        return self.entries(self.first_index(), 2**62)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    # --- mutation ----------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> int:
        if not entries:
            return self.last_index()
        after = entries[0].index - 1
        if after < self.committed:
            raise AssertionError(f"append after {after} would overwrite commit {self.committed}")
        self.unstable.truncate_and_append(entries)
        self.persisted = min(self.persisted, after)
        return self.last_index()

    def find_conflict(self, entries: Sequence[Entry]) -> int:
        """Index of the first entry that is new or conflicts with the log (0 if none)."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term (fast backtracking).

        Stops at the first unknown term (compacted), returning (i, 0).
        """
        while True:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: Sequence[Entry]
    ) -> int | None:
        """Follower side of AppendEntries; returns the last new index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        ci = self.find_conflict(entries)
        if ci:
            if ci <= self.committed:
                raise AssertionError(f"entry {ci} conflicts with committed entry {self.committed}")
            self.append(entries[ci - entries[0].index :])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} out of range (last {self.last_index()})")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` if it is newer and its entry has ``term`` (Raft §5.4.2)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.index
        self.unstable.restore(snapshot)
        self.persisted = min(self.persisted, snapshot.index - 1)

    # --- handing out / acknowledging work ---------------------------------------------

    def has_next_committed(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed(self, max_bytes: int) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed < lo:
            return []
        return self.entries(lo, max_bytes, self.committed + 1)

    def applied_to(self, index: int) -> None:
        if index > self.committed or index < self.applied:
            raise AssertionError(f"applied {index} out of range ({self.applied}, {self.committed}]")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        if self.term(index) == term:
            self.persisted = max(self.persisted, index)
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)
        self.persisted = max(self.persisted, index)


__all__ = ["CompactedError", "RaftLog", "UnavailableError", "Unstable"]

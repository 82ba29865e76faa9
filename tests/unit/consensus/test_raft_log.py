"""The in-memory LogStore and the RaftLog (stable + unstable) view."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.log import RaftLog
from x0tta6bl4.consensus.core.log_store import CompactedError, MemoryLogStore, UnavailableError
from x0tta6bl4.consensus.core.messages import ConfState, Entry, Snapshot, SnapshotMetadata


def ents(*terms: int, start: int = 1) -> list[Entry]:
    return [Entry(t, start + i, f"{start + i}".encode()) for i, t in enumerate(terms)]


def test_store_append_truncates_conflicting_suffix() -> None:
    s = MemoryLogStore()
    s.append(ents(1, 1, 1, 2))
    s.append(ents(3, 3, start=3))
    assert [s.term(i) for i in range(1, 5)] == [1, 1, 3, 3]
    assert s.last_index() == 4
    with pytest.raises(UnavailableError):
        s.append(ents(4, start=9))


def test_store_compaction_keeps_the_snapshot_term() -> None:
    s = MemoryLogStore()
    s.append(ents(1, 1, 2, 2, 3))
    with pytest.raises(ValueError):
        s.compact(3)  # no snapshot covers index 3 yet
    s.create_snapshot(3, ConfState(voters=frozenset({1})), b"state")
    s.compact(3)
    assert s.first_index() == 4 and s.last_index() == 5
    assert s.term(3) == 2  # term of the compacted boundary stays answerable
    with pytest.raises(CompactedError):
        s.term(2)
    with pytest.raises(CompactedError):
        s.entries(3, 5, 1 << 20)
    assert [e.index for e in s.entries(4, 6, 1 << 20)] == [4, 5]


def test_store_entries_respect_size_limit_but_return_at_least_one() -> None:
    s = MemoryLogStore()
    s.append(ents(1, 1, 1))
    assert len(s.entries(1, 4, 1)) == 1
    assert len(s.entries(1, 4, 2 * Entry(1, 1, b"1").size())) == 2


def test_bootstrap_store_holds_initial_configuration() -> None:
    s = MemoryLogStore.bootstrap([1, 2, 3], learners=[4])
    hs, cs = s.initial_state()
    assert hs.term == 1 and hs.commit == 1
    assert cs.voters == {1, 2, 3} and cs.learners == {4}
    assert s.first_index() == 2 and s.term(1) == 1


def new_log(*terms: int) -> RaftLog:
    s = MemoryLogStore()
    s.append(ents(*terms))
    return RaftLog(s, committed=0, applied=0)


def test_maybe_append_rejects_mismatching_previous_entry() -> None:
    log = new_log(1, 1, 2)
    assert log.maybe_append(3, 1, 0, ents(3, start=4)) is None
    assert log.maybe_append(3, 2, 2, ents(3, start=4)) == 4
    assert log.committed == 2
    assert log.unstable.entries == ents(3, start=4)


def test_maybe_append_truncates_conflicts_and_ignores_duplicates() -> None:
    log = new_log(1, 1, 2, 2)
    assert log.maybe_append(1, 1, 0, ents(1, 2, start=2)) == 3  # already present
    assert not log.unstable.entries
    assert log.maybe_append(2, 1, 0, ents(3, start=3)) == 3
    assert log.last_index() == 3 and log.term(3) == 3
    assert log.persisted == 2  # the overwritten stable suffix no longer counts


def test_commit_only_current_term_by_counting() -> None:
    log = new_log(1, 2, 2)
    assert not log.maybe_commit(2, term=3)  # an old-term entry is never committed by count
    assert log.maybe_commit(3, term=2)
    assert log.committed == 3


def test_find_conflict_by_term_skips_whole_terms() -> None:
    log = new_log(1, 1, 2, 2, 2, 5, 5)
    assert log.find_conflict_by_term(7, 3) == (5, 2)
    assert log.find_conflict_by_term(7, 5) == (7, 5)
    assert log.find_conflict_by_term(4, 1) == (2, 1)
    assert log.find_conflict_by_term(7, 0) == (0, 0)


def test_up_to_date_comparison() -> None:
    log = new_log(1, 2, 2)
    assert log.is_up_to_date(1, 3)
    assert log.is_up_to_date(3, 2)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


def test_unstable_entries_become_stable_and_applied() -> None:
    s = MemoryLogStore()
    log = RaftLog(s, 0, 0)
    log.append(ents(1, 1))
    assert log.persisted == 0
    s.append(log.unstable.entries)
    log.stable_to(2, 1)
    assert not log.unstable.entries and log.persisted == 2
    log.commit_to(2)
    assert [e.index for e in log.next_committed(1 << 20)] == [1, 2]
    log.applied_to(2)
    assert not log.has_next_committed()


def test_stable_to_ignores_entries_overwritten_meanwhile() -> None:
    log = RaftLog(MemoryLogStore(), 0, 0)
    log.append(ents(1, 1))
    log.append(ents(2, start=2))  # overwrites index 2 before the first persist finished
    log.stable_to(2, 1)
    assert log.unstable.entries == ents(1, 2)
    assert log.persisted == 0


def test_restore_snapshot_replaces_log() -> None:
    log = new_log(1, 1)
    snap = Snapshot(SnapshotMetadata(10, 3, ConfState(voters=frozenset({1}))), b"img")
    log.restore(snap)
    assert log.first_index() == 11 and log.last_index() == 10 and log.committed == 10
    assert log.term(10) == 3 and log.term(2) is None
    with pytest.raises(CompactedError):
        log.entries(2, 1 << 20)
    assert log.snapshot() is snap

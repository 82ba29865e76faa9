"""Write-ahead log: snapshot markers and deleting segments the snapshot covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from x0tta6bl4.consensus.core.messages import Entry, HardState
from x0tta6bl4.consensus.storage.records import SnapshotMarker
from x0tta6bl4.consensus.storage.segments import scan_segment
from x0tta6bl4.consensus.storage.wal import Wal

SEGMENT = 700


def entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, b"x" * 30) for i in range(first, last + 1)]


def max_entry_index(path: Path) -> int:
    records = scan_segment(path.read_bytes(), int(path.stem, 16)).records
    return max((r.index for _, r in records if isinstance(r, Entry)), default=0)


def test_compaction_deletes_only_segments_wholly_covered(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_bytes=SEGMENT)
    wal.append(entries(1, 100), HardState(term=1, vote=1, commit=100))
    wal.sync()
    before = {p: max_entry_index(p) for p in wal.segment_paths}
    with pytest.raises(ValueError, match="snapshot is at 0"):
        wal.compact(50)
    wal.save_snapshot(SnapshotMarker(index=60, term=1))
    deleted = wal.compact(60)
    assert deleted, "some segments lie wholly below the snapshot"
    assert all(before[p] <= 60 for p in deleted)
    assert all(not p.exists() for p in deleted)
    assert all(before[p] > 60 for p in wal.segment_paths[:-1])
    wal.close()

    wal, recovered = Wal.open(tmp_path, segment_bytes=SEGMENT)
    assert recovered.snapshot == SnapshotMarker(60, 1)
    assert recovered.entries == entries(61, 100)
    # The hard state was written once, in a deleted segment; the survivors carry it.
    assert recovered.hard_state == HardState(term=1, vote=1, commit=100)
    wal.append(entries(101, 110))
    wal.sync()
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=SEGMENT)
    assert recovered.entries == entries(61, 110)


def test_snapshot_beyond_the_log_empties_it(tmp_path: Path) -> None:
    """A follower that installs a leader's snapshot ahead of its own log."""
    wal, _ = Wal.open(tmp_path, segment_bytes=SEGMENT)
    wal.append(entries(1, 10))
    wal.sync()
    wal.save_snapshot(SnapshotMarker(index=500, term=4))
    assert wal.last_index == 500
    with pytest.raises(ValueError):
        wal.append(entries(400, 401, term=4))
    wal.append(entries(501, 502, term=4))
    wal.sync()
    wal.compact(500)
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=SEGMENT)
    assert recovered.snapshot == SnapshotMarker(500, 4)
    assert recovered.entries == entries(501, 502, term=4)


def test_compaction_with_overwritten_entries(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_bytes=SEGMENT)
    wal.append(entries(1, 40))
    wal.sync()
    wal.append(entries(20, 80, term=2))  # overwrite from 20 on
    wal.sync()
    wal.save_snapshot(SnapshotMarker(70, 2))
    wal.compact(70)
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=SEGMENT)
    assert recovered.entries == entries(71, 80, term=2)


def test_snapshot_marker_cannot_go_back(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append(entries(1, 10))
    wal.save_snapshot(SnapshotMarker(8, 1))
    with pytest.raises(ValueError, match="older"):
        wal.save_snapshot(SnapshotMarker(5, 1))
    with pytest.raises(ValueError, match="compacted"):
        wal.truncate_suffix(8)
    wal.close()

"""Write-ahead log: durability, group commit, suffix overwrite, torn tails and corruption."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from x0tta6bl4.consensus.core.messages import Entry, EntryType, HardState
from x0tta6bl4.consensus.storage.errors import CorruptLogError
from x0tta6bl4.consensus.storage.segments import scan_segment
from x0tta6bl4.consensus.storage.wal import RecoveredLog, Wal


class FsyncCounter:
    """Counts fsync calls and performs them for real."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


def entries(first: int, last: int, term: int = 1, size: int = 20) -> list[Entry]:
    return [
        Entry(term, i, f"e{i}-t{term}".encode().ljust(size, b".")) for i in range(first, last + 1)
    ]


def reopen(path: Path, **kwargs: int) -> tuple[Wal, RecoveredLog]:
    return Wal.open(path, **kwargs)  # type: ignore[arg-type]


def test_append_sync_reopen_round_trip(tmp_path: Path) -> None:
    wal, recovered = Wal.open(tmp_path / "wal")
    assert recovered.entries == [] and recovered.hard_state == HardState()
    conf = Entry(1, 3, b"conf", EntryType.CONF_CHANGE)
    wal.append([*entries(1, 2), conf], HardState(term=1, vote=2, commit=2))
    wal.sync()
    wal.close()
    wal, recovered = Wal.open(tmp_path / "wal")
    assert recovered.entries == [*entries(1, 2), conf]
    assert recovered.hard_state == HardState(term=1, vote=2, commit=2)
    assert recovered.torn_tail is None and recovered.snapshot is None
    assert wal.last_index == 3
    wal.close()


def test_group_commit_is_one_fsync_for_many_entries(tmp_path: Path) -> None:
    fsync = FsyncCounter()
    wal, _ = Wal.open(tmp_path, fsync=fsync)
    assert fsync.calls == 2  # the first segment file and its directory entry
    fsync.calls = 0
    for i in range(1, 501, 50):
        wal.append(entries(i, i + 49), HardState(term=1, commit=i))
    wal.sync()
    assert fsync.calls == 1
    wal.sync()  # nothing new: no fsync
    assert fsync.calls == 1
    wal.close()


def test_rolling_segments_fsyncs_the_finished_one_and_the_directory(tmp_path: Path) -> None:
    fsync = FsyncCounter()
    wal, _ = Wal.open(tmp_path, segment_bytes=1024, fsync=fsync)
    fsync.calls = 0
    wal.append(entries(1, 100))
    segments = len(wal.segment_paths)
    assert segments >= 5
    assert fsync.calls == segments - 1  # each finished segment, during append
    wal.sync()
    assert fsync.calls == segments - 1 + 2  # the tail segment and the directory
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=1024)
    assert recovered.entries == entries(1, 100)


def test_overwriting_a_conflicting_suffix_is_durable(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path, segment_bytes=600)
    wal.append(entries(1, 10))
    wal.sync()
    wal.append(entries(6, 7, term=2))  # the new leader's entries replace 6..10
    wal.sync()
    assert wal.last_index == 7
    wal.close()
    wal, recovered = Wal.open(tmp_path, segment_bytes=600)
    assert recovered.entries == entries(1, 5) + entries(6, 7, term=2)
    wal.truncate_suffix(4)
    wal.sync()
    wal.append(entries(4, 4, term=3))
    wal.sync()
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=600)
    assert recovered.entries == entries(1, 3) + entries(4, 4, term=3)


def test_append_refuses_gaps(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append(entries(1, 3))
    with pytest.raises(ValueError, match="must be in"):
        wal.append(entries(5, 6))
    with pytest.raises(ValueError, match="not contiguous"):
        wal.append([*entries(4, 4), *entries(6, 6)])
    wal.close()


def _log_with_final_record(path: Path) -> tuple[int, int, Path]:
    """A log whose last segment ends with one unsynced-looking record; returns its span."""
    wal, _ = Wal.open(path, segment_bytes=512)
    wal.append(entries(1, 30), HardState(term=1, vote=1, commit=20))
    wal.sync()
    tail = wal.segment_paths[-1]
    start = tail.stat().st_size
    wal.append(entries(31, 31, size=40))
    wal.sync()
    wal.close()
    return start, tail.stat().st_size, tail


def test_crash_truncation_at_every_byte_of_the_last_record_recovers_the_prefix(
    tmp_path: Path,
) -> None:
    original = tmp_path / "original"
    start, end, tail = _log_with_final_record(original)
    assert len(list(original.iterdir())) > 1  # the cut is in the last of several segments
    for cut in range(start, end):
        crashed = tmp_path / f"cut-{cut}"
        shutil.copytree(original, crashed)
        os.truncate(crashed / tail.name, cut)
        wal, recovered = Wal.open(crashed, segment_bytes=512)
        assert recovered.entries == entries(1, 30), cut
        assert recovered.hard_state == HardState(term=1, vote=1, commit=20)
        if cut == start:
            assert recovered.torn_tail is None
        else:
            assert recovered.torn_tail is not None
            assert recovered.torn_tail.offset == start
            assert recovered.torn_tail.dropped_bytes == cut - start
        assert (crashed / tail.name).stat().st_size == start  # the tail was cut off
        # The log is usable again and the repair is durable.
        wal.append(entries(31, 32, term=2))
        wal.sync()
        wal.close()
        _, again = Wal.open(crashed, segment_bytes=512)
        assert again.entries == entries(1, 30) + entries(31, 32, term=2)
        assert again.torn_tail is None
        shutil.rmtree(crashed)


@pytest.mark.parametrize("where", ["header", "payload", "last byte"])
def test_bad_checksum_in_the_last_record_is_a_torn_tail(tmp_path: Path, where: str) -> None:
    start, end, tail = _log_with_final_record(tmp_path)
    offset = {"header": start + 2, "payload": start + 20, "last byte": end - 1}[where]
    _flip(tail, offset)
    _, recovered = Wal.open(tmp_path, segment_bytes=512)
    assert recovered.entries == entries(1, 30)
    assert recovered.torn_tail is not None and recovered.torn_tail.offset == start


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def _record_offsets(path: Path) -> list[int]:
    seq = int(path.stem, 16)
    return [offset for offset, _ in scan_segment(path.read_bytes(), seq).records]


def test_bad_checksum_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    _, _, tail = _log_with_final_record(tmp_path)
    offsets = _record_offsets(tail)
    victim = offsets[len(offsets) // 2]
    _flip(tail, victim + 12)  # inside the payload
    with pytest.raises(CorruptLogError) as info:
        Wal.open(tmp_path, segment_bytes=512)
    assert info.value.path == tail
    assert info.value.offset == victim
    assert str(tail) in str(info.value) and f"offset {victim}" in str(info.value)


def test_damaged_length_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    _, _, tail = _log_with_final_record(tmp_path)
    victim = _record_offsets(tail)[3]
    _flip(tail, victim + 1)  # the length now points far beyond the file
    with pytest.raises(CorruptLogError) as info:
        Wal.open(tmp_path, segment_bytes=512)
    assert info.value.offset == victim


def test_damage_in_an_earlier_segment_refuses_to_open(tmp_path: Path) -> None:
    _log_with_final_record(tmp_path)
    first = sorted(tmp_path.iterdir())[0]
    last_record = _record_offsets(first)[-1]
    _flip(first, last_record + 15)  # even its LAST record: it is not the last segment
    with pytest.raises(CorruptLogError) as info:
        Wal.open(tmp_path, segment_bytes=512)
    assert info.value.path == first and info.value.offset == last_record


def test_missing_middle_segment_refuses_to_open(tmp_path: Path) -> None:
    _log_with_final_record(tmp_path)
    segments = sorted(tmp_path.iterdir())
    assert len(segments) >= 3
    segments[1].unlink()
    with pytest.raises(CorruptLogError, match="missing"):
        Wal.open(tmp_path, segment_bytes=512)


def test_torn_segment_creation_is_discarded(tmp_path: Path) -> None:
    wal, _ = Wal.open(tmp_path)
    wal.append(entries(1, 5))
    wal.sync()
    wal.close()
    (tmp_path / "0000000000000002.wal").write_bytes(b"X0W")  # crash while creating it
    wal, recovered = Wal.open(tmp_path)
    assert recovered.entries == entries(1, 5)
    assert recovered.torn_tail is not None and recovered.torn_tail.offset == 0
    assert not (tmp_path / "0000000000000002.wal").exists()
    wal.close()


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    start, _, tail = _log_with_final_record(tmp_path)
    with tail.open("r+b") as f:
        f.seek(start)
        f.write(bytes(200))
    _, recovered = Wal.open(tmp_path, segment_bytes=512)
    assert recovered.entries == entries(1, 30)
    assert recovered.torn_tail is not None

"""The write-ahead log: Raft entries, hard state and snapshot markers in checksummed segments.

Guarantees:

- **Durable when synced.** :meth:`Wal.append` writes records to the OS; :meth:`Wal.sync`
  fsyncs the segment file (and the directory when a segment was created), so one fsync covers
  any number of appended entries (group commit). Nothing is durable before ``sync`` returns.
- **Suffix overwrite is durable.** Appending an entry at index *i* ≤ the last index discards
  the old entries ≥ *i*; :meth:`Wal.truncate_suffix` does the same without new entries. Both
  are records, so they become durable with the same ``sync`` (no file is rewritten).
- **Recovery.** :meth:`Wal.open` reads every segment. A damaged tail of the last segment with
  nothing valid after it (a torn write) is cut off, logged and reported in
  :attr:`RecoveredLog.torn_tail`. Damage followed by valid records, or in any segment but
  the last, raises :class:`CorruptLogError` naming the file and offset: the log is never
  silently shortened.
- **Failures.** An OSError in ``append``/``sync`` raises :class:`StorageFull` (ENOSPC/EDQUOT)
  or :class:`StorageError`; the object then refuses further use. Reopening the directory
  recovers every record synced before the failure (unsynced ones may or may not survive).
- **Compaction.** After :meth:`Wal.save_snapshot`, :meth:`Wal.compact` deletes the segments
  whose entries all lie at or below the snapshot. Each segment starts with the hard state and
  snapshot marker current at its creation, so deleting older segments loses nothing.

Rolling to a new segment fsyncs the previous one first, so every segment but the last is
complete; a torn tail can only be in the last segment.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from x0tta6bl4.platform.durable import FsyncFn, WriteFn, ensure_dir, fsync_dir, write_all

from ..core.messages import Entry, HardState
from .errors import CorruptLogError, StorageError, storage_error
from .records import Record, SnapshotMarker, Truncate, encode_record
from .segments import SEGMENT_HEADER_SIZE, list_segments, scan_segment, segment_header, segment_name

log = structlog.get_logger(__name__)

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes cut from the end of the last segment at recovery (or the whole file if offset 0)."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveredLog:
    """What :meth:`Wal.open` found: entries are those after the snapshot, in index order."""

    hard_state: HardState
    snapshot: SnapshotMarker | None
    entries: list[Entry]
    torn_tail: TornTail | None = None


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int
    max_index: int = 0  # highest entry index written to this segment


@dataclass(slots=True)
class _Replay:
    """Folds records into the log they describe (shared by recovery and bookkeeping)."""

    entries: list[Entry] = field(default_factory=list)
    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMarker | None = None
    gap: tuple[Path, int] | None = None  # where entries stopped being contiguous

    def last_index(self) -> int:
        if self.entries:
            return self.entries[-1].index
        return self.snapshot.index if self.snapshot else 0

    def _cut(self, from_index: int) -> None:
        if self.entries and from_index <= self.entries[-1].index:
            keep = max(0, from_index - self.entries[0].index)
            del self.entries[keep:]

    def add(self, record: Record, path: Path, offset: int) -> None:
        match record:
            case Entry(index=index):
                if index > self.last_index() + 1:
                    # Legal only if a later snapshot marker covers the hole (compacted
                    # segments); checked once every record has been read.
                    self.gap = (path, offset)
                    self.entries.clear()
                else:
                    self._cut(index)
                self.entries.append(record)
            case HardState():
                self.hard_state = record
            case SnapshotMarker(index=index):
                self.snapshot = record
                self._drop_through(index)
            case Truncate(from_index=from_index):
                self._cut(from_index)

    def _drop_through(self, index: int) -> None:
        if self.entries and self.entries[0].index <= index:
            del self.entries[: min(len(self.entries), index - self.entries[0].index + 1)]


class Wal:
    """An open write-ahead log directory. Not thread-safe: one writer."""

    def __init__(
        self,
        directory: Path,
        segments: list[_Segment],
        replay: _Replay,
        *,
        segment_bytes: int,
        fsync: FsyncFn,
        write: WriteFn,
    ) -> None:
        self.directory = directory
        self._segments = segments
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._write = write
        self._hard_state = replay.hard_state
        self._snapshot = replay.snapshot
        self._last_index = replay.last_index()
        self._failed: StorageError | None = None
        self._dir_dirty = False
        self._fd = -1
        self._unsynced = False
        self._open_tail()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: FsyncFn = os.fsync,
        write: WriteFn = os.write,
    ) -> tuple[Wal, RecoveredLog]:
        """Open (creating if needed) and recover the log in ``directory``.

        Raises :class:`CorruptLogError` for damage that is not a torn tail.
        """
        directory = Path(directory)
        try:
            ensure_dir(directory, fsync)
            segments, replay, torn = _recover(directory, fsync)
        except OSError as exc:
            raise storage_error(exc, f"opening write-ahead log {directory}") from exc
        wal = cls(
            directory, segments, replay, segment_bytes=segment_bytes, fsync=fsync, write=write
        )
        recovered = RecoveredLog(replay.hard_state, replay.snapshot, list(replay.entries), torn)
        return wal, recovered

    def _open_tail(self) -> None:
        try:
            if not self._segments:
                self._create_segment(1)
                self._sync_dir()
            else:
                tail = self._segments[-1]
                self._fd = os.open(tail.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as exc:
            raise storage_error(exc, f"opening write-ahead log {self.directory}") from exc

    # -- state ------------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        """The index of the last entry (or of the snapshot when no entry follows it)."""
        return self._last_index

    @property
    def snapshot(self) -> SnapshotMarker | None:
        """The last snapshot marker saved."""
        return self._snapshot

    @property
    def segment_paths(self) -> list[Path]:
        """Current segment files, oldest first."""
        return [s.path for s in self._segments]

    # -- writing ----------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry], hard_state: HardState | None = None) -> None:
        """Write entries (contiguous; the first may overwrite a suffix) and a hard state.

        Not durable until :meth:`sync`. Raises ValueError for entries that would leave a gap
        or overwrite the snapshot, :class:`StorageError` if the disk refuses.
        """
        self._check_usable()
        if entries:
            first = entries[0].index
            floor = self._snapshot.index if self._snapshot else 0
            if not floor < first <= self._last_index + 1:
                raise ValueError(
                    f"first entry index {first} must be in ({floor}, {self._last_index + 1}]"
                )
            for prev, cur in itertools.pairwise(entries):
                if cur.index != prev.index + 1:
                    raise ValueError(f"entries are not contiguous at index {cur.index}")
        records: list[Record] = list(entries)
        if hard_state is not None and hard_state != self._hard_state:
            records.append(hard_state)
        self._write_records(records)
        if entries:
            self._last_index = entries[-1].index
        if hard_state is not None:
            self._hard_state = hard_state

    def truncate_suffix(self, from_index: int) -> None:
        """Discard entries at ``from_index`` and above (durable after :meth:`sync`)."""
        self._check_usable()
        floor = self._snapshot.index if self._snapshot else 0
        if from_index <= floor:
            raise ValueError(f"cannot truncate at {from_index}: entries ≤ {floor} are compacted")
        if from_index > self._last_index:
            return
        self._write_records([Truncate(from_index)])
        self._last_index = from_index - 1

    def sync(self) -> None:
        """Make everything appended so far durable (fsync file, and directory if needed)."""
        self._check_usable()
        try:
            if self._unsynced:
                self._fsync(self._fd)
                self._unsynced = False
            self._sync_dir()
        except OSError as exc:
            raise self._fail(exc, "syncing the write-ahead log") from exc

    def save_snapshot(self, marker: SnapshotMarker) -> None:
        """Record durably that a snapshot at ``marker`` exists (write it to disk first).

        Entries at or below the marker are dropped from the log; later entries stay unless
        the caller truncates them (e.g. when the snapshot's term differs).
        """
        self._check_usable()
        if self._snapshot is not None and marker.index < self._snapshot.index:
            raise ValueError(f"snapshot {marker.index} is older than {self._snapshot.index}")
        self._write_records([marker])
        self.sync()
        self._snapshot = marker
        self._last_index = max(self._last_index, marker.index)

    def compact(self, upto_index: int) -> list[Path]:
        """Delete segments whose entries are all ≤ ``upto_index``; returns the deleted paths.

        ``upto_index`` may not exceed the saved snapshot: only snapshotted entries go.
        """
        self._check_usable()
        limit = self._snapshot.index if self._snapshot else 0
        if upto_index > limit:
            raise ValueError(f"cannot compact to {upto_index}: the snapshot is at {limit}")
        deleted: list[Path] = []
        try:
            while len(self._segments) > 1 and self._segments[0].max_index <= upto_index:
                segment = self._segments.pop(0)
                segment.path.unlink()
                deleted.append(segment.path)
            if deleted:
                fsync_dir(self.directory, self._fsync)
        except OSError as exc:
            raise self._fail(exc, "deleting compacted segments") from exc
        if deleted:
            log.info("wal.compacted", deleted=[p.name for p in deleted], upto_index=upto_index)
        return deleted

    def close(self) -> None:
        """Close the file (without syncing)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- internals --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StorageError(
                f"write-ahead log {self.directory} failed earlier ({self._failed}); reopen it"
            )
        if self._fd < 0:
            raise StorageError(f"write-ahead log {self.directory} is closed")

    def _fail(self, exc: OSError, what: str) -> StorageError:
        error = storage_error(exc, f"{what} in {self.directory}")
        self._failed = error
        log.error("wal.failed", error=str(error))
        return error

    def _write_records(self, records: Sequence[Record]) -> None:
        tail = self._segments[-1]
        chunk = bytearray()
        chunk_entries_max = 0
        try:
            for record in records:
                framed = encode_record(record)
                pending = tail.size + len(chunk)
                if pending > SEGMENT_HEADER_SIZE and pending + len(framed) > self._segment_bytes:
                    self._flush(tail, chunk, chunk_entries_max)
                    chunk, chunk_entries_max = bytearray(), 0
                    tail = self._roll()
                chunk += framed
                if isinstance(record, Entry):
                    chunk_entries_max = max(chunk_entries_max, record.index)
            self._flush(tail, chunk, chunk_entries_max)
        except OSError as exc:
            raise self._fail(exc, "writing the write-ahead log") from exc

    def _flush(self, segment: _Segment, chunk: bytearray, max_index: int) -> None:
        if not chunk:
            return
        try:
            write_all(self._fd, bytes(chunk), self._write)
        except OSError:
            # Leave no half record behind: cut back to the last whole record (best effort;
            # if this fails too, recovery treats the remainder as a torn tail).
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, segment.size)
            raise
        segment.size += len(chunk)
        segment.max_index = max(segment.max_index, max_index)
        self._unsynced = True

    def _roll(self) -> _Segment:
        """Finish the current segment durably and start the next one."""
        self._fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._unsynced = False
        return self._create_segment(self._segments[-1].seq + 1)

    def _create_segment(self, seq: int) -> _Segment:
        path = self.directory / segment_name(seq)
        start: list[Record] = [self._hard_state]
        if self._snapshot is not None:
            start.append(self._snapshot)
        data = segment_header(seq) + b"".join(encode_record(r) for r in start)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data, self._write)
        except OSError:
            # Do not leave a half-created segment behind (recovery would report it as torn).
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd = fd
        self._dir_dirty = True
        segment = _Segment(seq, path, len(data))
        self._segments.append(segment)
        self._unsynced = True
        return segment

    def _sync_dir(self) -> None:
        if self._dir_dirty:
            if self._unsynced:
                self._fsync(self._fd)
                self._unsynced = False
            fsync_dir(self.directory, self._fsync)
            self._dir_dirty = False


def _recover(directory: Path, fsync: FsyncFn) -> tuple[list[_Segment], _Replay, TornTail | None]:
    found = list_segments(directory)
    replay = _Replay()
    segments: list[_Segment] = []
    torn: TornTail | None = None
    for i, (seq, path) in enumerate(found):
        if i and seq != found[i - 1][0] + 1:
            raise CorruptLogError(path, 0, f"segment {found[i - 1][0] + 1} is missing")
        data = path.read_bytes()
        scan = scan_segment(data, seq)
        is_last = i == len(found) - 1
        if scan.problem_offset is not None:
            if not is_last or scan.followed_by_valid:
                where = "valid records follow it" if is_last else "it is not the last segment"
                raise CorruptLogError(
                    path, scan.problem_offset, f"{scan.problem} ({where}; refusing to open)"
                )
            torn = TornTail(path, scan.problem_offset, len(data) - scan.valid_end, scan.problem)
            log.warning(
                "wal.torn_tail_truncated",
                path=str(path),
                offset=scan.problem_offset,
                dropped_bytes=torn.dropped_bytes,
                reason=scan.problem,
            )
            if scan.valid_end == 0:  # the segment's creation itself was torn
                path.unlink()
                fsync_dir(directory, fsync)
                continue
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, scan.valid_end)
                fsync(fd)
            finally:
                os.close(fd)
        segment = _Segment(seq, path, scan.valid_end)
        for offset, record in scan.records:
            replay.add(record, path, offset)
            if isinstance(record, Entry):
                segment.max_index = max(segment.max_index, record.index)
        segments.append(segment)
    expected = replay.snapshot.index + 1 if replay.snapshot else 1
    if replay.entries and replay.entries[0].index != expected:
        path, offset = replay.gap or (segments[0].path, SEGMENT_HEADER_SIZE)
        raise CorruptLogError(
            path,
            offset,
            f"entries {expected}..{replay.entries[0].index - 1} are missing before this record",
        )
    return segments, replay, torn

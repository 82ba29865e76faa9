"""A :class:`~x0tta6bl4.consensus.core.log_store.LogStore` over the write-ahead log and
snapshot files.

Layout of the data directory::

    <data_dir>/wal/   segments of the write-ahead log (entries, hard state, snapshot markers)
    <data_dir>/snap/  zstd snapshot files ``<index>-<term>.snap``; ``meta`` holds the membership

The log's entries after the snapshot are also kept in memory (the WAL is write-only while
running), so the Raft core reads them without disk I/O. Memory stays bounded because the
runtime snapshots every N entries and then compacts.

Threading: the ``write_*`` methods do the disk I/O and may run in a worker thread while the
event loop waits for them; they do not touch the in-memory view, which only the event loop
changes (``remember_*``). The core reads the in-memory view only from the event loop.

Snapshots carry no image in memory (``Snapshot.data`` is empty): the transport streams the
file, and the runtime reads the image from the file when it restores the state machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from x0tta6bl4.consensus.codec import Members, decode_snapshot_meta, encode_snapshot_meta
from x0tta6bl4.consensus.core.log_store import MemoryLogStore
from x0tta6bl4.consensus.core.messages import (
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMetadata,
)
from x0tta6bl4.consensus.storage.errors import SnapshotCorrupt, StorageError
from x0tta6bl4.consensus.storage.records import SnapshotMarker
from x0tta6bl4.consensus.storage.snapshot_files import (
    SnapshotMeta,
    purge_snapshots,
    read_snapshot,
    remove_temp_files,
    snapshot_name,
    write_snapshot,
)
from x0tta6bl4.consensus.storage.wal import Wal

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What opening the data directory found."""

    image: bytes
    """The state-machine image of the latest snapshot."""
    snapshot: Snapshot
    hard_state: HardState
    members: Members
    """Addresses of members added at run time, as of the snapshot."""
    entries: int
    torn_tail: bool


class DurableLog(MemoryLogStore):
    """The Raft log of one member, durable in ``data_dir``.

    Its in-memory view is a :class:`MemoryLogStore` (what the Raft core reads); the
    ``write*`` methods make changes durable (possibly in a worker thread) and the
    ``remember*`` methods then apply the same changes to the in-memory view.
    """

    def __init__(
        self,
        data_dir: Path,
        wal: Wal,
        snapshot: Snapshot,
        entries: list[Entry],
        hard_state: HardState,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.snap_dir = data_dir / "snap"
        self._wal = wal
        self._snapshot = snapshot
        # _entries[0] is a dummy entry at the compaction point (index, term).
        self._entries: list[Entry] = [Entry(snapshot.term, snapshot.index), *entries]
        self._hard_state = hard_state

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, data_dir: Path, *, bootstrap: ConfState | None, empty_image: bytes
    ) -> tuple[DurableLog, Recovered]:
        """Open (or create) the log. A brand-new directory with ``bootstrap`` gets the initial
        configuration as a snapshot at index 1, term 1 (like etcd's bootstrap); without it (a
        member joining later) the log stays empty until the leader sends a snapshot.

        Raises :class:`StorageError` (e.g. :class:`CorruptLogError`) when the directory cannot
        be trusted; a torn WAL tail is repaired and reported.
        """
        snap_dir = data_dir / "snap"
        wal, rec = Wal.open(data_dir / "wal")
        try:
            remove_temp_files(snap_dir)
            marker = rec.snapshot
            hard_state = rec.hard_state
            if marker is None and not rec.entries and bootstrap is not None:
                meta = write_snapshot(
                    snap_dir, 1, 1, empty_image, meta=encode_snapshot_meta(bootstrap, {})
                )
                marker = SnapshotMarker(1, 1)
                wal.save_snapshot(marker)
                hard_state = HardState(term=1, vote=0, commit=1)
                wal.append([], hard_state)
                wal.sync()
                log.info("raft.bootstrapped", voters=sorted(bootstrap.voters), path=str(meta.path))
            members: Members = {}
            if marker is None:
                snapshot = Snapshot()
                image = empty_image
            else:
                path = snap_dir / snapshot_name(marker.index, marker.term)
                try:
                    meta, image = read_snapshot(path)
                except (SnapshotCorrupt, StorageError) as exc:
                    raise StorageError(
                        f"the write-ahead log refers to snapshot {path}, which cannot be "
                        f"read: {exc}"
                    ) from exc
                conf_state, members = decode_snapshot_meta(meta.meta)
                snapshot = Snapshot(SnapshotMetadata(marker.index, marker.term, conf_state))
            if hard_state.commit < snapshot.index:
                hard_state = HardState(hard_state.term, hard_state.vote, snapshot.index)
        except BaseException:
            wal.close()
            raise
        store = cls(data_dir, wal, snapshot, list(rec.entries), hard_state)
        recovered = Recovered(
            image, snapshot, hard_state, members, len(rec.entries), rec.torn_tail is not None
        )
        return store, recovered

    def close(self) -> None:
        self._wal.close()

    # -- writes: disk part (may run in a worker thread) -----------------------------------------

    def write(self, entries: Sequence[Entry], hard_state: HardState | None, sync: bool) -> float:
        """Append entries and the hard state to the WAL; fsync once if ``sync``.

        Returns the seconds spent (write + fsync). Raises StorageError/StorageFull.
        """
        started = time.perf_counter()
        floor = self._wal.snapshot.index if self._wal.snapshot else 0
        entries = [e for e in entries if e.index > floor]
        self._wal.append(entries, hard_state)
        if sync:
            self._wal.sync()
        return time.perf_counter() - started

    def write_received_snapshot(self, snapshot: Snapshot) -> None:
        """Make a snapshot received from the leader the start of the log (its file is already
        in ``snap/``): drop every entry after it and record the marker durably."""
        if self._wal.last_index > snapshot.index:
            self._wal.truncate_suffix(snapshot.index + 1)
        self._wal.save_snapshot(SnapshotMarker(snapshot.index, snapshot.term))

    def write_snapshot_file(
        self, index: int, term: int, conf_state: ConfState, members: Members, image: bytes
    ) -> SnapshotMeta:
        """Write the state-machine image taken at applied ``index`` as a snapshot file.

        Touches only ``snap/`` (not the WAL), so it may run while the loop keeps writing.
        """
        meta = encode_snapshot_meta(conf_state, members)
        return write_snapshot(self.snap_dir, index, term, image, meta=meta)

    def write_snapshot_marker(self, index: int, term: int, compact_upto: int) -> None:
        """Record a written snapshot in the WAL, then delete what it makes unnecessary:
        WAL segments up to ``compact_upto`` and older snapshot files."""
        self._wal.save_snapshot(SnapshotMarker(index, term))
        self._wal.compact(min(compact_upto, index))
        purge_snapshots(self.snap_dir, older_than=index)

    # -- writes: memory part (event loop only) ------------------------------------------------

    def remember(self, entries: Sequence[Entry], hard_state: HardState | None) -> None:
        """Update the in-memory view after :meth:`write` succeeded."""
        if hard_state is not None:
            self.set_hard_state(hard_state)
        self.append(entries)

    def remember_received_snapshot(self, snapshot: Snapshot) -> None:
        self.apply_snapshot(Snapshot(snapshot.metadata))

    def remember_snapshot(self, index: int, term: int, conf_state: ConfState) -> None:
        self._snapshot = Snapshot(SnapshotMetadata(index, term, conf_state))

    def remember_compaction(self, upto: int) -> None:
        """Forget in-memory entries up to ``upto`` (at most the snapshot index)."""
        self.compact(min(upto, self._snapshot.index))

    def snapshot_path(self, index: int, term: int) -> Path:
        return self.snap_dir / snapshot_name(index, term)

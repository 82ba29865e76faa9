"""A replica's durable state: a checkpoint file plus an fsynced, CRC-framed event log.

* ``events.log`` - every event this replica applied (its own writes and received deltas), one
  CRC-framed record each (:mod:`x0tta6bl4.platform.durable`), appended and fsynced before the
  write is acknowledged to a client or a batch to a peer.
* ``checkpoint`` - the whole replica (state, applied events, clock, the unacknowledged delta
  log, peers' acknowledgements, the stability cut), written atomically (temp, fsync, rename);
  after it the event log is truncated. A crash between the two only replays events twice,
  which is harmless (events are deduplicated by dot).
* ``members.json`` - replicas that joined at run time (host:port by id), written atomically.

On start, a torn tail of the log (the last record cut short or damaged by a crash mid-append)
is truncated; damage before the last record, or a damaged checkpoint, is :class:`CorruptStore`
and the replica refuses to start: silently dropping acknowledged writes is worse than stopping.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from x0tta6bl4.platform.durable import (
    HEADER,
    atomic_write,
    ensure_dir,
    frame,
    fsync_dir,
    parse_frame_at,
    write_all,
)
from x0tta6bl4.sync.core import Checkpoint, Event, SyncError
from x0tta6bl4.sync.core.wire import (
    decode_checkpoint,
    decode_event,
    encode_checkpoint,
    encode_event,
)

log = structlog.get_logger(__name__)

CHECKPOINT_RECORD = 1
EVENT_RECORD = 2
_TYPES = frozenset({CHECKPOINT_RECORD, EVENT_RECORD})


class CorruptStore(Exception):
    """The data directory is damaged in a way that cannot be repaired safely."""


class Persistence:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.checkpoint_path = directory / "checkpoint"
        self.log_path = directory / "events.log"
        self.members_path = directory / "members.json"
        self._fd: int | None = None
        self.logged_since_checkpoint = 0
        self.truncated_tail_bytes = 0

    # -- start-up ------------------------------------------------------------------------

    def load(self) -> tuple[Checkpoint | None, list[Event], dict[str, str]]:
        """Read the checkpoint, the events logged after it and the joined members."""
        ensure_dir(self.directory)
        checkpoint = self._load_checkpoint()
        events = self._load_log()
        members: dict[str, str] = {}
        if self.members_path.exists():
            try:
                raw = json.loads(self.members_path.read_text())
                members = {str(k): str(v) for k, v in dict(raw).items()}
            except (ValueError, TypeError) as err:
                raise CorruptStore(f"{self.members_path}: {err}") from None
        self._fd = os.open(
            self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        fsync_dir(self.directory)
        self.logged_since_checkpoint = len(events)
        return checkpoint, events, members

    def _load_checkpoint(self) -> Checkpoint | None:
        if not self.checkpoint_path.exists():
            return None
        data = self.checkpoint_path.read_bytes()
        parsed = parse_frame_at(data, 0, _TYPES)
        if isinstance(parsed, str) or parsed[0] != CHECKPOINT_RECORD or parsed[2] != len(data):
            why = parsed if isinstance(parsed, str) else "not a single checkpoint record"
            raise CorruptStore(f"{self.checkpoint_path}: {why}; refusing to start")
        try:
            return decode_checkpoint(bytes(parsed[1]))
        except SyncError as err:
            raise CorruptStore(f"{self.checkpoint_path}: {err}; refusing to start") from None

    def _load_log(self) -> list[Event]:
        if not self.log_path.exists():
            return []
        data = self.log_path.read_bytes()
        events: list[Event] = []
        offset = 0
        while offset < len(data):
            parsed = parse_frame_at(data, offset, _TYPES)
            if isinstance(parsed, str):
                if self._is_tail(data, offset):
                    self._truncate(offset, len(data) - offset, parsed)
                    break
                raise CorruptStore(
                    f"{self.log_path}: {parsed} at byte {offset} of {len(data)}, before the "
                    "last record (not a torn write); refusing to start"
                )
            rtype, payload, end = parsed
            if rtype != EVENT_RECORD:
                raise CorruptStore(f"{self.log_path}: unexpected record type {rtype} at {offset}")
            try:
                events.append(decode_event(bytes(payload)))
            except SyncError as err:
                raise CorruptStore(f"{self.log_path}: record at byte {offset}: {err}") from None
            offset = end
        return events

    @staticmethod
    def _is_tail(data: bytes, offset: int) -> bool:
        """Whether the damaged record at ``offset`` is the last one (a torn append)."""
        if offset + HEADER.size > len(data):
            return True
        length: int = HEADER.unpack_from(data, offset)[0]
        return offset + HEADER.size + length >= len(data)

    def _truncate(self, offset: int, size: int, why: str) -> None:
        log.warning(
            "sync_log_torn_tail", path=str(self.log_path), offset=offset, bytes=size, reason=why
        )
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.truncated_tail_bytes = size

    # -- running -------------------------------------------------------------------------

    def append(self, events: list[Event]) -> int:
        """Append and fsync ``events``; return the bytes written."""
        if not events:
            return 0
        assert self._fd is not None, "load() first"
        data = b"".join(frame(EVENT_RECORD, encode_event(ev)) for ev in events)
        write_all(self._fd, data)
        os.fsync(self._fd)
        self.logged_since_checkpoint += len(events)
        return len(data)

    def write_checkpoint(self, cp: Checkpoint) -> int:
        """Write ``cp`` atomically, then empty the event log; return the checkpoint size."""
        assert self._fd is not None, "load() first"
        data = frame(CHECKPOINT_RECORD, encode_checkpoint(cp))
        atomic_write(self.checkpoint_path, data)
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.logged_since_checkpoint = 0
        return len(data)

    def write_members(self, members: dict[str, str]) -> None:
        atomic_write(self.members_path, json.dumps(members, sort_keys=True).encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

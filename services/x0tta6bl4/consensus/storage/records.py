"""Write-ahead log records: framing with a checksum, and the payload of each record type.

Records are framed by :mod:`x0tta6bl4.platform.durable` (``length | type | crc | payload``, the
CRC-32 covering length, type and payload, so a damaged length is detected as surely as a damaged
payload). Record types:

- ``ENTRY``: a Raft log entry (index, term, entry type, data). An entry at index *i* replaces
  every logged entry at index ≥ *i* (how a conflicting suffix is overwritten durably).
- ``HARD_STATE``: term, vote, commit. The last one in the log wins.
- ``SNAPSHOT``: a durable snapshot exists at (index, term); entries ≤ index are no longer needed.
- ``TRUNCATE``: every entry at index ≥ ``from_index`` is discarded.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from x0tta6bl4.platform.durable import frame, parse_frame_at

from ..core.messages import Entry, EntryType, HardState

_ENTRY = struct.Struct("<QQB")
_HARD_STATE = struct.Struct("<QQQ")
_SNAPSHOT = struct.Struct("<QQ")
_TRUNCATE = struct.Struct("<Q")


class RecordType(enum.IntEnum):
    """The kind of a WAL record."""

    ENTRY = 1
    HARD_STATE = 2
    SNAPSHOT = 3
    TRUNCATE = 4


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """A snapshot at ``index`` (whose entry had ``term``) is durable."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Truncate:
    """Entries at ``from_index`` and above are discarded."""

    from_index: int


Record = Entry | HardState | SnapshotMarker | Truncate
_TYPES = frozenset(int(t) for t in RecordType)


def encode_record(record: Record) -> bytes:
    """The framed bytes of ``record``."""
    match record:
        case Entry(term=term, index=index, data=data, type=etype):
            return frame(RecordType.ENTRY, _ENTRY.pack(index, term, etype.value) + data)
        case HardState(term=term, vote=vote, commit=commit):
            return frame(RecordType.HARD_STATE, _HARD_STATE.pack(term, vote, commit))
        case SnapshotMarker(index=index, term=term):
            return frame(RecordType.SNAPSHOT, _SNAPSHOT.pack(index, term))
        case Truncate(from_index=from_index):
            return frame(RecordType.TRUNCATE, _TRUNCATE.pack(from_index))


def decode_payload(rtype: int, payload: bytes) -> Record:
    """Parse a payload whose checksum already matched; raise ValueError if it is malformed."""
    if rtype == RecordType.ENTRY:
        if len(payload) < _ENTRY.size:
            raise ValueError("entry record too short")
        index, term, etype = _ENTRY.unpack_from(payload)
        return Entry(term=term, index=index, data=payload[_ENTRY.size :], type=EntryType(etype))
    if rtype == RecordType.HARD_STATE:
        term, vote, commit = _fixed(_HARD_STATE, payload, "hard state")
        return HardState(term=term, vote=vote, commit=commit)
    if rtype == RecordType.SNAPSHOT:
        index, term = _fixed(_SNAPSHOT, payload, "snapshot marker")
        return SnapshotMarker(index, term)
    if rtype == RecordType.TRUNCATE:
        (from_index,) = _fixed(_TRUNCATE, payload, "truncate")
        return Truncate(from_index)
    raise ValueError(f"unknown record type {rtype}")


def _fixed(layout: struct.Struct, payload: bytes, what: str) -> tuple[int, ...]:
    if len(payload) != layout.size:
        raise ValueError(f"{what} record has {len(payload)} bytes, expected {layout.size}")
    return tuple(layout.unpack(payload))


def parse_record_at(data: bytes | memoryview, offset: int) -> tuple[Record, int] | str:
    """The record starting at ``offset`` and the offset after it, or why there is none."""
    parsed = parse_frame_at(data, offset, _TYPES)
    if isinstance(parsed, str):
        return parsed
    rtype, payload, end = parsed
    try:
        return decode_payload(rtype, bytes(payload)), end
    except ValueError as exc:
        return str(exc)

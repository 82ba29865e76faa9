"""Segment files of the write-ahead log: naming, the segment header, and scanning.

A segment is ``<seq:016x>.wal``: a 20-byte header (magic, sequence number, CRC-32 of both)
followed by records. Scanning classifies the first bad byte of a segment:

- a **torn tail** when nothing valid follows it (a write cut short by a crash), or
- **corruption** when a valid record follows it (data that was durable has changed).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from x0tta6bl4.platform.durable import HEADER

from .records import Record, parse_record_at

MAGIC = b"X0WAL\x00v1"
_SEG_HEADER = struct.Struct("<8sQI")
SEGMENT_HEADER_SIZE = _SEG_HEADER.size
_NAME = re.compile(r"^([0-9a-f]{16})\.wal\Z")


def segment_name(seq: int) -> str:
    """The file name of segment ``seq``."""
    return f"{seq:016x}.wal"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """(seq, path) of every segment file in ``directory``, by seq."""
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(1), 16), p))
    return sorted(found)


def segment_header(seq: int) -> bytes:
    """The header bytes of segment ``seq``."""
    return _SEG_HEADER.pack(MAGIC, seq, zlib.crc32(MAGIC + seq.to_bytes(8, "little")))


@dataclass(slots=True)
class ScanResult:
    """Records of one segment up to ``valid_end``, and the first problem after it, if any.

    ``problem_offset`` is None when the whole file parsed. ``followed_by_valid`` tells whether
    a valid record starts somewhere after the problem (then it is corruption, not a torn tail).
    """

    records: list[tuple[int, Record]] = field(default_factory=list)
    valid_end: int = 0
    problem_offset: int | None = None
    problem: str = ""
    followed_by_valid: bool = False


def scan_segment(data: bytes, seq: int) -> ScanResult:
    """Parse a segment's bytes (see :class:`ScanResult`)."""
    result = ScanResult()
    if len(data) < SEGMENT_HEADER_SIZE:
        result.problem_offset, result.problem = 0, "incomplete segment header"
        return result
    magic, header_seq, crc = _SEG_HEADER.unpack_from(data)
    if magic != MAGIC or crc != zlib.crc32(MAGIC + header_seq.to_bytes(8, "little")):
        result.problem_offset, result.problem = 0, "bad segment header"
        result.followed_by_valid = _valid_record_after(data, 0)
        return result
    if header_seq != seq:
        result.problem_offset = 0
        result.problem = f"header says segment {header_seq}, file name says {seq}"
        result.followed_by_valid = True  # a misplaced file is never a torn write
        return result
    offset = SEGMENT_HEADER_SIZE
    while offset < len(data):
        parsed = parse_record_at(data, offset)
        if isinstance(parsed, str):
            result.problem_offset, result.problem = offset, parsed
            result.followed_by_valid = _valid_record_after(data, offset)
            break
        record, end = parsed
        result.records.append((offset, record))
        offset = end
    result.valid_end = offset if result.problem_offset is None else result.problem_offset
    return result


def _valid_record_after(data: bytes, bad_offset: int) -> bool:
    """Whether any complete, checksummed record starts after ``bad_offset``.

    Tries the position the bad record's own length points to first, then every byte.
    """
    candidates: list[int] = []
    if bad_offset + HEADER.size <= len(data):
        (length,) = struct.unpack_from("<I", data, bad_offset)
        candidates.append(bad_offset + HEADER.size + length)
    candidates.extend(range(bad_offset + 1, len(data) - HEADER.size + 1))
    return any(
        not isinstance(parse_record_at(data, p), str)
        for p in candidates
        if bad_offset < p <= len(data) - HEADER.size
    )

"""Durable-file helpers shared by services that keep data on disk (consensus, sync).

* :func:`write_all`, :func:`fsync_dir`, :func:`ensure_dir`, :func:`atomic_write`: making bytes,
  creations and renames durable;
* CRC-framed records: ``length:u32 | type:u8 | crc:u32 | payload`` (little endian), ``crc`` being
  CRC-32 (zlib) over the length, the type and the payload, so a damaged length is detected as
  surely as a damaged payload. :func:`frame` builds one, :func:`parse_frame_at` reads one.

The ``fsync`` and ``write`` callables are injectable so tests can count fsyncs or fail a write
at the OS boundary; they default to :func:`os.fsync` and :func:`os.write`.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Container
from pathlib import Path

FsyncFn = Callable[[int], None]
WriteFn = Callable[[int, bytes], int]

HEADER = struct.Struct("<IBI")
MAX_PAYLOAD = 1 << 30


def write_all(fd: int, data: bytes, write: WriteFn = os.write) -> None:
    """Write every byte of ``data`` (looping over short writes)."""
    while data:
        n = write(fd, data)
        if n <= 0:
            raise OSError(f"write returned {n}")
        data = data[n:]


def fsync_dir(directory: Path, fsync: FsyncFn = os.fsync) -> None:
    """Make creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, fsync: FsyncFn = os.fsync) -> None:
    """Create ``directory`` (and parents) durably if it does not exist."""
    if directory.is_dir():
        return
    missing: list[Path] = []
    p = directory
    while not p.exists():
        missing.append(p)
        p = p.parent
    directory.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent, fsync)


def atomic_write(
    path: Path, data: bytes, fsync: FsyncFn = os.fsync, write: WriteFn = os.write
) -> None:
    """Replace ``path`` with ``data`` all or nothing: temp file, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_all(fd, data, write)
        fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent, fsync)


def record_crc(length: int, rtype: int, payload: bytes | memoryview) -> int:
    """CRC-32 over the length, type and payload of a record."""
    return zlib.crc32(payload, zlib.crc32(struct.pack("<IB", length, rtype)))


def frame(rtype: int, payload: bytes) -> bytes:
    """A complete record: header followed by payload."""
    length = len(payload)
    return HEADER.pack(length, rtype, record_crc(length, rtype, payload)) + payload


def parse_frame_at(
    data: bytes | memoryview, offset: int, types: Container[int]
) -> tuple[int, memoryview, int] | str:
    """``(type, payload, end)`` of the record at ``offset``, or why there is none there."""
    if offset + HEADER.size > len(data):
        return "incomplete record header"
    length, rtype, crc = HEADER.unpack_from(data, offset)
    if length > MAX_PAYLOAD:
        return f"implausible record length {length}"
    if rtype not in types:
        return f"unknown record type {rtype}"
    start = offset + HEADER.size
    end = start + length
    if end > len(data):
        return f"record of {length} bytes extends past the end of the file"
    payload = memoryview(data)[start:end]
    if record_crc(length, rtype, payload) != crc:
        return "checksum mismatch"
    return rtype, payload, end

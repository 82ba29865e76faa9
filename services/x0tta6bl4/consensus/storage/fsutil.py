"""Small durable-file helpers shared by the write-ahead log and the snapshot files.

The ``fsync`` and ``write`` callables are injectable so tests can count fsyncs or fail a write
at the OS boundary; they default to :func:`os.fsync` and :func:`os.write`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

FsyncFn = Callable[[int], None]
WriteFn = Callable[[int, bytes], int]


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

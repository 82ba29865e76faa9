"""Errors of the durable storage adapters.

``StorageError`` means the operation did not become durable. After one is raised by a
write-ahead log, that log object refuses further use; reopening the directory recovers every
record that was synced before the failure.
"""

from __future__ import annotations

import errno
from pathlib import Path


class StorageError(Exception):
    """A disk operation failed; nothing of the failed operation is acknowledged."""


class StorageFull(StorageError):
    """The disk (or quota) is full (ENOSPC / EDQUOT). Retry after space returns."""


class CorruptLogError(StorageError):
    """The log holds damaged data that is not a torn tail; opening is refused.

    ``path`` and ``offset`` locate the first bad byte.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class SnapshotCorrupt(StorageError):
    """A snapshot file or a received snapshot failed verification."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def storage_error(exc: OSError, what: str) -> StorageError:
    """Wrap ``exc`` as :class:`StorageFull` for a full disk, else :class:`StorageError`."""
    cls = StorageFull if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StorageError
    return cls(f"{what}: {exc.strerror or exc}")

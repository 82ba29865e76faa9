"""Write-ahead log on a full disk: appends fail cleanly, nothing synced is lost.

Two variants:

- ``test_real_full_tmpfs_*`` mounts a tiny tmpfs (needs root and mount permission; skipped
  otherwise) and fills it for real: the kernel returns ENOSPC.
- ``test_injected_*`` fails writes/fsyncs through the WAL's injectable ``write``/``fsync``
  parameters, i.e. ONLY at the OS-call boundary (the rest of the code path is real), so the
  behaviour is also checked where mounting is not allowed.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from x0tta6bl4.consensus.core.messages import Entry, HardState
from x0tta6bl4.consensus.storage.errors import StorageError, StorageFull
from x0tta6bl4.consensus.storage.wal import Wal


def entry(i: int, size: int = 1000) -> Entry:
    return Entry(1, i, bytes([i % 251]) * size)


def _cannot_mount(reason: str) -> None:
    # CI runs as root and must exercise the real full disk; elsewhere the injected tests cover it.
    if os.environ.get("CI"):
        pytest.fail(f"cannot mount tmpfs in CI: {reason}")
    pytest.skip(f"cannot mount tmpfs: {reason}")


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _cannot_mount(str(exc))
    if done.returncode != 0:
        _cannot_mount(done.stderr.decode(errors="replace").strip())
    try:
        yield mnt
    finally:
        # Lazy unmount: still detaches if a failing test left a file open.
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def test_real_full_tmpfs_fails_cleanly_and_recovers_when_space_returns(
    tiny_tmpfs: Path,
) -> None:
    filler = tiny_tmpfs / "filler"
    filler.write_bytes(b"\0" * 96 * 1024)  # space we can give back later
    wal_dir = tiny_tmpfs / "wal"
    wal, _ = Wal.open(wal_dir, segment_bytes=32 * 1024)
    acknowledged: list[Entry] = []
    with pytest.raises(StorageFull):
        for i in range(1, 10_000):
            wal.append([entry(i)], HardState(term=1, commit=i - 1))
            wal.sync()
            acknowledged.append(entry(i))
    assert len(acknowledged) > 50
    with pytest.raises(StorageError, match="reopen"):
        wal.append([entry(len(acknowledged) + 1)])
    wal.close()

    filler.unlink()  # space returns
    wal, recovered = Wal.open(wal_dir, segment_bytes=32 * 1024)
    assert recovered.entries[: len(acknowledged)] == acknowledged
    assert recovered.torn_tail is None  # the failed write left no half record
    nxt = len(recovered.entries) + 1
    wal.append([entry(nxt)])
    wal.sync()
    wal.close()
    _, again = Wal.open(wal_dir, segment_bytes=32 * 1024)
    assert again.entries[-1] == entry(nxt)


class FailingWrite:
    """os.write that raises ENOSPC once ``budget`` bytes have been written (after a short
    write of the remaining budget, as the kernel does)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def __call__(self, fd: int, data: bytes) -> int:
        if self.budget <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = os.write(fd, data[: self.budget])
        self.budget -= n
        return n


def test_injected_enospc_during_append(tmp_path: Path) -> None:
    write = FailingWrite(budget=10**9)
    wal, _ = Wal.open(tmp_path, write=write, segment_bytes=16 * 1024)
    synced = [entry(i) for i in range(1, 31)]
    wal.append(synced, HardState(term=1, commit=30))
    wal.sync()
    write.budget = 1500  # the next batch runs out of space half-way through a record
    with pytest.raises(StorageFull, match="No space left"):
        wal.append([entry(i) for i in range(31, 40)])
    with pytest.raises(StorageError, match="reopen"):
        wal.sync()
    wal.close()
    wal, recovered = Wal.open(tmp_path, segment_bytes=16 * 1024)
    assert recovered.entries[:30] == synced
    assert recovered.hard_state == HardState(term=1, commit=30)
    assert recovered.torn_tail is None  # the half record was cut off at failure time
    wal.close()


def test_injected_enospc_while_creating_a_segment(tmp_path: Path) -> None:
    write = FailingWrite(budget=10**9)
    wal, _ = Wal.open(tmp_path, write=write, segment_bytes=4096)
    wal.append([entry(i) for i in range(1, 4)])
    wal.sync()
    write.budget = 0
    with pytest.raises(StorageFull):
        wal.append([entry(i) for i in range(4, 10)])
    wal.close()
    _, recovered = Wal.open(tmp_path, segment_bytes=4096)
    assert recovered.entries[:3] == [entry(i) for i in range(1, 4)]


def test_injected_fsync_failure_is_a_storage_error(tmp_path: Path) -> None:
    fail = {"on": False}

    def fsync(fd: int) -> None:
        if fail["on"]:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        os.fsync(fd)

    wal, _ = Wal.open(tmp_path, fsync=fsync)
    wal.append([entry(1)])
    wal.sync()
    wal.append([entry(2)])
    fail["on"] = True
    with pytest.raises(StorageError) as info:
        wal.sync()
    assert not isinstance(info.value, StorageFull)
    with pytest.raises(StorageError, match="reopen"):
        wal.append([entry(3)])
    wal.close()
    _, recovered = Wal.open(tmp_path)
    assert recovered.entries[:1] == [entry(1)]

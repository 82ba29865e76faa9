"""Compressed snapshot files: atomic durable writes, verification, chunked transfer."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from x0tta6bl4.consensus.core.kv import KvStateMachine
from x0tta6bl4.consensus.core.kv_commands import LeaseGrant, Put, encode_request
from x0tta6bl4.consensus.storage.errors import SnapshotCorrupt, StorageError
from x0tta6bl4.consensus.storage.snapshot_files import (
    SnapshotChunkError,
    SnapshotReceiver,
    SnapshotWriter,
    iter_file_chunks,
    latest_snapshot,
    list_snapshots,
    purge_snapshots,
    read_snapshot,
    remove_temp_files,
    verify_snapshot,
    write_snapshot,
)


def image(size: int = 200_000) -> bytes:
    rng = random.Random(7)
    words = [bytes(rng.choices(b"abcdefgh", k=8)) for _ in range(64)]
    return b"".join(rng.choice(words) for _ in range(size // 8))


def test_write_read_round_trip_reports_ratio(tmp_path: Path) -> None:
    calls: list[int] = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        os.fsync(fd)

    data = image()
    meta = write_snapshot(tmp_path, index=42, term=3, data=data, meta=b"conf", fsync=fsync)
    assert len(calls) == 2  # the file before the rename, the directory after it
    assert meta.path.name == "00000000000000000042-00000000000000000003.snap"
    assert (meta.index, meta.term, meta.raw_size, meta.meta) == (42, 3, len(data), b"conf")
    assert meta.compressed_size == meta.path.stat().st_size - meta.header_size
    assert meta.compression_ratio > 3
    got_meta, got = read_snapshot(meta.path)
    assert got == data and got_meta == meta
    assert list(tmp_path.iterdir()) == [meta.path]  # no temporary file left


def test_kv_state_machine_snapshot_through_a_file(tmp_path: Path) -> None:
    kv = KvStateMachine()
    kv.apply(encode_request(LeaseGrant(1, 30)))
    for i in range(500):
        kv.apply(encode_request(Put(f"cfg/{i:04d}".encode(), b"v" * 100, lease=i % 2)))
    meta = write_snapshot(tmp_path, index=600, term=2, data=kv.snapshot())
    _, data = read_snapshot(meta.path)
    assert KvStateMachine.from_snapshot(data).snapshot() == kv.snapshot()


@pytest.mark.parametrize("where", ["header", "body", "truncated", "extended"])
def test_damage_is_detected(tmp_path: Path, where: str) -> None:
    meta = write_snapshot(tmp_path, 1, 1, image())
    raw = bytearray(meta.path.read_bytes())
    if where == "header":
        raw[10] ^= 1
    elif where == "body":
        raw[meta.header_size + 100] ^= 1
    elif where == "truncated":
        del raw[-1]
    else:
        raw += b"\0"
    meta.path.write_bytes(bytes(raw))
    with pytest.raises(SnapshotCorrupt) as info:
        read_snapshot(meta.path)
    assert info.value.path == meta.path


def test_crash_before_commit_leaves_no_visible_snapshot(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), SnapshotWriter(tmp_path, 5, 1) as w:
        w.write(image(10_000))
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    # A writer that was never committed (process killed) leaves only a temp file.
    w = SnapshotWriter(tmp_path, 6, 1)
    w.write(b"partial")
    assert list_snapshots(tmp_path) == [] and latest_snapshot(tmp_path) is None
    assert len(remove_temp_files(tmp_path)) == 1
    w.abort()


def test_fsync_failure_does_not_install(tmp_path: Path) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(StorageError):
        write_snapshot(tmp_path, 1, 1, b"data", fsync=fsync)
    assert list(tmp_path.iterdir()) == []


def test_latest_and_purge(tmp_path: Path) -> None:
    for index in (10, 200, 30):
        write_snapshot(tmp_path, index, 1, b"x" * index)
    latest = latest_snapshot(tmp_path)
    assert latest is not None and latest.index == 200
    newest = list_snapshots(tmp_path)[-1]
    newest.write_bytes(b"garbage")  # a damaged newest snapshot is skipped
    latest = latest_snapshot(tmp_path)
    assert latest is not None and latest.index == 30
    removed = purge_snapshots(tmp_path, older_than=200)  # by name: the damaged 200 stays
    assert len(removed) == 2 and not any(p.exists() for p in removed)
    assert [p.name[:20] for p in list_snapshots(tmp_path)] == [f"{200:020d}"]


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 10**7])
def test_chunked_transfer_assembles_and_installs_atomically(
    tmp_path: Path, chunk_size: int
) -> None:
    data = image(20_000 if chunk_size == 1 else 200_000)
    sent = write_snapshot(tmp_path / "leader", 77, 5, data)
    receiver = SnapshotReceiver(tmp_path / "follower")
    for offset, chunk in iter_file_chunks(sent.path, chunk_size):
        assert list_snapshots(tmp_path / "follower") == []  # invisible until finalized
        receiver.write_chunk(offset, chunk)
    installed = receiver.finalize()
    assert (installed.index, installed.term) == (77, 5)
    assert installed.path.parent == tmp_path / "follower"
    assert read_snapshot(installed.path)[1] == data
    assert [p.name for p in (tmp_path / "follower").iterdir()] == [installed.path.name]


def test_receiver_accepts_retried_chunks_and_refuses_gaps(tmp_path: Path) -> None:
    sent = write_snapshot(tmp_path / "leader", 1, 1, image(50_000))
    chunks = list(iter_file_chunks(sent.path, 1000))
    receiver = SnapshotReceiver(tmp_path / "follower")
    assert receiver.write_chunk(*chunks[0]) == 1000
    assert receiver.write_chunk(*chunks[0]) == 1000  # retry of the same RPC
    with pytest.raises(SnapshotChunkError, match="gap"):
        receiver.write_chunk(*chunks[2])
    with pytest.raises(SnapshotChunkError, match="differs"):
        receiver.write_chunk(0, b"\xff" * 10)
    for offset, chunk in chunks[1:]:
        receiver.write_chunk(offset, chunk)
    verify_snapshot(receiver.finalize().path)


def test_receiver_refuses_a_corrupted_transfer(tmp_path: Path) -> None:
    sent = write_snapshot(tmp_path / "leader", 1, 1, image(50_000))
    receiver = SnapshotReceiver(tmp_path / "follower")
    for offset, chunk in iter_file_chunks(sent.path, 4096):
        damaged = bytes([chunk[0] ^ 1]) + chunk[1:] if offset == 8192 else chunk
        receiver.write_chunk(offset, damaged)
    with pytest.raises(SnapshotCorrupt):
        receiver.finalize()
    assert list((tmp_path / "follower").iterdir()) == []
    # An incomplete transfer is refused too.
    receiver = SnapshotReceiver(tmp_path / "follower")
    receiver.write_chunk(0, sent.path.read_bytes()[:5000])
    with pytest.raises(SnapshotCorrupt):
        receiver.finalize()
    assert list((tmp_path / "follower").iterdir()) == []

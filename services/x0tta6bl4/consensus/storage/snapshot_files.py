"""Compressed snapshot files, written atomically and verified on read; chunked transfer.

File layout: a header, then the zstd-compressed state-machine image. The header holds magic,
index, term, raw size, compressed size, SHA-256 of the compressed body, CRC-32 of the raw
image, an opaque ``meta`` blob (e.g. the membership at the snapshot) and a CRC-32 of the header.

Guarantees:

- **Atomic and durable.** A snapshot is written to a temporary file in the same directory,
  fsynced, renamed to ``<index:020d>-<term:020d>.snap`` and the directory fsynced. A crash
  leaves either no snapshot or a complete one (plus a temporary file that
  :func:`remove_temp_files` cleans up).
- **Verified.** :func:`read_snapshot` checks the header CRC, the body's SHA-256, the raw size
  and the raw CRC; any mismatch raises :class:`SnapshotCorrupt`.
- **Chunked.** :func:`iter_file_chunks` yields a snapshot file in pieces for an
  InstallSnapshot stream; :class:`SnapshotReceiver` assembles them into a temporary file and,
  after verifying the whole file, renames it into place atomically.

The compression ratio (raw / compressed) is :attr:`SnapshotMeta.compression_ratio`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import struct
import tempfile
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import zstandard

from x0tta6bl4.platform.durable import FsyncFn, WriteFn, ensure_dir, fsync_dir, write_all

from .errors import SnapshotCorrupt, StorageError, storage_error

MAGIC = b"X0SNAPv1"
_FIXED = struct.Struct("<8sQQQQ32sII")  # magic index term raw comp sha256 raw_crc meta_len
_CRC = struct.Struct("<I")
_NAME = re.compile(r"^(\d{20})-(\d{20})\.snap\Z")
_TEMP_PREFIX = ".snap-"
_TEMP_SUFFIX = ".tmp"
MAX_META = 1 << 20
DEFAULT_LEVEL = 3
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot file's header says, and where the file is."""

    path: Path
    index: int
    term: int
    raw_size: int
    compressed_size: int
    sha256: bytes
    raw_crc32: int
    meta: bytes
    header_size: int

    @property
    def compression_ratio(self) -> float:
        """Raw size over compressed size (1.0 for an empty image)."""
        return self.raw_size / self.compressed_size if self.compressed_size else 1.0

    @property
    def file_size(self) -> int:
        """Header plus compressed body."""
        return self.header_size + self.compressed_size


def snapshot_name(index: int, term: int) -> str:
    """The file name of the snapshot at (index, term); sorts by index."""
    return f"{index:020d}-{term:020d}.snap"


def _encode_header(
    index: int, term: int, *, raw: int, comp: int, sha: bytes, raw_crc: int, meta: bytes
) -> bytes:
    fixed = _FIXED.pack(MAGIC, index, term, raw, comp, sha, raw_crc, len(meta)) + meta
    return fixed + _CRC.pack(zlib.crc32(fixed))


def _parse_header(path: Path, data: bytes) -> SnapshotMeta:
    if len(data) < _FIXED.size:
        raise SnapshotCorrupt(path, "file too short for a snapshot header")
    magic, index, term, raw, comp, sha, raw_crc, meta_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotCorrupt(path, "not a snapshot file (bad magic)")
    if meta_len > MAX_META:
        raise SnapshotCorrupt(path, f"implausible metadata length {meta_len}")
    end = _FIXED.size + meta_len
    if len(data) < end + _CRC.size:
        raise SnapshotCorrupt(path, "truncated snapshot header")
    (crc,) = _CRC.unpack_from(data, end)
    if crc != zlib.crc32(data[:end]):
        raise SnapshotCorrupt(path, "snapshot header checksum mismatch")
    return SnapshotMeta(
        path, index, term, raw, comp, sha, raw_crc, data[_FIXED.size : end], end + _CRC.size
    )


def read_snapshot_meta(path: Path) -> SnapshotMeta:
    """Parse and check the header of a snapshot file (the body is not verified)."""
    try:
        with path.open("rb") as f:
            head = f.read(_FIXED.size + MAX_META + _CRC.size)
    except OSError as exc:
        raise storage_error(exc, f"reading snapshot {path}") from exc
    return _parse_header(path, head)


class SnapshotWriter:
    """Streams an image into a new snapshot file; :meth:`commit` makes it durable and visible.

    Use as a context manager: leaving the block by an exception removes the temporary file.
    """

    def __init__(
        self,
        directory: Path | str,
        index: int,
        term: int,
        *,
        meta: bytes = b"",
        level: int = DEFAULT_LEVEL,
        fsync: FsyncFn = os.fsync,
        write: WriteFn = os.write,
    ) -> None:
        if len(meta) > MAX_META:
            raise ValueError(f"snapshot metadata of {len(meta)} bytes exceeds {MAX_META}")
        self.directory = Path(directory)
        self.index, self.term, self.meta = index, term, meta
        self._fsync, self._write = fsync, write
        self._compressor = zstandard.ZstdCompressor(level=level).compressobj()
        self._sha = hashlib.sha256()
        self._raw_crc = 0
        self._raw_size = 0
        self._comp_size = 0
        self._fd = -1
        self._tmp: Path | None = None
        try:
            ensure_dir(self.directory, fsync)
            fd, name = tempfile.mkstemp(
                prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory
            )
            self._fd, self._tmp = fd, Path(name)
            placeholder = _encode_header(
                index, term, raw=0, comp=0, sha=bytes(32), raw_crc=0, meta=meta
            )
            write_all(fd, placeholder, write)
        except OSError as exc:
            self.abort()
            raise storage_error(exc, f"creating snapshot in {self.directory}") from exc

    def write(self, data: bytes) -> None:
        """Append raw image bytes (compressed on the fly)."""
        self._raw_size += len(data)
        self._raw_crc = zlib.crc32(data, self._raw_crc)
        self._emit(self._compressor.compress(data))

    def _emit(self, out: bytes) -> None:
        if not out:
            return
        try:
            write_all(self._fd, out, self._write)
        except OSError as exc:
            self.abort()
            raise storage_error(exc, f"writing snapshot in {self.directory}") from exc
        self._sha.update(out)
        self._comp_size += len(out)

    def commit(self) -> SnapshotMeta:
        """Finish, fsync, rename into place, fsync the directory; returns the header."""
        assert self._tmp is not None and self._fd >= 0, "snapshot writer already finished"
        self._emit(self._compressor.flush())
        header = _encode_header(
            self.index,
            self.term,
            raw=self._raw_size,
            comp=self._comp_size,
            sha=self._sha.digest(),
            raw_crc=self._raw_crc,
            meta=self.meta,
        )
        final = self.directory / snapshot_name(self.index, self.term)
        try:
            os.pwrite(self._fd, header, 0)
            self._fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._tmp, final)
            self._tmp = None
            fsync_dir(self.directory, self._fsync)
        except OSError as exc:
            self.abort()
            raise storage_error(exc, f"committing snapshot {final}") from exc
        return _parse_header(final, header)

    def abort(self) -> None:
        """Discard the temporary file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


def write_snapshot(
    directory: Path | str,
    index: int,
    term: int,
    data: bytes,
    *,
    meta: bytes = b"",
    level: int = DEFAULT_LEVEL,
    fsync: FsyncFn = os.fsync,
) -> SnapshotMeta:
    """Write a whole image as a durable snapshot file."""
    with SnapshotWriter(directory, index, term, meta=meta, level=level, fsync=fsync) as w:
        for i in range(0, len(data), _READ_CHUNK):
            w.write(data[i : i + _READ_CHUNK])
        return w.commit()


def _verify_body(meta: SnapshotMeta, collect: bool) -> bytes:
    """Check checksum, sizes and raw CRC of a snapshot; return the image if ``collect``."""
    path = meta.path
    sha = hashlib.sha256()
    raw_crc = 0
    raw_size = 0
    parts: list[bytes] = []
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        with path.open("rb") as f:
            f.seek(meta.header_size)
            remaining = meta.compressed_size
            while remaining:
                block = f.read(min(_READ_CHUNK, remaining))
                if not block:
                    raise SnapshotCorrupt(path, "file is shorter than its header says")
                remaining -= len(block)
                sha.update(block)
                out = decompressor.decompress(block)
                raw_crc = zlib.crc32(out, raw_crc)
                raw_size += len(out)
                if raw_size > meta.raw_size:
                    raise SnapshotCorrupt(path, "image is larger than its header says")
                if collect:
                    parts.append(out)
            if f.read(1):
                raise SnapshotCorrupt(path, "file is longer than its header says")
    except zstandard.ZstdError as exc:
        raise SnapshotCorrupt(path, f"decompression failed: {exc}") from exc
    except OSError as exc:
        raise storage_error(exc, f"reading snapshot {path}") from exc
    if sha.digest() != meta.sha256:
        raise SnapshotCorrupt(path, "compressed body checksum mismatch")
    if raw_size != meta.raw_size or raw_crc != meta.raw_crc32:
        raise SnapshotCorrupt(path, "decompressed image does not match its size/checksum")
    return b"".join(parts)


def read_snapshot(path: Path | str) -> tuple[SnapshotMeta, bytes]:
    """Read and fully verify a snapshot file; returns its header and the raw image."""
    meta = read_snapshot_meta(Path(path))
    return meta, _verify_body(meta, collect=True)


def verify_snapshot(path: Path | str) -> SnapshotMeta:
    """Fully verify a snapshot file without keeping the image in memory."""
    meta = read_snapshot_meta(Path(path))
    _verify_body(meta, collect=False)
    return meta


def snapshot_index(path: Path) -> int:
    """The index in a snapshot file's name (as :func:`list_snapshots` lists them)."""
    match = _NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a snapshot file name")
    return int(match.group(1))


def list_snapshots(directory: Path | str) -> list[Path]:
    """Snapshot files in ``directory`` by index, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if _NAME.match(p.name))


def latest_snapshot(directory: Path | str) -> SnapshotMeta | None:
    """The newest snapshot whose header is intact, or None (a damaged one is skipped)."""
    for path in reversed(list_snapshots(directory)):
        try:
            return read_snapshot_meta(path)
        except SnapshotCorrupt:
            continue
    return None


def remove_temp_files(directory: Path | str) -> list[Path]:
    """Delete temporary files left by interrupted writes or transfers."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = [
        p
        for p in directory.iterdir()
        if p.name.startswith(_TEMP_PREFIX) and p.name.endswith(_TEMP_SUFFIX)
    ]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def purge_snapshots(
    directory: Path | str, *, older_than: int, fsync: FsyncFn = os.fsync
) -> list[Path]:
    """Delete the snapshot files of an index below ``older_than`` (known from their names,
    no header is read); returns the deleted paths."""
    victims = [p for p in list_snapshots(directory) if snapshot_index(p) < older_than]
    for p in victims:
        p.unlink(missing_ok=True)
    if victims:
        fsync_dir(Path(directory), fsync)
    return victims


def iter_file_chunks(path: Path | str, chunk_size: int) -> Generator[tuple[int, bytes]]:
    """(offset, bytes) pieces of a snapshot file, header first, for an InstallSnapshot stream."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    offset = 0
    with Path(path).open("rb") as f:
        while block := f.read(chunk_size):
            yield offset, block
            offset += len(block)


class SnapshotChunkError(StorageError):
    """A chunk arrived out of order (a gap) or contradicts data already received."""


class SnapshotReceiver:
    """Assembles a snapshot streamed in chunks; :meth:`finalize` verifies and installs it.

    Chunks must arrive in order. A repeated chunk (a retried RPC) that matches what was
    received is accepted and ignored; :meth:`write_chunk` returns the next expected offset.
    """

    def __init__(self, directory: Path | str, *, fsync: FsyncFn = os.fsync) -> None:
        self.directory = Path(directory)
        self._fsync = fsync
        try:
            ensure_dir(self.directory, fsync)
            fd, name = tempfile.mkstemp(
                prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory
            )
        except OSError as exc:
            raise storage_error(exc, f"receiving snapshot in {self.directory}") from exc
        self._fd: int = fd
        self._tmp: Path | None = Path(name)
        self.received = 0

    def write_chunk(self, offset: int, data: bytes) -> int:
        """Add the bytes at ``offset``; returns the next offset expected."""
        if self._tmp is None:
            raise SnapshotChunkError("snapshot receiver already finished")
        if offset > self.received:
            raise SnapshotChunkError(
                f"chunk at offset {offset} leaves a gap: received {self.received} bytes"
            )
        if offset < self.received:
            overlap = min(len(data), self.received - offset)
            if os.pread(self._fd, overlap, offset) != data[:overlap]:
                raise SnapshotChunkError(f"chunk at offset {offset} differs from earlier data")
            data, offset = data[overlap:], offset + overlap
        if data:
            try:
                os.pwrite(self._fd, data, offset)
            except OSError as exc:
                self.abort()
                raise storage_error(exc, f"receiving snapshot in {self.directory}") from exc
            self.received += len(data)
        return self.received

    def finalize(self) -> SnapshotMeta:
        """Verify the received file and install it durably; returns its header.

        On failure the temporary file is removed and :class:`SnapshotCorrupt` (or
        :class:`StorageError`) is raised; nothing is installed.
        """
        if self._tmp is None:
            raise SnapshotChunkError("snapshot receiver already finished")
        tmp = self._tmp
        try:
            self._fsync(self._fd)
            meta = read_snapshot_meta(tmp)
            _verify_body(meta, collect=False)
            final = self.directory / snapshot_name(meta.index, meta.term)
            os.close(self._fd)
            self._fd = -1
            os.replace(tmp, final)
            self._tmp = None
            fsync_dir(self.directory, self._fsync)
        except SnapshotCorrupt:
            self.abort()
            raise
        except OSError as exc:
            self.abort()
            raise storage_error(exc, f"installing snapshot in {self.directory}") from exc
        return dataclasses.replace(meta, path=final)

    def abort(self) -> None:
        """Discard everything received."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

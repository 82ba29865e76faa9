"""Byte-level reading and writing shared by the CRDT codec (:mod:`.codec`) and the replication
wire format (:mod:`.wire`): unsigned LEB128 varints (canonical: the shortest form only),
length-prefixed bytes and UTF-8 text. Every failure is a :class:`DecodeError` naming the field
and the byte offset where decoding stopped."""

from __future__ import annotations

from .errors import DecodeError

MAX_VARINT_BYTES = 10
MAX_UINT64 = (1 << 64) - 1


class ByteWriter:
    __slots__ = ("buf",)

    def __init__(self, prefix: bytes = b"") -> None:
        self.buf = bytearray(prefix)

    def varint(self, n: int) -> None:
        if 0 <= n < 0x80:  # one byte: most counts, indexes and counters
            self.buf.append(n)
            return
        if n < 0:
            raise ValueError("varint must be >= 0")
        while n >= 0x80:
            self.buf.append((n & 0x7F) | 0x80)
            n >>= 7
        self.buf.append(n)

    def raw(self, b: bytes) -> None:
        """``b`` with its length in front."""
        self.varint(len(b))
        self.buf += b

    def text(self, s: str) -> None:
        self.raw(s.encode("utf-8"))


class ByteReader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, field: str, reason: str) -> DecodeError:
        return DecodeError(field, f"{reason} (at byte {self.pos})")

    def u8(self, field: str) -> int:
        if self.pos >= len(self.data):
            raise self.fail(field, "truncated input")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def varint(self, field: str, maximum: int = MAX_UINT64) -> int:
        n = shift = 0
        for _ in range(MAX_VARINT_BYTES):
            b = self.u8(field)
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                if n > maximum:
                    raise self.fail(field, f"value {n} exceeds {maximum}")
                if b == 0 and shift:
                    raise self.fail(field, "non-canonical varint")
                return n
            shift += 7
        raise self.fail(field, f"varint longer than {MAX_VARINT_BYTES} bytes")

    def count(self, field: str) -> int:
        """An element count: each element takes at least one byte, so bound it by what is left."""
        return self.varint(field, maximum=len(self.data) - self.pos)

    def raw(self, field: str, maximum: int = MAX_UINT64) -> bytes:
        """Length-prefixed bytes of at most ``maximum`` (and at most what is left)."""
        n = self.varint(field, maximum=min(maximum, len(self.data) - self.pos))
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def text(self, field: str, maximum: int) -> str:
        """Length-prefixed UTF-8 of at most ``maximum`` bytes."""
        b = self.raw(field, maximum)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(field, "invalid utf-8") from None

    def end(self, what: str) -> None:
        if self.pos != len(self.data):
            raise self.fail(what, f"{len(self.data) - self.pos} trailing bytes")

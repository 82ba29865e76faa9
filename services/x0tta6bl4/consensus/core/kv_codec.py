"""A tiny deterministic binary codec: unsigned LEB128 varints and length-prefixed bytes.

Used for command payloads, results and snapshots. The same values always encode to the same
bytes. :class:`Reader` never reads past its buffer: any malformed input raises
:class:`~.kv_errors.DecodeError` naming the field being read and the byte offset.
"""

from __future__ import annotations

from .kv_errors import DecodeError

_MAX_VARINT_BYTES = 10  # enough for 64-bit values
MAX_U64 = (1 << 64) - 1


class Writer:
    """Appends encoded values to an internal buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def uint(self, value: int) -> Writer:
        """Append ``value`` (0 ≤ value < 2**64) as a varint."""
        if value < 0 or value > MAX_U64:
            raise ValueError(f"varint out of range: {value}")
        buf = self._buf
        while value >= 0x80:
            buf.append((value & 0x7F) | 0x80)
            value >>= 7
        buf.append(value)
        return self

    def boolean(self, value: bool) -> Writer:
        """Append ``value`` as one byte 0 or 1."""
        self._buf.append(1 if value else 0)
        return self

    def blob(self, value: bytes) -> Writer:
        """Append a varint length followed by the bytes."""
        self.uint(len(value))
        self._buf += value
        return self

    def text(self, value: str) -> Writer:
        """Append a UTF-8 string as a blob."""
        return self.blob(value.encode("utf-8"))

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._buf)


class Reader:
    """Reads values written by :class:`Writer`, with bounds checks."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def _fail(self, field: str, problem: str) -> DecodeError:
        return DecodeError(field, f"{problem} at byte offset {self._pos}")

    def uint(self, field: str) -> int:
        """Read a varint; ``field`` names it in errors."""
        result = 0
        shift = 0
        data = self._data
        for i in range(_MAX_VARINT_BYTES):
            if self._pos >= len(data):
                raise self._fail(field, "truncated varint")
            byte = data[self._pos]
            self._pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if i > 0 and byte == 0:
                    raise self._fail(field, "non-canonical varint")
                if result > MAX_U64:
                    raise self._fail(field, "varint exceeds 64 bits")
                return result
            shift += 7
        raise self._fail(field, "varint longer than 10 bytes")

    def boolean(self, field: str) -> bool:
        """Read a boolean byte (0 or 1 only)."""
        if self._pos >= len(self._data):
            raise self._fail(field, "truncated boolean")
        byte = self._data[self._pos]
        if byte > 1:
            raise self._fail(field, f"invalid boolean byte {byte}")
        self._pos += 1
        return byte == 1

    def blob(self, field: str) -> bytes:
        """Read a length-prefixed byte string."""
        size = self.uint(field)
        end = self._pos + size
        if end > len(self._data):
            raise self._fail(field, f"length {size} exceeds the remaining input")
        value = bytes(self._data[self._pos : end])
        self._pos = end
        return value

    def text(self, field: str) -> str:
        """Read a UTF-8 string."""
        raw = self.blob(field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(field, "invalid UTF-8") from None

    def count(self, field: str, limit: int) -> int:
        """Read a collection length and refuse more than ``limit`` items."""
        n = self.uint(field)
        if n > len(self._data) - self._pos:
            raise self._fail(field, f"{n} items cannot fit in the remaining input")
        if n > limit:
            raise self._fail(field, f"{n} items exceed the limit of {limit}")
        return n

    def expect_end(self) -> None:
        """Raise unless every byte has been consumed."""
        if self._pos != len(self._data):
            raise self._fail("command", f"{len(self._data) - self._pos} trailing bytes")

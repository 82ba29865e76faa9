"""Protocol-buffer wire encoding by hand, and gRPC message framing.

The fuzz tier builds request bytes itself so it can send what no protobuf library would
serialise: integers past their field's range (any 64-bit varint goes in any varint field),
invalid UTF-8 in a ``string``, unknown fields and wire types, unmatched groups, nesting far
past protobuf's recursion limit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
U64 = (1 << 64) - 1
MAX_FIELD_NUMBER = (1 << 29) - 1


def varint(n: int) -> bytes:
    """``n`` as a base-128 varint; a negative ``n`` as its 64-bit two's complement (10 bytes),
    as protobuf encodes a negative int32/int64."""
    n &= U64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    """The sint64 encoding of ``n`` (taken modulo 2^64 first, like a C int64)."""
    n &= U64
    signed = n - (1 << 64) if n >> 63 else n
    return ((signed << 1) ^ (signed >> 63)) & U64


def key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def field_varint(number: int, value: int) -> bytes:
    return key(number, VARINT) + varint(value)


def field_len(number: int, payload: bytes) -> bytes:
    return key(number, LEN) + varint(len(payload)) + payload


def field_fixed32(number: int, value: int) -> bytes:
    return key(number, I32) + struct.pack("<I", value & 0xFFFFFFFF)


def field_fixed64(number: int, value: int) -> bytes:
    return key(number, I64) + struct.pack("<Q", value & U64)


def field_float(number: int, value: float) -> bytes:
    return key(number, I32) + struct.pack("<f", value)


def field_double(number: int, value: float) -> bytes:
    return key(number, I64) + struct.pack("<d", value)


def field_group(number: int, body: bytes) -> bytes:
    return key(number, SGROUP) + body + key(number, EGROUP)


def nested(levels: int, number: int = 1, core: bytes = b"") -> bytes:
    """``levels`` length-delimited fields ``number``, each the only content of the next."""
    body = core
    for _ in range(levels):
        body = field_len(number, body)
    return body


def duration(seconds: int, nanos: int) -> bytes:
    """A google.protobuf.Duration / Timestamp body (seconds int64 = 1, nanos int32 = 2)."""
    return field_varint(1, seconds) + field_varint(2, nanos)


def frames(messages: Iterable[bytes]) -> bytes:
    """Messages in gRPC's framing (flag byte 0, 4-byte big-endian length, message)."""
    return b"".join(b"\x00" + struct.pack(">I", len(m)) + m for m in messages)


def unframe(data: bytes) -> list[bytes]:
    """The messages of :func:`frames` output; ValueError if it is not such output."""
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5 or data[pos] != 0:
            raise ValueError(f"bad gRPC frame at byte {pos}")
        (length,) = struct.unpack(">I", data[pos + 1 : pos + 5])
        end = pos + 5 + length
        if end > len(data):
            raise ValueError(f"truncated gRPC frame at byte {pos}")
        out.append(data[pos + 5 : end])
        pos = end
    return out

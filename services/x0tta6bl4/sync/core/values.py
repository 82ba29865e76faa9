"""User-visible scalar values (register values, set elements, map keys) and their limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .errors import InvalidOperation

Scalar: TypeAlias = bytes | str | int
"""A register value or set element. ``bool`` is rejected: it would silently equal 0/1."""

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits enforced on every locally applied operation."""

    max_value_bytes: int = 64 * 1024
    max_key_bytes: int = 512
    max_increment: int = INT_MAX


DEFAULT_LIMITS = Limits()


def check_scalar(value: object, field: str, limits: Limits = DEFAULT_LIMITS) -> Scalar:
    if isinstance(value, bool) or not isinstance(value, bytes | str | int):
        raise InvalidOperation(field, f"unsupported value type {type(value).__name__}")
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise InvalidOperation(field, "integer outside the signed 64-bit range")
        return value
    if isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidOperation(field, "string is not valid unicode") from None
    else:
        size = len(value)
    if size > limits.max_value_bytes:
        raise InvalidOperation(field, f"value of {size} bytes exceeds {limits.max_value_bytes}")
    return value


def check_key(key: object, field: str = "key", limits: Limits = DEFAULT_LIMITS) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidOperation(field, "key must be a non-empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidOperation(field, "key is not valid unicode") from None
    if size > limits.max_key_bytes:
        raise InvalidOperation(field, f"key of {size} bytes exceeds {limits.max_key_bytes}")
    return key


def scalar_sort_key(v: Scalar) -> tuple[int, Scalar]:
    """A total order across the three scalar kinds (for deterministic output)."""
    return (0 if isinstance(v, int) else 1 if isinstance(v, str) else 2, v)

"""Key-range permissions of the consensus store: who may read or write which keys.

Pure: the permission set is data (``data.x0tta6bl4.kv.permissions`` in the OPA sidecar, see
``platform/rego/x0tta6bl4/kv/data.json``), parsed once by :func:`parse_permissions` and then
asked, per request, whether a caller's SPIFFE ID may read or write a key or a whole key range.
Each grant names caller globs (``*`` matches within one path segment of the SPIFFE ID), a key
prefix or a ``[start, end)`` range, and ``read``, ``write`` or ``readwrite``. Default deny: a
range is allowed only if the grants of the caller with that access cover all of it, so a
range that starts in an allowed prefix and runs past it is refused whole. The grants of each
caller are compiled once into merged intervals and cached.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Access(enum.Flag):
    READ = 1
    WRITE = 2
    READWRITE = READ | WRITE


_ACCESS = {"read": Access.READ, "write": Access.WRITE, "readwrite": Access.READWRITE}


def prefix_end(prefix: bytes) -> bytes | None:
    """The first key after every key starting with ``prefix`` (``None``: no end)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class Grant:
    callers: tuple[re.Pattern[str], ...]
    start: bytes
    end: bytes | None  # exclusive; None = to the end of the key space
    access: Access

    def applies_to(self, caller: str) -> bool:
        return any(p.fullmatch(caller) for p in self.callers)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.split("*")))


def _text(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name, "")
    if not isinstance(value, str):
        raise ValueError(f"{where}.{name}: must be a string, got {value!r}")
    return value


def parse_permissions(data: Any) -> tuple[Grant, ...]:
    """Grants from the permission data (a list of objects); ``ValueError`` naming the item."""
    if not isinstance(data, list):
        raise ValueError(f"permissions: must be a list of grants, got {type(data).__name__}")
    grants = []
    for i, item in enumerate(data):
        where = f"permissions[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: must be an object")
        callers = item.get("callers")
        if (
            not isinstance(callers, list)
            or not callers
            or not all(isinstance(c, str) and c for c in callers)
        ):
            raise ValueError(f"{where}.callers: must be a non-empty list of SPIFFE ID globs")
        access = _ACCESS.get(_text(item, "access", where))
        if access is None:
            raise ValueError(f"{where}.access: must be one of {sorted(_ACCESS)}")
        if "prefix" in item:
            start = _text(item, "prefix", where).encode()
            end = prefix_end(start)
        elif "range_start" in item:
            start = _text(item, "range_start", where).encode()
            raw_end = _text(item, "range_end", where).encode()
            end = raw_end or None
            if end is not None and end <= start:
                raise ValueError(f"{where}.range_end: must be after range_start")
        else:
            raise ValueError(f"{where}: set prefix, or range_start (and range_end)")
        grants.append(Grant(tuple(map(_glob, callers)), start, end, access))
    return tuple(grants)


_INF = b"\xff" * 65536  # after every key (X0 keys are at most 1.5 KiB by default; 64 KiB max)


class _Intervals:
    """Merged, sorted ``[start, end)`` intervals."""

    __slots__ = ("ends", "starts")

    def __init__(self, spans: Sequence[tuple[bytes, bytes]]) -> None:
        merged: list[list[bytes]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def covers(self, start: bytes, end: bytes) -> bool:
        i = bisect.bisect_right(self.starts, start) - 1
        return i >= 0 and self.ends[i] >= end and self.starts[i] <= start


@dataclass(frozen=True, slots=True)
class Denial:
    """Why a request was refused: the key or range and the permission missing."""

    what: str
    access: Access

    def message(self, caller: str) -> str:
        need = "read" if self.access is Access.READ else "write"
        return f"{caller} may not {need} {self.what} (key-range permissions of consensus)"


def describe(start: bytes, end: bytes | None) -> str:
    """``key "a"``, ``range ["a", "b")`` or ``prefix "a"``, for messages."""
    if end is not None and end == start + b"\x00":
        return f"key {start!r}"
    if end == prefix_end(start):
        return f"prefix {start!r}"
    return f"range [{start!r}, {end!r})"


class Permissions:
    """A loaded permission set, answering per caller from compiled intervals."""

    def __init__(self, grants: Sequence[Grant], version: str = "") -> None:
        self.grants = tuple(grants)
        self.version = version
        self._compiled: dict[str, dict[Access, _Intervals]] = {}

    def _for(self, caller: str) -> dict[Access, _Intervals]:
        compiled = self._compiled.get(caller)
        if compiled is None:
            mine = [g for g in self.grants if g.applies_to(caller)]
            compiled = {
                access: _Intervals(
                    [
                        (g.start, g.end if g.end is not None else _INF)
                        for g in mine
                        if access in g.access
                    ]
                )
                for access in (Access.READ, Access.WRITE)
            }
            if len(self._compiled) > 10_000:
                self._compiled.clear()
            self._compiled[caller] = compiled
        return compiled

    def check(self, caller: str, access: Access, start: bytes, end: bytes | None) -> Denial | None:
        """``None`` if ``caller`` has ``access`` on all of ``[start, end)``."""
        if self._for(caller)[access].covers(start, end if end is not None else _INF):
            return None
        return Denial(describe(start, end), access)

    def check_key(self, caller: str, access: Access, key: bytes) -> Denial | None:
        return self.check(caller, access, key, key + b"\x00")

    def check_prefix(self, caller: str, access: Access, prefix: bytes) -> Denial | None:
        return self.check(caller, access, prefix, prefix_end(prefix))

"""Which registered route an HTTP request is for: path patterns, methods, and the 404/405 rule.

A pattern is a path of literal segments and ``{name}`` segments (``/v1/bundles/{name}``); a
``{name}`` segment matches one non-empty path segment and is handed to the handler as a path
parameter. Literal patterns win over ones with parameters; among those, the first registered
wins. A path no pattern matches is *unmatched* (404); a path some pattern matches but not with
this method is *not allowed* (405) with the methods that pattern does allow.

This module is pure (no I/O): the router in :mod:`.http_routes` asks it, and its unit tests
script registrations and lookups.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Generic, TypeVar

V = TypeVar("V")

_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")
_LITERAL = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%-]+\Z")
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@dataclasses.dataclass(frozen=True, slots=True)
class Match(Generic[V]):
    """A request's route: its pattern, the value registered for (pattern, method), and the
    path parameters."""

    pattern: str
    value: V
    params: Mapping[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class NotAllowed:
    """The path matches ``pattern``, which does not take this method; ``allowed`` are the
    methods it takes (for the ``Allow`` header), sorted."""

    pattern: str
    allowed: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Unmatched:
    """No pattern matches the path."""


@dataclasses.dataclass(slots=True)
class _Pattern(Generic[V]):
    pattern: str
    segments: tuple[str, ...]
    params: tuple[str | None, ...]  # the parameter name of each segment, None for a literal
    by_method: dict[str, V]


def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("/")[1:]) if path != "/" else ()


def _parse(pattern: str) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    segments = _split(pattern)
    params: list[str | None] = []
    for segment in segments:
        param = _PARAM.match(segment)
        if param is not None:
            params.append(param.group(1))
        elif _LITERAL.match(segment):
            params.append(None)
        else:
            raise ValueError(
                f"route pattern {pattern!r}: segment {segment!r} is neither a literal path "
                "segment nor a whole-segment {name} parameter"
            )
    names = [p for p in params if p is not None]
    if len(set(names)) != len(names):
        raise ValueError(f"route pattern {pattern!r} names a parameter twice")
    return segments, tuple(params)


class RouteTable(Generic[V]):
    """(pattern, method) → value (the router's routes); ``match`` finds a request's."""

    def __init__(self) -> None:
        self._literal: dict[str, _Pattern[V]] = {}
        self._templated: list[_Pattern[V]] = []

    def add(self, method: str, pattern: str, value: V) -> None:
        """Register ``value`` for ``method pattern``; ValueError if the pattern is malformed,
        the method is not one of :data:`METHODS`, or the pair is registered already."""
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(sorted(METHODS))}")
        segments, params = _parse(pattern)
        entry = self._find(pattern)
        if entry is None:
            entry = _Pattern(pattern, segments, params, {})
            if any(p is not None for p in params):
                self._templated.append(entry)
            else:
                self._literal[pattern] = entry
        if method in entry.by_method:
            raise ValueError(f"route {method} {pattern} is registered already")
        entry.by_method[method] = value

    def _find(self, pattern: str) -> _Pattern[V] | None:
        if pattern in self._literal:
            return self._literal[pattern]
        return next((t for t in self._templated if t.pattern == pattern), None)

    def match(self, method: str, path: str) -> Match[V] | NotAllowed | Unmatched:
        """The route for ``method path`` (the path without its query string)."""
        literal = self._literal.get(path)
        if literal is not None:
            return _pick(literal, method, {})
        segments = _split(path)
        for entry in self._templated:
            params = _bind(entry, segments)
            if params is not None:
                return _pick(entry, method, params)
        return Unmatched()


def _bind(entry: _Pattern[V], segments: tuple[str, ...]) -> dict[str, str] | None:
    if len(segments) != len(entry.segments):
        return None
    params: dict[str, str] = {}
    for want, name, got in zip(entry.segments, entry.params, segments, strict=True):
        if name is None:
            if got != want:
                return None
        elif not got:
            return None
        else:
            params[name] = got
    return params


def _pick(entry: _Pattern[V], method: str, params: dict[str, str]) -> Match[V] | NotAllowed:
    value = entry.by_method.get(method)
    if value is None:
        return NotAllowed(entry.pattern, tuple(sorted(entry.by_method)))
    return Match(entry.pattern, value, params)

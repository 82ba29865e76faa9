"""Errors raised by the sync core.

Every rejection of caller- or peer-supplied input is an :class:`InvalidOperation` naming the
offending field, so the gRPC adapter can map it to ``INVALID_ARGUMENT`` verbatim. A failed
operation never leaves partial state behind: the core works on immutable values and only
publishes a new state after every check has passed.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base class of all sync-core errors."""


class InvalidOperation(SyncError):
    """An operation, value or message was rejected; ``field`` names what was wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class DecodeError(InvalidOperation):
    """Bytes that are not a valid encoding (truncated, unknown tag, broken invariant...)."""

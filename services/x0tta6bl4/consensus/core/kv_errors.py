"""Errors of the key-value state machine.

Every error names the offending ``field`` (a dotted path into the request, e.g.
``txn.success[2].put.key``) and carries a ``code`` spelled like a gRPC status name, so the
adapter can map it to a status without this pure module importing gRPC.

Errors are values as well as exceptions: an :class:`ErrorResult` is what the state machine
records (in the dedup table, in snapshots) and :meth:`ErrorResult.to_exception` rebuilds the
same exception class on every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class KvError(Exception):
    """Base class: a request the state machine refuses. Nothing was applied."""

    code: ClassVar[str] = "UNKNOWN"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def to_result(self) -> ErrorResult:
        """The deterministic, encodable form of this error."""
        return ErrorResult(kind=type(self).__name__, field=self.field, problem=self.problem)


class InvalidArgument(KvError):
    """The request is malformed (empty key, oversized value, bad revision, ...)."""

    code = "INVALID_ARGUMENT"


class DecodeError(InvalidArgument):
    """Command, result or snapshot bytes are malformed; ``field`` says where decoding stopped."""


class NotFound(KvError):
    """The request names something that does not exist (e.g. an unknown lease id)."""

    code = "NOT_FOUND"


class Compacted(KvError):
    """The requested revision is older than the compaction point; history is gone."""

    code = "OUT_OF_RANGE"


class FutureRevision(KvError):
    """The requested revision is newer than the store's current revision."""

    code = "OUT_OF_RANGE"


class StaleRequest(KvError):
    """A client request id older than anything the dedup table still remembers.

    The write may or may not have been applied; the client must not assume either.
    """

    code = "FAILED_PRECONDITION"


_BY_NAME: dict[str, type[KvError]] = {
    cls.__name__: cls
    for cls in (
        KvError,
        InvalidArgument,
        DecodeError,
        NotFound,
        Compacted,
        FutureRevision,
        StaleRequest,
    )
}


@dataclass(frozen=True, slots=True)
class ErrorResult:
    """An error as data: the exception class name ``kind``, ``field`` and ``problem``."""

    kind: str
    field: str
    problem: str

    @property
    def code(self) -> str:
        """The gRPC status name for this error."""
        return _BY_NAME.get(self.kind, KvError).code

    def to_exception(self) -> KvError:
        """The exception this result stands for."""
        return _BY_NAME.get(self.kind, KvError)(self.field, self.problem)

"""The errors the suite's clients raise: one class per gRPC status a caller acts on, carrying
the method, the server's message and (for bad input) the field it named.

Callers catch these instead of ``grpc.aio.AioRpcError``: ``NotFound`` and
``FailedPrecondition`` are answers, ``Unavailable`` means every member was tried within the
call's budget (every write carries a request id, so retrying it was safe).
"""

from __future__ import annotations

import grpc
from grpc import aio

from x0tta6bl4.platform.errors import ServiceError

# What a service tells its own caller when a call to another service failed with this: the
# caller may retry these; anything else the service did not handle is the service's fault.
_PASSED_ON = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


class ClientError(ServiceError):
    """A call failed; ``code`` is its gRPC status, ``details`` the server's message.

    Raised out of an RPC handler unhandled, it ends that RPC with the same status when the
    caller may retry (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) and INTERNAL
    otherwise (a refusal by a dependency that the service did not handle is not the
    caller's mistake); the message names the dependency's method and answer.
    """

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    def status(self) -> tuple[grpc.StatusCode, str]:
        if self.code in _PASSED_ON:
            return self.code, self.message
        return grpc.StatusCode.INTERNAL, f"a dependency refused: {self.message}"


class InvalidArgument(ClientError):
    """The request was refused; ``field`` is the field the server named (``""`` if none)."""

    @property
    def field(self) -> str:
        name, sep, _ = self.details.partition(":")
        return name if sep and " " not in name else ""


class NotFound(ClientError):
    pass


class FailedPrecondition(ClientError):
    pass


class PermissionDenied(ClientError):
    pass


class Unauthenticated(ClientError):
    pass


class OutOfRange(ClientError):
    """E.g. a revision that was compacted away."""


class Unavailable(ClientError):
    """No member answered within the call's budget (after retries where they were safe)."""


class Conflict(ClientError):
    """A compare-and-set lost: the current state is not what the caller expected."""


class Fenced(ClientError):
    """A fenced write was refused: the caller no longer holds the single-actor lease."""


_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Unavailable,
}


def from_rpc_error(method: str, err: aio.AioRpcError) -> ClientError:
    """The typed error for a failed call."""
    code = err.code()
    return _BY_CODE.get(code, ClientError)(method, code, err.details() or "")

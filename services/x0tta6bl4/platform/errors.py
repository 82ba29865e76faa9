"""Errors a service raises for a caller's mistake; the gRPC layer maps each to a status code."""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An error whose message is safe to return to the caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def status(self) -> tuple[grpc.StatusCode, str]:
        """The status and message the caller of the RPC being handled gets."""
        return self.code, self.message


class InvalidArgument(ServiceError):
    """The request is malformed; ``field`` names the offending field."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ConfigError(Exception):
    """One or more settings are invalid; ``problems`` names each setting and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems

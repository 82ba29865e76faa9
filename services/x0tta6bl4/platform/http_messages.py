"""What an HTTP handler gets and returns, and how a request body becomes a JSON value.

- :class:`HttpRequest` is what the router hands a handler: method, path, route pattern, path
  parameters, query, headers, the body (bytes) and — for a JSON route — the parsed and
  schema-checked ``json``, plus the caller's SPIFFE ID on the mTLS listener.
- :class:`HttpResponse` is what a handler returns (``HttpResponse.json(...)``, ``.text(...)``,
  ``.binary(...)``, ``.empty()``); :class:`HttpError` is what it raises for a caller's mistake:
  the status with a JSON error document ``{"error": message, ...}``.
- :class:`JsonBody` decodes one route's bodies: strict JSON (no NaN/Infinity), then, if the
  route has one, a JSON Schema (2020-12, via ``jsonschema``). Every failure is an
  ``HttpError(400)`` naming the problem: the decoder's line and column, or the field path of
  the first schema violation (``alerts[0].status: is required``).

Pure: no I/O; the router in :mod:`.http_routes` does the reading and writing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

JSON_CONTENT_TYPE = "application/json"
_MAX_PROBLEM_CHARS = 200  # a schema message quotes the offending value: keep it short

JsonObject = dict[str, Any]


class HttpError(Exception):
    """A request the route cannot serve: ``status`` with ``{"error": message, **detail}``.
    The message is returned to the caller, so it must be safe for the caller to see."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        detail: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = dict(detail or {})
        self.headers = dict(headers or {})

    def response(self) -> HttpResponse:
        return HttpResponse.json(
            {"error": self.message, **self.detail}, status=self.status, headers=self.headers
        )


@dataclasses.dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as a handler sees it.

    ``json`` is the parsed body of a route registered with ``body="json"`` (already checked
    against its schema), ``None`` otherwise; ``body`` is always the raw bytes (empty for a
    route that reads no body). ``caller`` is the SPIFFE ID of the client certificate when the
    request came over the mTLS listener, ``None`` on the plain one. ``headers`` is
    case-insensitive."""

    method: str
    path: str
    route: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    json: Any = None
    caller: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    """What a handler returns; build it with one of the class methods."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def json(
        cls, value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """``value`` as a JSON document (one line, newline-terminated)."""
        body = json.dumps(value, separators=(", ", ": ")).encode() + b"\n"
        return cls(status, body, JSON_CONTENT_TYPE, dict(headers or {}))

    @classmethod
    def text(
        cls,
        text: str,
        *,
        status: int = 200,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        return cls(status, text.encode(), content_type, dict(headers or {}))

    @classmethod
    def binary(
        cls,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        return cls(status, body, content_type, dict(headers or {}))

    @classmethod
    def empty(cls, status: int = 204, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return cls(status, b"", "application/octet-stream", dict(headers or {}))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _field_path(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 3] + "..."


def _schema_problem(error: ValidationError) -> tuple[str, str]:
    """The field path and the problem of one schema violation."""
    path = list(error.absolute_path)
    required = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = (
            [n for n in required if n not in error.instance] if isinstance(required, list) else []
        )
        if missing:
            return _field_path([*path, missing[0]]), "is required"
    return _field_path(path), _short(error.message)


class JsonBody:
    """Decodes the bodies of one JSON route; ``schema`` (a JSON Schema, 2020-12 unless it says
    ``$schema``) is checked when the route is registered, so a bad one fails at start-up."""

    def __init__(self, schema: Mapping[str, Any] | None = None) -> None:
        self._validator: Draft202012Validator | None = None
        if schema is not None:
            Draft202012Validator.check_schema(schema)
            self._validator = Draft202012Validator(schema)

    def decode(self, body: bytes) -> Any:
        """The JSON value of ``body``; ``HttpError(400)`` naming the problem otherwise."""
        if not body.strip():
            raise HttpError(400, "request body is empty; expected a JSON document")
        try:
            value = json.loads(body, parse_constant=_reject_constant)
        except json.JSONDecodeError as err:
            raise HttpError(
                400,
                f"request body is not valid JSON: {err.msg} at line {err.lineno} "
                f"column {err.colno}",
                detail={"line": err.lineno, "column": err.colno},
            ) from None
        except UnicodeDecodeError as err:
            raise HttpError(
                400, f"request body is not valid JSON: not UTF-8 text ({err.reason})"
            ) from None
        except RecursionError:
            raise HttpError(400, "request body is not valid JSON: nested too deeply") from None
        except ValueError as err:  # NaN/Infinity, an integer past the digit limit
            raise HttpError(400, f"request body is not valid JSON: {err}") from None
        if self._validator is not None:
            error = best_match(self._validator.iter_errors(value))
            if error is not None:
                field, problem = _schema_problem(error)
                where = f"field {field}" if field else "request body"
                raise HttpError(
                    400, f"{where}: {problem}", detail={"field": field, "problem": problem}
                )
        return value

"""JSON request bodies: every way a body can be wrong is a 400 that names the problem."""

from __future__ import annotations

import json
from typing import Any

import pytest

from x0tta6bl4.platform.http_messages import HttpError, HttpResponse, JsonBody

ALERTS = {
    "type": "object",
    "required": ["alerts"],
    "properties": {
        "alerts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status", "labels"],
                "properties": {
                    "status": {"enum": ["firing", "resolved"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        }
    },
}


def _problem(decoder: JsonBody, body: bytes) -> HttpError:
    with pytest.raises(HttpError) as caught:
        decoder.decode(body)
    assert caught.value.status == 400
    return caught.value


def test_valid_json_is_decoded_and_checked() -> None:
    body = b'{"alerts": [{"status": "firing", "labels": {"severity": "critical"}}]}'
    assert JsonBody(ALERTS).decode(body)["alerts"][0]["status"] == "firing"
    assert JsonBody().decode(b"[1, 2.5, null]") == [1, 2.5, None]


def test_a_syntax_error_names_line_and_column() -> None:
    err = _problem(JsonBody(), b'{\n  "a": 1,\n  "b" 2\n}')
    assert err.detail == {"line": 3, "column": 7}
    assert "line 3 column 7" in err.message and "Expecting ':' delimiter" in err.message


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"\xff\xfe{", "not UTF-8"),
        (b"[NaN]", "NaN is not valid JSON"),
        (b'{"x": -Infinity}', "-Infinity is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"1" * 5000, "digits"),
    ],
)
def test_bodies_that_are_not_json_are_refused_by_reason(body: bytes, problem: str) -> None:
    assert problem in _problem(JsonBody(), body).message


@pytest.mark.parametrize(
    ("doc", "field", "problem"),
    [
        ({}, "alerts", "is required"),
        ({"alerts": {}}, "alerts", "is not of type 'array'"),
        ({"alerts": [{"labels": {}}]}, "alerts[0].status", "is required"),
        ({"alerts": [{"status": "x", "labels": {}}]}, "alerts[0].status", "is not one of"),
        (
            {"alerts": [{"status": "firing", "labels": {"severity": 3}}]},
            "alerts[0].labels.severity",
            "is not of type 'string'",
        ),
    ],
)
def test_a_schema_violation_names_the_field(doc: Any, field: str, problem: str) -> None:
    err = _problem(JsonBody(ALERTS), json.dumps(doc).encode())
    assert err.detail["field"] == field
    assert problem in err.detail["problem"]
    assert err.message.startswith(f"field {field}: ")


def test_a_violation_of_the_whole_body_says_so_and_quotes_a_long_value_briefly() -> None:
    err = _problem(JsonBody(ALERTS), json.dumps(["x" * 10_000]).encode())
    assert err.message.startswith("request body: ")
    assert err.detail["field"] == ""
    assert len(err.message) < 300


def test_an_invalid_schema_is_refused_when_the_route_is_registered() -> None:
    from jsonschema.exceptions import SchemaError

    with pytest.raises(SchemaError):
        JsonBody({"type": "no-such-type"})


def test_an_error_is_a_json_document_with_its_status_and_headers() -> None:
    response = HttpError(405, "no", detail={"x": 1}, headers={"Allow": "GET"}).response()
    assert response.status == 405
    assert response.headers == {"Allow": "GET"}
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"error": "no", "x": 1}


def test_responses_carry_their_content_type() -> None:
    assert HttpResponse.json({"a": 1}, status=202).body == b'{"a": 1}\n'
    assert HttpResponse.text("ok\n").content_type == "text/plain; charset=utf-8"
    assert HttpResponse.binary(b"\x00", content_type="application/gzip").body == b"\x00"
    assert HttpResponse.empty().status == 204

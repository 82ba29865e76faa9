"""The router's table: literal and parameter patterns, 404 vs 405, and refused registrations."""

from __future__ import annotations

import pytest

from x0tta6bl4.platform.http_route_table import Match, NotAllowed, RouteTable, Unmatched


def _table() -> RouteTable[str]:
    table: RouteTable[str] = RouteTable()
    table.add("POST", "/v1/alerts", "alerts")
    table.add("GET", "/v1/bundles/{name}", "bundle")
    table.add("PUT", "/v1/bundles/{name}", "put-bundle")
    table.add("GET", "/v1/bundles/latest", "latest")
    table.add("GET", "/v1/{kind}/{id}/status", "status")
    table.add("GET", "/", "root")
    return table


def test_a_literal_path_matches_its_route_without_parameters() -> None:
    assert _table().match("POST", "/v1/alerts") == Match("/v1/alerts", "alerts", {})
    assert _table().match("GET", "/") == Match("/", "root", {})


def test_parameters_bind_whole_segments() -> None:
    assert _table().match("GET", "/v1/bundles/authz") == Match(
        "/v1/bundles/{name}", "bundle", {"name": "authz"}
    )
    assert _table().match("GET", "/v1/runbooks/7/status") == Match(
        "/v1/{kind}/{id}/status", "status", {"kind": "runbooks", "id": "7"}
    )


def test_a_literal_pattern_wins_over_a_parameter_one() -> None:
    assert _table().match("GET", "/v1/bundles/latest") == Match("/v1/bundles/latest", "latest", {})


@pytest.mark.parametrize(
    "path", ["/v1/alert", "/v1/alerts/", "/v1/bundles", "/v1/bundles/", "/v1/bundles/a/b", ""]
)
def test_a_path_no_pattern_matches_is_unmatched(path: str) -> None:
    assert _table().match("GET", path) == Unmatched()


def test_a_known_path_with_another_method_is_not_allowed_with_the_methods_it_takes() -> None:
    assert _table().match("GET", "/v1/alerts") == NotAllowed("/v1/alerts", ("POST",))
    assert _table().match("DELETE", "/v1/bundles/x") == NotAllowed(
        "/v1/bundles/{name}", ("GET", "PUT")
    )


@pytest.mark.parametrize(
    ("method", "pattern", "problem"),
    [
        ("GET", "v1/alerts", "must start with '/'"),
        ("GET", "/v1/{name", "neither a literal"),
        ("GET", "/v1/x{name}", "neither a literal"),
        ("GET", "/v1/{a}/{a}", "names a parameter twice"),
        ("GET", "/v1/a b", "neither a literal"),
        ("FETCH", "/v1/x", "is not one of"),
        ("POST", "/v1/alerts", "registered already"),
        ("GET", "/v1/bundles/{name}", "registered already"),
    ],
)
def test_a_bad_or_repeated_registration_is_refused_by_name(
    method: str, pattern: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _table().add(method, pattern, "x")

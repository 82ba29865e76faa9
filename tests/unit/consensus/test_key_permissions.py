"""Key-range permissions (issue 20), pure: grants from data, default deny, whole-range
coverage, caller globs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from x0tta6bl4.consensus.key_permissions import (
    Access,
    Permissions,
    parse_permissions,
    prefix_end,
)

DATA = Path(__file__).resolve().parents[3] / (
    "services/x0tta6bl4/platform/rego/x0tta6bl4/kv/data.json"
)
TD = "spiffe://x0tta6bl4.mesh/ns/local/sa"
R, W = Access.READ, Access.WRITE


@pytest.fixture(scope="module")
def shipped() -> Permissions:
    return Permissions(parse_permissions(json.loads(DATA.read_text())["permissions"]))


def test_prefix_end() -> None:
    assert prefix_end(b"/x0/policy/") == b"/x0/policy0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"") is None
    assert prefix_end(b"\xff\xff") is None


@pytest.mark.parametrize("service", ["policy", "identity", "ops", "healer"])
def test_each_service_owns_exactly_its_prefix(shipped: Permissions, service: str) -> None:
    caller = f"{TD}/{service}"
    own = f"/x0/{service}/".encode()
    assert shipped.check_prefix(caller, R, own) is None
    assert shipped.check_prefix(caller, W, own) is None
    assert shipped.check_key(caller, W, own + b"doc/1") is None
    for other in {"policy", "identity", "ops", "healer"} - {service}:
        theirs = f"/x0/{other}/x".encode()
        assert shipped.check_key(caller, R, theirs) is not None
        assert shipped.check_key(caller, W, theirs) is not None
    assert shipped.check_key(caller, W, b"outside") is not None


def test_a_range_that_runs_past_the_prefix_is_refused_whole(shipped: Permissions) -> None:
    caller = f"{TD}/policy"
    denial = shipped.check_prefix(caller, R, b"/x0/")
    assert denial is not None
    assert denial.message(caller) == (
        f"{caller} may not read prefix b'/x0/' (key-range permissions of consensus)"
    )
    assert shipped.check(caller, R, b"/x0/policy/a", b"/x0/q") is not None
    assert shipped.check(caller, R, b"/x0/policy/a", b"/x0/policy/b") is None


def test_operator_has_everything_and_the_auditor_reads_everything(shipped: Permissions) -> None:
    assert shipped.check_prefix(f"{TD}/operator", W, b"") is None
    assert shipped.check_prefix(f"{TD}/auditor", R, b"") is None
    assert shipped.check_key(f"{TD}/auditor", W, b"/x0/ops/x") is not None


def test_unknown_callers_and_other_trust_domains_get_nothing(shipped: Permissions) -> None:
    assert shipped.check_key(f"{TD}/intruder", R, b"/x0/ops/x") is not None
    assert shipped.check_key("spiffe://evil.mesh/ns/local/sa/operator", R, b"a") is not None
    # a glob matches within one segment only
    assert shipped.check_key(f"{TD}/ops/extra", R, b"/x0/ops/x") is not None


def test_adjacent_grants_merge_into_one_cover() -> None:
    grants = parse_permissions(
        [
            {"callers": ["a"], "range_start": "k/a", "range_end": "k/m", "access": "read"},
            {"callers": ["a"], "range_start": "k/m", "range_end": "k/z", "access": "readwrite"},
        ]
    )
    perms = Permissions(grants)
    assert perms.check("a", R, b"k/b", b"k/y") is None
    assert perms.check("a", W, b"k/b", b"k/y") is not None
    assert perms.check("a", W, b"k/n", b"k/y") is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "permissions: must be a list"),
        ([1], "permissions[0]: must be an object"),
        ([{"callers": [], "prefix": "", "access": "read"}], "permissions[0].callers"),
        ([{"callers": ["a"], "prefix": "", "access": "all"}], "permissions[0].access"),
        ([{"callers": ["a"], "access": "read"}], "set prefix, or range_start"),
        (
            [{"callers": ["a"], "range_start": "b", "range_end": "a", "access": "read"}],
            "permissions[0].range_end",
        ),
    ],
)
def test_bad_permission_data_is_named(data: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse_permissions(data)

"""Validation policies from configuration: defaults, every field, and errors that name the
field (``policies.<name>.<field>``) with what is wrong (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from x0tta6bl4.identity.validation import (
    DEFAULT_POLICY,
    PolicyFieldError,
    ValidationPolicy,
    parse_policies,
    parse_policy,
)

PIN_HEX = "3a" * 32
PIN_B64 = "sha256/" + "A" * 43 + "="


def test_no_configuration_means_the_built_in_default_policy() -> None:
    empty: tuple[dict[str, Any] | None, ...] = (None, {})
    for raw in empty:
        policies = parse_policies(raw)
        assert list(policies) == [DEFAULT_POLICY]
        default = policies[DEFAULT_POLICY]
        assert default == ValidationPolicy()
        assert default.check_ocsp and default.check_crl
        assert not default.ocsp_soft_fail and not default.crl_soft_fail
        assert default.spki_pins == frozenset() and default.spiffe_id_pins == frozenset()


def test_every_field_is_read() -> None:
    policies = parse_policies(
        {
            "partner": {
                "check_ocsp": True,
                "ocsp_soft_fail": True,
                "ocsp_responder_url": "http://127.0.0.1:8080/ocsp",
                "check_crl": False,
                "crl_soft_fail": True,
                "crl_urls": ["http://127.0.0.1:8080/ca.crl", "https://pki.example/ca.crl"],
                "spki_pins": [PIN_HEX, PIN_B64],
                "spiffe_id_pins": ["spiffe://partner.example/ns/prod/*"],
                "max_chain_len": 4,
                "max_input_bytes": 4096,
            },
            "empty": None,
        }
    )
    assert sorted(policies) == ["default", "empty", "partner"]
    partner = policies["partner"]
    assert partner.name == "partner"
    assert partner.ocsp_soft_fail and partner.crl_soft_fail and not partner.check_crl
    assert partner.ocsp_responder_url == "http://127.0.0.1:8080/ocsp"
    assert partner.crl_urls == ("http://127.0.0.1:8080/ca.crl", "https://pki.example/ca.crl")
    assert partner.spki_pins == frozenset({PIN_HEX, PIN_B64})
    assert partner.spiffe_id_pins == frozenset({"spiffe://partner.example/ns/prod/*"})
    assert (partner.max_chain_len, partner.max_input_bytes) == (4, 4096)
    assert policies["empty"] == ValidationPolicy(name="empty")


def test_a_configured_default_replaces_the_built_in_one() -> None:
    policies = parse_policies({"default": {"ocsp_soft_fail": True}})
    assert policies[DEFAULT_POLICY].ocsp_soft_fail


def test_an_empty_responder_url_means_none() -> None:
    assert parse_policy("p", {"ocsp_responder_url": ""}).ocsp_responder_url is None
    assert parse_policy("p", {"ocsp_responder_url": None}).ocsp_responder_url is None


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"bogus": 1}, "policies.p.bogus", "unknown field (known: check_crl, check_ocsp"),
        ({"check_ocsp": "yes"}, "policies.p.check_ocsp", "must be true or false, got 'yes'"),
        ({"ocsp_soft_fail": 1}, "policies.p.ocsp_soft_fail", "must be true or false"),
        ({"crl_soft_fail": None}, "policies.p.crl_soft_fail", "must be true or false"),
        ({"crl_urls": "http://a/c.crl"}, "policies.p.crl_urls", "must be a list of strings"),
        ({"crl_urls": {"a": 1}}, "policies.p.crl_urls", "must be a list of strings"),
        ({"crl_urls": ["http://a/c", 3]}, "policies.p.crl_urls[1]", "must be a string, got 3"),
        ({"crl_urls": ["ldap://a/c"]}, "policies.p.crl_urls[0]", "must be an http:// or https://"),
        ({"crl_urls": ["http:///c"]}, "policies.p.crl_urls[0]", "with a host"),
        ({"ocsp_responder_url": 5}, "policies.p.ocsp_responder_url", "must be a URL string"),
        ({"ocsp_responder_url": "ftp://h/"}, "policies.p.ocsp_responder_url", "http:// or"),
        ({"ocsp_responder_url": "http://[::1/"}, "policies.p.ocsp_responder_url", "IPv6"),
        ({"ocsp_responder_url": "http://h:99999/"}, "policies.p.ocsp_responder_url", "Port"),
        ({"ocsp_responder_url": "http://h/\n"}, "policies.p.ocsp_responder_url", "control"),
        ({"ocsp_responder_url": "http://h /"}, "policies.p.ocsp_responder_url", "spaces"),
        ({"spki_pins": ["abc"]}, "policies.p.spki_pins", "not a SHA-256 digest"),
        ({"spki_pins": ["3a" * 31]}, "policies.p.spki_pins", "not a SHA-256 digest"),
        ({"spki_pins": "3a" * 32}, "policies.p.spki_pins", "must be a list of strings"),
        ({"spiffe_id_pins": ["https://x/y"]}, "policies.p.spiffe_id_pins", "not a SPIFFE ID"),
        ({"spiffe_id_pins": ["spiffe://td/a\n"]}, "policies.p.spiffe_id_pins", "segment"),
        ({"spiffe_id_pins": ["spiffe://td/a/**"]}, "policies.p.spiffe_id_pins", "'**'"),
        ({"max_chain_len": 0}, "policies.p.max_chain_len", "from 1 to 64, got 0"),
        ({"max_chain_len": 65}, "policies.p.max_chain_len", "from 1 to 64, got 65"),
        ({"max_chain_len": True}, "policies.p.max_chain_len", "must be an integer, got True"),
        ({"max_chain_len": "10"}, "policies.p.max_chain_len", "must be an integer, got '10'"),
        ({"max_input_bytes": 0}, "policies.p.max_input_bytes", "from 1 to 16777216"),
        ({"max_input_bytes": 1.5}, "policies.p.max_input_bytes", "must be an integer"),
    ],
)
def test_a_bad_field_is_an_error_naming_it(body: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(PolicyFieldError) as raised:
        parse_policies({"p": body})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert problem in raised.value.problem, raised.value.problem


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (["a"], "policies", "must be a mapping of policy names, got list"),
        ({"p": ["x"]}, "policies.p", "must be a mapping of fields, got list"),
        ({"bad name": {}}, "policies.bad name", "a policy name must be"),
        ({"p\n": {}}, "policies.p\n", "a policy name must be"),
        ({"-p": {}}, "policies.-p", "a policy name must be"),
        ({"p" * 65: {}}, "policies." + "p" * 65, "a policy name must be"),
        ({7: {}}, "policies.7", "a policy name must be"),
    ],
)
def test_a_bad_shape_or_name_is_an_error_naming_where(raw: Any, field: str, problem: str) -> None:
    with pytest.raises(PolicyFieldError) as raised:
        parse_policies(raw)
    assert raised.value.field == field
    assert problem in raised.value.problem


def test_the_location_prefix_is_the_callers() -> None:
    with pytest.raises(PolicyFieldError) as raised:
        parse_policies({"p": {"check_crl": "no"}}, where="identity.validation.policies")
    assert raised.value.field == "identity.validation.policies.p.check_crl"


def test_a_policy_built_in_code_is_checked_too() -> None:
    with pytest.raises(PolicyFieldError, match=r"^max_chain_len: "):
        ValidationPolicy(max_chain_len=100)
    with pytest.raises(PolicyFieldError, match=r"^name: "):
        ValidationPolicy(name="no spaces")
    with pytest.raises(PolicyFieldError, match=r"^crl_urls\[0\]: "):
        ValidationPolicy(crl_urls=("gopher://h/",))

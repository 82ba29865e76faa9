"""The X.509-SVID profile checks, rule by rule, on certificates bent one rule at a time (pure)."""

from __future__ import annotations

import pytest
from cryptography import x509

from tests.support.x509_corpus import (
    ID,
    TD,
    World,
    ca_extensions,
    leaf_extensions,
    make_cert,
    usage,
)
from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id
from x0tta6bl4.identity.validation.profile import ca_checks, leaf_checks, leaf_spiffe_id
from x0tta6bl4.identity.validation.verdict import Check

LEAF_RULES = [
    "profile.uri_san",
    "profile.spiffe_id",
    "profile.leaf_basic_constraints",
    "profile.key_usage",
    "profile.key_usage.critical",
    "profile.key_usage.digital_signature",
    "profile.key_usage.no_ca_bits",
    "profile.expected_spiffe_id",
    "profile.expected_trust_domain",
]


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_a_good_leaf_passes_every_rule_in_a_fixed_order(world: World) -> None:
    checks = leaf_checks(world.leaf(), expected_spiffe_id=ID, expected_trust_domain=TD)
    assert [c.name for c in checks] == LEAF_RULES
    assert {c.result for c in checks} == {"pass"}
    assert str(leaf_spiffe_id(world.leaf())) == ID


def test_without_expectations_those_rules_are_skipped(world: World) -> None:
    checks = by_name(leaf_checks(world.leaf()))
    assert checks["profile.expected_spiffe_id"].result == "skip"
    assert checks["profile.expected_trust_domain"].result == "skip"


def test_a_leaf_without_basic_constraints_is_not_a_ca(world: World) -> None:
    leaf = make_cert("leaf", world.inter, leaf_extensions(ca=None)).cert
    check = by_name(leaf_checks(leaf))["profile.leaf_basic_constraints"]
    assert check.result == "pass" and "not a CA" in check.reason


@pytest.mark.parametrize(
    ("bend", "failing"),
    [
        ({"ca": True}, {"profile.leaf_basic_constraints"}),
        ({"ku": usage("digital_signature", "key_cert_sign")}, {"profile.key_usage.no_ca_bits"}),
        ({"ku": usage("digital_signature", "crl_sign")}, {"profile.key_usage.no_ca_bits"}),
        ({"ku": usage("key_agreement")}, {"profile.key_usage.digital_signature"}),
        ({"ku_critical": False}, {"profile.key_usage.critical"}),
        ({"ku": None}, {"profile.key_usage"}),
    ],
    ids=["ca_true", "key_cert_sign", "crl_sign", "no_digital_signature", "not_critical", "no_ku"],
)
def test_each_bent_rule_fails_alone(
    world: World, bend: dict[str, object], failing: set[str]
) -> None:
    leaf = world.leaf(**bend)  # type: ignore[arg-type]
    checks = leaf_checks(leaf)
    assert {c.name for c in checks if c.result == "fail"} == failing
    if bend.get("ku", "") is None:  # nothing to inspect: the sub-rules are skipped
        assert {c.name for c in checks if c.result == "skip"} >= {
            "profile.key_usage.critical",
            "profile.key_usage.digital_signature",
            "profile.key_usage.no_ca_bits",
        }


def test_both_ca_bits_are_named(world: World) -> None:
    leaf = world.leaf(ku=usage("digital_signature", "key_cert_sign", "crl_sign"))
    reason = by_name(leaf_checks(leaf))["profile.key_usage.no_ca_bits"].reason
    assert reason == "a leaf must not assert keyCertSign or cRLSign"


@pytest.mark.parametrize(
    ("uris", "reason"),
    [
        ((), "the leaf has no URI SAN"),
        ((ID, ID + "2"), "the leaf has 2 URI SANs (" + ID + ", " + ID + "2)"),
    ],
)
def test_not_exactly_one_uri_san_fails_both_san_rules(
    world: World, uris: tuple[str, ...], reason: str
) -> None:
    leaf = make_cert("leaf", world.inter, leaf_extensions(uris, dns=["a.test"])).cert
    checks = by_name(leaf_checks(leaf, expected_spiffe_id=ID, expected_trust_domain=TD))
    assert checks["profile.uri_san"].result == "fail"
    assert reason in checks["profile.uri_san"].reason
    assert checks["profile.spiffe_id"].result == "fail"
    assert "no valid SPIFFE ID" in checks["profile.expected_spiffe_id"].reason
    assert "no valid SPIFFE ID" in checks["profile.expected_trust_domain"].reason
    assert leaf_spiffe_id(leaf) is None


def test_expectations_name_both_sides(world: World) -> None:
    checks = by_name(
        leaf_checks(
            world.leaf(), expected_spiffe_id=ID + "x", expected_trust_domain="elsewhere.test"
        )
    )
    assert checks["profile.expected_spiffe_id"].reason == f"expected {ID}x, the leaf is {ID}"
    assert checks["profile.expected_trust_domain"].reason == (
        f"expected trust domain elsewhere.test, the leaf is in {TD}"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("spiffe://td/a\n", "segment"),
        ("spiffe://td\n/a", "trust domain"),
        ("spiffe://td/a b", "segment"),
        ("spiffe://td/\u00e9", "segment"),
        ("spiffe://td/a\x00", "segment"),
        ("spiffe://td/a?b", "query"),
        ("spiffe://td", "needs a path"),
    ],
)
def test_spiffe_ids_with_spaces_controls_or_trailing_newlines_are_refused(
    value: str, problem: str
) -> None:
    with pytest.raises(ValueError) as raised:
        parse_spiffe_id(value, require_path=True)
    assert problem in str(raised.value)


def test_good_spiffe_ids_parse() -> None:
    parsed = parse_spiffe_id("spiffe://td.example/ns/a-b/sa/c_d.e", require_path=True)
    assert (parsed.trust_domain, parsed.path) == ("td.example", "/ns/a-b/sa/c_d.e")
    assert parse_spiffe_id("spiffe://td").path == ""


def test_signing_certificates_pass_with_ca_true_and_key_cert_sign(world: World) -> None:
    checks = ca_checks([world.leaf(), world.inter.cert, world.root.cert])
    assert [(c.name, c.result) for c in checks] == [
        ("profile.ca_basic_constraints", "pass"),
        ("profile.ca_key_usage", "pass"),
        ("profile.path_length", "pass"),
    ]


def test_a_leaf_alone_has_no_signing_certificates_to_check(world: World) -> None:
    assert {c.result for c in ca_checks([world.leaf()])} == {"skip"}


@pytest.mark.parametrize(
    ("exts", "failing", "words"),
    [
        (ca_extensions(ca=False), "profile.ca_basic_constraints", "certificate 1 (CN=Bent)"),
        (ca_extensions(ca=None), "profile.ca_basic_constraints", "no basicConstraints CA:true"),
        (ca_extensions(ku=usage("crl_sign")), "profile.ca_key_usage", "lacks keyCertSign"),
        (ca_extensions(ku=None), "profile.ca_key_usage", "lacks keyCertSign"),
    ],
)
def test_a_bent_signing_certificate_fails_its_rule(
    world: World, exts: list[tuple[x509.ExtensionType, bool]], failing: str, words: str
) -> None:
    bent = make_cert("Bent", world.root, exts)
    checks = by_name(ca_checks([world.leaf(issuer=bent), bent.cert, world.root.cert]))
    assert [n for n, c in checks.items() if c.result == "fail"] == [failing]
    assert words in checks[failing].reason


def test_path_length_counts_the_intermediate_cas_below_each_constraint(world: World) -> None:
    sub = make_cert("Sub", world.inter, ca_extensions(path_length=0))
    sub2 = make_cert("Sub2", sub, ca_extensions())
    leaf = world.leaf(issuer=sub2)
    # inter (pathlen 0) has sub and sub2 below it; sub (pathlen 0) has sub2
    check = by_name(ca_checks([leaf, sub2.cert, sub.cert, world.inter.cert, world.root.cert]))
    reason = check["profile.path_length"].reason
    assert check["profile.path_length"].result == "fail"
    assert "certificate 2 (CN=Sub) allows 0 intermediate CA(s) below it, the chain has 1" in reason
    assert "certificate 3 (CN=Corpus Intermediate) allows 0" in reason
    assert "the chain has 2" in reason


def test_self_issued_intermediates_do_not_count_against_path_length(world: World) -> None:
    # a key rollover certificate: issued by the intermediate's name to its own name
    rollover = make_cert("Corpus Intermediate", world.inter, ca_extensions())
    leaf = world.leaf(issuer=rollover)
    checks = by_name(ca_checks([leaf, rollover.cert, world.inter.cert, world.root.cert]))
    assert checks["profile.path_length"].result == "pass"

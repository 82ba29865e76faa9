"""The certificate validator against a corpus of malformed chains: every case is rejected, with
a reason that names what is wrong, and no exception escapes.

The corpus is generated with the ``cryptography`` builders of tests/support/x509_corpus.py (a
root in the bundle of trust domain ``corpus.test``, an intermediate with pathlen 0, leaves and
CAs bent one rule at a time) and judged at a fixed time through the validator's clock. No case
publishes OCSP or CRL URLs, so nothing is fetched. Each case names the check that must fail
and words its reason must hold; beside the corpus, controls show that the unbent leaf passes,
at both validity edges too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.pki import ManualClock, validator
from tests.support.x509_corpus import (
    HOUR,
    ID,
    NOW,
    SECOND,
    TD,
    Case,
    Ext,
    Issuer,
    World,
    ca_extensions,
    der,
    leaf_extensions,
    make_cert,
    pem,
    usage,
)
from x0tta6bl4.identity.validation import Verdict

pytestmark = pytest.mark.integration


def bad_id(uri: str, *words: str) -> Callable[[World], Case]:
    return lambda w: Case(w.chain(w.leaf(uri)), "profile.spiffe_id", words)


def flip_signature(cert: x509.Certificate) -> bytes:
    data = bytearray(der(cert))
    data[-1] ^= 0x01  # the last byte of the signature's s INTEGER
    return bytes(data)


def loop(w: World) -> Case:
    a_key, b_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    a_stub = Issuer(make_cert("Loop A", None, [], key=a_key).cert, a_key)
    b = make_cert("Loop B", a_stub, ca_extensions(), key=b_key)
    a = make_cert("Loop A", b, ca_extensions(), key=a_key)
    return Case(pem(w.leaf(issuer=a), a.cert, b.cert), "parse", ("loop",))


def deep(w: World, depth: int = 50) -> Case:
    cas = [w.inter]
    for i in range(depth - 2):
        cas.append(make_cert(f"Deep {i}", cas[-1], ca_extensions()))
    leaf = w.leaf(issuer=cas[-1])
    return Case(pem(leaf, *(c.cert for c in reversed(cas))), "parse", ("50 certificates",))


def path_too_long(w: World) -> Case:
    """A sub-CA below the intermediate, whose pathlen 0 allows none."""
    sub = make_cert("Corpus Sub CA", w.inter, ca_extensions())
    words = ("allows 0 intermediate CA(s) below it, the chain has 1",)
    return Case(pem(w.leaf(issuer=sub), sub.cert, w.inter.cert), "profile.path_length", words)


def bad_intermediate(w: World, check: str, words: tuple[str, ...], exts: list[Ext]) -> Case:
    inter = make_cert("Bent Intermediate", w.root, exts)
    return Case(pem(w.leaf(issuer=inter), inter.cert), check, words)


def self_signed(w: World, *, in_bundle: bool) -> Case:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_cert("leaf", None, leaf_extensions(), key=key).cert
    if in_bundle:
        return Case(pem(cert), "chain", ("itself a trust anchor",), bundles={TD: [cert]})
    return Case(pem(cert), "chain", ("unknown issuer", "self-issued"))


def foreign_leaf(w: World) -> Case:
    stranger = make_cert("Stranger CA", None, ca_extensions())
    return Case(pem(w.leaf(issuer=stranger), stranger.cert), "chain", ("unknown issuer",))


def other_domain(w: World) -> Case:
    other_root = make_cert("Other Root", None, ca_extensions())
    leaf = w.leaf("spiffe://other.test/ns/test/sa/web")
    bundles = {TD: [w.root.cert], "other.test": [other_root.cert]}
    return Case(w.chain(leaf), "chain", ("other.test bundle",), bundles=bundles)


def one_mib(w: World) -> Case:
    padding = b"# padding\n" * (1024 * 1024 // 10)
    return Case(padding + w.chain(w.leaf()), "parse", ("over the limit",))


UNKNOWN_CRITICAL = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\0")
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1()).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
PUBLIC_KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)

CASES: dict[str, Callable[[World], Case]] = {
    # the URI SAN and the SPIFFE ID in it
    "two_uri_sans": lambda w: Case(
        w.chain(w.leaf(ID, ID + "2")), "profile.uri_san", ("2 URI SANs",)
    ),
    "no_san_extension": lambda w: Case(
        w.chain(make_cert("leaf", w.inter, leaf_extensions(None)).cert),
        "profile.uri_san",
        ("no URI SAN",),
    ),
    "dns_san_only": lambda w: Case(
        w.chain(make_cert("leaf", w.inter, leaf_extensions(None, dns=["web.test"])).cert),
        "profile.uri_san",
        ("no URI SAN",),
    ),
    "https_uri": bad_id("https://corpus.test/ns/test/sa/web", "scheme must be 'spiffe'"),
    "urn_uri": bad_id("urn:uuid:0b7e9e5c-6f2b-4c52-9a57-1d2b0e5b0f6a", "not a URI of the form"),
    "query": bad_id(ID + "?x=1", "query"),
    "fragment": bad_id(ID + "#frag", "fragment"),
    "port": bad_id(f"spiffe://{TD}:8443/ns/test/sa/web", "port"),
    "scheme_upper_case": bad_id(f"SPIFFE://{TD}/ns/test/sa/web", "scheme must be 'spiffe'"),
    "scheme_mixed_case": bad_id(f"Spiffe://{TD}/ns/test/sa/web", "scheme must be 'spiffe'"),
    "scheme_without_slashes": bad_id(f"spiffe:{TD}/ns/test", "not a URI of the form"),
    "trust_domain_upper_case": bad_id("spiffe://Corpus.Test/ns/test/sa/web", "lower-case"),
    "empty_path_segment": bad_id(f"spiffe://{TD}/ns//sa/web", "segment 2 is empty"),
    "trailing_slash": bad_id(ID + "/", "is empty"),
    "only_a_slash": bad_id(f"spiffe://{TD}/", "must not end with '/'"),
    "dot_segment": bad_id(f"spiffe://{TD}/ns/./web", "must not be '.'"),
    "dot_dot_segment": bad_id(f"spiffe://{TD}/ns/../web", "must not be '..'"),
    "percent_encoding": bad_id(f"spiffe://{TD}/ns/te%73t", "percent-encoding"),
    "user_info": bad_id(f"spiffe://admin@{TD}/ns/test", "user info"),
    "no_path": bad_id(f"spiffe://{TD}", "needs a path"),
    "no_trust_domain": bad_id("spiffe:///ns/test/sa/web", "no trust domain"),
    "newline_in_path": bad_id(ID + "\n", "path segment"),
    "newline_in_trust_domain": bad_id(f"spiffe://{TD}\n/ns/test", "trust domain"),
    "space_in_path": bad_id(f"spiffe://{TD}/ns/te st", "path segment"),
    "id_over_2048_bytes": bad_id(f"spiffe://{TD}/" + "a" * 2100, "longer than 2048"),
    # the leaf's basic constraints and key usage
    "ca_true_leaf": lambda w: Case(
        w.chain(w.leaf(ca=True)), "profile.leaf_basic_constraints", ("CA:true",)
    ),
    "key_cert_sign_leaf": lambda w: Case(
        w.chain(w.leaf(ku=usage("digital_signature", "key_cert_sign"))),
        "profile.key_usage.no_ca_bits",
        ("keyCertSign",),
    ),
    "crl_sign_leaf": lambda w: Case(
        w.chain(w.leaf(ku=usage("digital_signature", "crl_sign"))),
        "profile.key_usage.no_ca_bits",
        ("cRLSign",),
    ),
    "no_digital_signature": lambda w: Case(
        w.chain(w.leaf(ku=usage("key_encipherment"))),
        "profile.key_usage.digital_signature",
        ("lacks digitalSignature",),
    ),
    "no_key_usage": lambda w: Case(
        w.chain(w.leaf(ku=None)), "profile.key_usage", ("no key usage extension",)
    ),
    "key_usage_not_critical": lambda w: Case(
        w.chain(w.leaf(ku_critical=False)), "profile.key_usage.critical", ("not marked critical",)
    ),
    # validity
    "expired": lambda w: Case(
        w.chain(w.leaf(not_before=NOW - 48 * HOUR, not_after=NOW - 24 * HOUR)),
        "chain",
        ("the leaf", "expired"),
    ),
    "not_yet_valid": lambda w: Case(
        w.chain(w.leaf(not_before=NOW + 24 * HOUR, not_after=NOW + 48 * HOUR)),
        "chain",
        ("the leaf", "not yet valid"),
    ),
    "one_second_past_not_after": lambda w: Case(
        w.chain(w.leaf(not_after=NOW - SECOND)), "chain", ("expired",)
    ),
    "one_second_before_not_before": lambda w: Case(
        w.chain(w.leaf(not_before=NOW + SECOND)), "chain", ("not yet valid",)
    ),
    "intermediate_expired": lambda w: Case(
        w.chain(w.leaf(not_after=NOW + 3 * HOUR)),
        "chain",
        ("certificate 1", "expired"),
        at=NOW + 2 * HOUR,
    ),
    # what the caller expects
    "wrong_expected_trust_domain": lambda w: Case(
        w.chain(w.leaf()),
        "profile.expected_trust_domain",
        ("expected trust domain other.test",),
        expected_td="other.test",
    ),
    "wrong_expected_spiffe_id": lambda w: Case(
        w.chain(w.leaf()),
        "profile.expected_spiffe_id",
        (f"expected {ID}x",),
        expected_id=ID + "x",
    ),
    # signatures and issuers
    "bad_signature": lambda w: Case(
        flip_signature(w.leaf()) + der(w.inter.cert), "chain", ("signature",)
    ),
    "signed_by_another_key": lambda w: Case(
        w.chain(w.leaf(sign_key=ec.generate_private_key(ec.SECP256R1()))), "chain", ("signature",)
    ),
    "unknown_issuer": foreign_leaf,
    "missing_intermediate": lambda w: Case(
        pem(w.leaf()), "chain", ("unknown issuer", "Corpus Intermediate")
    ),
    "self_signed_leaf": lambda w: self_signed(w, in_bundle=False),
    "leaf_is_a_trust_anchor": lambda w: self_signed(w, in_bundle=True),
    "root_presented_as_leaf": lambda w: Case(pem(w.root.cert), "profile.uri_san", ("no URI SAN",)),
    "no_bundle_for_trust_domain": lambda w: Case(
        w.chain(w.leaf("spiffe://elsewhere.test/ns/test/sa/web")),
        "chain",
        ("no trust bundle for trust domain elsewhere.test",),
    ),
    "claims_a_federated_trust_domain": other_domain,
    "unknown_critical_extension": lambda w: Case(
        w.chain(w.leaf(extra=[(UNKNOWN_CRITICAL, True)])), "chain", ("critical",)
    ),
    # the signing certificates
    "intermediate_without_key_cert_sign": lambda w: bad_intermediate(
        w, "profile.ca_key_usage", ("lacks keyCertSign",), ca_extensions(ku=usage("crl_sign"))
    ),
    "intermediate_ca_false": lambda w: bad_intermediate(
        w, "profile.ca_basic_constraints", ("no basicConstraints CA:true",), ca_extensions(ca=False)
    ),
    "intermediate_without_basic_constraints": lambda w: bad_intermediate(
        w, "profile.ca_basic_constraints", ("no basicConstraints CA:true",), ca_extensions(ca=None)
    ),
    "path_length_exceeded": path_too_long,
    "chain_with_a_loop": loop,
    "chain_50_deep": deep,
    "duplicate_certificate": lambda w: Case(
        pem(w.leaf(), w.inter.cert, w.inter.cert), "parse", ("duplicates certificate 1",)
    ),
    # bytes that are no chain
    "empty_input": lambda w: Case(b"", "parse", ("empty",)),
    "whitespace_only": lambda w: Case(b" \n\t\n", "parse", ("neither PEM nor DER",)),
    "random_bytes": lambda w: Case(bytes(range(1, 200)), "parse", ("neither PEM nor DER",)),
    "one_mib_input": one_mib,
    "truncated_der": lambda w: Case(der(w.leaf())[:-40], "parse", ("truncated",)),
    "der_header_only": lambda w: Case(b"\x30", "parse", ("truncated",)),
    "der_bad_length_encoding": lambda w: Case(
        b"\x30\x85\x01\x02\x03\x04\x05", "parse", ("length",)
    ),
    "der_trailing_garbage": lambda w: Case(der(w.leaf()) + b"\x00\x01", "parse", ("trailing",)),
    "der_of_a_crl": lambda w: Case(crl_der(w), "parse", ("not a valid X.509 certificate",)),
    "truncated_pem": lambda w: Case(
        w.chain(w.leaf()).rsplit(b"-----END", 1)[0], "parse", ("without a matching END",)
    ),
    "garbage_pem_base64": lambda w: Case(
        b"-----BEGIN CERTIFICATE-----\nnot*base64!\n-----END CERTIFICATE-----\n",
        "parse",
        ("not valid base64",),
    ),
    "pem_base64_of_garbage": lambda w: Case(
        b"-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
        "parse",
        ("not a valid X.509 certificate",),
    ),
    "pem_with_no_certificate": lambda w: Case(PUBLIC_KEY, "parse", ("PUBLIC KEY", "not a CERT")),
    "pem_dashes_without_blocks": lambda w: Case(b"-----\nhello\n", "parse", ("holds no",)),
    "pem_private_key": lambda w: Case(w.chain(w.leaf()) + PRIVATE_KEY, "parse", ("private key",)),
    "pem_label_mismatch": lambda w: Case(
        w.chain(w.leaf()).replace(b"END CERTIFICATE", b"END X509 CRL", 1), "parse", ("ends as",)
    ),
    "pem_9000_bare_begin_lines": lambda w: Case(
        b"-----BEGIN CERTIFICATE-----\n" * 9000, "parse", ("without a matching END",)
    ),
}


def crl_der(w: World) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(w.inter.cert.subject)
        .last_update(NOW - HOUR)
        .next_update(NOW + HOUR)
        .sign(w.inter.key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def assert_rejected(verdict: Verdict, case: Case) -> None:
    assert not verdict.valid, f"accepted:\n{verdict}"
    assert all(c.name != "internal" for c in verdict.checks), f"internal error:\n{verdict}"
    assert all(c.reason.strip() for c in verdict.failures)
    failing = {c.name: c.reason for c in verdict.failures}
    assert case.check in failing, f"{case.check} did not fail:\n{verdict}"
    for word in case.words:
        assert word in failing[case.check], f"{word!r} not in {failing[case.check]!r}"


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_malformed_chain_is_rejected_naming_what_is_wrong(world: World, name: str) -> None:
    case = CASES[name](world)
    async with validator(case.bundles or world.bundles, clock=ManualClock(case.at)) as v:
        verdict = await v.validate(
            case.data, expected_spiffe_id=case.expected_id, expected_trust_domain=case.expected_td
        )
    assert_rejected(verdict, case)


@pytest.mark.parametrize(
    "at", [NOW - HOUR, NOW, NOW + HOUR], ids=["at_not_before", "inside", "at_not_after"]
)
async def test_the_unbent_leaf_passes_up_to_both_validity_edges(
    world: World, at: dt.datetime
) -> None:
    """The control for the corpus: the same leaf, unbent, is valid (inclusive at both ends),
    in PEM and DER, with both expectations set."""
    leaf = world.leaf()
    async with validator(world.bundles, clock=ManualClock(at)) as v:
        for data in (world.chain(leaf), der(leaf, world.inter.cert)):
            verdict = await v.validate(data, expected_spiffe_id=ID, expected_trust_domain=TD)
            assert verdict.valid, verdict
            assert verdict.spiffe_id == ID
            assert verdict.check("ocsp").result == "skip"
            assert verdict.check("crl").result == "skip"


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40

"""Chain verification at a given time (pure): inclusive validity edges judged at the second,
the trust domain's own bundle, reasons in words, and the URLs the fetcher will touch."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from tests.support.x509_corpus import HOUR, NOW, TD, World, leaf_extensions, make_cert
from x0tta6bl4.identity.validation.chain import StoreCache, verify_chain
from x0tta6bl4.identity.validation.fetch import FetchError, check_fetchable

SECOND = dt.timedelta(seconds=1)
HALF = dt.timedelta(milliseconds=500)


@pytest.fixture(scope="module")
def w() -> World:
    return World()


def verify(
    w: World,
    leaf: x509.Certificate,
    at: dt.datetime,
    *,
    intermediates: list[x509.Certificate] | None = None,
    trust_domain: str | None = TD,
    bundles: dict[str, list[x509.Certificate]] | None = None,
) -> tuple[str, str]:
    result = verify_chain(
        leaf,
        [w.inter.cert] if intermediates is None else intermediates,
        trust_domain=trust_domain,
        bundles=w.bundles if bundles is None else bundles,
        now=at,
        max_depth=10,
    )
    return result.check.result, result.check.reason


@pytest.mark.parametrize(
    ("at", "result"),
    [
        (NOW - HOUR - SECOND, "fail"),
        (NOW - HOUR - HALF, "fail"),  # 10:59:59.5 is still the second before notBefore
        (NOW - HOUR, "pass"),
        (NOW + HOUR, "pass"),
        (NOW + HOUR + HALF, "pass"),  # within notAfter's second
        (NOW + HOUR + SECOND, "fail"),
    ],
    ids=["1s_before", "half_s_before", "at_not_before", "at_not_after", "half_s_after", "1s_after"],
)
def test_validity_is_inclusive_at_both_ends_and_judged_at_the_second(
    w: World, at: dt.datetime, result: str
) -> None:
    leaf = w.leaf()
    outcome, reason = verify(w, leaf, at)
    assert outcome == result, reason
    if result == "pass":
        assert f"at {at.replace(microsecond=0).isoformat()}" in reason


def test_a_passing_chain_ends_at_the_bundles_anchor(w: World) -> None:
    result = verify_chain(
        w.leaf(), [w.inter.cert], trust_domain=TD, bundles=w.bundles, now=NOW, max_depth=10
    )
    assert result.verified == (result.verified[0], w.inter.cert, w.root.cert)
    assert "trust anchor CN=Corpus Root of the corpus.test bundle (3 certificates)" in (
        result.check.reason
    )


def test_without_a_trust_domain_or_its_bundle_nothing_verifies(w: World) -> None:
    assert "no valid SPIFFE ID" in verify(w, w.leaf(), NOW, trust_domain=None)[1]
    assert verify(w, w.leaf(), NOW, trust_domain="x.test")[1] == (
        "no trust bundle for trust domain x.test"
    )
    assert verify(w, w.leaf(), NOW, bundles={TD: []})[1] == (
        "no trust bundle for trust domain corpus.test"
    )


def test_a_leaf_that_is_its_own_anchor_is_refused(w: World) -> None:
    key_leaf = make_cert("self", None, leaf_extensions())
    outcome, reason = verify(w, key_leaf.cert, NOW, intermediates=[], bundles={TD: [key_leaf.cert]})
    assert outcome == "fail" and "is itself a trust anchor" in reason


def test_stores_are_built_once_per_list_of_authorities_and_bounded(w: World) -> None:
    stores = StoreCache(size=2)
    first = stores.get([w.root.cert])
    assert stores.get([w.root.cert]) is first
    stores.get([w.inter.cert])
    stores.get([w.root.cert, w.inter.cert])  # evicts the oldest
    assert stores.get([w.root.cert]) is not first


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ldap://ldap.test/cn=crl", "unsupported URL scheme 'ldap'"),
        ("http:///x.crl", "the URL has no host"),
        ("http://[::1/x", "not a valid URL"),
        ("http://127.0.0.1:99999/x", "not a valid URL"),
        ("http://127.0.0.1/x\n", "control"),
        ("http://127.0.0.1/a b", "spaces"),
        ("http://h\u00e9.test/", "non-ASCII"),
    ],
)
def test_only_plain_http_urls_with_a_host_are_fetched(url: str, problem: str) -> None:
    with pytest.raises(FetchError) as raised:
        check_fetchable(url)
    assert problem in str(raised.value)


def test_good_urls_are_fetchable() -> None:
    for url in ("http://127.0.0.1:8080/ocsp", "https://pki.example/ca.crl", "http://[::1]:80/"):
        check_fetchable(url)

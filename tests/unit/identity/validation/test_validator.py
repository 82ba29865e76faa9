"""The validator's shell without the network: the order of the checks, a failure inside it is
an invalid verdict and never an exception, and unverified chains stop before pins and
revocation (nothing here publishes a URL, so nothing is fetched)."""

from __future__ import annotations

import pytest
from cryptography import x509

from tests.support.pki import ManualClock
from tests.support.x509_corpus import ID, NOW, TD, World
from x0tta6bl4.identity.validation import CertificateValidator, HttpFetcher, parse_policies

ORDER = [
    "parse",
    "profile.uri_san",
    "profile.spiffe_id",
    "profile.leaf_basic_constraints",
    "profile.key_usage",
    "profile.key_usage.critical",
    "profile.key_usage.digital_signature",
    "profile.key_usage.no_ca_bits",
    "profile.expected_spiffe_id",
    "profile.expected_trust_domain",
    "chain",
    "profile.ca_basic_constraints",
    "profile.ca_key_usage",
    "profile.path_length",
    "pin.spki",
    "pin.spiffe_id",
    "ocsp",
    "crl",
]


@pytest.fixture(scope="module")
def w() -> World:
    return World()


async def validate(
    w: World, data: bytes, bundles: object = None, **kwargs: str
) -> tuple[bool, list[tuple[str, str, str]]]:
    def current() -> dict[str, list[x509.Certificate]]:
        if isinstance(bundles, Exception):
            raise bundles
        return w.bundles

    fetcher = HttpFetcher()
    try:
        v = CertificateValidator(current, parse_policies({}), fetcher, ManualClock(NOW))
        verdict = await v.validate(data, **kwargs)
    finally:
        await fetcher.aclose()
    return verdict.valid, [(c.name, c.result, c.reason) for c in verdict.checks]


async def test_every_check_runs_in_a_fixed_order(w: World) -> None:
    valid, checks = await validate(w, w.chain(w.leaf()), expected_spiffe_id=ID)
    assert valid
    assert [name for name, _, _ in checks] == ORDER


async def test_an_unverified_chain_stops_before_pins_and_revocation(w: World) -> None:
    stranger = World()
    valid, checks = await validate(w, stranger.chain(stranger.leaf()), expected_trust_domain=TD)
    assert not valid
    assert [name for name, _, _ in checks] == ORDER
    tail = {name: (result, reason) for name, result, reason in checks[-4:]}
    assert tail == {
        name: ("skip", "not checked: the chain did not verify")
        for name in ("pin.spki", "pin.spiffe_id", "ocsp", "crl")
    }


async def test_unparseable_input_is_one_failing_parse_check(w: World) -> None:
    valid, checks = await validate(w, b"garbage")
    assert not valid and [(n, r) for n, r, _ in checks] == [("parse", "fail")]


async def test_a_failure_inside_the_validator_is_an_invalid_verdict(w: World) -> None:
    valid, checks = await validate(w, w.chain(w.leaf()), RuntimeError("bundle source broke"))
    assert not valid
    assert checks == [("internal", "fail", "validation stopped: RuntimeError")]

"""The certificate validator against a real openssl PKI (tests/support/pki.py): good chains,
federated bundles, pins and named policies, configured revocation sources, and the OCSP and CRL
caches (requests counted at the 127.0.0.1 listeners; time moved through the validator's clock).

The failure modes of revocation (revoked, forged, replayed, down, stale) are in
test_identity_validator_revocation.py; the malformed-certificate corpus is in
test_identity_validator_corpus.py; real SPIRE SVIDs in test_identity_validator_spire.py.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator

import pytest

from tests.support.pki import ManualClock, TestPki, b64_spki_pin, validator
from x0tta6bl4.identity.validation import InvalidValidationRequest, Verdict
from x0tta6bl4.identity.validation.revocation import load_crl

pytestmark = pytest.mark.integration

PINNED = "pinned"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    with TestPki(tmp_path_factory.mktemp("pki")) as pki:
        yield pki


def results(verdict: Verdict) -> dict[str, str]:
    return {c.name: c.result for c in verdict.checks}


def valid_until(verdict: Verdict, check: str) -> dt.datetime:
    """The nextUpdate the check's reason reports (``... valid until <iso>)``)."""
    reason = verdict.check(check).reason
    return dt.datetime.fromisoformat(reason.rsplit("valid until ", 1)[1].rstrip(")"))


async def test_a_good_svid_passes_every_check_as_pem_and_as_der(pki: TestPki) -> None:
    leaf = pki.issue("good")
    async with validator(pki.bundles) as v:
        for data, encoding in ((pki.chain_pem(leaf), "PEM"), (pki.chain_der(leaf), "DER")):
            verdict = await v.validate(
                data, expected_spiffe_id=leaf.spiffe_id, expected_trust_domain=pki.trust_domain
            )
            assert verdict.valid, verdict
            assert (verdict.policy, verdict.spiffe_id) == ("default", leaf.spiffe_id)
            assert encoding in verdict.check("parse").reason
            assert not verdict.soft_failed
            outcome = results(verdict)
            assert {n for n, r in outcome.items() if r == "skip"} == {"pin.spki", "pin.spiffe_id"}
            assert set(outcome.values()) == {"pass", "skip"}
            assert "(3 certificates)" in verdict.check("chain").reason
            assert "delegated responder" in verdict.check("ocsp").reason
            # the leaf's CRL is the DER one, the intermediate's (from the root) the PEM one
            assert "intermediate.crl" in verdict.check("crl").reason
            assert "root.crl" in verdict.check("crl.intermediate.1").reason


async def test_federated_bundles_verify_each_trust_domain_with_its_own_authorities(
    pki: TestPki,
) -> None:
    partner = pki.issue("partner", federated=True, ocsp_url=None, crl_url=None)
    impostor = pki.issue(
        "impostor", spiffe_id="spiffe://other.test/ns/test/sa/impostor", ocsp_url=None
    )
    async with validator(pki.federated_bundles) as v:
        ok = await v.validate(pki.chain_pem(partner), expected_trust_domain="other.test")
        assert ok.valid, ok
        assert "of the other.test bundle" in ok.check("chain").reason
        assert ok.spiffe_id == partner.spiffe_id
        # issued by pki.test's CA but claiming other.test: judged by other.test's bundle
        bad = await v.validate(pki.chain_pem(impostor))
        assert not bad.valid
        assert "against the other.test bundle" in bad.check("chain").reason
    async with validator(pki.bundles) as v:
        alone = await v.validate(pki.chain_pem(partner))
    assert alone.check("chain").reason == "no trust bundle for trust domain other.test"


@pytest.mark.parametrize("whose", ["root", "intermediate", "leaf"])
async def test_an_spki_pin_of_any_certificate_of_the_chain_matches(
    pki: TestPki, whose: str
) -> None:
    leaf = pki.issue(f"pin-{whose}", ocsp_url=None, crl_url=None)
    cert = {"root": pki.root_ca.me, "intermediate": pki.intermediate_ca.me, "leaf": leaf}[whose]
    pin = b64_spki_pin(cert.cert)  # computed with openssl, as an operator would
    hex_pin = ":".join(f"{b:02x}" for b in base64.b64decode(pin))
    for spelled in (f"sha256/{pin}", hex_pin):
        async with validator(pki.bundles, {PINNED: {"spki_pins": [spelled]}}) as v:
            verdict = await v.validate(pki.chain_pem(leaf), policy=PINNED)
        assert verdict.valid, verdict
        assert verdict.policy == PINNED
        check = verdict.check("pin.spki")
        assert check.result == "pass"
        assert f"matches pin sha256/{pin}" in check.reason
        assert cert.cert.subject.rfc4514_string() in check.reason


async def test_an_spki_pin_set_that_nothing_matches_denies(pki: TestPki) -> None:
    leaf = pki.issue("pin-mismatch", ocsp_url=None, crl_url=None)
    pins = [b64_spki_pin(pki.other_ca.me.cert), b64_spki_pin(pki.responder.cert)]
    async with validator(pki.bundles, {PINNED: {"spki_pins": pins}}) as v:
        verdict = await v.validate(pki.chain_pem(leaf), policy=PINNED)
    assert not verdict.valid
    assert [c.name for c in verdict.failures] == ["pin.spki"]
    assert "matches any of the 2 configured pins" in verdict.check("pin.spki").reason


async def test_spiffe_id_pins_match_exactly_or_below_a_prefix_and_deny_otherwise(
    pki: TestPki,
) -> None:
    leaf = pki.issue("pin-id", ocsp_url=None, crl_url=None)
    policies = {
        "exact": {"spiffe_id_pins": [leaf.spiffe_id]},
        "prefix": {"spiffe_id_pins": ["spiffe://pki.test/ns/test/*"]},
        "elsewhere": {"spiffe_id_pins": ["spiffe://pki.test/ns/prod/*", leaf.spiffe_id + "x"]},
        "parent-only": {"spiffe_id_pins": ["spiffe://pki.test/ns/test/sa/pin-id/*"]},
    }
    async with validator(pki.bundles, policies) as v:
        for name, ok in (("exact", True), ("prefix", True), ("elsewhere", False)):
            verdict = await v.validate(pki.chain_pem(leaf), policy=name)
            assert verdict.valid is ok, verdict
            assert verdict.check("pin.spiffe_id").result == ("pass" if ok else "fail")
        below = await v.validate(pki.chain_pem(leaf), policy="parent-only")
    assert "matches none of the 1 configured pins" in below.check("pin.spiffe_id").reason


async def test_an_empty_pin_set_is_no_pinning_and_the_other_checks_still_decide(
    pki: TestPki,
) -> None:
    good = pki.issue("nopin-good", crl_url=None)
    revoked = pki.issue("nopin-revoked", crl_url=None)
    pki.revoke(revoked)
    policies: dict[str, object] = {"nopins": {"spki_pins": [], "spiffe_id_pins": []}}
    async with validator(pki.bundles, policies) as v:
        ok = await v.validate(pki.chain_pem(good), policy="nopins")
        denied = await v.validate(pki.chain_pem(revoked), policy="nopins")
    for verdict in (ok, denied):
        assert verdict.check("pin.spki").result == "skip"
        assert verdict.check("pin.spiffe_id").result == "skip"
        assert verdict.check("pin.spki").reason == "no pins configured"
    assert ok.valid, ok
    assert not denied.valid
    assert [c.name for c in denied.failures] == ["ocsp"]


async def test_configured_ocsp_responder_and_crls_apply_to_chains_that_publish_none(
    pki: TestPki,
) -> None:
    bare = pki.issue("bare", ocsp_url=None, crl_url=None)
    policies = {
        "configured": {
            "ocsp_responder_url": pki.ocsp.url,
            "crl_urls": [pki.crls.url("intermediate-pem.crl")],
        }
    }
    async with validator(pki.bundles, policies) as v:
        plain = await v.validate(pki.chain_pem(bare))
        before = pki.ocsp.requests
        configured = await v.validate(pki.chain_pem(bare), policy="configured")
    assert plain.valid and plain.check("ocsp").result == "skip", plain
    assert plain.check("ocsp").reason == "the chain publishes no OCSP responder"
    assert configured.valid, configured
    assert configured.policy == "configured"
    assert pki.ocsp.requests == before + 1
    assert f"OCSP at {pki.ocsp.url}" in configured.check("ocsp").reason
    assert "intermediate-pem.crl" in configured.check("crl").reason
    assert configured.check("crl").result == "pass"


async def test_the_ocsp_answer_is_cached_until_its_next_update(pki: TestPki) -> None:
    leaf = pki.issue("ocsp-cache", crl_url=None)
    clock = ManualClock()
    async with validator(pki.bundles, clock=clock) as v:
        first = await v.validate(pki.chain_pem(leaf))
        assert first.valid, first
        assert pki.ocsp.hits["/ocsp"] >= 1
        asked = pki.ocsp.requests
        next_update = valid_until(first, "ocsp")
        assert next_update > clock.now  # openssl ocsp -nmin 5
        for now in (clock.now + dt.timedelta(minutes=1), next_update):
            clock.now = now
            cached = await v.validate(pki.chain_pem(leaf))
            assert cached.valid, cached
            assert "cached OCSP answer" in cached.check("ocsp").reason
            assert pki.ocsp.requests == asked
        clock.now = next_update + dt.timedelta(seconds=1)
        after = await v.validate(pki.chain_pem(leaf))
    assert pki.ocsp.requests == asked + 1
    assert "cached" not in after.check("ocsp").reason
    assert pki.ocsp.url in after.check("ocsp").reason


async def test_crls_are_cached_until_their_next_update(pki: TestPki) -> None:
    leaf = pki.issue("crl-cache", ocsp_url=None)
    clock = ManualClock()
    names = ("intermediate.crl", "root.crl")
    async with validator(pki.bundles, clock=clock) as v:
        first = await v.validate(pki.chain_pem(leaf))
        assert first.valid, first
        fetched = {n: pki.crls.fetched(n) for n in names}
        assert all(count >= 1 for count in fetched.values())
        next_updates = [crl_next_update(pki, n) for n in names]
        for now in (clock.now + dt.timedelta(minutes=30), min(next_updates)):
            clock.now = now
            cached = await v.validate(pki.chain_pem(leaf))
            assert cached.valid, cached
            assert {n: pki.crls.fetched(n) for n in names} == fetched
        clock.now = max(next_updates) + dt.timedelta(seconds=1)
        await v.validate(pki.chain_pem(leaf))
    assert {n: pki.crls.fetched(n) for n in names} == {n: c + 1 for n, c in fetched.items()}


def crl_next_update(pki: TestPki, name: str) -> dt.datetime:
    crl = load_crl((pki.crls.directory / name).read_bytes())
    assert crl.next_update_utc is not None
    return crl.next_update_utc


async def test_arguments_that_are_wrong_raise_naming_the_field(pki: TestPki) -> None:
    leaf = pki.issue("args", ocsp_url=None, crl_url=None)
    async with validator(pki.bundles, {"partner": {}}) as v:
        for kwargs, field in (
            ({"policy": "nope"}, "policy"),
            ({"expected_spiffe_id": "spiffe://pki.test/a?b"}, "expected_spiffe_id"),
            ({"expected_spiffe_id": "spiffe://pki.test"}, "expected_spiffe_id"),
            ({"expected_trust_domain": "pki.test/ns"}, "expected_trust_domain"),
            ({"expected_trust_domain": "PKI.test"}, "expected_trust_domain"),
        ):
            with pytest.raises(InvalidValidationRequest) as raised:
                await v.validate(pki.chain_pem(leaf), **kwargs)
            assert raised.value.field == field
            assert str(raised.value).startswith(f"{field}: ")
            if field == "policy":
                assert "unknown validation policy 'nope' (known: default, partner)" in str(
                    raised.value
                )
        named = await v.validate(pki.chain_pem(leaf), policy="partner")
        defaulted = await v.validate(pki.chain_pem(leaf), policy="")
    assert (named.policy, defaulted.policy) == ("partner", "default")


async def test_a_chain_that_does_not_verify_makes_no_request(pki: TestPki) -> None:
    """Revocation URLs come from certificates: the validator follows them only for a chain
    its bundle vouches for, so a caller cannot make it fetch where it likes."""
    forger = pki.forger()
    forger.signed_by(pki.responder)
    leaf = pki.issue("untrusted", ocsp_url=forger.url, crl_url=pki.crls.url("untrusted.crl"))
    crls_before = pki.crls.requests
    async with validator({pki.trust_domain: [pki.other_ca.me.cert]}) as v:
        verdict = await v.validate(pki.chain_pem(leaf))
    assert not verdict.valid and verdict.check("chain").result == "fail"
    assert verdict.check("ocsp").reason == "not checked: the chain did not verify"
    assert (forger.requests, pki.crls.requests) == (0, crls_before)
    async with validator(pki.bundles) as v:  # the control: trusted, so both are asked
        await v.validate(pki.chain_pem(leaf))
    assert forger.requests == 1
    assert pki.crls.fetched("untrusted.crl") == 1

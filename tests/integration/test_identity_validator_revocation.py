"""The certificate validator's revocation checks against the real openssl PKI: revoked by OCSP
(the real ``openssl ocsp`` responder) and by CRLs (PEM and DER over HTTP), a responder that is
down or hangs (hard-fail by default, soft-fail under a named policy, and the verdict says
which), forged and replayed OCSP answers (tests/support/pki_http.py's ForgingOcspResponder),
and stale, foreign and missing CRLs. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.x509 import ocsp

from tests.support.pki import TestPki, validator
from x0tta6bl4.identity.validation import Verdict

pytestmark = pytest.mark.integration

SOFT = {"lenient": {"ocsp_soft_fail": True, "crl_soft_fail": True}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    with TestPki(tmp_path_factory.mktemp("pki")) as pki:
        yield pki


def only_failure(verdict: Verdict, name: str, *words: str) -> None:
    """``name`` is the one failing check of the invalid ``verdict``, its reason has ``words``."""
    assert not verdict.valid, verdict
    assert [c.name for c in verdict.failures] == [name], verdict
    for word in words:
        assert word in verdict.check(name).reason, verdict.check(name).reason


def soft_failure(verdict: Verdict, name: str, *words: str) -> None:
    """``verdict`` is valid only because ``name`` soft-failed, and it says so."""
    assert verdict.valid, verdict
    assert [c.name for c in verdict.soft_failed] == [name], verdict
    assert f"(soft-failed: {name})" in str(verdict).splitlines()[0]
    for word in words:
        assert word in verdict.check(name).reason, verdict.check(name).reason


async def test_a_leaf_revoked_at_the_responder_is_denied_by_ocsp(pki: TestPki) -> None:
    leaf = pki.issue("ocsp-revoked")
    pki.revoke(leaf, "keyCompromise")  # the CRLs are not republished: only OCSP knows
    async with validator(pki.bundles, SOFT) as v:
        for policy in ("default", "lenient"):  # a revocation is never soft
            verdict = await v.validate(pki.chain_pem(leaf), policy=policy)
            only_failure(verdict, "ocsp", "revoked at", "keyCompromise", "delegated responder")
            assert verdict.check("crl").result == "pass"


@pytest.mark.parametrize("crl", ["intermediate.crl", "intermediate-pem.crl"], ids=["der", "pem"])
async def test_a_leaf_on_the_crl_is_denied(pki: TestPki, crl: str) -> None:
    leaf = pki.issue(f"crl-revoked-{crl}", ocsp_url=None, crl_url=pki.crls.url(crl))
    pki.revoke(leaf, "superseded")
    pki.publish_crls()
    async with validator(pki.bundles, SOFT) as v:
        for policy in ("default", "lenient"):
            verdict = await v.validate(pki.chain_pem(leaf), policy=policy)
            serial = f"serial {leaf.cert.serial_number:x}"
            only_failure(verdict, "crl", "revoked at", "superseded", serial, crl)


async def test_a_leaf_on_a_configured_crl_is_denied(pki: TestPki) -> None:
    leaf = pki.issue("configured-crl-revoked", ocsp_url=None, crl_url=None)
    pki.revoke(leaf)
    pki.publish_crls()
    policies = {"configured": {"crl_urls": [pki.crls.url("intermediate.crl")]}}
    async with validator(pki.bundles, policies) as v:
        plain = await v.validate(pki.chain_pem(leaf))
        configured = await v.validate(pki.chain_pem(leaf), policy="configured")
    assert plain.valid and plain.check("crl").result == "skip", plain
    only_failure(configured, "crl", "revoked at", "intermediate.crl")


async def test_a_responder_that_is_down_denies_unless_the_policy_soft_fails(
    pki: TestPki,
) -> None:
    down = pki.refusing()
    leaf = pki.issue("responder-down", ocsp_url=down.url, crl_url=None)
    async with validator(pki.bundles, SOFT) as v:
        hard = await v.validate(pki.chain_pem(leaf))
        soft = await v.validate(pki.chain_pem(leaf), policy="lenient")
    only_failure(hard, "ocsp", "no OCSP answer", down.url, "cannot connect")
    soft_failure(soft, "ocsp", "no OCSP answer", "cannot connect")
    assert soft.policy == "lenient"


async def test_a_responder_that_never_answers_times_out_and_denies(pki: TestPki) -> None:
    silent = pki.silent()
    leaf = pki.issue("responder-hangs", ocsp_url=silent.url, crl_url=None)
    async with validator(pki.bundles, SOFT, timeout_s=1.0) as v:
        hard = await v.validate(pki.chain_pem(leaf))
        soft = await v.validate(pki.chain_pem(leaf), policy="lenient")
    only_failure(hard, "ocsp", "timeout")
    soft_failure(soft, "ocsp", "timeout")


async def test_a_forger_with_the_real_responder_key_is_believed(pki: TestPki) -> None:
    """The control for the forgery tests: the handmade responder's answers verify when it
    signs with the delegated responder's own key, so what fails below is the forgery."""
    forger = pki.forger()
    forger.signed_by(pki.responder)
    leaf = pki.issue("forger-control", ocsp_url=forger.url, crl_url=None)
    async with validator(pki.bundles) as v:
        good = await v.validate(pki.chain_pem(leaf))
        forger.signed_by(pki.responder, status=ocsp.OCSPCertStatus.REVOKED)
        other = pki.issue("forger-control-2", ocsp_url=forger.url, crl_url=None)
        revoked = await v.validate(pki.chain_pem(other))
    assert good.valid, good
    assert good.check("ocsp").result == "pass"
    only_failure(revoked, "ocsp", "revoked")
    assert forger.requests == 2


@pytest.mark.parametrize(
    ("signer", "claims_issuer", "words"),
    [
        ("other_ca", True, "its signature does not verify with the responder's key"),
        ("other_ca", False, "was issued by CN=Other CA"),
        ("no_eku", False, "lacks the id-kp-OCSPSigning extended key usage"),
    ],
    ids=["another_key_claiming_the_issuer", "another_ca_as_delegate", "delegate_without_eku"],
)
async def test_a_forged_ocsp_answer_is_unverifiable_and_denies(
    pki: TestPki, signer: str, claims_issuer: bool, words: str
) -> None:
    forger = pki.forger()
    if signer == "other_ca":
        key = pki.other_ca.me
    else:
        key = pki.responder_certificate("no-eku", ocsp_signing=False)
    issuer = pki.intermediate_ca.me.cert.subject
    forger.signed_by(key, responder_name=issuer if claims_issuer else None)
    leaf = pki.issue(f"forged-{signer}-{claims_issuer}", ocsp_url=forger.url, crl_url=None)
    async with validator(pki.bundles, SOFT) as v:
        hard = await v.validate(pki.chain_pem(leaf))
        soft = await v.validate(pki.chain_pem(leaf), policy="lenient")
    only_failure(hard, "ocsp", "is unusable", words)
    soft_failure(soft, "ocsp", words)  # unverifiable, like unreachable: the policy decides
    assert forger.requests == 2


async def test_a_replayed_answer_with_another_nonce_is_refused(pki: TestPki) -> None:
    forger = pki.forger()
    leaf = pki.issue("replayed", ocsp_url=forger.url, crl_url=None)
    # a genuine answer of the real responder, about this very leaf, to someone else's request
    captured = pki.post(pki.ocsp.url, pki.ocsp_request_for(leaf, os.urandom(16)))
    assert ocsp.load_der_ocsp_response(captured).certificate_status == ocsp.OCSPCertStatus.GOOD
    forger.replaying(captured)
    async with validator(pki.bundles) as v:
        replayed = await v.validate(pki.chain_pem(leaf))
        forger.replaying(pki.post(pki.ocsp.url, pki.ocsp_request_for(leaf, None)))
        unnonced = await v.validate(pki.chain_pem(leaf))
    only_failure(replayed, "ocsp", "is not ours", "a replay")
    only_failure(unnonced, "ocsp", "carries no nonce")


async def test_an_answer_that_is_not_ocsp_denies(pki: TestPki) -> None:
    forger = pki.forger()
    forger.answer = lambda _request: b"<html>captive portal</html>"
    leaf = pki.issue("not-ocsp", ocsp_url=forger.url, crl_url=None)
    async with validator(pki.bundles) as v:
        verdict = await v.validate(pki.chain_pem(leaf))
    only_failure(verdict, "ocsp", "not a DER OCSP response")


async def test_a_stale_crl_denies_unless_the_policy_soft_fails(pki: TestPki) -> None:
    leaf = pki.issue("stale", ocsp_url=None, crl_url=pki.crls.url("stale.crl"))
    async with validator(pki.bundles, SOFT) as v:
        hard = await v.validate(pki.chain_pem(leaf))
        soft = await v.validate(pki.chain_pem(leaf), policy="lenient")
    only_failure(hard, "crl", "stale.crl", "it is stale: its nextUpdate")
    soft_failure(soft, "crl", "it is stale")


@pytest.mark.parametrize(
    ("crl", "words"),
    [
        ("root.crl", "it is issued by CN=Test Root CA"),  # another CA's CRL at the DP
        ("missing.crl", "HTTP status 404"),
    ],
    ids=["another_issuers_crl", "no_crl_at_the_distribution_point"],
)
async def test_an_unusable_crl_denies(pki: TestPki, crl: str, words: str) -> None:
    leaf = pki.issue(f"unusable-{crl}", ocsp_url=None, crl_url=pki.crls.url(crl))
    async with validator(pki.bundles) as v:
        verdict = await v.validate(pki.chain_pem(leaf))
    only_failure(verdict, "crl", "no usable CRL", words)


async def test_a_crl_server_that_is_down_denies_unless_the_policy_soft_fails(
    pki: TestPki,
) -> None:
    down = pki.refusing()
    leaf = pki.issue("crl-down", ocsp_url=None, crl_url=f"http://127.0.0.1:{down.port}/x.crl")
    async with validator(pki.bundles, SOFT) as v:
        hard = await v.validate(pki.chain_pem(leaf))
        soft = await v.validate(pki.chain_pem(leaf), policy="lenient")
    only_failure(hard, "crl", "cannot connect")
    soft_failure(soft, "crl", "cannot connect")

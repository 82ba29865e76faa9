"""The OCSP and CRL decisions (pure): which answers are trusted, which are refused and why.
Responses and CRLs are built with ``cryptography``'s builders around the corpus's small CA
(tests/support/x509_corpus.py), judged at its fixed time."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from tests.support.x509_corpus import NOW, Issuer, World, ca_extensions, make_cert, usage
from x0tta6bl4.identity.validation.revocation import (
    Unverifiable,
    build_ocsp_request,
    crl_answer,
    crl_urls,
    evaluate_crl,
    evaluate_ocsp,
    load_crl,
    ocsp_urls,
)

NONCE = b"n" * 16
MINUTE = dt.timedelta(minutes=1)
OCSP_EKU = (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
GOOD, REVOKED, UNKNOWN = (
    ocsp.OCSPCertStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN,
)


@pytest.fixture(scope="module")
def w() -> World:
    return World()


@pytest.fixture(scope="module")
def leaf(w: World) -> x509.Certificate:
    return w.leaf()


def answer(
    w: World,
    cert: x509.Certificate,
    signer: Issuer | None = None,
    *,
    named: x509.Certificate | None = None,
    status: ocsp.OCSPCertStatus = GOOD,
    this_update: dt.datetime = NOW - MINUTE,
    next_update: dt.datetime | None = NOW + 5 * MINUTE,
    nonce: bytes | None = NONCE,
    by_hash: bool = False,
    include: bool = True,
) -> bytes:
    """A DER OCSP response about ``cert`` (issued by ``w.inter``), signed by ``signer``
    (default: the issuer), naming ``named`` (default: the signer) as the responder; a
    signer other than the issuer has its certificate included."""
    signer = signer or w.inter
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=w.inter.cert,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=NOW - 2 * MINUTE if status == REVOKED else None,
        revocation_reason=x509.ReasonFlags.key_compromise if status == REVOKED else None,
    )
    encoding = ocsp.OCSPResponderEncoding.HASH if by_hash else ocsp.OCSPResponderEncoding.NAME
    builder = builder.responder_id(encoding, named or signer.cert)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    if signer is not w.inter and include:
        builder = builder.certificates([signer.cert])
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def judge(w: World, cert: x509.Certificate, data: bytes, *, at: dt.datetime = NOW) -> str:
    result = evaluate_ocsp(data, cert=cert, issuer=w.inter.cert, nonce=NONCE, now=at)
    return f"{result.status}: {result.detail}"


def refused(w: World, cert: x509.Certificate, data: bytes, *, at: dt.datetime = NOW) -> str:
    with pytest.raises(Unverifiable) as raised:
        evaluate_ocsp(data, cert=cert, issuer=w.inter.cert, nonce=NONCE, now=at)
    return str(raised.value)


def test_an_answer_signed_by_the_issuer_is_trusted_until_its_next_update(
    w: World, leaf: x509.Certificate
) -> None:
    result = evaluate_ocsp(answer(w, leaf), cert=leaf, issuer=w.inter.cert, nonce=NONCE, now=NOW)
    assert (result.status, result.detail) == ("good", "good, signed by the issuer")
    assert result.next_update == NOW + 5 * MINUTE
    assert result.fresh(NOW + 5 * MINUTE) and not result.fresh(NOW + 5 * MINUTE + MINUTE)
    assert judge(w, leaf, answer(w, leaf, by_hash=True)) == "good: good, signed by the issuer"


def test_an_answer_signed_by_a_delegated_responder_is_trusted(
    w: World, leaf: x509.Certificate
) -> None:
    delegate = make_cert("Responder", w.inter, [OCSP_EKU])
    assert judge(w, leaf, answer(w, leaf, delegate)) == (
        "good: good, signed by delegated responder CN=Responder"
    )
    assert "delegated responder" in judge(w, leaf, answer(w, leaf, delegate, by_hash=True))


def test_a_revoked_answer_says_when_and_why(w: World, leaf: x509.Certificate) -> None:
    verdict = judge(w, leaf, answer(w, leaf, status=REVOKED))
    assert verdict.startswith("revoked: revoked at ")
    assert "(keyCompromise), signed by the issuer" in verdict


def test_an_answer_without_next_update_is_trusted_but_never_fresh(
    w: World, leaf: x509.Certificate
) -> None:
    data = answer(w, leaf, next_update=None)
    result = evaluate_ocsp(data, cert=leaf, issuer=w.inter.cert, nonce=NONCE, now=NOW)
    assert result.status == "good" and result.next_update is None and not result.fresh(NOW)


@pytest.mark.parametrize(
    ("kwargs", "at", "reason"),
    [
        ({"nonce": None}, NOW, "it carries no nonce, so it may be a replay"),
        ({"nonce": b"x" * 16}, NOW, "is not ours"),
        ({"this_update": NOW + 10 * MINUTE}, NOW, "is in the future"),
        ({"next_update": NOW - dt.timedelta(seconds=1)}, NOW, "it is stale"),
        ({}, NOW + 5 * MINUTE + dt.timedelta(seconds=1), "it is stale"),
        ({"status": UNKNOWN}, NOW, "does not know this certificate"),
    ],
    ids=["no_nonce", "wrong_nonce", "future", "stale", "stale_later", "unknown"],
)
def test_an_answer_that_cannot_be_trusted_is_refused(
    w: World, leaf: x509.Certificate, kwargs: dict[str, object], at: dt.datetime, reason: str
) -> None:
    assert reason in refused(w, leaf, answer(w, leaf, **kwargs), at=at)  # type: ignore[arg-type]


def test_this_update_within_the_clock_skew_is_accepted(w: World, leaf: x509.Certificate) -> None:
    assert judge(w, leaf, answer(w, leaf, this_update=NOW + 4 * MINUTE)).startswith("good")


def test_an_answer_about_another_certificate_is_refused(w: World, leaf: x509.Certificate) -> None:
    other = w.leaf()
    assert "holds no answer for serial" in refused(w, leaf, answer(w, other))


def test_bytes_that_are_no_successful_response_are_refused(
    w: World, leaf: x509.Certificate
) -> None:
    assert "not a DER OCSP response" in refused(w, leaf, b"<html>portal</html>")
    busy = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
    data = busy.public_bytes(serialization.Encoding.DER)
    assert refused(w, leaf, data) == "the responder answered TRY_LATER"


def test_forged_and_unqualified_signers_are_refused(w: World, leaf: x509.Certificate) -> None:
    stranger = make_cert("Stranger", None, ca_extensions())
    # another key naming itself as the issuer: the issuer's key does not verify it
    impostor = make_cert("Corpus Intermediate", None, [], key=stranger.key)
    forged = answer(w, leaf, stranger, named=impostor.cert)
    assert "its signature does not verify with the responder's key" in refused(w, leaf, forged)
    cases = {
        "was issued by CN=Corpus Root, not by the certificate's issuer": make_cert(
            "Responder", w.root, [OCSP_EKU]
        ),
        "lacks the id-kp-OCSPSigning extended key usage": make_cert("Responder", w.inter, []),
        "is not valid at": make_cert(
            "Responder", w.inter, [OCSP_EKU], not_before=NOW - 3 * MINUTE, not_after=NOW - MINUTE
        ),
        "'s certificate is not signed by the issuer's key": make_cert(
            "Responder", w.inter, [OCSP_EKU], sign_key=stranger.key
        ),
    }
    for reason, signer in cases.items():
        assert reason in refused(w, leaf, answer(w, leaf, signer)), reason
    delegate = make_cert("Responder", w.inter, [OCSP_EKU])
    unincluded = answer(w, leaf, delegate, include=False)
    assert "neither the issuer nor a delegated responder whose certificate is included" in (
        refused(w, leaf, unincluded)
    )


def test_the_request_asks_about_the_certificate_with_a_nonce(
    w: World, leaf: x509.Certificate
) -> None:
    request = ocsp.load_der_ocsp_request(build_ocsp_request(leaf, w.inter.cert, NONCE))
    assert request.serial_number == leaf.serial_number
    assert isinstance(request.hash_algorithm, hashes.SHA1)
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == NONCE


def test_responder_and_distribution_point_urls_are_read_from_the_certificate(w: World) -> None:
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://i")
            ),
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://o/")
            ),
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.DNSName("o.test")),
        ]
    )
    point = x509.DistributionPoint(
        [x509.UniformResourceIdentifier("http://c/1.crl"), x509.DNSName("c.test")], None, None, None
    )
    relative = x509.DistributionPoint(
        None, x509.RelativeDistinguishedName([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")]),
        None, None,
    )  # fmt: skip
    cert = w.leaf(extra=[(aia, False), (x509.CRLDistributionPoints([point, relative]), False)])
    assert ocsp_urls(cert) == ["http://o/"]
    assert crl_urls(cert) == ["http://c/1.crl"]
    assert ocsp_urls(w.leaf()) == [] and crl_urls(w.leaf()) == []


def crl(
    w: World,
    *,
    issuer: Issuer | None = None,
    revoked: x509.Certificate | None = None,
    last: dt.datetime = NOW - MINUTE,
    next_update: dt.datetime = NOW + 60 * MINUTE,
    extensions: tuple[x509.ExtensionType, ...] = (),
    sign_key: Issuer | None = None,
) -> x509.CertificateRevocationList:
    issuer = issuer or w.inter
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
    builder = builder.last_update(last).next_update(next_update)
    if revoked is not None:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.serial_number)
            .revocation_date(NOW - 2 * MINUTE)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    for ext in extensions:
        builder = builder.add_extension(ext, critical=True)
    return builder.sign((sign_key or issuer).key, hashes.SHA256())


def crl_refused(w: World, revocation_list: x509.CertificateRevocationList) -> str:
    with pytest.raises(Unverifiable) as raised:
        evaluate_crl(revocation_list, issuer=w.inter.cert, now=NOW)
    return str(raised.value)


def test_a_good_crl_is_usable_until_its_next_update_and_lists_revoked_serials(
    w: World, leaf: x509.Certificate
) -> None:
    listed = crl(w, revoked=leaf)
    assert evaluate_crl(listed, issuer=w.inter.cert, now=NOW) == NOW + 60 * MINUTE
    revoked = crl_answer(listed, leaf, NOW + 60 * MINUTE, cert_is_ca=False)
    assert revoked.status == "revoked"
    assert f"(superseded), serial {leaf.serial_number:x}" in revoked.detail
    fine = crl_answer(listed, w.leaf(), NOW + 60 * MINUTE, cert_is_ca=False)
    assert fine.status == "good" and fine.detail.endswith("is not listed")


def test_an_unusable_crl_is_refused_naming_why(w: World) -> None:
    stranger = make_cert("Stranger", None, ca_extensions())
    idp = x509.IssuingDistributionPoint(None, None, False, False, None, True, False)
    cases = {
        "it is issued by CN=Corpus Root, not by CN=Corpus Intermediate": crl(w, issuer=w.root),
        "its signature does not verify with the issuer's key": crl(w, sign_key=stranger),
        "it is stale": crl(w, next_update=NOW - dt.timedelta(seconds=1)),
        "is in the future": crl(w, last=NOW + 10 * MINUTE, next_update=NOW + 20 * MINUTE),
        "it is a delta CRL": crl(w, extensions=(x509.DeltaCRLIndicator(1),)),
        "indirect or reason-partitioned": crl(w, extensions=(idp,)),
    }
    for reason, revocation_list in cases.items():
        assert reason in crl_refused(w, revocation_list), reason


def test_a_crl_from_an_issuer_that_may_not_sign_crls_is_refused(w: World) -> None:
    no_crl_sign = make_cert("Signer", w.root, ca_extensions(ku=usage("key_cert_sign")))
    with pytest.raises(Unverifiable, match="key usage lacks cRLSign"):
        evaluate_crl(crl(w, issuer=no_crl_sign), issuer=no_crl_sign.cert, now=NOW)


def test_a_crl_scoped_to_the_other_kind_of_certificate_is_refused(
    w: World, leaf: x509.Certificate
) -> None:
    users = crl(
        w, extensions=(x509.IssuingDistributionPoint(None, None, True, False, None, False, False),)
    )
    cas = crl(
        w, extensions=(x509.IssuingDistributionPoint(None, None, False, True, None, False, False),)
    )
    assert crl_answer(users, leaf, NOW, cert_is_ca=False).status == "good"
    with pytest.raises(Unverifiable, match="covers only end-entity certificates"):
        crl_answer(users, w.inter.cert, NOW, cert_is_ca=True)
    with pytest.raises(Unverifiable, match="covers only CA certificates"):
        crl_answer(cas, leaf, NOW, cert_is_ca=False)


def test_crls_load_from_pem_and_der_and_garbage_is_refused(w: World) -> None:
    revocation_list = crl(w)
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        assert load_crl(revocation_list.public_bytes(encoding)) == revocation_list
    with pytest.raises(Unverifiable, match="not a PEM or DER CRL"):
        load_crl(b"\x30\x03\x02\x01\x01")
    with pytest.raises(Unverifiable, match="not a PEM or DER CRL"):
        load_crl(b"-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n")

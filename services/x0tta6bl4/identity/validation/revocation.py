"""Revocation decisions: OCSP requests and responses, CRLs, and the checks they yield (pure).

OCSP (RFC 6960): :func:`build_ocsp_request` asks about one certificate with a nonce;
:func:`evaluate_ocsp` accepts a response only if it is ``successful``, answers for exactly that
certificate (issuer name and key hashes, serial), is signed by the issuer itself or by a
delegated responder certificate that the issuer signed, that carries id-kp-OCSPSigning and is
valid now, echoes the nonce, and is current (thisUpdate <= now + skew, nextUpdate >= now).
CRLs (RFC 5280): :func:`evaluate_crl` accepts a CRL only if the issuer's name and key match,
the issuer may sign CRLs (cRLSign, if it has a key usage), and the CRL is complete (not a
delta, not indirect, not partitioned by reasons) and fresh (nextUpdate >= now). Anything
unacceptable raises :class:`Unverifiable` with the reason; a revocation is an
:class:`Answer`, never a problem, so it can never be soft-failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

SKEW = dt.timedelta(minutes=5)


class Unverifiable(ValueError):
    """A revocation answer could not be had or trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A trusted revocation answer for one certificate, usable until ``next_update``."""

    status: Literal["good", "revoked"]
    detail: str
    next_update: dt.datetime | None

    def fresh(self, now: dt.datetime) -> bool:
        return self.next_update is not None and now <= self.next_update


def ocsp_urls(cert: x509.Certificate) -> list[str]:
    """The OCSP responders the certificate's AIA extension names (URIs, in order)."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def crl_urls(cert: x509.Certificate) -> list[str]:
    """The URIs of the certificate's CRL distribution points (full names only)."""
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
    ]


def build_ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes) -> bytes:
    """A DER OCSP request for ``cert`` (SHA-1 CertID, as RFC 5019 responders expect)."""
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(nonce), critical=False)
        .build()
    )
    return request.public_bytes(serialization.Encoding.DER)


def evaluate_ocsp(
    data: bytes,
    *,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    nonce: bytes,
    now: dt.datetime,
    skew: dt.timedelta = SKEW,
) -> Answer:
    """The trusted answer in the DER OCSP response ``data``; :class:`Unverifiable` otherwise."""
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError as err:
        raise Unverifiable(f"the response is not a DER OCSP response: {err}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise Unverifiable(f"the responder answered {response.response_status.name}")
    key, signer = _responder_key(response, issuer, now)
    _verify_signature(key, response.signature, response.tbs_response_bytes, response)
    _check_nonce(response, nonce)
    single = _single_response_for(response, cert, issuer)
    this_update, next_update = single.this_update_utc, single.next_update_utc
    if this_update > now + skew:
        raise Unverifiable(f"its thisUpdate {this_update.isoformat()} is in the future")
    if next_update is not None and next_update < now:
        raise Unverifiable(f"it is stale: its nextUpdate {next_update.isoformat()} has passed")
    status = single.certificate_status
    if status == ocsp.OCSPCertStatus.UNKNOWN:
        raise Unverifiable("the responder does not know this certificate (status unknown)")
    if status == ocsp.OCSPCertStatus.REVOKED:
        return Answer(
            "revoked",
            _revoked_detail(
                single.revocation_time_utc, single.revocation_reason, f"signed by {signer}"
            ),
            next_update,
        )
    return Answer("good", f"good, signed by {signer}", next_update)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL from PEM or DER bytes; :class:`Unverifiable` if it is neither."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as err:
        raise Unverifiable(f"not a PEM or DER CRL: {err}") from None


def evaluate_crl(
    crl: x509.CertificateRevocationList,
    *,
    issuer: x509.Certificate,
    now: dt.datetime,
    skew: dt.timedelta = SKEW,
) -> dt.datetime:
    """Check that ``crl`` is ``issuer``'s, complete and fresh at ``now``; its nextUpdate.
    :class:`Unverifiable` with the reason otherwise."""
    if crl.issuer != issuer.subject:
        raise Unverifiable(
            f"it is issued by {crl.issuer.rfc4514_string()}, not by "
            f"{issuer.subject.rfc4514_string()}"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not usage.crl_sign:  # RFC 5280 6.3.3 (f)
            raise Unverifiable(
                f"its issuer {issuer.subject.rfc4514_string()} may not sign CRLs "
                "(key usage lacks cRLSign)"
            )
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, UnsupportedAlgorithm, ValueError) as err:
        raise Unverifiable(f"its signature cannot be checked: {err}") from None
    if not valid:
        raise Unverifiable("its signature does not verify with the issuer's key")
    _refuse_partial_crl(crl)
    if crl.last_update_utc > now + skew:
        raise Unverifiable(f"its thisUpdate {crl.last_update_utc.isoformat()} is in the future")
    next_update = crl.next_update_utc
    if next_update is None:
        raise Unverifiable("it has no nextUpdate, so its freshness is unknown")
    if next_update < now:
        raise Unverifiable(f"it is stale: its nextUpdate {next_update.isoformat()} has passed")
    return next_update


def crl_answer(
    crl: x509.CertificateRevocationList,
    cert: x509.Certificate,
    next_update: dt.datetime,
    *,
    cert_is_ca: bool,
) -> Answer:
    """Whether the (already evaluated) ``crl`` lists ``cert``'s serial; :class:`Unverifiable`
    if its issuing distribution point excludes certificates of ``cert``'s kind."""
    _refuse_out_of_scope(crl, cert_is_ca)
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return Answer("good", f"serial {cert.serial_number:x} is not listed", next_update)
    try:
        reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
    except x509.ExtensionNotFound:
        reason = None
    detail = _revoked_detail(entry.revocation_date_utc, reason, f"serial {cert.serial_number:x}")
    return Answer("revoked", detail, next_update)


def _revoked_detail(when: dt.datetime | None, reason: x509.ReasonFlags | None, how: str) -> str:
    at = when.isoformat() if when is not None else "an unknown time"
    why = reason.value if reason is not None else "no reason given"
    return f"revoked at {at} ({why}), {how}"


def _responder_key(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime
) -> tuple[object, str]:
    """The key that must have signed the response, and who holds it."""
    if _is_responder(response, issuer):
        return issuer.public_key(), "the issuer"
    candidates = [c for c in response.certificates if _is_responder(response, c)]
    if not candidates:
        raise Unverifiable(
            f"it is signed by {_responder_id(response)}, neither the issuer nor a delegated "
            "responder whose certificate is included"
        )
    delegate = candidates[0]
    who = f"delegated responder {delegate.subject.rfc4514_string()}"
    if delegate.issuer != issuer.subject:
        raise Unverifiable(
            f"{who} was issued by {delegate.issuer.rfc4514_string()}, not by "
            "the certificate's issuer"
        )
    try:
        delegate.verify_directly_issued_by(issuer)
    except (InvalidSignature, TypeError, ValueError, UnsupportedAlgorithm):
        raise Unverifiable(f"{who}'s certificate is not signed by the issuer's key") from None
    try:
        usages = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.OCSP_SIGNING not in usages:
        raise Unverifiable(f"{who} lacks the id-kp-OCSPSigning extended key usage")
    if not delegate.not_valid_before_utc <= now <= delegate.not_valid_after_utc:
        raise Unverifiable(f"{who}'s certificate is not valid at {now.isoformat()}")
    return delegate.public_key(), who


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return bool(response.responder_name == cert.subject)
    key_hash = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return response.responder_key_hash == key_hash


def _responder_id(response: ocsp.OCSPResponse) -> str:
    if response.responder_name is not None:
        return response.responder_name.rfc4514_string()
    return f"key hash {(response.responder_key_hash or b'').hex()}"


def _verify_signature(
    key: object, signature: bytes, data: bytes, response: ocsp.OCSPResponse
) -> None:
    try:
        algorithm = response.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise Unverifiable(
                f"its signature algorithm ({response.signature_algorithm_oid.dotted_string}) "
                "is not supported with this key"
            )
    except InvalidSignature:
        raise Unverifiable("its signature does not verify with the responder's key") from None
    except UnsupportedAlgorithm as err:
        raise Unverifiable(f"its signature algorithm is not supported: {err}") from None


def _check_nonce(response: ocsp.OCSPResponse, nonce: bytes) -> None:
    try:
        echoed = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        raise Unverifiable("it carries no nonce, so it may be a replay") from None
    if echoed != nonce:
        raise Unverifiable(f"its nonce {echoed.hex()} is not ours ({nonce.hex()}): a replay")


def _single_response_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    ids: dict[str, tuple[bytes, bytes]] = {}
    singles: Iterable[ocsp.OCSPSingleResponse] = response.responses
    for single in singles:
        algorithm = single.hash_algorithm
        if algorithm.name not in ids:
            ids[algorithm.name] = _cert_id_hashes(cert, issuer, algorithm)
        if single.serial_number == cert.serial_number and ids[algorithm.name] == (
            single.issuer_name_hash,
            single.issuer_key_hash,
        ):
            return single
    raise Unverifiable(f"it holds no answer for serial {cert.serial_number:x} of this issuer")


def _cert_id_hashes(
    cert: x509.Certificate, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm
) -> tuple[bytes, bytes]:
    try:
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    except ValueError:
        return b"", b""  # a hash OCSP CertIDs may not use: matches nothing
    return request.issuer_name_hash, request.issuer_key_hash


def _refuse_partial_crl(crl: x509.CertificateRevocationList) -> None:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        raise Unverifiable("it is a delta CRL; only complete CRLs are supported")
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if idp.indirect_crl or idp.only_some_reasons:
        raise Unverifiable("it is an indirect or reason-partitioned CRL; these are not supported")


def _refuse_out_of_scope(crl: x509.CertificateRevocationList, cert_is_ca: bool) -> None:
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return
    if idp.only_contains_user_certs and cert_is_ca:
        raise Unverifiable("it covers only end-entity certificates, and this one is a CA")
    if idp.only_contains_ca_certs and not cert_is_ca:
        raise Unverifiable("it covers only CA certificates, and this one is an end entity")

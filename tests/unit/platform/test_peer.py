from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from x0tta6bl4.platform.peer import caller_spiffe_id


def _cert(*uris: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if uris:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=True,
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_single_spiffe_uri_is_the_caller() -> None:
    pem = _cert("spiffe://x0tta6bl4.mesh/ns/local/sa/ops")
    assert caller_spiffe_id({"x509_pem_cert": [pem]}) == "spiffe://x0tta6bl4.mesh/ns/local/sa/ops"


def test_no_certificate_no_uri_or_two_spiffe_uris_is_nobody() -> None:
    assert caller_spiffe_id({}) is None
    assert caller_spiffe_id({"x509_pem_cert": [_cert()]}) is None
    two = _cert("spiffe://a/ns/x/sa/y", "spiffe://b/ns/x/sa/y")
    assert caller_spiffe_id({"x509_pem_cert": [two]}) is None

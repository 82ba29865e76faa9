"""Certificates bent one rule at a time, made with ``cryptography`` builders, for the corpus of
malformed chains in tests/integration/test_identity_validator_corpus.py.

:class:`World` is a small trust domain (``corpus.test``: a root, an intermediate with pathlen 0)
whose :meth:`World.leaf` is a good X.509-SVID unless keywords bend it; :func:`make_cert`,
:func:`ca_extensions` and :func:`leaf_extensions` make anything else. All times are relative to
the fixed :data:`NOW`, at which a validator's clock is set.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
TD = "corpus.test"
ID = f"spiffe://{TD}/ns/test/sa/web"
HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)
Ext = tuple[x509.ExtensionType, bool]


def usage(*flags: str) -> x509.KeyUsage:
    names = (
        *("digital_signature", "content_commitment", "key_encipherment", "data_encipherment"),
        *("key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
    )
    assert set(flags) <= set(names)
    return x509.KeyUsage(*(n in flags for n in names))


LEAF_KU = usage("digital_signature")
CA_KU = usage("key_cert_sign", "crl_sign")


@dataclasses.dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_cert(
    cn: str,
    issuer: Issuer | None,
    extensions: Sequence[Ext],
    *,
    not_before: dt.datetime = NOW - HOUR,
    not_after: dt.datetime = NOW + HOUR,
    key: ec.EllipticCurvePrivateKey | None = None,
    sign_key: ec.EllipticCurvePrivateKey | None = None,
) -> Issuer:
    """A certificate for ``key`` (new if None) issued by ``issuer`` (self-signed if None)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical)
    signer = sign_key or (issuer.key if issuer else key)
    return Issuer(builder.sign(signer, hashes.SHA256()), key)


def ca_extensions(
    *, ca: bool | None = True, path_length: int | None = None, ku: x509.KeyUsage | None = CA_KU
) -> list[Ext]:
    exts: list[Ext] = []
    if ca is not None:
        exts.append((x509.BasicConstraints(ca, path_length if ca else None), True))
    if ku is not None:
        exts.append((ku, True))
    return exts


def leaf_extensions(
    uris: Sequence[str] | None = (ID,),
    *,
    dns: Sequence[str] = (),
    ca: bool | None = False,
    ku: x509.KeyUsage | None = LEAF_KU,
    ku_critical: bool = True,
    extra: Sequence[Ext] = (),
) -> list[Ext]:
    exts: list[Ext] = []
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris or ()]
    names += [x509.DNSName(d) for d in dns]
    if uris is not None or dns:
        exts.append((x509.SubjectAlternativeName(names), False))
    if ca is not None:
        exts.append((x509.BasicConstraints(ca, None), True))
    if ku is not None:
        exts.append((ku, ku_critical))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    exts.append((x509.ExtendedKeyUsage(usages), False))
    return [*exts, *extra]


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certs)


class World:
    """The corpus's trust domain: ``root`` (the bundle) -> ``inter`` (pathlen 0)."""

    def __init__(self) -> None:
        self.root = make_cert("Corpus Root", None, ca_extensions(), not_after=NOW + 24 * HOUR)
        self.inter = make_cert("Corpus Intermediate", self.root, ca_extensions(path_length=0))
        self.bundles = {TD: [self.root.cert]}

    def leaf(
        self,
        *uris: str,
        issuer: Issuer | None = None,
        ca: bool | None = False,
        ku: x509.KeyUsage | None = LEAF_KU,
        ku_critical: bool = True,
        extra: Sequence[Ext] = (),
        not_before: dt.datetime = NOW - HOUR,
        not_after: dt.datetime = NOW + HOUR,
        sign_key: ec.EllipticCurvePrivateKey | None = None,
    ) -> x509.Certificate:
        """A leaf of ``inter`` (or ``issuer``) with the SAN URIs (default: the good ID), bent
        by the keywords of :func:`leaf_extensions` and :func:`make_cert`."""
        exts = leaf_extensions(uris or (ID,), ca=ca, ku=ku, ku_critical=ku_critical, extra=extra)
        issued = make_cert(
            "leaf",
            issuer or self.inter,
            exts,
            not_before=not_before,
            not_after=not_after,
            sign_key=sign_key,
        )
        return issued.cert

    def chain(self, leaf: x509.Certificate) -> bytes:
        return pem(leaf, self.inter.cert)


@dataclasses.dataclass(frozen=True)
class Case:
    data: bytes
    check: str  # the check that must fail
    words: tuple[str, ...]  # each must be in its reason
    expected_id: str = ""
    expected_td: str = ""
    at: dt.datetime = NOW
    bundles: dict[str, list[x509.Certificate]] | None = None

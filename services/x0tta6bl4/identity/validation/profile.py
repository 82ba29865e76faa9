"""The X.509-SVID profile (SPIFFE X509-SVID specification), one check per rule (pure).

Leaf rules: exactly one URI SAN (``profile.uri_san``), and it is a valid SPIFFE ID of a
workload — scheme ``spiffe``, a lower-case trust domain, non-empty path segments that are not
``.``/``..``, no query, fragment, port, user info, percent-encoding or trailing slash, at most
2048 bytes (``profile.spiffe_id``); basic constraints not CA (``profile.leaf_basic_constraints``);
a key usage extension (``profile.key_usage``) that is critical (``profile.key_usage.critical``),
asserts digitalSignature (``profile.key_usage.digital_signature``) and neither keyCertSign nor
cRLSign (``profile.key_usage.no_ca_bits``). Signing certificates (every CA of the chain): basic
constraints CA:true (``profile.ca_basic_constraints``) with keyCertSign
(``profile.ca_key_usage``), and every path length constraint respected
(``profile.path_length``). Optional expectations: the exact SPIFFE ID
(``profile.expected_spiffe_id``) and the trust domain (``profile.expected_trust_domain``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from x0tta6bl4.identity.core.spiffe_id import SpiffeId, parse_spiffe_id
from x0tta6bl4.identity.validation.verdict import Check, failed, passed, skipped


def leaf_spiffe_id(leaf: x509.Certificate) -> SpiffeId | None:
    """The leaf's SPIFFE ID if it has exactly one URI SAN and that is a valid workload ID."""
    uris = _uri_sans(leaf)
    if len(uris) != 1:
        return None
    try:
        return parse_spiffe_id(uris[0], require_path=True)
    except ValueError:
        return None


def leaf_checks(
    leaf: x509.Certificate, *, expected_spiffe_id: str = "", expected_trust_domain: str = ""
) -> list[Check]:
    """The leaf's profile checks, in a fixed order (every rule reported, pass or fail)."""
    checks = _san_checks(leaf)
    checks.append(_leaf_basic_constraints(leaf))
    checks.extend(_key_usage_checks(leaf))
    spiffe_id = leaf_spiffe_id(leaf)
    checks.append(_expected_id(spiffe_id, expected_spiffe_id))
    checks.append(_expected_trust_domain(spiffe_id, expected_trust_domain))
    return checks


def ca_checks(chain: Sequence[x509.Certificate]) -> list[Check]:
    """Checks of the signing certificates of ``chain`` (leaf first, each next one its issuer;
    the trust anchor last when the chain is the verified one)."""
    cas = list(enumerate(chain))[1:]
    if not cas:
        none = "the chain has no signing certificate to check (it did not verify)"
        return [
            skipped("profile.ca_basic_constraints", none),
            skipped("profile.ca_key_usage", none),
            skipped("profile.path_length", none),
        ]
    not_ca = [f"certificate {i} ({_name(c)})" for i, c in cas if not _is_ca(c)]
    no_sign = [f"certificate {i} ({_name(c)})" for i, c in cas if not _can_sign_certs(c)]
    count = f"all {len(cas)} signing certificates"
    return [
        failed("profile.ca_basic_constraints", f"{', '.join(not_ca)}: no basicConstraints CA:true")
        if not_ca
        else passed("profile.ca_basic_constraints", f"{count} have basicConstraints CA:true"),
        failed("profile.ca_key_usage", f"{', '.join(no_sign)}: key usage lacks keyCertSign")
        if no_sign
        else passed("profile.ca_key_usage", f"{count} have key usage keyCertSign"),
        _path_length(chain),
    ]


def _uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


def _san_checks(leaf: x509.Certificate) -> list[Check]:
    uris = _uri_sans(leaf)
    if len(uris) != 1:
        found = "no URI SAN" if not uris else f"{len(uris)} URI SANs ({', '.join(uris)})"
        return [
            failed(
                "profile.uri_san", f"an X.509-SVID has exactly one URI SAN; the leaf has {found}"
            ),
            failed("profile.spiffe_id", "no single URI SAN to read a SPIFFE ID from"),
        ]
    uri = uris[0]
    checks = [passed("profile.uri_san", f"exactly one URI SAN: {uri}")]
    try:
        spiffe_id = parse_spiffe_id(uri, require_path=True)
    except ValueError as err:
        checks.append(failed("profile.spiffe_id", f"the URI SAN {uri!r} is not a SPIFFE ID: {err}"))
    else:
        checks.append(passed("profile.spiffe_id", f"{spiffe_id} is a valid workload SPIFFE ID"))
    return checks


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.Extension[x509.KeyUsage] | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return None


def _leaf_basic_constraints(leaf: x509.Certificate) -> Check:
    name = "profile.leaf_basic_constraints"
    constraints = _basic_constraints(leaf)
    if constraints is None:
        return passed(name, "no basicConstraints extension: the leaf is not a CA")
    if constraints.ca:
        return failed(name, "the leaf has basicConstraints CA:true; an X.509-SVID leaf must not")
    return passed(name, "basicConstraints CA:false")


def _key_usage_checks(leaf: x509.Certificate) -> list[Check]:
    ext = _key_usage(leaf)
    if ext is None:
        absent = "no key usage extension to inspect"
        return [
            failed("profile.key_usage", "the leaf has no key usage extension; an X.509-SVID must"),
            skipped("profile.key_usage.critical", absent),
            skipped("profile.key_usage.digital_signature", absent),
            skipped("profile.key_usage.no_ca_bits", absent),
        ]
    usage = ext.value
    ca_bits = [
        b for b, on in (("keyCertSign", usage.key_cert_sign), ("cRLSign", usage.crl_sign)) if on
    ]
    return [
        passed("profile.key_usage", "key usage extension present"),
        passed("profile.key_usage.critical", "key usage is marked critical")
        if ext.critical
        else failed("profile.key_usage.critical", "key usage is not marked critical; it must be"),
        passed("profile.key_usage.digital_signature", "key usage asserts digitalSignature")
        if usage.digital_signature
        else failed("profile.key_usage.digital_signature", "key usage lacks digitalSignature"),
        failed("profile.key_usage.no_ca_bits", f"a leaf must not assert {' or '.join(ca_bits)}")
        if ca_bits
        else passed("profile.key_usage.no_ca_bits", "neither keyCertSign nor cRLSign asserted"),
    ]


def _expected_id(spiffe_id: SpiffeId | None, expected: str) -> Check:
    name = "profile.expected_spiffe_id"
    if not expected:
        return skipped(name, "no SPIFFE ID expected")
    if spiffe_id is None:
        return failed(name, f"expected {expected}; the leaf has no valid SPIFFE ID")
    if str(spiffe_id) != expected:
        return failed(name, f"expected {expected}, the leaf is {spiffe_id}")
    return passed(name, f"the leaf is {expected} as expected")


def _expected_trust_domain(spiffe_id: SpiffeId | None, expected: str) -> Check:
    name = "profile.expected_trust_domain"
    if not expected:
        return skipped(name, "no trust domain expected")
    if spiffe_id is None:
        return failed(name, f"expected trust domain {expected}; the leaf has no valid SPIFFE ID")
    if spiffe_id.trust_domain != expected:
        return failed(
            name, f"expected trust domain {expected}, the leaf is in {spiffe_id.trust_domain}"
        )
    return passed(name, f"the leaf is in trust domain {expected} as expected")


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _basic_constraints(cert)
    return constraints is not None and constraints.ca


def _can_sign_certs(cert: x509.Certificate) -> bool:
    ext = _key_usage(cert)
    return ext is not None and ext.value.key_cert_sign


def _path_length(chain: Sequence[x509.Certificate]) -> Check:
    """RFC 5280 6.1.4 (l)-(m): a CA's pathLenConstraint bounds the non-self-issued
    intermediate CAs below it (the leaf does not count)."""
    name = "profile.path_length"
    violations: list[str] = []
    for position in range(1, len(chain)):
        constraints = _basic_constraints(chain[position])
        if constraints is None or constraints.path_length is None:
            continue
        below = sum(1 for c in chain[1:position] if c.issuer != c.subject)
        if below > constraints.path_length:
            violations.append(
                f"certificate {position} ({_name(chain[position])}) allows "
                f"{constraints.path_length} intermediate CA(s) below it, the chain has {below}"
            )
    if violations:
        return failed(name, "; ".join(violations))
    return passed(name, "every path length constraint is respected")


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "empty subject"

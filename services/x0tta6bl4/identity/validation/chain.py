"""Chain verification against the trust bundle of the leaf's trust domain (pure: the time is
an argument).

Path building, signatures, validity periods, CA constraints and unknown critical extensions
are checked by ``cryptography.x509.verification`` (a client verifier: no DNS or subject
requirements). RFC 5280 validity is inclusive at both ends: a certificate verifies at exactly
its notBefore and its notAfter second, not one second outside. The end-entity extension policy
is relaxed from the WebPKI defaults to what the X.509-SVID profile needs (the profile checks
judge SAN, key usage and basic constraints themselves and name each rule; WebPKI would also
demand a clientAuth EKU and an authority key identifier, which SVIDs only SHOULD carry); CA
certificates keep the WebPKI CA defaults. Real SPIRE SVIDs verify under both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from x0tta6bl4.identity.validation.verdict import Check, failed, passed

CHECK = "chain"
_EE_POLICY = ExtensionPolicy.permit_all()
_CA_POLICY = ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True, slots=True)
class ChainResult:
    check: Check
    verified: tuple[x509.Certificate, ...] = ()  # leaf first, trust anchor last; () if failed


class StoreCache:
    """Trust stores built once per distinct list of authorities (building one costs as much
    as a verification). Holds at most ``size`` stores; keyed by the certificates themselves."""

    def __init__(self, size: int = 16) -> None:
        self._size = size
        self._stores: dict[tuple[x509.Certificate, ...], Store] = {}

    def get(self, authorities: Sequence[x509.Certificate]) -> Store:
        key = tuple(authorities)
        store = self._stores.get(key)
        if store is None:
            if len(self._stores) >= self._size:
                self._stores.pop(next(iter(self._stores)))
            store = self._stores[key] = Store(list(key))
        return store


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    trust_domain: str | None,
    bundles: Mapping[str, Sequence[x509.Certificate]],
    now: dt.datetime,
    max_depth: int,
    stores: StoreCache | None = None,
) -> ChainResult:
    """Verify ``leaf`` (with ``intermediates``) against ``bundles[trust_domain]`` at ``now``."""
    if trust_domain is None:
        return ChainResult(
            failed(
                CHECK,
                "the leaf has no valid SPIFFE ID, so there is no trust domain whose "
                "bundle could verify it",
            )
        )
    authorities = bundles.get(trust_domain)
    if not authorities:
        return ChainResult(failed(CHECK, f"no trust bundle for trust domain {trust_domain}"))
    store = (stores or StoreCache()).get(authorities)
    now = now.replace(microsecond=0)  # X.509 times are whole seconds; judge at the second
    verifier = (
        PolicyBuilder()
        .store(store)
        .time(now)
        .max_chain_depth(max_depth)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(leaf, list(intermediates))
    except VerificationError as err:
        return ChainResult(
            failed(
                CHECK,
                f"does not verify against the {trust_domain} bundle at "
                f"{now.isoformat()}: {_diagnose(leaf, intermediates, authorities, now, err)}",
            )
        )
    chain = tuple(verified.chain)
    if len(chain) < 2:
        return ChainResult(
            failed(
                CHECK,
                f"the leaf is itself a trust anchor of the {trust_domain} bundle; an X.509-SVID "
                "must be issued by one of the bundle's authorities",
            )
        )
    anchor = chain[-1].subject.rfc4514_string() or "(empty subject)"
    return ChainResult(
        passed(
            CHECK,
            f"verifies to trust anchor {anchor} of the {trust_domain} bundle "
            f"({len(chain)} certificates) at {now.isoformat()}",
        ),
        chain,
    )


def _diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    authorities: Sequence[x509.Certificate],
    now: dt.datetime,
    err: VerificationError,
) -> str:
    """Why verification failed, in words where it is plain from the certificates (a presented
    certificate outside its validity period; an issuer neither presented nor in the bundle),
    else cryptography's own message."""
    detail = str(err).removeprefix("validation failed: ")
    for position, cert in enumerate([leaf, *intermediates]):
        what = "the leaf" if position == 0 else f"certificate {position}"
        what += f" ({cert.subject.rfc4514_string() or 'empty subject'})"
        if now > cert.not_valid_after_utc:
            return f"{what} expired: its notAfter is {cert.not_valid_after_utc.isoformat()}"
        if now < cert.not_valid_before_utc:
            return (
                f"{what} is not yet valid: its notBefore is {cert.not_valid_before_utc.isoformat()}"
            )
    anchors = {c.subject for c in authorities}
    presented = {c.subject: c for c in intermediates}
    current, seen = leaf, set()
    while current.issuer not in anchors:
        if current.issuer == current.subject:
            return (
                f"unknown issuer: {current.subject.rfc4514_string() or 'empty subject'} is "
                f"self-issued and not an authority of the bundle ({detail})"
            )
        issuer = presented.get(current.issuer)
        if issuer is None:
            return (
                f"unknown issuer: {current.issuer.rfc4514_string() or 'empty name'} (issuer of "
                f"{current.subject.rfc4514_string() or 'empty subject'}) is neither presented "
                f"nor an authority of the bundle ({detail})"
            )
        if issuer in seen:
            break
        seen.add(issuer)
        current = issuer
    return detail

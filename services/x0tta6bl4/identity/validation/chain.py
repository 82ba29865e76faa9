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
                f"{now.isoformat()}: {_clean(err)}",
            )
        )
    chain = tuple(verified.chain)
    anchor = chain[-1].subject.rfc4514_string() or "(empty subject)"
    return ChainResult(
        passed(
            CHECK,
            f"verifies to trust anchor {anchor} of the {trust_domain} bundle "
            f"({len(chain)} certificates) at {now.isoformat()}",
        ),
        chain,
    )


def _clean(err: VerificationError) -> str:
    text = str(err)
    return text.removeprefix("validation failed: ")

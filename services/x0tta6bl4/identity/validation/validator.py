"""The certificate validator the identity service's ``ValidateCertificate`` calls.

:class:`CertificateValidator` runs every check on a presented chain under a named policy and
returns a :class:`~x0tta6bl4.identity.validation.verdict.Verdict`, in this order: ``parse``;
the leaf's X.509-SVID profile checks; ``chain`` (against the bundle of the leaf's trust
domain); the signing certificates' profile checks; ``pin.spki`` and ``pin.spiffe_id``;
``ocsp``; ``crl`` (and ``crl.intermediate.<i>``). Revocation sources and pins are consulted
only for a chain that verified (no fetch for untrusted input). Bad chain bytes never raise: the
verdict is invalid with ``parse`` failing. Bad arguments — an unknown policy, a malformed
expected SPIFFE ID or trust domain — raise :class:`InvalidValidationRequest` (a ``ValueError``
and a platform ``InvalidArgument`` naming the field, so the servicer answers INVALID_ARGUMENT).

Use::

    validator = CertificateValidator(
        lambda: {td: bundle.x509_authorities for td, bundle in spire_bundles().items()},
        parse_policies(config.get("policies")),
        HttpFetcher(timeout_s=2.0),
    )
    verdict = await validator.validate(chain_bytes, expected_trust_domain="x0tta6bl4.mesh")
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping, Sequence

import structlog
from cryptography import x509

from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id
from x0tta6bl4.identity.validation import pins, profile
from x0tta6bl4.identity.validation.chain import StoreCache, verify_chain
from x0tta6bl4.identity.validation.fetch import Fetcher
from x0tta6bl4.identity.validation.parse import parse_chain
from x0tta6bl4.identity.validation.policy import DEFAULT_POLICY, ValidationPolicy
from x0tta6bl4.identity.validation.revocation_checker import (
    CRL_CHECK,
    OCSP_CHECK,
    RevocationChecker,
)
from x0tta6bl4.identity.validation.verdict import Check, Verdict, failed, skipped
from x0tta6bl4.platform.errors import InvalidArgument

log = structlog.get_logger(__name__)

Bundles = Mapping[str, Sequence[x509.Certificate]]


class InvalidValidationRequest(InvalidArgument, ValueError):
    """An argument of :meth:`CertificateValidator.validate` is invalid; ``field`` names it
    (``policy``, ``expected_spiffe_id`` or ``expected_trust_domain``)."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateValidator:
    """Validates chains against the trust bundles ``bundles()`` returns (trust domain ->
    X.509 authorities; called once per validation, so rotated and federated bundles apply at
    once) under ``policies`` (name -> policy; ``"default"`` is added if missing), reading
    revocation data through ``fetcher`` and the time from ``clock`` (timezone-aware UTC).
    OCSP answers and CRLs are cached inside the validator until their nextUpdate."""

    def __init__(
        self,
        bundles: Callable[[], Bundles],
        policies: Mapping[str, ValidationPolicy],
        fetcher: Fetcher,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self._bundles = bundles
        self._policies = dict(policies)
        self._policies.setdefault(DEFAULT_POLICY, ValidationPolicy())
        self._clock = clock
        self._revocation = RevocationChecker(fetcher)
        self._stores = StoreCache()

    @property
    def policies(self) -> Mapping[str, ValidationPolicy]:
        return dict(self._policies)

    async def validate(
        self,
        data: bytes,
        *,
        expected_spiffe_id: str = "",
        expected_trust_domain: str = "",
        policy: str = DEFAULT_POLICY,
    ) -> Verdict:
        """The verdict on the chain ``data`` (PEM or DER, leaf first) under ``policy`` (``""``
        means ``"default"``). Raises only :class:`InvalidValidationRequest`, for arguments."""
        chosen = self._policy(policy or DEFAULT_POLICY)
        _check_expectations(expected_spiffe_id, expected_trust_domain)
        try:
            return await self._validate(data, expected_spiffe_id, expected_trust_domain, chosen)
        except Exception as err:  # a bug must not crash the service or pass a chain
            log.exception("certificate_validation_internal_error", policy=chosen.name)
            return Verdict.of(
                chosen.name, "", [failed("internal", f"validation stopped: {type(err).__name__}")]
            )

    def _policy(self, name: str) -> ValidationPolicy:
        chosen = self._policies.get(name)
        if chosen is None:
            known = ", ".join(sorted(self._policies))
            raise InvalidValidationRequest(
                "policy", f"unknown validation policy {name!r} (known: {known})"
            )
        return chosen

    async def _validate(
        self, data: bytes, expected_id: str, expected_td: str, policy: ValidationPolicy
    ) -> Verdict:
        now = self._clock()
        parsed, parse_check = parse_chain(
            data, max_bytes=policy.max_input_bytes, max_len=policy.max_chain_len
        )
        if parsed is None:
            return Verdict.of(policy.name, "", [parse_check])
        checks: list[Check] = [parse_check]
        spiffe_id = profile.leaf_spiffe_id(parsed.leaf)
        checks += profile.leaf_checks(
            parsed.leaf, expected_spiffe_id=expected_id, expected_trust_domain=expected_td
        )
        result = verify_chain(
            parsed.leaf,
            parsed.intermediates,
            trust_domain=spiffe_id.trust_domain if spiffe_id else None,
            bundles=self._bundles(),
            now=now,
            max_depth=policy.max_chain_len,
            stores=self._stores,
        )
        checks.append(result.check)
        verified = result.verified
        checks += profile.ca_checks(verified or parsed.certificates)
        id_text = str(spiffe_id) if spiffe_id else ""
        if not verified:
            checks += _not_run(
                "the chain did not verify",
                pins.SPKI_CHECK,
                pins.SPIFFE_ID_CHECK,
                OCSP_CHECK,
                CRL_CHECK,
            )
            return Verdict.of(policy.name, id_text, checks)
        checks.append(pins.spki_pin_check(policy.spki_pins, verified))
        checks.append(pins.spiffe_id_pin_check(policy.spiffe_id_pins, id_text))
        ocsp, crls = await asyncio.gather(
            self._revocation.check_ocsp(verified, policy, now),
            self._revocation.check_crls(verified, policy, now),
        )
        checks.append(ocsp)
        checks += crls
        return Verdict.of(policy.name, id_text, checks)


def _check_expectations(expected_spiffe_id: str, expected_trust_domain: str) -> None:
    if expected_spiffe_id:
        try:
            parse_spiffe_id(expected_spiffe_id, require_path=True)
        except ValueError as err:
            raise InvalidValidationRequest("expected_spiffe_id", str(err)) from None
    if expected_trust_domain:
        try:
            parsed = parse_spiffe_id(f"spiffe://{expected_trust_domain}")
        except ValueError as err:
            raise InvalidValidationRequest("expected_trust_domain", str(err)) from None
        if parsed.path:
            raise InvalidValidationRequest(
                "expected_trust_domain", "must be a trust domain name, not a SPIFFE ID"
            )


def _not_run(why: str, *names: str) -> list[Check]:
    return [skipped(name, f"not checked: {why}") for name in names]

"""OCSP and CRL checks of a verified chain: fetching, caching, and the checks (the shell around
the pure decisions of :mod:`~x0tta6bl4.identity.validation.revocation`).

OCSP asks about the leaf, at the policy's configured responder or else at each responder the
leaf's AIA names, in order, until one gives a trusted answer; a good or revoked answer is
cached until its nextUpdate, keyed by the issuer's key and the serial. CRLs are read for the
leaf and every intermediate (check ``crl`` for the leaf, ``crl.intermediate.<i>`` for chain
position i) from their distribution points, trying each until one is acceptable, plus every
CRL the policy configures whose issuer is the certificate's issuer; a fetched CRL is cached
until its nextUpdate. A configured CRL that cannot be read counts against every certificate
(it could be the one that revokes it). A revocation always fails; an answer that cannot be
had fails unless the policy soft-fails it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography import x509

from x0tta6bl4.identity.validation.fetch import Fetcher, FetchError
from x0tta6bl4.identity.validation.pins import spki_sha256
from x0tta6bl4.identity.validation.policy import ValidationPolicy
from x0tta6bl4.identity.validation.revocation import (
    Answer,
    Unverifiable,
    build_ocsp_request,
    crl_answer,
    crl_urls,
    evaluate_crl,
    evaluate_ocsp,
    load_crl,
    ocsp_urls,
)
from x0tta6bl4.identity.validation.verdict import Check, failed, passed, skipped, unchecked

OCSP_CHECK = "ocsp"
CRL_CHECK = "crl"
NONCE_BYTES = 16
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(slots=True)
class _CachedCrl:
    crl: x509.CertificateRevocationList
    expires: dt.datetime
    verified_for: dict[bytes, dt.datetime] = field(default_factory=dict)


class RevocationChecker:
    """Holds the OCSP answer and CRL caches (bounded to ``cache_size`` entries each)."""

    def __init__(self, fetcher: Fetcher, *, cache_size: int = 10_000) -> None:
        self._fetcher = fetcher
        self._cache_size = cache_size
        self._ocsp: dict[tuple[bytes, int], Answer] = {}
        self._crls: dict[str, _CachedCrl] = {}

    async def check_ocsp(
        self, chain: Sequence[x509.Certificate], policy: ValidationPolicy, now: dt.datetime
    ) -> Check:
        """``ocsp`` for the leaf of the verified ``chain`` (leaf first, issuer next)."""
        if not policy.check_ocsp:
            return skipped(OCSP_CHECK, f"policy {policy.name!r} does not check OCSP")
        leaf, issuer = chain[0], chain[1]
        urls = [policy.ocsp_responder_url] if policy.ocsp_responder_url else ocsp_urls(leaf)
        if not urls:
            return skipped(OCSP_CHECK, "the chain publishes no OCSP responder")
        key = (spki_sha256(issuer), leaf.serial_number)
        cached = self._ocsp.get(key)
        if cached is not None and cached.fresh(now):
            return _answer_check(OCSP_CHECK, cached, "cached OCSP answer")
        nonce = os.urandom(NONCE_BYTES)
        request = build_ocsp_request(leaf, issuer, nonce)
        problems: list[str] = []
        for url in urls:
            try:
                body = await self._fetcher.post_ocsp(url, request)
                answer = evaluate_ocsp(body, cert=leaf, issuer=issuer, nonce=nonce, now=now)
            except FetchError as err:
                problems.append(f"responder {err}")
                continue
            except Unverifiable as err:
                problems.append(f"the response from {url} is unusable: {err}")
                continue
            if answer.next_update is not None:
                _put(self._ocsp, key, answer, self._cache_size, now)
            return _answer_check(OCSP_CHECK, answer, f"OCSP at {url}")
        return unchecked(
            OCSP_CHECK, "no OCSP answer: " + "; ".join(problems), soft_fail=policy.ocsp_soft_fail
        )

    async def check_crls(
        self, chain: Sequence[x509.Certificate], policy: ValidationPolicy, now: dt.datetime
    ) -> list[Check]:
        """``crl`` (leaf) and ``crl.intermediate.<i>`` for every non-anchor certificate of the
        verified ``chain``; a single skip if nothing in the chain or policy names a CRL."""
        if not policy.check_crl:
            return [skipped(CRL_CHECK, f"policy {policy.name!r} does not check CRLs")]
        pairs = list(itertools.pairwise(chain))
        if not policy.crl_urls and not any(crl_urls(cert) for cert, _ in pairs):
            return [skipped(CRL_CHECK, "the chain publishes no CRL distribution point")]
        configured = await asyncio.gather(*(self._crl(url, now) for url in policy.crl_urls))
        return list(
            await asyncio.gather(
                *(
                    self._check_crl(_crl_check_name(i), cert, issuer, configured, policy, now)
                    for i, (cert, issuer) in enumerate(pairs)
                )
            )
        )

    async def _check_crl(
        self,
        name: str,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        configured: Sequence[tuple[str, _CachedCrl | str]],
        policy: ValidationPolicy,
        now: dt.datetime,
    ) -> Check:
        is_ca = is_ca_certificate(cert)
        answers: list[tuple[str, Answer]] = []
        problems: list[str] = []
        for url in crl_urls(cert):  # the first usable distribution point is enough
            outcome = self._judge(await self._crl(url, now), cert, issuer, now, is_ca)
            if isinstance(outcome, Answer):
                answers.append((url, outcome))
                problems.clear()
                break
            problems.append(outcome)
        for url, cached in configured:  # every configured CRL of this issuer must be usable
            if isinstance(cached, _CachedCrl) and cached.crl.issuer != cert.issuer:
                continue  # another CA's CRL: it says nothing about this certificate
            outcome = self._judge((url, cached), cert, issuer, now, is_ca)
            if isinstance(outcome, Answer):
                answers.append((url, outcome))
            else:
                problems.append(outcome)
        for url, answer in answers:
            if answer.status == "revoked":
                return failed(name, f"{answer.detail} on the CRL at {url}")
        if problems:
            return unchecked(
                name, "no usable CRL: " + "; ".join(problems), soft_fail=policy.crl_soft_fail
            )
        if not answers:
            return skipped(name, "no CRL covers this certificate")
        return passed(name, "; ".join(f"{a.detail} on the CRL at {url}" for url, a in answers))

    def _judge(
        self,
        source: tuple[str, _CachedCrl | str],
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: dt.datetime,
        is_ca: bool,
    ) -> Answer | str:
        url, cached = source
        if isinstance(cached, str):
            return cached
        issuer_key = spki_sha256(issuer)
        next_update = cached.verified_for.get(issuer_key)
        try:
            if next_update is None:
                next_update = evaluate_crl(cached.crl, issuer=issuer, now=now)
                cached.verified_for[issuer_key] = next_update
            elif next_update < now:
                raise Unverifiable(
                    f"it is stale: its nextUpdate {next_update.isoformat()} has passed"
                )
            return crl_answer(cached.crl, cert, next_update, cert_is_ca=is_ca)
        except Unverifiable as err:
            return f"the CRL at {url} is unusable: {err}"

    async def _crl(self, url: str, now: dt.datetime) -> tuple[str, _CachedCrl | str]:
        """The CRL at ``url`` (cached until its nextUpdate), or why it could not be read."""
        cached = self._crls.get(url)
        if cached is not None and now <= cached.expires:
            return url, cached
        try:
            crl = load_crl(await self._fetcher.get_crl(url))
        except FetchError as err:
            return url, f"CRL {err}"
        except Unverifiable as err:
            return url, f"the CRL at {url} is unusable: {err}"
        entry = _CachedCrl(crl, crl.next_update_utc or now)
        if crl.next_update_utc is not None and crl.next_update_utc >= now:
            _put(self._crls, url, entry, self._cache_size, now)
        return url, entry


def _crl_check_name(position: int) -> str:
    return CRL_CHECK if position == 0 else f"{CRL_CHECK}.intermediate.{position}"


def is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _answer_check(name: str, answer: Answer, source: str) -> Check:
    if answer.status == "revoked":
        return failed(name, f"{answer.detail} ({source})")
    until = answer.next_update.isoformat() if answer.next_update else "no nextUpdate"
    return passed(name, f"{answer.detail} ({source}, valid until {until})")


def _put(cache: dict[_K, _V], key: _K, value: _V, size: int, now: dt.datetime) -> None:
    if key not in cache and len(cache) >= size:
        for stale in [k for k, v in cache.items() if not _fresh(v, now)]:
            del cache[stale]
        while len(cache) >= size:
            del cache[next(iter(cache))]
    cache[key] = value


def _fresh(value: object, now: dt.datetime) -> bool:
    if isinstance(value, Answer):
        return value.fresh(now)
    if isinstance(value, _CachedCrl):
        return now <= value.expires
    return False

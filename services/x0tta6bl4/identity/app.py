"""Wiring of the identity service into the platform runtime (the ``register`` hook).

What runs in one identity replica: the registry on the consensus store, the reconciler
(active on the replica holding its lease), the SPIRE health poller, the trust bundles
refreshed from SPIRE (the validator's anchors, federated bundles included), the revocation
bundle served to the OPA sidecars, and the gRPC servicer over all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
import yaml
from cryptography import x509
from grpc import aio

from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.clients.single_actor import SingleActor
from x0tta6bl4.identity import convert, metrics
from x0tta6bl4.identity.core.reconcile_plan import entry_id
from x0tta6bl4.identity.reconciler import Reconciler
from x0tta6bl4.identity.registry import Registry
from x0tta6bl4.identity.revocation_bundle import PATH as BUNDLE_PATH
from x0tta6bl4.identity.revocation_bundle import RevocationBundle
from x0tta6bl4.identity.servicer import IdentityServicer
from x0tta6bl4.identity.settings import IdentitySettings
from x0tta6bl4.identity.spire_api import SpireApi
from x0tta6bl4.identity.spire_entries import SpireEntries
from x0tta6bl4.identity.spire_health import SpireHealth
from x0tta6bl4.identity.v1 import identity_pb2 as pb
from x0tta6bl4.identity.v1 import identity_pb2_grpc
from x0tta6bl4.identity.validation.fetch import HttpFetcher
from x0tta6bl4.identity.validation.policy import ValidationPolicy, parse_policies
from x0tta6bl4.identity.validation.validator import CertificateValidator
from x0tta6bl4.platform.errors import ConfigError, Unavailable
from x0tta6bl4.platform.server import Register, Runtime

log = structlog.get_logger(__name__)

_RESULTS = {
    "pass": pb.CHECK_RESULT_PASS,
    "fail": pb.CHECK_RESULT_FAIL,
    "skip": pb.CHECK_RESULT_SKIP,
    "soft_fail": pb.CHECK_RESULT_SOFT_FAIL,
}


def load_policies(path: str) -> dict[str, ValidationPolicy]:
    """The named validation policies of ``path`` (``policies: {name: {...}}``), or only the
    built-in ``default``; ConfigError naming the file and field."""
    if not path:
        return parse_policies(None)
    try:
        doc = yaml.safe_load(Path(path).read_text())
        raw = doc.get("policies") if isinstance(doc, dict) else doc
        return parse_policies(raw)
    except OSError as err:
        raise ConfigError([f"X0_IDENTITY_VALIDATION_POLICIES: cannot read {path}: {err}"]) from None
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError([f"X0_IDENTITY_VALIDATION_POLICIES: {path}: {err}"]) from None


class TrustBundles:
    """Trust domain -> X.509 authorities, from SPIRE (own and federated), refreshed."""

    def __init__(self, spire: SpireApi, own_pem: Callable[[], bytes], own_domain: str) -> None:
        self._spire = spire
        self._own_pem = own_pem
        self._own = own_domain
        self._bundles: dict[str, list[x509.Certificate]] = {}

    def current(self) -> Mapping[str, Sequence[x509.Certificate]]:
        if self._own not in self._bundles:  # SPIRE not read yet: the Workload API's bundle
            pem = self._own_pem()
            return {self._own: x509.load_pem_x509_certificates(pem)} if pem else {}
        return self._bundles

    async def refresh(self) -> None:
        own = await self._spire.get_bundle()
        fresh = {
            own.trust_domain: [x509.load_der_x509_certificate(d) for d in own.x509_authorities]
        }
        for b in await self._spire.list_federated_bundles():
            fresh[b.trust_domain] = [x509.load_der_x509_certificate(d) for d in b.x509_authorities]
        self._bundles = fresh

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except (ClientError, ValueError) as err:  # keep the last bundles; say why
                log.warning("trust_bundles_refresh_failed", error=str(err))
            await asyncio.sleep(interval_s)


def _spawn(rt: Runtime, name: str, work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work, name=name)

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    rt.on_stop(stop)


def make_register(identity: IdentitySettings, policies: dict[str, ValidationPolicy]) -> Register:
    async def register(server: aio.Server, rt: Runtime) -> list[str]:
        settings = rt.settings
        kv = ConsensusClient.from_runtime(rt)
        registry = Registry(kv)
        spire = SpireApi(identity.spire_socket)
        rt.on_stop(spire.close)
        holder = f"{socket.gethostname()}:{os.getpid()}:{settings.grpc_addr}"
        reconciler = Reconciler(
            registry,
            SpireEntries(spire),
            SingleActor(kv, "identity", "reconciler", holder, ttl_s=identity.lease_ttl_s),
            interval_s=identity.reconcile_interval_s,
        )
        health = SpireHealth(
            identity.spire_socket,
            health_url=identity.spire_health_url,
            interval_s=identity.health_interval_s,
        )
        rt.on_stop(health.close)
        bundles = TrustBundles(
            spire,
            lambda: rt.svids.current.bundle_pem if rt.svids.current else b"",
            settings.trust_domain,
        )
        validator = CertificateValidator(bundles.current, policies, HttpFetcher())
        revocations = RevocationBundle(registry)

        async def health_answer() -> pb.ServerHealthResponse:
            snap = health.latest
            if snap is None:
                raise Unavailable("SPIRE server not polled yet")
            out = pb.ServerHealthResponse(
                up=snap.up,
                live=snap.live,
                ready=snap.ready,
                reason=snap.reason,
                checked_at=convert.timestamp(snap.checked_at),
                bundle_fetch_seconds=snap.bundle_latency_s or 0.0,
                agents_by_state=snap.agents_by_state,
                svids_expiring_soon=snap.svids_expiring_soon,
            )
            if snap.bundle_expires_at is not None:
                out.bundle_expires_at.CopyFrom(convert.timestamp(snap.bundle_expires_at))
            for a in snap.agents:
                out.agents.add(
                    spiffe_id=a.spiffe_id,
                    attestation_type=a.attestation_type,
                    svid_expires_at=convert.timestamp(a.svid_expires_at),
                    banned=a.banned,
                    state=a.state,
                )
            return out

        async def validate(req: pb.ValidateCertificateRequest) -> pb.ValidateCertificateResponse:
            verdict = await validator.validate(
                req.chain,
                expected_spiffe_id=req.expected_spiffe_id,
                expected_trust_domain=req.expected_trust_domain,
                policy=req.policy,
            )
            metrics.VALIDATIONS.labels(verdict.policy, str(verdict.valid).lower()).inc()
            return pb.ValidateCertificateResponse(
                valid=verdict.valid,
                policy=verdict.policy,
                spiffe_id=verdict.spiffe_id,
                checks=[
                    pb.Check(name=c.name, result=_RESULTS[c.result], reason=c.reason)
                    for c in verdict.checks
                ],
            )

        async def revoked(spiffe_id: str) -> int:
            results = await spire.delete_entries([entry_id(spiffe_id)])
            return sum(1 for r in results if r.code == "OK")

        identity_pb2_grpc.add_IdentityServiceServicer_to_server(
            IdentityServicer(
                trust_domain=settings.trust_domain,
                registry=registry,
                reconciler=reconciler,
                health=health_answer,
                validate=validate,
                revoked=revoked,
            ),
            server,
        )
        rt.http.get(BUNDLE_PATH, revocations.serve)
        rt.readiness.add("spire", health.ready)
        rt.readiness.add("revocations", revocations.ready)
        _spawn(rt, "spire-health", health.run())
        _spawn(rt, "trust-bundles", bundles.run(max(identity.health_interval_s, 5.0)))
        _spawn(rt, "revocation-bundle", revocations.run())
        _spawn(rt, "reconciler", reconciler.run())
        return [pb.DESCRIPTOR.services_by_name["IdentityService"].full_name]

    return register

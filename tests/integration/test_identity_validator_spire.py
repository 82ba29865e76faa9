"""The certificate validator accepts the X.509-SVIDs a real SPIRE server issues: several
workloads of a test mesh (tests/support/mesh.py), each SVID fetched from its agent's Workload
API, validated against the trust bundle that came with it and against the one the
``spire-server`` CLI shows, with its SPIFFE ID expected; every one is accepted, and only its
own ID matches.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.mesh import Mesh, Workload, svid_source
from tests.support.pki import b64_spki_pin, validator
from x0tta6bl4.identity.validation import Verdict

pytestmark = pytest.mark.integration

WORKLOADS = ("alpha", "beta", "gamma")


@dataclasses.dataclass(frozen=True)
class Svid:
    spiffe_id: str
    chain_pem: bytes
    bundle: list[x509.Certificate]


@pytest.fixture(scope="module")
def svids(mesh: Mesh) -> list[Svid]:
    """One SVID (with its bundle) per workload, each from its own agent."""

    async def fetch(workload: Workload) -> Svid:
        async with svid_source(workload) as source:
            material = source.require()
        assert material.spiffe_id == workload.spiffe_id
        bundle = x509.load_pem_x509_certificates(material.bundle_pem)
        return Svid(material.spiffe_id, material.cert_chain_pem, bundle)

    return [asyncio.run(fetch(mesh.workload(name))) for name in WORKLOADS]


def accepted(verdict: Verdict) -> None:
    assert verdict.valid, verdict
    assert not verdict.failures and not verdict.soft_failed
    for check in verdict.checks:
        if check.name.startswith("profile.") and not check.name.startswith("profile.expected"):
            assert check.result == "pass", check


async def test_every_spire_svid_is_accepted_with_its_own_spiffe_id(
    mesh: Mesh, svids: list[Svid]
) -> None:
    cli_bundle = x509.load_pem_x509_certificates(mesh.bundle_pem.encode())
    for bundle_source in ("workload api", "spire-server cli"):
        for svid in svids:
            bundle = svid.bundle if bundle_source == "workload api" else cli_bundle
            async with validator({mesh.trust_domain: bundle}) as v:
                leaf = x509.load_pem_x509_certificates(svid.chain_pem)
                der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in leaf)
                for data in (svid.chain_pem, der):
                    verdict = await v.validate(
                        data,
                        expected_spiffe_id=svid.spiffe_id,
                        expected_trust_domain=mesh.trust_domain,
                    )
                    accepted(verdict)
                    assert verdict.spiffe_id == svid.spiffe_id
                    assert verdict.check("profile.expected_spiffe_id").result == "pass"
                    assert verdict.check("chain").result == "pass"
                    # SPIRE publishes neither OCSP nor CRLs: skipped, not failed
                    assert verdict.check("ocsp").result == "skip"
                    assert verdict.check("crl").result == "skip"


async def test_a_spire_svid_matches_only_its_own_expected_id(mesh: Mesh, svids: list[Svid]) -> None:
    async with validator({mesh.trust_domain: svids[0].bundle}) as v:
        for svid in svids:
            for other in svids:
                verdict = await v.validate(svid.chain_pem, expected_spiffe_id=other.spiffe_id)
                if other is svid:
                    accepted(verdict)
                else:
                    assert not verdict.valid
                    assert [c.name for c in verdict.failures] == ["profile.expected_spiffe_id"]
            elsewhere = await v.validate(svid.chain_pem, expected_trust_domain="elsewhere.mesh")
            assert [c.name for c in elsewhere.failures] == ["profile.expected_trust_domain"]


async def test_spire_svids_pass_pins_of_the_spire_ca_and_the_namespace(
    mesh: Mesh, svids: list[Svid]
) -> None:
    bundle = svids[0].bundle
    policies = {
        "pinned": {
            "spki_pins": [b64_spki_pin(ca) for ca in bundle],
            "spiffe_id_pins": [f"spiffe://{mesh.trust_domain}/ns/{mesh.namespace}/*"],
        },
        "other-namespace": {"spiffe_id_pins": [f"spiffe://{mesh.trust_domain}/ns/prod/*"]},
    }
    async with validator({mesh.trust_domain: bundle}, policies) as v:
        for svid in svids:
            pinned = await v.validate(svid.chain_pem, policy="pinned")
            accepted(pinned)
            assert pinned.check("pin.spki").result == "pass"
            assert "trust anchor" in pinned.check("pin.spki").reason
            assert pinned.check("pin.spiffe_id").result == "pass"
            wrong = await v.validate(svid.chain_pem, policy="other-namespace")
            assert [c.name for c in wrong.failures] == ["pin.spiffe_id"]

"""Who may connect and who may call: mTLS against the real SPIRE CA, authz by the real OPA."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc import aio

from tests.support.mesh import Mesh, ServiceProcess, client, http_status, svid_source, whoami
from x0tta6bl4.platform.svid import SvidMaterial
from x0tta6bl4.platform.v1 import diagnostics_pb2, diagnostics_pb2_grpc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def healer(mesh: Mesh) -> ServiceProcess:
    # No decision cache, so a stopped sidecar is noticed on the very next call.
    return mesh.service("healer", env={"X0_AUTHZ_CACHE_TTL_S": "0"})


async def _whoami_with(
    creds: grpc.ChannelCredentials, target: ServiceProcess
) -> diagnostics_pb2.WhoAmIResponse:
    options = [("grpc.ssl_target_name_override", f"{target.service}.local.svc")]
    async with aio.secure_channel(target.grpc_addr, creds, options=options) as channel:
        return await diagnostics_pb2_grpc.DiagnosticsServiceStub(channel).WhoAmI(
            diagnostics_pb2.WhoAmIRequest(), timeout=5
        )


def _foreign_ca_svid(spiffe_id: str) -> tuple[bytes, bytes]:
    """A certificate claiming ``spiffe_id``, signed by a CA that is not in the trust bundle."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key_pem


async def test_allowed_caller_sees_both_identities(mesh: Mesh, healer: ServiceProcess) -> None:
    operator = mesh.workload("operator")
    async with svid_source(operator) as svids, client(svids, healer) as c:
        response = await whoami(c)
    assert response.caller_spiffe_id == "spiffe://x0tta6bl4.mesh/ns/local/sa/operator"
    assert response.server_spiffe_id == "spiffe://x0tta6bl4.mesh/ns/local/sa/healer"
    assert response.service == "healer"
    assert response.server_svid_expires_at.ToDatetime(tzinfo=dt.UTC) > dt.datetime.now(dt.UTC)


async def test_caller_without_certificate_fails_the_handshake(
    mesh: Mesh, healer: ServiceProcess
) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=mesh.bundle_pem.encode())
    with pytest.raises(aio.AioRpcError) as failure:
        await _whoami_with(creds, healer)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_certificate_from_another_ca_fails_the_handshake(
    mesh: Mesh, healer: ServiceProcess
) -> None:
    chain, key = _foreign_ca_svid("spiffe://x0tta6bl4.mesh/ns/local/sa/operator")
    creds = grpc.ssl_channel_credentials(
        root_certificates=mesh.bundle_pem.encode(), private_key=key, certificate_chain=chain
    )
    with pytest.raises(aio.AioRpcError) as failure:
        await _whoami_with(creds, healer)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_svid_of_another_trust_domain_fails_the_handshake(
    tmp_path: Path, mesh: Mesh, healer: ServiceProcess
) -> None:
    other = Mesh(tmp_path / "other", trust_domain="other.mesh")
    try:
        stranger = other.workload("operator")
        async with svid_source(stranger) as svids:
            material: SvidMaterial = svids.require()
            assert material.spiffe_id == "spiffe://other.mesh/ns/local/sa/operator"
            creds = grpc.ssl_channel_credentials(
                root_certificates=mesh.bundle_pem.encode(),  # it trusts our server...
                private_key=material.private_key_pem,
                certificate_chain=material.cert_chain_pem,
            )
            with pytest.raises(aio.AioRpcError) as failure:
                await _whoami_with(creds, healer)  # ...but our server does not trust it
    finally:
        other.close()
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_valid_svid_that_policy_does_not_allow_is_denied(
    mesh: Mesh, healer: ServiceProcess
) -> None:
    intruder = mesh.workload("intruder")
    async with svid_source(intruder) as svids, client(svids, healer, caller="intruder") as c:
        with pytest.raises(aio.AioRpcError) as failure:
            await whoami(c)
    assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "spiffe://x0tta6bl4.mesh/ns/local/sa/intruder" in (failure.value.details() or "")
    assert 'result="deny"' in healer.metrics()


async def test_calls_are_denied_while_the_opa_sidecar_is_down(mesh: Mesh) -> None:
    opa = mesh.opa()
    service = mesh.service("policy", opa=opa, env={"X0_AUTHZ_CACHE_TTL_S": "0"})
    operator = mesh.workload("operator")
    async with svid_source(operator) as svids, client(svids, service) as c:
        assert (await whoami(c)).server_spiffe_id.endswith("/sa/policy")

        opa.process.stop()
        with pytest.raises(aio.AioRpcError) as failure:
            await whoami(c)
        assert failure.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "fail closed" in (failure.value.details() or "")
        assert http_status(service.url("/readyz")) == 503

        restarted = mesh.opa(port=opa.port)
        assert restarted.healthy()
        assert (await whoami(c)).server_spiffe_id.endswith("/sa/policy")

"""mTLS credentials built from the current SVID.

Server side: credentials fetched per handshake, so a rotated SVID or trust bundle is used by the
next connection without a restart. Client side: channel credentials for one SVID; the client
rebuilds its channel when the SVID rotates (see ``client.py``).
"""

from __future__ import annotations

import threading

import grpc

from x0tta6bl4.platform.svid import SvidMaterial, SvidSource


def _server_config(material: SvidMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key_pem, material.cert_chain_pem)],
        root_certificates=material.bundle_pem,
    )


def server_credentials(svids: SvidSource) -> grpc.ServerCredentials:
    """Server credentials requiring a client certificate from the current trust bundle."""
    initial = svids.require()
    lock = threading.Lock()
    served = [initial]

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC core on each new handshake; None keeps the current configuration.
        current = svids.current
        with lock:
            last = served[0]
            if current is None or (
                current.serial == last.serial and current.bundle_pem == last.bundle_pem
            ):
                return None
            served[0] = current
        return _server_config(current)

    return grpc.dynamic_ssl_server_credentials(
        _server_config(initial),
        fetch,  # type: ignore[arg-type]  # gRPC documents None as "no change"
        require_client_authentication=True,
    )


def channel_credentials(material: SvidMaterial) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.bundle_pem,
        private_key=material.private_key_pem,
        certificate_chain=material.cert_chain_pem,
    )

"""TLS for the router's mTLS listener: the server context from the current SVID, and the caller's
SPIFFE ID from the client certificate.

:class:`SvidServerContext` is the ``ssl.SSLContext`` the listener is started with. It never
serves a handshake itself: each new connection is wrapped by a context built from the SVID
material current at that moment (certificate chain, key, and trust bundle as the only
authorities, client certificate required), rebuilt when the SVID's serial or the bundle changed
since the last one. A rotated SVID — or a bundle that gained or lost an authority — is thus used
from the next handshake on, without a restart, as :func:`.credentials.server_credentials` does
for gRPC. It checks on each handshake instead of subscribing to rotations because the
:class:`.SvidSource` tells subscribers of a new SVID only, not of a bundle-only update.

Python's ``ssl`` loads a certificate and key only from a file: the material is written to an
anonymous in-memory file (``memfd``), or a private temporary directory where that is missing,
and never kept on disk.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import structlog

from x0tta6bl4.platform.http_messages import HttpError
from x0tta6bl4.platform.peer import spiffe_id_from_pem
from x0tta6bl4.platform.svid import SvidMaterial, SvidSource

log = structlog.get_logger(__name__)


@contextlib.contextmanager
def _pem_files(material: SvidMaterial) -> Iterator[tuple[str, str]]:
    """Paths of the certificate chain and the key, valid inside the ``with``."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create("svid-chain"), os.memfd_create("svid-key")]
        try:
            for fd, pem in zip(
                fds, (material.cert_chain_pem, material.private_key_pem), strict=True
            ):
                os.write(fd, pem)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="x0-svid-") as tmp:  # mode 0700
        chain, key = os.path.join(tmp, "chain.pem"), os.path.join(tmp, "key.pem")
        for path, pem in ((chain, material.cert_chain_pem), (key, material.private_key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
        yield chain, key


def server_context_for(material: SvidMaterial) -> ssl.SSLContext:
    """A TLS server context serving ``material``'s SVID and requiring a client certificate
    that chains to its trust bundle (TLS 1.2 or later)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=material.bundle_pem.decode("ascii"))
    with _pem_files(material) as (chain, key):
        context.load_cert_chain(chain, key)
    return context


class SvidServerContext(ssl.SSLContext):
    """A server ``SSLContext`` whose connections use the current SVID (see the module
    docstring). The SvidSource must have an SVID when this is made."""

    _svids: SvidSource
    _lock: threading.Lock
    _served: tuple[int, bytes]
    _current: ssl.SSLContext

    def __new__(cls, svids: SvidSource) -> SvidServerContext:
        return super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)

    def __init__(self, svids: SvidSource) -> None:
        material = svids.require()
        self._svids = svids
        self._lock = threading.Lock()
        self._served = (material.serial, material.bundle_pem)
        self._current = server_context_for(material)

    def current_context(self) -> ssl.SSLContext:
        """The context for a new handshake: rebuilt if the SVID or bundle changed; the last
        good one if building fails (logged)."""
        material = self._svids.current
        with self._lock:
            if material is None or (material.serial, material.bundle_pem) == self._served:
                return self._current
            try:
                self._current = server_context_for(material)
            except (ssl.SSLError, OSError, ValueError):
                log.exception("mtls_context_rebuild_failed", serial=material.serial_hex)
            self._served = (material.serial, material.bundle_pem)
            return self._current

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: Any = None,
        session: Any = None,
    ) -> ssl.SSLObject:
        return self.current_context().wrap_bio(
            incoming, outgoing, server_side, server_hostname, session
        )

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        return self.current_context().wrap_socket(*args, **kwargs)


def trust_domain_of(spiffe_id: str) -> str:
    """``x0tta6bl4.mesh`` for ``spiffe://x0tta6bl4.mesh/ns/local/sa/policy``."""
    return spiffe_id.removeprefix("spiffe://").split("/", 1)[0]


def peer_spiffe_id(transport: Any) -> str | None:
    """The SPIFFE ID of the client certificate of a TLS connection (None if it has none, or
    more than one ``spiffe://`` URI SAN)."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    return spiffe_id_from_pem(ssl.DER_cert_to_PEM_cert(der).encode("ascii"))


def admitted_caller(peer_id: str | None, own_spiffe_id: str) -> str:
    """``peer_id`` if it is a SPIFFE ID of the trust domain of ``own_spiffe_id``;
    ``HttpError(403)`` otherwise (a certificate the bundle trusts — a federated trust
    domain's, say — but without an ID of ours)."""
    own = trust_domain_of(own_spiffe_id)
    if peer_id is None or not peer_id.startswith("spiffe://") or trust_domain_of(peer_id) != own:
        raise HttpError(403, f"the client certificate has no SPIFFE ID of trust domain {own}")
    return peer_id

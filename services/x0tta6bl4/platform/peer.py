"""The authenticated identity of the peer of an RPC, read from the TLS auth context."""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Iterable, Mapping

from cryptography import x509

TRUSTED_CERT_KEY = "x509_pem_cert"

_CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("x0_caller", default="")


def current_caller() -> str:
    """The authenticated SPIFFE ID of the caller of the RPC being handled (``""`` outside
    one): set by the platform interceptor once the caller is authenticated, so handlers that
    decide by caller (e.g. consensus key-range permissions) need not parse the certificate."""
    return _CALLER.get()


def set_current_caller(spiffe_id: str) -> None:
    _CALLER.set(spiffe_id)


@functools.lru_cache(maxsize=4096)  # one parse per client certificate, not per call
def spiffe_id_from_pem(pem: bytes) -> str | None:
    """The single ``spiffe://`` URI SAN of a certificate, or None if it has none or several."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = [
        u
        for u in sans.get_values_for_type(x509.UniformResourceIdentifier)
        if u.startswith("spiffe://")
    ]
    return uris[0] if len(uris) == 1 else None


def caller_spiffe_id(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """SPIFFE ID of the client certificate of this connection (None when unauthenticated)."""
    certs = list(auth_context.get(TRUSTED_CERT_KEY, ()))
    if not certs:
        return None
    return spiffe_id_from_pem(certs[0])

"""Who the mTLS listener admits: a SPIFFE ID of its own trust domain, nothing else."""

from __future__ import annotations

import pytest

from x0tta6bl4.platform.http_messages import HttpError
from x0tta6bl4.platform.http_mtls import admitted_caller, peer_spiffe_id, trust_domain_of

OWN = "spiffe://x0tta6bl4.mesh/ns/local/sa/policy"


def test_a_caller_of_the_own_trust_domain_is_admitted() -> None:
    caller = "spiffe://x0tta6bl4.mesh/ns/local/sa/healer"
    assert admitted_caller(caller, OWN) == caller
    assert trust_domain_of(caller) == "x0tta6bl4.mesh"


@pytest.mark.parametrize(
    "peer",
    [
        None,  # a trusted certificate without a (single) SPIFFE ID
        "spiffe://partner.example/ns/local/sa/healer",  # a federated trust domain
        "spiffe://x0tta6bl4.mesh.evil/ns/local/sa/healer",
        "https://x0tta6bl4.mesh/ns/local/sa/healer",
    ],
)
def test_anyone_else_gets_403_naming_the_trust_domain(peer: str | None) -> None:
    with pytest.raises(HttpError) as caught:
        admitted_caller(peer, OWN)
    assert caught.value.status == 403
    assert "trust domain x0tta6bl4.mesh" in caught.value.message


def test_a_connection_without_tls_or_certificate_has_no_peer_id() -> None:
    class Transport:
        def __init__(self, ssl_object: object) -> None:
            self._ssl_object = ssl_object

        def get_extra_info(self, name: str) -> object:
            return self._ssl_object if name == "ssl_object" else None

    class NoCertificate:
        def getpeercert(self, binary_form: bool = False) -> None:
            return None

    assert peer_spiffe_id(None) is None
    assert peer_spiffe_id(Transport(None)) is None
    assert peer_spiffe_id(Transport(NoCertificate())) is None

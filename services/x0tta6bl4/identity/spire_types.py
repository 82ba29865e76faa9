"""The SPIRE Server API's entries, agents and bundles as frozen dataclasses, and their mapping
to and from SPIRE's protobuf messages (pure: no I/O).

:mod:`.spire_api` speaks protobuf on the wire and hands out only these types. A SPIFFE ID is a
``spiffe://`` URI string here (SPIRE's messages split it into trust domain and path); times are
Unix seconds, as SPIRE gives them; selectors are the core's
:class:`~x0tta6bl4.identity.core.workloads.Selector`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from x0tta6bl4.identity.core.workloads import Selector
from x0tta6bl4.identity.spire.types.v1 import agent_pb2 as agent_type
from x0tta6bl4.identity.spire.types.v1 import bundle_pb2 as bundle_type
from x0tta6bl4.identity.spire.types.v1 import entry_pb2 as entry_type
from x0tta6bl4.identity.spire.types.v1 import selector_pb2, spiffeid_pb2

# The SpireEntry fields an update may change (an update's mask names some of these).
MUTABLE_FIELDS = frozenset(
    {"spiffe_id", "parent_id", "selectors", "x509_svid_ttl_s", "dns_names", "hint"}
    | {"admin", "downstream"}
)
_MASK_FIELD = {"x509_svid_ttl_s": "x509_svid_ttl"}
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def code_name(code: int) -> str:
    """The gRPC status name of a ``google.rpc.Code`` number (``6`` -> ``"ALREADY_EXISTS"``)."""
    return _CODE_NAMES.get(code, f"CODE_{code}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SpireEntry:
    """A registration entry. ``id`` "" on create lets SPIRE choose a UUID; ``x509_svid_ttl_s``
    0 means the server's default; ``revision_number`` and ``created_at`` (Unix seconds) are
    SPIRE's bookkeeping, ignored on writes. Entries read from SPIRE have their selectors
    sorted; DNS names keep SPIRE's order (the first one goes into the SVID's subject)."""

    id: str = ""
    spiffe_id: str
    parent_id: str
    selectors: tuple[Selector, ...]
    x509_svid_ttl_s: int = 0
    dns_names: tuple[str, ...] = ()
    hint: str = ""
    admin: bool = False
    downstream: bool = False
    revision_number: int = 0
    created_at: int = 0


@dataclass(frozen=True, slots=True)
class EntryResult:
    """SPIRE's answer for one entry of a batch create/update. ``code`` is the status name
    (``"OK"``, ``"ALREADY_EXISTS"``, ``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ...); ``entry`` is
    the entry as stored (for ALREADY_EXISTS: the one already there), None on failure."""

    code: str
    message: str
    entry: SpireEntry | None

    @property
    def ok(self) -> bool:
        return self.code == "OK"


@dataclass(frozen=True, slots=True)
class DeleteResult:
    id: str
    code: str  # "OK", "NOT_FOUND", ...
    message: str


@dataclass(frozen=True, slots=True)
class Agent:
    """An attested agent; ``x509svid_expires_at`` in Unix seconds."""

    spiffe_id: str
    attestation_type: str
    x509svid_serial_number: str
    x509svid_expires_at: int
    selectors: tuple[Selector, ...]
    banned: bool
    can_reattest: bool


@dataclass(frozen=True, slots=True)
class Bundle:
    """A trust bundle: its X.509 authorities as DER, SPIRE's refresh hint and sequence number."""

    trust_domain: str
    x509_authorities: tuple[bytes, ...]
    refresh_hint_s: int
    sequence_number: int


def spiffe_id_pb(uri: str) -> spiffeid_pb2.SPIFFEID:
    # Not validated here: SPIRE refuses a bad ID for that entry alone (INVALID_ARGUMENT).
    rest = uri.removeprefix("spiffe://")
    if rest == uri:
        return spiffeid_pb2.SPIFFEID(path=uri)
    trust_domain, slash, path = rest.partition("/")
    return spiffeid_pb2.SPIFFEID(trust_domain=trust_domain, path=slash + path)


def _spiffe_id(pb: spiffeid_pb2.SPIFFEID) -> str:
    return f"spiffe://{pb.trust_domain}{pb.path}" if pb.trust_domain else ""


def _selectors(pbs: Iterable[selector_pb2.Selector]) -> tuple[Selector, ...]:
    # Sorted: SPIRE returns them in no fixed order (a create's answer keeps the request's order,
    # later reads the datastore's), and their order means nothing.
    return tuple(sorted(Selector(s.type, s.value) for s in pbs))


def entry_of(pb: entry_type.Entry) -> SpireEntry:
    return SpireEntry(
        id=pb.id,
        spiffe_id=_spiffe_id(pb.spiffe_id),
        parent_id=_spiffe_id(pb.parent_id),
        selectors=_selectors(pb.selectors),
        x509_svid_ttl_s=pb.x509_svid_ttl,
        dns_names=tuple(pb.dns_names),
        hint=pb.hint,
        admin=pb.admin,
        downstream=pb.downstream,
        revision_number=pb.revision_number,
        created_at=pb.created_at,
    )


def entry_pb(e: SpireEntry) -> entry_type.Entry:
    return entry_type.Entry(
        id=e.id,
        spiffe_id=spiffe_id_pb(e.spiffe_id),
        parent_id=spiffe_id_pb(e.parent_id),
        selectors=[selector_pb2.Selector(type=s.type, value=s.value) for s in e.selectors],
        x509_svid_ttl=e.x509_svid_ttl_s,
        dns_names=list(e.dns_names),
        hint=e.hint,
        admin=e.admin,
        downstream=e.downstream,
    )


def agent_of(pb: agent_type.Agent) -> Agent:
    return Agent(
        spiffe_id=_spiffe_id(pb.id),
        attestation_type=pb.attestation_type,
        x509svid_serial_number=pb.x509svid_serial_number,
        x509svid_expires_at=pb.x509svid_expires_at,
        selectors=_selectors(pb.selectors),
        banned=pb.banned,
        can_reattest=pb.can_reattest,
    )


def bundle_of(pb: bundle_type.Bundle) -> Bundle:
    return Bundle(
        trust_domain=pb.trust_domain,
        x509_authorities=tuple(a.asn1 for a in pb.x509_authorities),
        refresh_hint_s=pb.refresh_hint,
        sequence_number=pb.sequence_number,
    )


def entry_mask(fields: Iterable[str]) -> entry_type.EntryMask:
    """SPIRE's input mask for these :data:`MUTABLE_FIELDS`; ValueError names any other."""
    names = set(fields)
    if unknown := names - MUTABLE_FIELDS:
        raise ValueError(f"not updatable SpireEntry fields: {sorted(unknown)}")
    return entry_type.EntryMask(**{_MASK_FIELD.get(n, n): True for n in names})

"""Workloads — who gets which SPIFFE ID — validated, and encoded for the consensus store (pure).

A workload is what SPIRE calls a registration entry, without SPIRE's bookkeeping: a SPIFFE ID
in this suite's trust domain, the parent (agent) ID allowed to issue it, selectors, the SVID
TTL, DNS names, a hint and the admin/downstream flags. :func:`check_workload` validates one
and names the first bad field as the API names it (``workload.selectors[1]``); selectors are
kept sorted and de-duplicated, DNS names in the order given (SPIRE puts the first into the
subject), so two workloads are equal exactly when SPIRE would see the same entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id

MIN_TTL_S = 60
MAX_TTL_S = 30 * 24 * 3600
MAX_SELECTORS = 32
MAX_DNS_NAMES = 32
MAX_HINT = 1024
_SELECTOR_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


class FieldError(ValueError):
    """``field`` of the request is wrong: ``problem`` says how."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True, order=True)
class Selector:
    type: str
    value: str

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Workload:
    spiffe_id: str
    parent_id: str
    selectors: tuple[Selector, ...]
    x509_svid_ttl_s: int = 0
    dns_names: tuple[str, ...] = ()
    hint: str = ""
    admin: bool = False
    downstream: bool = False


@dataclass(frozen=True, slots=True)
class WorkloadRecord:
    """A stored workload: revisions of the store, the author's SPIFFE ID, when (epoch s)."""

    workload: Workload
    revision: int
    create_revision: int
    author: str
    updated_at: float = field(default=0.0)


def parse_selector(text: str, field_name: str) -> Selector:
    """``type:value`` (the value may itself contain ``:``, e.g. ``k8s:ns:default``)."""
    kind, sep, value = text.partition(":")
    if not sep or not kind or not value:
        raise FieldError(field_name, f"expected type:value, got {text!r}")
    return checked_selector(Selector(kind, value), field_name)


def checked_selector(selector: Selector, field_name: str) -> Selector:
    if not _SELECTOR_TYPE.match(selector.type):
        raise FieldError(
            f"{field_name}.type",
            f"must be a lower-case word like unix or k8s, got {selector.type!r}",
        )
    if not selector.value or len(selector.value) > 1024 or not selector.value.isprintable():
        raise FieldError(f"{field_name}.value", "must be 1-1024 printable characters")
    return selector


def check_workload(w: Workload, trust_domain: str, field_name: str = "workload") -> Workload:
    """``w`` normalised (selectors sorted and unique), or :class:`FieldError` naming the field."""
    try:
        sid = parse_spiffe_id(w.spiffe_id, require_path=True)
    except ValueError as err:
        raise FieldError(f"{field_name}.spiffe_id", str(err)) from None
    if not sid.is_member_of(trust_domain):
        raise FieldError(
            f"{field_name}.spiffe_id",
            f"must be in trust domain {trust_domain!r}, got {sid.trust_domain!r}",
        )
    try:
        parse_spiffe_id(w.parent_id)
    except ValueError as err:
        raise FieldError(f"{field_name}.parent_id", str(err)) from None
    if w.parent_id == w.spiffe_id:
        raise FieldError(f"{field_name}.parent_id", "must not be the workload's own SPIFFE ID")
    if not w.selectors:
        raise FieldError(f"{field_name}.selectors", "at least one selector is required")
    if len(w.selectors) > MAX_SELECTORS:
        raise FieldError(f"{field_name}.selectors", f"at most {MAX_SELECTORS}")
    selectors = tuple(
        sorted(
            {checked_selector(s, f"{field_name}.selectors[{i}]") for i, s in enumerate(w.selectors)}
        )
    )
    ttl = w.x509_svid_ttl_s
    if ttl != 0 and not MIN_TTL_S <= ttl <= MAX_TTL_S:
        raise FieldError(
            f"{field_name}.x509_svid_ttl_seconds",
            f"must be 0 (the server's default) or {MIN_TTL_S}-{MAX_TTL_S}, got {ttl}",
        )
    if len(w.dns_names) > MAX_DNS_NAMES:
        raise FieldError(f"{field_name}.dns_names", f"at most {MAX_DNS_NAMES}")
    dns: list[str] = []
    for i, name in enumerate(w.dns_names):
        if not _DNS_NAME.match(name):
            raise FieldError(f"{field_name}.dns_names[{i}]", f"not a DNS name: {name!r}")
        if name.lower() not in (d.lower() for d in dns):
            dns.append(name)
    if len(w.hint) > MAX_HINT or not w.hint.isprintable():
        raise FieldError(f"{field_name}.hint", f"must be at most {MAX_HINT} printable characters")
    return Workload(
        w.spiffe_id, w.parent_id, selectors, ttl, tuple(dns), w.hint, w.admin, w.downstream
    )


# -- the stored form (JSON, so that `x0 kv get` shows it readably) ------------------------------


def workload_to_json(w: Workload) -> dict[str, Any]:
    return {
        "spiffe_id": w.spiffe_id,
        "parent_id": w.parent_id,
        "selectors": [str(s) for s in w.selectors],
        "x509_svid_ttl_seconds": w.x509_svid_ttl_s,
        "dns_names": list(w.dns_names),
        "hint": w.hint,
        "admin": w.admin,
        "downstream": w.downstream,
    }


def workload_from_json(data: dict[str, Any]) -> Workload:
    return Workload(
        spiffe_id=str(data["spiffe_id"]),
        parent_id=str(data["parent_id"]),
        selectors=tuple(parse_selector(str(s), "selectors") for s in data["selectors"]),
        x509_svid_ttl_s=int(data.get("x509_svid_ttl_seconds", 0)),
        dns_names=tuple(str(d) for d in data.get("dns_names", ())),
        hint=str(data.get("hint", "")),
        admin=bool(data.get("admin", False)),
        downstream=bool(data.get("downstream", False)),
    )


def encode_record(w: Workload, author: str, updated_at: float) -> bytes:
    doc = {"workload": workload_to_json(w), "author": author, "updated_at": updated_at}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_record(value: bytes, revision: int, create_revision: int) -> WorkloadRecord:
    """A stored record; ``ValueError`` if the value is not one (written behind our back)."""
    try:
        doc = json.loads(value)
        return WorkloadRecord(
            workload_from_json(doc["workload"]),
            revision,
            create_revision,
            str(doc.get("author", "")),
            float(doc.get("updated_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not a stored workload: {err}") from None

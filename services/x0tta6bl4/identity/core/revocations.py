"""Revocations (bans) of SPIFFE IDs, and the data every OPA sidecar loads from them (pure).

A revocation names a SPIFFE ID, why, who, since when and until when (none: until lifted).
While in force, the identity service keeps no SPIRE entry for the ID, and OPA denies every
call from it: the sidecars load :func:`opa_data` as ``data.x0tta6bl4.revocations`` and the
authorisation policy checks ``input.caller`` and ``input.time`` against it, so a ban with an
end time ends in every sidecar at that time even before the next load.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Revocation:
    spiffe_id: str
    reason: str
    author: str
    revoked_at: float  # epoch seconds
    until: float | None = None  # epoch seconds; None = until lifted
    revision: int = 0

    def in_force(self, now: float) -> bool:
        return self.until is None or now < self.until


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def in_force(revocations: Iterable[Revocation], now: float) -> list[Revocation]:
    return sorted((r for r in revocations if r.in_force(now)), key=lambda r: r.spiffe_id)


def opa_data(revocations: Iterable[Revocation], now: float) -> dict[str, Any]:
    """``{spiffe_id: {"reason", "until"}}`` of the bans in force (``until`` RFC 3339 UTC with
    microseconds like the authorisation input's ``time``, so that strings compare in order;
    ``""`` = until lifted)."""
    return {
        r.spiffe_id: {"reason": r.reason, "until": "" if r.until is None else _rfc3339(r.until)}
        for r in in_force(revocations, now)
    }


def encode(r: Revocation) -> bytes:
    doc = {
        "spiffe_id": r.spiffe_id,
        "reason": r.reason,
        "author": r.author,
        "revoked_at": r.revoked_at,
        "until": r.until,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(value: bytes, revision: int) -> Revocation:
    """A stored revocation; ``ValueError`` if the value is not one."""
    try:
        doc = json.loads(value)
        until = doc.get("until")
        return Revocation(
            str(doc["spiffe_id"]),
            str(doc["reason"]),
            str(doc.get("author", "")),
            float(doc["revoked_at"]),
            None if until is None else float(until),
            revision,
        )
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"not a stored revocation: {err}") from None

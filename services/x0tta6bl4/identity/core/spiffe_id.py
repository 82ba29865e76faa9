"""SPIFFE IDs as the SPIFFE ID specification defines them (pure).

``spiffe://<trust domain>/<path>``: the scheme is exactly ``spiffe``; the trust domain holds
only lower-case letters, digits, ``.``, ``-`` and ``_``; the path is ``/``-separated segments
of letters, digits, ``.``, ``-`` and ``_``, none empty, none ``.`` or ``..``, no trailing
slash; there is no port, user info, query or fragment (nothing else in the URI at all); at
most 2048 bytes. Percent-encoding is not allowed (the characters are already restricted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_BYTES = 2048
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+\Z")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+\Z")


@dataclass(frozen=True, slots=True)
class SpiffeId:
    trust_domain: str
    path: str  # "" or "/seg/seg"

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"

    def is_member_of(self, trust_domain: str) -> bool:
        return self.trust_domain == trust_domain


def parse_spiffe_id(value: str, *, require_path: bool = False) -> SpiffeId:
    """The parsed ID; ``ValueError`` saying exactly what is wrong."""
    if not value:
        raise ValueError("is empty")
    if len(value.encode()) > MAX_BYTES:
        raise ValueError(f"is longer than {MAX_BYTES} bytes")
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise ValueError(f"{value!r} is not a URI of the form spiffe://trust-domain/path")
    if scheme != "spiffe":
        raise ValueError(f"scheme must be 'spiffe', got {scheme!r}")
    for ch, what in (("?", "a query"), ("#", "a fragment"), ("%", "percent-encoding")):
        if ch in rest:
            raise ValueError(f"must not contain {what} ({value!r})")
    authority, slash, path = rest.partition("/")
    if not authority:
        raise ValueError("has no trust domain")
    if "@" in authority:
        raise ValueError("must not contain user info")
    if ":" in authority:
        raise ValueError("must not contain a port")
    if not _TRUST_DOMAIN.match(authority):
        raise ValueError(
            f"trust domain {authority!r} may hold only lower-case letters, digits, '.', '-', '_'"
        )
    if not slash:
        if require_path:
            raise ValueError(f"{value!r} names a trust domain, not a workload: it needs a path")
        return SpiffeId(authority, "")
    if path == "":
        raise ValueError("must not end with '/'")
    for i, segment in enumerate(path.split("/")):
        if segment == "":
            raise ValueError(f"path segment {i + 1} is empty ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise ValueError(f"path segment {i + 1} must not be {segment!r}")
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"path segment {segment!r} may hold only letters, digits, '.', '-', '_'"
            )
    return SpiffeId(authority, "/" + path)

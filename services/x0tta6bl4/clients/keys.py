"""The key layout of the consensus store: one prefix per owning service.

``/x0/<owner>/...`` where ``<owner>`` is the service whose data it is (``policy``,
``identity``, ``ops``, ``healer``, ...). The consensus service authorises each key an RPC
touches by these prefixes, so a service writes only under its own (see the README's
consensus section). Keys are bytes; the helpers here build them from text parts and refuse a
part that could escape its prefix.
"""

from __future__ import annotations

ROOT = b"/x0/"


def _part(text: str, what: str) -> bytes:
    if not text or "/" in text or text in (".", "..") or any(ord(c) < 0x20 for c in text):
        raise ValueError(f"{what} must be a non-empty name without '/', got {text!r}")
    return text.encode()


def owner_prefix(owner: str) -> bytes:
    """``/x0/<owner>/``: everything a service owns."""
    return ROOT + _part(owner, "owner") + b"/"


def key(owner: str, *parts: str) -> bytes:
    """``/x0/<owner>/<part>/<part>...``."""
    return owner_prefix(owner) + b"/".join(_part(p, "key part") for p in parts)


def prefix(owner: str, *parts: str) -> bytes:
    """``/x0/<owner>/<part>/.../``: a prefix to range or watch."""
    return key(owner, *parts) + b"/" if parts else owner_prefix(owner)

"""Pinning: SHA-256 SPKI pins and SPIFFE ID pins, as checks on a verified chain (pure).

An SPKI pin is the SHA-256 digest of a certificate's DER SubjectPublicKeyInfo, written in hex
(64 digits, colons allowed) or base64 (standard or URL-safe, an optional ``sha256/`` prefix as
in HPKP). It matches if any certificate of the verified chain has that key — the leaf, an
intermediate or the trust anchor. A SPIFFE ID pin is an exact ID, or a prefix ending in ``/*``
that matches every ID below it (``spiffe://td/ns/prod/*`` matches ``spiffe://td/ns/prod/sa/a``,
not ``spiffe://td/ns/prod``). An empty pin set means no pinning: the check is a ``skip``, never
"accept everything"; a non-empty set that nothing matches is a ``fail``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from x0tta6bl4.identity.core.spiffe_id import parse_spiffe_id
from x0tta6bl4.identity.validation.verdict import Check, failed, passed, skipped

SPKI_CHECK = "pin.spki"
SPIFFE_ID_CHECK = "pin.spiffe_id"
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def spki_pin_digest(pin: str) -> bytes:
    """The 32-byte SHA-256 digest a pin spells; ``ValueError`` if it spells none."""
    text = pin.strip()
    if text.lower().startswith("sha256/"):
        text = text[len("sha256/") :]
    hex_text = text.replace(":", "")
    if _HEX.fullmatch(hex_text):
        return bytes.fromhex(hex_text)
    try:
        padded = text + "=" * (-len(text) % 4)
        digest = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 32:
        raise ValueError(f"{pin!r} is not a SHA-256 digest in hex (64 digits) or base64 (32 bytes)")
    return digest


def spki_sha256(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER SubjectPublicKeyInfo (what an SPKI pin names)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def check_spiffe_id_pin(pin: str) -> None:
    """``ValueError`` unless ``pin`` is a SPIFFE ID or a SPIFFE ID followed by ``/*``."""
    base = pin[:-2] if pin.endswith("/*") else pin
    try:
        parse_spiffe_id(base)
    except ValueError as err:
        raise ValueError(f"{pin!r} is not a SPIFFE ID (or one followed by /*): {err}") from None


def spiffe_id_matches(pin: str, spiffe_id: str) -> bool:
    if pin.endswith("/*"):
        return spiffe_id.startswith(pin[:-1]) and len(spiffe_id) > len(pin) - 1
    return spiffe_id == pin


def spki_pin_check(pins: Iterable[str], verified_chain: Sequence[x509.Certificate]) -> Check:
    """``pin.spki`` for ``verified_chain`` (leaf first, trust anchor last)."""
    wanted = {spki_pin_digest(p) for p in pins}
    if not wanted:
        return skipped(SPKI_CHECK, "no pins configured")
    for position, cert in enumerate(verified_chain):
        digest = spki_sha256(cert)
        if digest in wanted:
            role = _role(position, len(verified_chain))
            pin = base64.b64encode(digest).decode()
            return passed(
                SPKI_CHECK,
                f"the {role}'s key ({cert.subject.rfc4514_string()}) matches pin sha256/{pin}",
            )
    return failed(
        SPKI_CHECK,
        f"no key of the {len(verified_chain)} certificates of the verified chain matches any "
        f"of the {len(wanted)} configured pins",
    )


def spiffe_id_pin_check(pins: Iterable[str], spiffe_id: str) -> Check:
    """``pin.spiffe_id`` for the leaf's SPIFFE ID (``""`` if it has none)."""
    pin_list = sorted(pins)
    if not pin_list:
        return skipped(SPIFFE_ID_CHECK, "no pins configured")
    if not spiffe_id:
        return failed(SPIFFE_ID_CHECK, "the leaf has no valid SPIFFE ID to match the pins")
    for pin in pin_list:
        if spiffe_id_matches(pin, spiffe_id):
            return passed(SPIFFE_ID_CHECK, f"{spiffe_id} matches pin {pin}")
    return failed(
        SPIFFE_ID_CHECK, f"{spiffe_id} matches none of the {len(pin_list)} configured pins"
    )


def _role(position: int, length: int) -> str:
    if position == 0:
        return "leaf"
    return "trust anchor" if position == length - 1 else f"intermediate {position}"

"""Reading a presented chain: PEM or DER bytes into certificates, leaf first (pure).

Accepted: PEM with one or more ``CERTIFICATE`` blocks (text around the blocks is ignored, as
RFC 7468 allows), or DER — one certificate or several concatenated. Refused, each with a reason
for the ``parse`` check: empty input, input over the policy's byte limit, anything that is
neither PEM nor DER, a PEM block that is not a certificate (a private key is named as such),
bad base64, truncated or trailing DER, a certificate that does not parse (its extensions
included), more certificates than the policy's chain length, duplicate certificates, and
chains whose issuer links loop. Nothing here raises for bad input.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509

from x0tta6bl4.identity.validation.verdict import Check, failed, passed

CHECK = "parse"
_PEM_BEGIN = b"-----BEGIN "
_PEM_END = b"-----END "
_PEM_DASHES = b"-----"
_PEM_LABEL = re.compile(rb"[A-Z0-9 ]{1,64}")
_MAX_LABEL = 64


class ParseError(ValueError):
    """The input is not an acceptable chain; the message is the ``parse`` check's reason."""


@dataclass(frozen=True, slots=True)
class ParsedChain:
    certificates: tuple[x509.Certificate, ...]
    encoding: str  # "PEM" or "DER"

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return list(self.certificates[1:])


def parse_chain(data: bytes, *, max_bytes: int, max_len: int) -> tuple[ParsedChain | None, Check]:
    """The chain in ``data`` and a passing ``parse`` check, or ``None`` and a failing one."""
    try:
        chain = _parse(data, max_bytes=max_bytes, max_len=max_len)
    except ParseError as err:
        return None, failed(CHECK, str(err))
    n = len(chain.certificates)
    plural = "s" if n != 1 else ""
    return chain, passed(CHECK, f"{n} certificate{plural} ({chain.encoding}), leaf first")


def _parse(data: bytes, *, max_bytes: int, max_len: int) -> ParsedChain:
    if not data:
        raise ParseError("the input is empty")
    if len(data) > max_bytes:
        raise ParseError(f"the input is {len(data)} bytes, over the limit of {max_bytes}")
    if _PEM_BEGIN in data[:4096] or data.lstrip()[:1] == b"-":
        ders, encoding = _pem_blocks(data), "PEM"
    elif data[0] == 0x30:
        ders, encoding = _der_sequence(data), "DER"
    else:
        raise ParseError(
            f"the input is neither PEM nor DER (it starts with byte 0x{data[0]:02x}, "
            "not '-----BEGIN' or a DER SEQUENCE)"
        )
    if len(ders) > max_len:
        raise ParseError(f"the chain has {len(ders)} certificates, over the limit of {max_len}")
    certs = tuple(_load(i, der) for i, der in enumerate(ders))
    _refuse_duplicates(certs)
    _refuse_issuer_loops(certs)
    return ParsedChain(certs, encoding)


def _pem_blocks(data: bytes) -> list[bytes]:
    """The DER of every PEM block, in one left-to-right pass (linear in the input: a regex
    with a lazy ``.*?`` rescans the rest of the input for each BEGIN line without an END,
    which made 9,000 bare BEGIN lines cost 15 s)."""
    ders: list[bytes] = []
    offset = data.find(_PEM_BEGIN)
    if offset < 0:
        raise ParseError(
            "the input looks like PEM but holds no '-----BEGIN CERTIFICATE-----' block"
        )
    while offset >= 0:
        index = len(ders)
        label, body_start = _pem_label(data, offset + len(_PEM_BEGIN), index, "BEGIN")
        end = data.find(_PEM_END, body_start)
        following = data.find(_PEM_BEGIN, body_start)
        if end < 0 or 0 <= following < end:
            raise ParseError(
                f"PEM block {index} ({label!r}) has a BEGIN line without a matching END line "
                "(it is truncated)"
            )
        end_label, after = _pem_label(data, end + len(_PEM_END), index, "END")
        if end_label != label:
            raise ParseError(f"PEM block {index} begins as {label!r} but ends as {end_label!r}")
        if label != "CERTIFICATE":
            if "PRIVATE KEY" in label:
                raise ParseError(
                    f"PEM block {index} is a private key ({label!r}), not a CERTIFICATE; "
                    "a private key must never be sent for validation"
                )
            raise ParseError(f"PEM block {index} is a {label!r}, not a CERTIFICATE")
        try:
            ders.append(base64.b64decode(b"".join(data[body_start:end].split()), validate=True))
        except (binascii.Error, ValueError):
            raise ParseError(f"PEM block {index} is not valid base64") from None
        offset = data.find(_PEM_BEGIN, after)
    return ders


def _pem_label(data: bytes, start: int, index: int, line: str) -> tuple[str, int]:
    """The label of the ``-----BEGIN``/``-----END`` line whose label starts at ``start``, and
    where the line ends."""
    close = data.find(_PEM_DASHES, start, start + _MAX_LABEL + 1)
    label = data[start:close] if close >= 0 else b""
    if close < 0 or not _PEM_LABEL.fullmatch(label):
        raise ParseError(f"PEM block {index} has a malformed {line} line")
    return label.decode("ascii"), close + len(_PEM_DASHES)


def _der_sequence(data: bytes) -> list[bytes]:
    """Split concatenated DER SEQUENCEs, checking each header against the bytes left."""
    ders: list[bytes] = []
    offset = 0
    while offset < len(data):
        index = len(ders)
        if data[offset] != 0x30:
            raise ParseError(
                f"DER certificate {index} at byte {offset} does not start with a SEQUENCE "
                f"(0x{data[offset]:02x}): trailing garbage"
            )
        header, length = _der_length(data, offset, index)
        end = offset + header + length
        if end > len(data):
            raise ParseError(
                f"DER certificate {index} is truncated: its header says {header + length} "
                f"bytes, only {len(data) - offset} remain"
            )
        ders.append(data[offset:end])
        offset = end
    return ders


def _der_length(data: bytes, offset: int, index: int) -> tuple[int, int]:
    """(header bytes, content length) of the DER TLV at ``offset``."""
    if offset + 1 >= len(data):
        raise ParseError(f"DER certificate {index} is truncated inside its header")
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ParseError(f"DER certificate {index} has an invalid length encoding")
    if offset + 2 + count > len(data):
        raise ParseError(f"DER certificate {index} is truncated inside its header")
    return 2 + count, int.from_bytes(data[offset + 2 : offset + 2 + count], "big")


def _load(index: int, der: bytes) -> x509.Certificate:
    what = "the leaf" if index == 0 else f"certificate {index}"
    try:
        cert = x509.load_der_x509_certificate(der)
        # Parsing is partly lazy: touch every part the checks will read, so a malformed
        # certificate is a parse failure here and not an exception later.
        _ = (cert.subject, cert.issuer, cert.serial_number, cert.extensions, cert.public_key())
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_hash_algorithm)
    except Exception as err:  # cryptography raises ValueError and friends for bad DER
        raise ParseError(f"{what} is not a valid X.509 certificate: {err}") from None
    return cert


def _refuse_duplicates(certs: tuple[x509.Certificate, ...]) -> None:
    seen: dict[x509.Certificate, int] = {}
    for i, cert in enumerate(certs):
        if cert in seen:
            raise ParseError(f"certificate {i} duplicates certificate {seen[cert]}")
        seen[cert] = i


def _refuse_issuer_loops(certs: tuple[x509.Certificate, ...]) -> None:
    """Follow issuer names from the leaf through the presented certificates; coming back to
    one already visited (other than a self-issued certificate naming itself) is a loop."""
    by_subject: dict[x509.Name, list[int]] = {}
    for i, cert in enumerate(certs):
        by_subject.setdefault(cert.subject, []).append(i)
    visited = [0]
    current = 0
    while certs[current].issuer != certs[current].subject:
        issuers = [i for i in by_subject.get(certs[current].issuer, []) if i != current]
        if not issuers:
            return
        nxt = issuers[0]
        if nxt in visited:
            path = " -> ".join(str(i) for i in [*visited, nxt])
            raise ParseError(f"the chain's issuer links loop: certificate {path}")
        visited.append(nxt)
        current = nxt

"""SPKI and SPIFFE ID pins: spellings, matching, and the checks they give (pure)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.x509_corpus import ID, World
from x0tta6bl4.identity.validation.pins import (
    check_spiffe_id_pin,
    spiffe_id_matches,
    spiffe_id_pin_check,
    spki_pin_check,
    spki_pin_digest,
    spki_sha256,
)

DIGEST = bytes(range(32))


@pytest.mark.parametrize(
    "spelled",
    [
        DIGEST.hex(),
        DIGEST.hex().upper(),
        ":".join(f"{b:02x}" for b in DIGEST),
        base64.b64encode(DIGEST).decode(),
        "sha256/" + base64.b64encode(DIGEST).decode(),
        "SHA256/" + base64.b64encode(DIGEST).decode(),
        base64.urlsafe_b64encode(DIGEST).decode().rstrip("="),
        "  " + DIGEST.hex() + "\n",
    ],
)
def test_a_pin_is_read_in_hex_or_base64(spelled: str) -> None:
    assert spki_pin_digest(spelled) == DIGEST


@pytest.mark.parametrize(
    "spelled",
    ["", "sha256/", "abc", DIGEST.hex()[:-2], DIGEST.hex() + "00", "zz" * 32,
     base64.b64encode(DIGEST[:31]).decode(), base64.b64encode(DIGEST + b"x").decode(),
     DIGEST.hex()[:32] + "\n" + DIGEST.hex()[32:]],
)  # fmt: skip
def test_a_pin_that_spells_no_sha256_digest_is_refused(spelled: str) -> None:
    with pytest.raises(ValueError, match="is not a SHA-256 digest"):
        spki_pin_digest(spelled)


def test_the_spki_digest_is_sha256_of_the_der_subject_public_key_info() -> None:
    cert = World().root.cert
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_sha256(cert) == hashlib.sha256(spki).digest()


@pytest.mark.parametrize(
    ("pin", "spiffe_id", "matches"),
    [
        ("spiffe://td/ns/prod/sa/a", "spiffe://td/ns/prod/sa/a", True),
        ("spiffe://td/ns/prod/sa/a", "spiffe://td/ns/prod/sa/ab", False),
        ("spiffe://td/ns/prod/*", "spiffe://td/ns/prod/sa/a", True),
        ("spiffe://td/ns/prod/*", "spiffe://td/ns/prod", False),
        ("spiffe://td/ns/prod/*", "spiffe://td/ns/prod2/sa/a", False),
        ("spiffe://td/ns/prod/*", "spiffe://other/ns/prod/sa/a", False),
        ("spiffe://td/*", "spiffe://td/anything", True),
        ("spiffe://td/*", "spiffe://tdx/anything", False),
    ],
)
def test_spiffe_id_pins_match_exactly_or_strictly_below_a_prefix(
    pin: str, spiffe_id: str, matches: bool
) -> None:
    check_spiffe_id_pin(pin)
    assert spiffe_id_matches(pin, spiffe_id) is matches


@pytest.mark.parametrize(
    ("pin", "problem"),
    [
        ("td/ns/prod", "not a URI"),
        ("spiffe://td/ns/*/sa", "may hold only"),
        ("spiffe://td/ns/prod/**", "may hold only"),
        ("spiffe://td/ns?x/*", "query"),
        ("spiffe://td/ns/a\n", "segment"),
        ("*", "not a URI"),
    ],
)
def test_a_spiffe_id_pin_must_be_an_id_or_an_id_and_a_star(pin: str, problem: str) -> None:
    with pytest.raises(ValueError, match="is not a SPIFFE ID") as raised:
        check_spiffe_id_pin(pin)
    assert problem in str(raised.value)


def test_no_spki_pins_is_a_skip_and_never_a_pass() -> None:
    w = World()
    chain = [w.leaf(), w.inter.cert, w.root.cert]
    check = spki_pin_check([], chain)
    assert (check.name, check.result, check.reason) == ("pin.spki", "skip", "no pins configured")


@pytest.mark.parametrize(
    ("position", "role"), [(0, "leaf"), (1, "intermediate 1"), (2, "trust anchor")]
)
def test_an_spki_pin_of_any_certificate_of_the_chain_passes_naming_it(
    position: int, role: str
) -> None:
    w = World()
    chain = [w.leaf(), w.inter.cert, w.root.cert]
    pin = base64.b64encode(spki_sha256(chain[position])).decode()
    check = spki_pin_check([DIGEST.hex(), pin], chain)
    assert check.result == "pass"
    assert check.reason.startswith(f"the {role}'s key (")
    assert f"matches pin sha256/{pin}" in check.reason


def test_spki_pins_that_match_nothing_fail() -> None:
    w = World()
    chain = [w.leaf(), w.inter.cert, w.root.cert]
    check = spki_pin_check([DIGEST.hex(), spki_sha256(World().root.cert).hex()], chain)
    assert check.result == "fail"
    assert "no key of the 3 certificates" in check.reason
    assert "any of the 2 configured pins" in check.reason


def test_spiffe_id_pin_check_results() -> None:
    assert spiffe_id_pin_check([], ID).result == "skip"
    missing = spiffe_id_pin_check([ID], "")
    assert missing.result == "fail" and "no valid SPIFFE ID" in missing.reason
    ok = spiffe_id_pin_check(["spiffe://other/x", "spiffe://corpus.test/ns/test/*"], ID)
    assert ok.result == "pass" and ok.reason == f"{ID} matches pin spiffe://corpus.test/ns/test/*"
    none = spiffe_id_pin_check(["spiffe://corpus.test/ns/prod/*"], ID)
    assert none.result == "fail" and "matches none of the 1 configured pins" in none.reason

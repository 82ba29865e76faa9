"""Reading presented chains: PEM and DER, leaf first, and a reason for each way to be wrong
(pure). The malformed corpus of the integration tier goes through the whole validator; these
pin the parser's own rules."""

from __future__ import annotations

import pytest

from tests.support.x509_corpus import World, der, pem
from x0tta6bl4.identity.validation.parse import parse_chain

LIMITS = {"max_bytes": 256 * 1024, "max_len": 10}


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_pem_and_der_chains_are_read_leaf_first(world: World) -> None:
    leaf = world.leaf()
    for data, encoding in (
        (pem(leaf, world.inter.cert), "PEM"),
        (der(leaf, world.inter.cert), "DER"),
    ):
        chain, check = parse_chain(data, **LIMITS)
        assert chain is not None, check
        assert chain.encoding == encoding
        assert chain.leaf == leaf and chain.intermediates == [world.inter.cert]
        assert check.result == "pass" and check.reason == f"2 certificates ({encoding}), leaf first"


def test_text_around_pem_blocks_and_crlf_line_ends_are_accepted(world: World) -> None:
    data = b"subject=CN=leaf\n" + pem(world.leaf()).replace(b"\n", b"\r\n") + b"trailing words\n"
    chain, check = parse_chain(data, **LIMITS)
    assert chain is not None, check
    assert check.reason == "1 certificate (PEM), leaf first"


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_bytes": 100, "max_len": 10}, "over the limit of 100"),
        (
            {"max_bytes": 256 * 1024, "max_len": 1},
            "the chain has 2 certificates, over the limit of 1",
        ),
    ],
)
def test_the_policy_limits_apply(world: World, limits: dict[str, int], reason: str) -> None:
    chain, check = parse_chain(pem(world.leaf(), world.inter.cert), **limits)
    assert chain is None and check.result == "fail"
    assert reason in check.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            "PEM block 0 ('CERTIFICATE') has a BEGIN line without",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nAA\n-----BEGIN CERTIFICATE-----\n",
            "without a matching END",
        ),
        (b"-----BEGIN CERTIFICATE\nAA\n", "malformed BEGIN line"),
        (b"-----BEGIN certificate-----\nAA\n-----END certificate-----\n", "malformed BEGIN line"),
        (b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERT", "malformed END line"),
        (b"-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n", "private key"),
        (b"-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n", "is a 'X509 CRL', not a"),
        (b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (b"----- nothing here", "holds no '-----BEGIN CERTIFICATE-----' block"),
        (b"\x30\x82\xff\xff\x00", "truncated: its header says 65539 bytes, only 5 remain"),
        (b"\x30\x89" + b"\x01" * 9, "invalid length encoding"),
        (b"\x30\x80\x00\x00", "invalid length encoding"),
        (b"\x04\x02ab", "neither PEM nor DER (it starts with byte 0x04"),
    ],
)
def test_bad_bytes_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    chain, check = parse_chain(data, **LIMITS)
    assert chain is None and check.result == "fail"
    assert reason in check.reason, check.reason


def test_a_certificate_that_does_not_parse_is_named_by_position(world: World) -> None:
    good = der(world.leaf())
    bad = b"\x30\x03\x02\x01\x01"  # a well-framed SEQUENCE that is no certificate
    chain, check = parse_chain(good + bad, **LIMITS)
    assert chain is None
    assert check.reason.startswith("certificate 1 is not a valid X.509 certificate")
    chain, check = parse_chain(bad + good, **LIMITS)
    assert check.reason.startswith("the leaf is not a valid X.509 certificate")


def test_duplicates_are_refused_and_a_chain_up_to_the_root_is_no_loop(world: World) -> None:
    leaf = world.leaf()
    _, duplicate = parse_chain(pem(leaf, world.inter.cert, world.inter.cert), **LIMITS)
    assert duplicate.reason == "certificate 2 duplicates certificate 1"
    # the root presented after the intermediate is a proper chain, not a loop
    chain, check = parse_chain(pem(leaf, world.inter.cert, world.root.cert), **LIMITS)
    assert chain is not None, check


def test_many_bare_begin_lines_are_one_truncated_block() -> None:
    """9,000 bare BEGIN lines (252 KB, under the default limit) took 15 s with the former
    regex, which rescanned the rest of the input for each; the scanner now stops at the first
    block without an END (no timing is asserted: CI machines vary)."""
    chain, check = parse_chain(b"-----BEGIN CERTIFICATE-----\n" * 9000, **LIMITS)
    assert chain is None
    assert check.reason.startswith("PEM block 0 ('CERTIFICATE') has a BEGIN line without")

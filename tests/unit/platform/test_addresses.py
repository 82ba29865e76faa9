"""Addresses are parsed strictly (issue 10, defect 6): they end up in member lists and dial
targets, so anything but host:port with a hostname, IPv4 or bracketed IPv6 is refused."""

from __future__ import annotations

import pytest

from x0tta6bl4.platform.config import HostPort, parse_host_port, parse_peer_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:7001", "127.0.0.1", 7001),
        ("consensus-1.consensus.x0.svc:7001", "consensus-1.consensus.x0.svc", 7001),
        ("localhost:0", "localhost", 0),
        ("[::1]:7001", "::1", 7001),
        ("[fe80::1]:65535", "fe80::1", 65535),
    ],
)
def test_valid_addresses(text: str, host: str, port: int) -> None:
    assert parse_host_port(text) == HostPort(host, port)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[::1", "unclosed '['"),
        ("[::1]", "expected [ipv6]:port"),
        ("[nope]:1", "is not an IPv6 address"),
        ("::1:7001", "must be in brackets"),
        (" a b :1", "without spaces"),
        ("a=b:1", "is not a hostname"),
        ("1.2.3.4:5,6=x:7", "must be in brackets"),
        ("1.2.3.4:5,6", "port must be"),
        ("300.1.1.1:5", "is not an IPv4 address"),
        ("host:", "port must be"),
        (":80", "expected host:port"),
        ("host:99999", "port must be"),
        ("host:\u00b2", "port must be"),
        ("-bad-.example:1", "is not a hostname"),
    ],
)
def test_malformed_addresses_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_host_port(text)
    assert problem in str(err.value)


def test_a_peer_needs_a_real_port() -> None:
    with pytest.raises(ValueError, match="port must be 1-65535"):
        parse_peer_address("127.0.0.1:0")


def test_an_ipv6_address_prints_with_brackets() -> None:
    assert str(HostPort("::1", 7001)) == "[::1]:7001"
    assert str(HostPort("127.0.0.1", 7001)) == "127.0.0.1:7001"

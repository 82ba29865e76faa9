"""Command encoding, decoding of malformed bytes, and static validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from x0tta6bl4.consensus.core.kv_commands import (
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    Put,
    Range,
    Txn,
    decode_request,
    encode_request,
    validate_command,
)
from x0tta6bl4.consensus.core.kv_errors import DecodeError, InvalidArgument
from x0tta6bl4.consensus.core.kv_types import KvLimits


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        request = decode_request(data)
    except DecodeError as exc:
        assert exc.field
        return
    assert encode_request(request.command, request.request_id) == data


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(DecodeError, match="trailing"):
        decode_request(encode_request(Put(b"k", b"v")) + b"\x00")


def test_unknown_tag_is_named() -> None:
    with pytest.raises(DecodeError) as info:
        decode_request(b"\x01\x00\x63")
    assert info.value.field == "command"
    assert "unknown command tag 99" in str(info.value)


def test_unsupported_version() -> None:
    with pytest.raises(DecodeError) as info:
        decode_request(b"\x02\x00\x01")
    assert info.value.field == "version"


LIMITS = KvLimits(max_key_bytes=1536, max_value_bytes=1024)


@pytest.mark.parametrize(
    ("command", "field", "text"),
    [
        (Put(b"", b"v"), "put.key", "must not be empty"),
        (Put(b"k" * 1537, b"v"), "put.key", "1537 bytes"),
        (Put(b"k", b"v" * 1025), "put.value", "limit is 1024"),
        (DeleteRange(b""), "delete_range.key", "must not be empty"),
        (Range(b""), "range.key", "must not be empty"),
        (LeaseGrant(0, 0), "lease_grant.ttl", "between 1"),
        (
            Txn(success=(Put(b"k", b"1"), Put(b"k", b"2"))),
            "txn.success[1].put.key",
            "duplicate",
        ),
        (
            Txn(failure=(DeleteRange(b"k", prefix=True), Put(b"kx", b"2"))),
            "txn.failure[1].put.key",
            "also deleted",
        ),
        (
            Txn(compares=(Compare(b"", CompareTarget.VERSION, CompareOp.EQUAL),)),
            "txn.compare[0].key",
            "empty",
        ),
        (Txn(success=(Range(b"", revision=1),)), "txn.success[0].range.key", "empty"),
    ],
)
def test_validation_names_the_field(command: object, field: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_command(command, LIMITS)  # type: ignore[arg-type]
    assert info.value.field == field
    assert text in str(info.value)


def test_key_of_exactly_the_limit_is_accepted() -> None:
    validate_command(Put(b"k" * 1536, b"v" * 1024), LIMITS)
    validate_command(DeleteRange(b"", prefix=True), LIMITS)  # all keys

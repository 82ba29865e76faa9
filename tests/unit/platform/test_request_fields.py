"""Range checks at the API boundary name the field and the accepted range (issue 10)."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration

from x0tta6bl4.platform.errors import InvalidArgument
from x0tta6bl4.platform.request_fields import (
    INT64_MAX,
    duration_seconds,
    int_in,
    non_negative,
    positive,
)


def test_integers_in_range_pass_through() -> None:
    assert int_in("limit", 5, 0, 10) == 5
    assert non_negative("revision", 0) == 0
    assert positive("id", INT64_MAX) == INT64_MAX


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (lambda v: non_negative("revision", v), -1, "revision: must not be negative, got -1"),
        (lambda v: positive("id", v), 0, "id: must be positive, got 0"),
        (lambda v: positive("id", v, 100), 101, "id: must be between 1 and 100, got 101"),
        (lambda v: int_in("n", v, 1, 2), 3, "n: must be between 1 and 2, got 3"),
    ],
)
def test_integers_out_of_range_name_the_field(check: object, value: int, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check(value)  # type: ignore[operator]
    assert str(err.value) == message


def test_a_well_formed_duration_in_range_is_its_seconds() -> None:
    assert duration_seconds("delay", Duration(seconds=1, nanos=500_000_000), 0, 30) == 1.5
    assert duration_seconds("delay", Duration(), 0, 30) == 0


@pytest.mark.parametrize(
    ("duration", "field", "problem"),
    [
        (Duration(seconds=INT64_MAX), "delay.seconds", "must be within +-315576000000"),
        (Duration(seconds=-INT64_MAX), "delay.seconds", "must be within +-315576000000"),
        (Duration(nanos=-1), "delay", "must be between 0 and 30 s"),
        (Duration(nanos=2_000_000_000), "delay.nanos", "must be within +-999999999"),
        (Duration(seconds=1, nanos=-1), "delay", "must not have opposite signs"),
        (Duration(seconds=-1, nanos=1), "delay", "must not have opposite signs"),
        (Duration(seconds=31), "delay", "must be between 0 and 30 s, got 31 s"),
    ],
)
def test_malformed_or_out_of_range_durations_are_named(
    duration: Duration, field: str, problem: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        duration_seconds("delay", duration, 0, 30)
    assert err.value.field == field
    assert problem in str(err.value)

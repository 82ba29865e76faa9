"""Range checks of request fields at the API boundary, shared by every service.

Each check returns the value it accepted or raises :class:`InvalidArgument` naming the field
and the accepted range, so a number that a core, the state machine or a response could not
represent never gets past the servicer. protobuf already bounds each integer to its wire type;
these bounds are the ones of the service's meaning (a positive id, a TTL, a delay).
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from x0tta6bl4.platform.errors import InvalidArgument

INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
_NANOS = 1_000_000_000
# google.protobuf.Duration's documented range: about +-10,000 years.
_DURATION_MAX_SECONDS = 315_576_000_000


def int_in(field: str, value: int, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``."""
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}, got {value}")
    return value


def non_negative(field: str, value: int, high: int = INT64_MAX) -> int:
    """``value`` if ``0 <= value <= high``."""
    if value < 0:
        raise InvalidArgument(field, f"must not be negative, got {value}")
    return int_in(field, value, 0, high)


def positive(field: str, value: int, high: int = INT64_MAX) -> int:
    """``value`` if ``1 <= value <= high``."""
    if value <= 0:
        raise InvalidArgument(field, f"must be positive, got {value}")
    return int_in(field, value, 1, high)


def duration_seconds(field: str, value: Duration, low_s: float, high_s: float) -> float:
    """A well-formed ``google.protobuf.Duration`` in ``[low_s, high_s]`` seconds, as seconds.

    Well-formed: ``|seconds|`` within the type's range, ``|nanos| < 10^9``, and both of one
    sign (the type's own rules, which protobuf does not enforce when parsing).
    """
    seconds, nanos = value.seconds, value.nanos
    if not -_DURATION_MAX_SECONDS <= seconds <= _DURATION_MAX_SECONDS:
        raise InvalidArgument(
            f"{field}.seconds",
            f"must be within +-{_DURATION_MAX_SECONDS} (google.protobuf.Duration), got {seconds}",
        )
    if not -_NANOS < nanos < _NANOS:
        raise InvalidArgument(f"{field}.nanos", f"must be within +-999999999, got {nanos}")
    if (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0):
        raise InvalidArgument(
            field, f"seconds ({seconds}) and nanos ({nanos}) must not have opposite signs"
        )
    total = seconds + nanos / _NANOS
    if not low_s <= total <= high_s:
        raise InvalidArgument(field, f"must be between {low_s:g} and {high_s:g} s, got {total:g} s")
    return total

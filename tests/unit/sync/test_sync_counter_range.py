"""Counters past int64 (issue 10, defect 4): each replica's own count stays within 2^63-1 (an
increment that would pass it is refused, naming the amount), but replicas that each reach it
concurrently merge into a sum outside int64. Such a value is read exactly, in
``Value.big_counter``; the read never fails and never wraps."""

from __future__ import annotations

import pytest

from x0tta6bl4.sync.convert import value_to_proto
from x0tta6bl4.sync.core import GCounter, InvalidOperation, PNCounter

INT64_MAX = (1 << 63) - 1


def test_an_increment_past_the_replicas_own_limit_is_refused() -> None:
    counter, _ = PNCounter().increment("a", INT64_MAX)
    with pytest.raises(InvalidOperation) as err:
        counter.increment("a", 1)
    assert "amount" in str(err.value) and "2^63 - 1" in str(err.value)


def test_a_merged_sum_outside_int64_is_read_exactly_on_every_replica() -> None:
    a, delta_a = PNCounter().increment("a", INT64_MAX)
    b, delta_b = PNCounter().increment("b", INT64_MAX)
    merged_a, merged_b = a.merge(delta_b), b.merge(delta_a)
    assert merged_a == merged_b
    for replica in (merged_a, merged_b):
        value = value_to_proto(replica)
        assert value.WhichOneof("kind") == "big_counter"
        assert int(value.big_counter) == 2 * INT64_MAX


def test_back_inside_int64_the_value_is_a_counter_again() -> None:
    a, _ = PNCounter().increment("a", INT64_MAX)
    b, _ = PNCounter().increment("b", INT64_MAX)
    merged = a.merge(b)
    down, _ = merged.decrement("a", INT64_MAX)
    value = value_to_proto(down)
    assert value.WhichOneof("kind") == "counter" and value.counter == INT64_MAX


def test_a_negative_sum_below_int64_is_read_exactly() -> None:
    a, _ = PNCounter().decrement("a", INT64_MAX)
    b, _ = PNCounter().decrement("b", INT64_MAX)
    value = value_to_proto(a.merge(b))
    assert value.big_counter == str(-2 * INT64_MAX)


def test_a_grow_only_counter_past_int64_too() -> None:
    a, _ = GCounter().increment("a", INT64_MAX)
    b, _ = GCounter().increment("b", 2)
    assert value_to_proto(a.merge(b)).big_counter == str(INT64_MAX + 2)

"""The linearizability checker must reject known-bad histories and accept good ones;
otherwise the simulation's "histories are linearizable" assertion would prove nothing."""

from __future__ import annotations

import pytest
from linearizability import Op, check_kv

pytestmark = pytest.mark.simulation


def put(client: int, value: str, call: int, ret: int | None, key: str = "k") -> Op:
    return Op(client, "put", key, value, call, ret)


def get(client: int, value: str | None, call: int, ret: int, key: str = "k") -> Op:
    return Op(client, "get", key, value, call, ret)


GOOD = {
    "sequential": [put(1, "a", 1, 2), get(2, "a", 3, 4), put(1, "b", 5, 6), get(2, "b", 7, 8)],
    "read_of_initial_absent": [get(1, None, 1, 2), put(2, "a", 3, 4)],
    "concurrent_read_sees_either_old": [put(1, "a", 1, 2), put(1, "b", 3, 6), get(2, "a", 4, 5)],
    "concurrent_read_sees_either_new": [put(1, "a", 1, 2), put(1, "b", 3, 6), get(2, "b", 4, 5)],
    "concurrent_writes_any_order": [
        put(1, "a", 1, 4),
        put(2, "b", 2, 5),
        get(3, "a", 6, 7),
    ],
    "indeterminate_write_applied_late": [
        put(1, "a", 1, None),
        get(2, None, 2, 3),
        get(2, "a", 10, 11),
    ],
    "indeterminate_write_never_applied": [
        put(1, "a", 1, 2),
        put(2, "b", 3, None),
        get(3, "a", 4, 5),
    ],
    "keys_are_independent": [
        put(1, "a", 1, 2, key="x"),
        put(1, "b", 3, 4, key="y"),
        get(2, "b", 5, 6, key="y"),
        get(2, "a", 7, 8, key="x"),
    ],
}

BAD = {
    "stale_read_after_acked_write": [put(1, "a", 1, 2), put(1, "b", 3, 4), get(2, "a", 5, 6)],
    "read_of_value_never_written": [put(1, "a", 1, 2), get(2, "z", 3, 4)],
    "lost_acknowledged_write": [put(1, "a", 1, 2), get(2, None, 3, 4)],
    "reads_go_back_in_time": [
        put(1, "a", 1, 2),
        put(1, "b", 3, 10),
        get(2, "b", 4, 5),
        get(3, "a", 6, 7),
    ],
    "indeterminate_write_observed_then_unobserved": [
        put(1, "a", 1, 2),
        put(2, "b", 3, None),
        get(3, "b", 4, 5),
        get(3, "a", 6, 7),
    ],
    "bad_key_among_good_ones": [
        put(1, "a", 1, 2, key="x"),
        get(2, "a", 3, 4, key="x"),
        put(1, "b", 5, 6, key="y"),
        get(2, None, 7, 8, key="y"),
    ],
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_accepts_linearizable_history(name: str) -> None:
    result = check_kv(GOOD[name])
    assert result.ok, result.detail


@pytest.mark.parametrize("name", sorted(BAD))
def test_rejects_non_linearizable_history(name: str) -> None:
    result = check_kv(BAD[name])
    assert not result.ok
    assert result.key is not None and result.key in result.detail


def test_larger_interleaved_history_is_checked_quickly() -> None:
    # 8 clients x 4 overlapping writes then reads of the last one: many interleavings.
    ops: list[Op] = []
    t = 0
    for round_ in range(4):
        for c in range(8):
            ops.append(put(c, f"v{round_}.{c}", t + c, t + 20 + c))
        t += 40
    ops.append(get(99, "v3.5", t + 30, t + 31))
    assert check_kv(ops).ok
    ops.append(get(99, "v0.0", t + 32, t + 33))
    assert not check_kv(ops).ok


def test_rejects_malformed_operations() -> None:
    with pytest.raises(ValueError):
        Op(1, "put", "k", "a", 5, 3)
    with pytest.raises(ValueError):
        Op(1, "get", "k", None, 1, None)

"""Lease ids stay representable (issue 10, defect 1): an explicit id at the int64 limit must
not leave the state machine choosing ids the API cannot carry, now or after a snapshot."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.kv import KvStateMachine
from x0tta6bl4.consensus.core.kv_codec import Reader, Writer
from x0tta6bl4.consensus.core.kv_commands import (
    LeaseGrant,
    LeaseRevoke,
    encode_request,
    validate_command,
)
from x0tta6bl4.consensus.core.kv_errors import InvalidArgument
from x0tta6bl4.consensus.core.kv_leases import MAX_LEASE_ID, LeaseTable
from x0tta6bl4.consensus.core.kv_results import LeaseResult
from x0tta6bl4.consensus.core.kv_types import KvLimits

INT64_MAX = (1 << 63) - 1


def grant(kv: KvStateMachine, lease_id: int = 0) -> LeaseResult:
    result = kv.apply(encode_request(LeaseGrant(lease_id, ttl=5))).unwrap()
    assert isinstance(result, LeaseResult)
    return result


def test_the_largest_id_is_int64_max() -> None:
    assert MAX_LEASE_ID == INT64_MAX


def test_after_an_explicit_id_at_the_limit_chosen_ids_wrap_to_the_lowest_free_one() -> None:
    kv = KvStateMachine()
    assert grant(kv).lease_id == 1
    assert grant(kv, INT64_MAX).lease_id == INT64_MAX
    assert grant(kv).lease_id == 2
    assert grant(kv).lease_id == 3
    kv.apply(encode_request(LeaseRevoke(2))).unwrap()
    assert grant(kv).lease_id == 4  # the counter goes on from the last chosen id
    assert all(0 < lease.lease_id <= INT64_MAX for lease in kv.leases())


def test_a_snapshot_of_a_poisoned_counter_recovers_by_itself() -> None:
    # An older release saved next id 2^63 after an explicit grant of 2^63-1.
    w = Writer()
    w.uint(1 << 63).uint(1)
    w.uint(INT64_MAX).uint(5).boolean(False).uint(0).uint(0)
    table = LeaseTable.decode_from(Reader(w.getvalue()))
    assert table.choose_id() == 1
    table.grant(1, 5)
    assert table.choose_id() == 2


def test_a_command_with_an_id_past_int64_is_refused_before_it_is_proposed() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_command(LeaseGrant(1 << 63, ttl=5), KvLimits())
    assert err.value.field == "lease_grant.id"
    assert "2^63-1" in err.value.problem

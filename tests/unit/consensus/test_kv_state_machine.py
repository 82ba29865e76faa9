"""Behaviour of the key-value state machine, one scenario per guarantee."""

from __future__ import annotations

import pytest

from x0tta6bl4.consensus.core.kv import KvStateMachine
from x0tta6bl4.consensus.core.kv_commands import (
    Command,
    Compact,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteRange,
    LeaseCheckpoint,
    LeaseExpire,
    LeaseGrant,
    LeaseKeepAlive,
    LeaseRevoke,
    Put,
    Range,
    RequestId,
    Txn,
    encode_request,
)
from x0tta6bl4.consensus.core.kv_errors import (
    Compacted,
    DecodeError,
    FutureRevision,
    InvalidArgument,
    KvError,
    NotFound,
    StaleRequest,
)
from x0tta6bl4.consensus.core.kv_leases import LeaseDeadlines
from x0tta6bl4.consensus.core.kv_results import (
    DeleteRangeResult,
    LeaseResult,
    PutResult,
    RangeResult,
    TxnResult,
)
from x0tta6bl4.consensus.core.kv_types import EventType, KeyValue, KvLimits


def run(kv: KvStateMachine, cmd: Command, rid: RequestId | None = None) -> object:
    return kv.apply(encode_request(cmd, rid)).unwrap()


def test_put_get_and_revisions() -> None:
    kv = KvStateMachine()
    assert run(kv, Put(b"a", b"1")) == PutResult(1)
    assert run(kv, Put(b"a", b"2", prev_kv=True)) == PutResult(2, KeyValue(b"a", b"1", 1, 1, 1))
    assert kv.get(b"a") == KeyValue(b"a", b"2", 1, 2, 2)
    assert kv.get(b"a", revision=1) == KeyValue(b"a", b"1", 1, 1, 1)
    assert run(kv, DeleteRange(b"a")) == DeleteRangeResult(3, 1)
    assert kv.get(b"a") is None
    run(kv, Put(b"a", b"3"))
    # Re-created key: create_revision and version start over.
    assert kv.get(b"a") == KeyValue(b"a", b"3", 4, 4, 1)
    # Deleting nothing does not advance the revision.
    assert run(kv, DeleteRange(b"zz")) == DeleteRangeResult(4, 0)
    assert kv.revision == 4


def test_range_by_prefix_with_limit() -> None:
    kv = KvStateMachine()
    for k in (b"app/1", b"app/2", b"app/3", b"apq", b"b"):
        run(kv, Put(k, b"v"))
    result = kv.range(b"app/", prefix=True, limit=2)
    assert [x.key for x in result.kvs] == [b"app/1", b"app/2"]
    assert (result.count, result.more) == (3, True)
    assert kv.range(b"", prefix=True).count == 5


def test_txn_compare_and_swap() -> None:
    kv = KvStateMachine()
    run(kv, Put(b"leader", b"n1"))
    cas = Txn(
        compares=(Compare(b"leader", CompareTarget.VALUE, CompareOp.EQUAL, value=b"n1"),),
        success=(Put(b"leader", b"n2"), Range(b"leader")),
        failure=(Range(b"leader"),),
    )
    first = run(kv, cas)
    assert isinstance(first, TxnResult) and first.succeeded
    assert first.revision == 2
    assert isinstance(first.responses[1], RangeResult)
    assert first.responses[1].kvs[0].value == b"n2"  # reads see earlier writes of the txn
    second = run(kv, cas)
    assert isinstance(second, TxnResult) and not second.succeeded
    assert kv.revision == 2  # a read-only branch does not advance the revision


@pytest.mark.parametrize(
    ("target", "number", "op", "expected"),
    [
        (CompareTarget.VERSION, 2, CompareOp.EQUAL, True),
        (CompareTarget.VERSION, 2, CompareOp.LESS, False),
        (CompareTarget.CREATE_REVISION, 1, CompareOp.EQUAL, True),
        (CompareTarget.MOD_REVISION, 1, CompareOp.GREATER, True),
        (CompareTarget.MOD_REVISION, 2, CompareOp.NOT_EQUAL, False),
    ],
)
def test_txn_compares_on_versions(
    target: CompareTarget, number: int, op: CompareOp, expected: bool
) -> None:
    kv = KvStateMachine()
    run(kv, Put(b"k", b"1"))
    run(kv, Put(b"k", b"2"))
    result = run(kv, Txn(compares=(Compare(b"k", target, op, number=number),)))
    assert isinstance(result, TxnResult) and result.succeeded is expected


def test_missing_key_compares_as_zero_and_value_compare_fails() -> None:
    kv = KvStateMachine()
    create_if_absent = Txn(
        compares=(Compare(b"k", CompareTarget.CREATE_REVISION, CompareOp.EQUAL, number=0),),
        success=(Put(b"k", b"mine"),),
    )
    assert run(kv, create_if_absent) == TxnResult(1, True, (PutResult(1),))
    assert run(kv, create_if_absent) == TxnResult(1, False, ())
    value_cmp = Txn(compares=(Compare(b"nope", CompareTarget.VALUE, CompareOp.NOT_EQUAL),))
    result = run(kv, value_cmp)
    assert isinstance(result, TxnResult) and not result.succeeded


def test_txn_is_atomic_when_a_later_operation_is_invalid() -> None:
    kv = KvStateMachine()
    run(kv, Put(b"a", b"0"))
    snapshot = kv.snapshot()
    bad = Txn(success=(Put(b"a", b"1"), DeleteRange(b"c", prefix=True), Put(b"b", b"x", lease=9)))
    outcome = kv.apply(encode_request(bad))
    assert outcome.error is not None
    assert outcome.error.field == "txn.success[2].put.lease"
    assert outcome.error.code == "NOT_FOUND"
    assert outcome.events == ()
    assert kv.snapshot() == snapshot  # nothing at all changed
    with pytest.raises(NotFound, match="lease 9 not found"):
        outcome.unwrap()


def test_txn_writes_share_one_revision_and_emit_ordered_events() -> None:
    kv = KvStateMachine()
    run(kv, Put(b"x/1", b"a"))
    outcome = kv.apply(
        encode_request(Txn(success=(Put(b"y", b"1"), DeleteRange(b"x/", prefix=True))))
    )
    assert [(e.type, e.kv.key, e.revision) for e in outcome.events] == [
        (EventType.PUT, b"y", 2),
        (EventType.DELETE, b"x/1", 2),
    ]
    assert outcome.events[1].prev_kv == KeyValue(b"x/1", b"a", 1, 1, 1)


def test_limits_are_enforced_with_field_names() -> None:
    kv = KvStateMachine(KvLimits(max_value_bytes=8))
    cases: list[tuple[Command, str]] = [
        (Put(b"", b"v"), "put.key"),
        (Put(b"k" * 1537, b"v"), "put.key"),
        (Put(b"k", b"v" * 9), "put.value"),
        (Put(b"k", b"v", lease=42), "put.lease"),
        (LeaseRevoke(42), "lease_revoke.id"),
        (LeaseKeepAlive(42), "lease_keepalive.id"),
        (Range(b"k", revision=5), "range.revision"),
    ]
    for cmd, field in cases:
        outcome = kv.apply(encode_request(cmd))
        assert outcome.error is not None, cmd
        assert outcome.error.field == field
    assert kv.revision == 0
    with pytest.raises(InvalidArgument) as info:
        kv.range(b"")
    assert info.value.field == "range.key"


def test_malformed_payload_is_an_outcome_not_a_crash() -> None:
    kv = KvStateMachine()
    outcome = kv.apply(b"\x01\x00\x01\x05ab")
    assert outcome.error is not None and outcome.error.kind == "DecodeError"
    assert "exceeds the remaining input" in outcome.error.problem
    with pytest.raises(DecodeError):
        outcome.unwrap()


def test_retried_write_applies_once_and_returns_original_result() -> None:
    kv = KvStateMachine()
    put = encode_request(Put(b"counter", b"1"), RequestId(client_id=5, seq=1))
    first = kv.apply(put)
    run(kv, Put(b"counter", b"2"))
    again = kv.apply(put)
    assert again.replayed and again.result == first.result == PutResult(1)
    assert kv.get(b"counter") == KeyValue(b"counter", b"2", 1, 2, 2)
    # Refusals are remembered too: the retry of a refused request is refused the same way.
    bad = encode_request(Put(b"k", b"v", lease=3), RequestId(5, 2))
    assert kv.apply(bad).error == kv.apply(bad).error is not None
    run(kv, LeaseGrant(3, 10))
    assert kv.apply(bad).error is not None  # still the original answer
    assert kv.get(b"k") is None


def test_dedup_table_is_bounded_per_client() -> None:
    kv = KvStateMachine(KvLimits(dedup_per_client=2))
    for seq in (1, 2, 3):
        run(kv, Put(b"k", str(seq).encode()), RequestId(1, seq))
    assert kv.apply(encode_request(Put(b"k", b"3"), RequestId(1, 3))).replayed
    stale = kv.apply(encode_request(Put(b"k", b"1"), RequestId(1, 1)))
    assert stale.error is not None and stale.error.field == "request_id.seq"
    with pytest.raises(StaleRequest):
        stale.unwrap()
    assert kv.get(b"k") == KeyValue(b"k", b"3", 1, 3, 3)
    # Other clients are unaffected; zero ids are refused.
    assert not kv.apply(encode_request(Put(b"k", b"x"), RequestId(2, 1))).replayed
    zero = kv.apply(encode_request(Put(b"k", b"x"), RequestId(0, 1)))
    assert zero.error is not None and zero.error.field == "request_id.client_id"


def test_dedup_forgets_least_recently_active_client() -> None:
    kv = KvStateMachine(KvLimits(dedup_clients=2))
    run(kv, Put(b"k", b"1"), RequestId(1, 1))
    run(kv, Put(b"k", b"2"), RequestId(2, 1))
    run(kv, Put(b"k", b"3"), RequestId(1, 2))  # client 1 active again
    run(kv, Put(b"k", b"4"), RequestId(3, 1))  # evicts client 2
    assert kv.apply(encode_request(Put(b"k", b"1"), RequestId(1, 1))).replayed
    assert not kv.apply(encode_request(Put(b"k", b"2"), RequestId(2, 1))).replayed


def test_dedup_activity_order_survives_a_snapshot() -> None:
    kv = KvStateMachine(KvLimits(dedup_clients=2))
    run(kv, Put(b"k", b"1"), RequestId(1, 1))
    run(kv, Put(b"k", b"2"), RequestId(2, 1))
    run(kv, Put(b"k", b"3"), RequestId(1, 2))  # client 2 is now the least recently active
    copy = KvStateMachine.from_snapshot(kv.snapshot(), KvLimits(dedup_clients=2))
    for machine in (kv, copy):
        run(machine, Put(b"k", b"4"), RequestId(3, 1))  # evicts client 2, not client 1
        assert machine.apply(encode_request(Put(b"k", b"3"), RequestId(1, 2))).replayed
        assert not machine.apply(encode_request(Put(b"k", b"2"), RequestId(2, 1))).replayed
    assert copy.snapshot() == kv.snapshot()


def test_lease_expiry_removes_bound_keys() -> None:
    kv = KvStateMachine()
    grant = run(kv, LeaseGrant(0, ttl=5))
    assert grant == LeaseResult(0, 1, 5)
    run(kv, Put(b"lock/a", b"n1", lease=1))
    run(kv, Put(b"lock/b", b"n1", lease=1))
    run(kv, Put(b"lock/b", b"n1"))  # re-put without lease detaches it
    run(kv, Put(b"other", b"x"))
    info = kv.lease(1)
    assert info is not None and info.keys == (b"lock/a",)

    deadlines = LeaseDeadlines()
    deadlines.start(kv.leases(), now_ms=1_000)
    assert deadlines.expired(now_ms=5_999) == []
    assert deadlines.expired(now_ms=6_000) == [1]

    outcome = kv.apply(encode_request(LeaseExpire(1)))
    assert [(e.type, e.kv.key) for e in outcome.events] == [(EventType.DELETE, b"lock/a")]
    assert kv.get(b"lock/a") is None and kv.get(b"lock/b") is not None
    assert kv.lease(1) is None
    # Expiring twice (two leaders proposed it) is harmless; revoking an unknown lease is not.
    assert kv.apply(encode_request(LeaseExpire(1))).error is None
    assert kv.apply(encode_request(LeaseRevoke(1))).error is not None


def test_lease_checkpoint_survives_a_leader_change() -> None:
    kv = KvStateMachine()
    run(kv, LeaseGrant(7, ttl=60))
    run(kv, LeaseCheckpoint(7, remaining_ms=1_500))
    deadlines = LeaseDeadlines()  # a new leader
    deadlines.start(kv.leases(), now_ms=0)
    assert deadlines.remaining_ms(7, now_ms=0) == 1_500
    run(kv, LeaseKeepAlive(7))
    deadlines.start(kv.leases(), now_ms=0)
    assert deadlines.remaining_ms(7, now_ms=0) == 60_000
    deadlines.forget(7)
    assert deadlines.next_deadline_ms() is None


def test_grant_with_taken_id_is_refused_and_ids_are_deterministic() -> None:
    kv = KvStateMachine()
    run(kv, LeaseGrant(2, 5))
    assert run(kv, LeaseGrant(0, 5)) == LeaseResult(0, 3, 5)
    outcome = kv.apply(encode_request(LeaseGrant(2, 5)))
    assert outcome.error is not None and outcome.error.field == "lease_grant.id"


def test_compaction_keeps_reads_at_and_after_the_compact_revision() -> None:
    kv = KvStateMachine()
    for v in (b"1", b"2", b"3"):
        run(kv, Put(b"k", v))
    run(kv, Put(b"gone", b"x"))
    run(kv, DeleteRange(b"gone"))  # revision 5
    run(kv, Compact(3))
    assert kv.get(b"k", revision=3) == KeyValue(b"k", b"3", 1, 3, 3)
    assert kv.get(b"gone", revision=4) == KeyValue(b"gone", b"x", 4, 4, 1)
    with pytest.raises(Compacted) as info:
        kv.get(b"k", revision=2)
    assert info.value.field == "range.revision"
    with pytest.raises(FutureRevision):
        kv.get(b"k", revision=6)
    for bad, kind in ((Compact(3), "Compacted"), (Compact(9), "FutureRevision")):
        outcome = kv.apply(encode_request(bad))
        assert outcome.error is not None and outcome.error.kind == kind
    run(kv, Compact(5))
    assert kv.range(b"", prefix=True, revision=5).count == 1


def test_watch_events_since_revision() -> None:
    kv = KvStateMachine()
    run(kv, Put(b"cfg/a", b"1"))
    run(kv, Put(b"cfg/b", b"1"))
    run(kv, Put(b"cfg/a", b"2"))
    run(kv, DeleteRange(b"cfg/b"))
    run(kv, Put(b"zzz", b"1"))
    events = kv.events_since(2, b"cfg/", prefix=True)
    assert [(e.type, e.kv.key, e.revision) for e in events] == [
        (EventType.PUT, b"cfg/b", 2),
        (EventType.PUT, b"cfg/a", 3),
        (EventType.DELETE, b"cfg/b", 4),
    ]
    assert events[1].prev_kv == KeyValue(b"cfg/a", b"1", 1, 1, 1)
    assert events[2].prev_kv == KeyValue(b"cfg/b", b"1", 2, 2, 1)
    assert kv.events_since(6) == []
    with pytest.raises(InvalidArgument):
        kv.events_since(0)
    run(kv, Compact(3))
    with pytest.raises(Compacted):
        kv.events_since(3)
    assert [e.revision for e in kv.events_since(4)] == [4, 5]


def test_snapshot_restore_round_trip_and_bad_snapshot_keeps_state() -> None:
    kv = KvStateMachine()
    run(kv, LeaseGrant(1, 30))
    run(kv, Put(b"a", b"1", lease=1), RequestId(9, 1))
    run(kv, Put(b"a", b"2"))
    run(kv, Compact(2))
    data = kv.snapshot()
    copy = KvStateMachine.from_snapshot(data)
    assert copy.snapshot() == data
    assert copy.get(b"a") == kv.get(b"a")
    assert copy.apply(encode_request(Put(b"a", b"1", lease=1), RequestId(9, 1))).replayed
    for broken in (b"nope", data[:-1], data + b"\x00", data[:10]):
        with pytest.raises(KvError):
            copy.restore(broken)
        assert copy.snapshot() == data

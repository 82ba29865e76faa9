"""Property tests of the key-value state machine: encoding, determinism, a model, snapshots."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

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
    Request,
    RequestId,
    Txn,
    TxnOp,
    decode_request,
    encode_request,
    validate_command,
)
from x0tta6bl4.consensus.core.kv_errors import (
    Compacted,
    DecodeError,
    FutureRevision,
    InvalidArgument,
    KvError,
    NotFound,
)
from x0tta6bl4.consensus.core.kv_results import RangeResult
from x0tta6bl4.consensus.core.kv_types import Event, EventType, KeyValue, KvLimits

keys = st.sampled_from([b"a", b"ab", b"abc", b"b", b"ba", b"c", b"\x00", b"\xff"])
values = st.binary(max_size=8)
lease_ids = st.sampled_from([0, 1, 2, 3])
put_leases = st.sampled_from([0, 0, 0, 0, 1, 2])
revisions = st.integers(min_value=0, max_value=12)

puts = st.builds(Put, keys, values, put_leases, st.booleans())
deletes = st.builds(DeleteRange, keys | st.just(b""), st.booleans(), st.booleans())
ranges = st.builds(Range, keys, st.booleans(), revisions, st.integers(0, 3))
compares = st.one_of(
    st.builds(
        Compare,
        keys,
        st.just(CompareTarget.VALUE),
        st.sampled_from(CompareOp),
        value=values,
    ),
    st.builds(
        Compare,
        keys,
        st.sampled_from(
            [CompareTarget.VERSION, CompareTarget.CREATE_REVISION, CompareTarget.MOD_REVISION]
        ),
        st.sampled_from(CompareOp),
        number=st.integers(0, 10),
    ),
)
txn_ops: st.SearchStrategy[TxnOp] = st.one_of(puts, deletes, ranges)
txns = st.builds(
    Txn,
    st.lists(compares, max_size=3).map(tuple),
    st.lists(txn_ops, max_size=4).map(tuple),
    st.lists(txn_ops, max_size=4).map(tuple),
)
lease_commands = st.one_of(
    st.builds(LeaseGrant, lease_ids, st.integers(1, 100)),
    st.builds(LeaseRevoke, lease_ids),
    st.builds(LeaseKeepAlive, lease_ids),
    st.builds(LeaseCheckpoint, lease_ids, st.integers(0, 10_000)),
    st.builds(LeaseExpire, lease_ids),
)
commands: st.SearchStrategy[Command] = st.one_of(
    puts,
    puts,
    puts,
    puts,
    deletes,
    ranges,
    txns,
    txns,
    lease_commands,
    st.builds(Compact, revisions),
)
request_ids = st.none() | st.builds(RequestId, st.integers(1, 3), st.integers(1, 12))


@given(commands, request_ids)
def test_encoding_round_trips(command: object, request_id: RequestId | None) -> None:
    data = encode_request(command, request_id)  # type: ignore[arg-type]
    assert decode_request(data) == Request(command, request_id)  # type: ignore[arg-type]


@given(commands, request_ids, st.data())
def test_every_truncation_is_a_decode_error(
    command: object, request_id: RequestId | None, data: st.DataObject
) -> None:
    encoded = encode_request(command, request_id)  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode_request(encoded[:cut])


# ---------------------------------------------------------------------------------------------
# A deliberately simple model: the whole key space copied at every revision.


class Model:
    """Reference semantics: ``states[r]`` is the key space at revision ``r``."""

    def __init__(self) -> None:
        self.states: list[dict[bytes, KeyValue]] = [{}]
        self.leases: dict[int, int] = {}  # id -> ttl
        self.next_lease = 1
        self.compacted = 0

    @property
    def revision(self) -> int:
        return len(self.states) - 1

    @property
    def live(self) -> dict[bytes, KeyValue]:
        return self.states[-1]

    def range(self, op: Range, state: dict[bytes, KeyValue] | None = None) -> RangeResult:
        if state is None:
            if op.revision > self.revision:
                raise FutureRevision("range.revision", "")
            if op.revision and op.revision < self.compacted:
                raise Compacted("range.revision", "")
            state = self.states[op.revision] if op.revision else self.live
        found = sorted(
            (kv for k, kv in state.items() if k == op.key or (op.prefix and k.startswith(op.key))),
            key=lambda kv: kv.key,
        )
        shown = found[: op.limit] if op.limit else found
        return RangeResult(self.revision, tuple(shown), len(found), len(shown) < len(found))

    def _write(self, state: dict[bytes, KeyValue], op: Put | DeleteRange) -> None:
        rev = self.revision + 1
        if isinstance(op, Put):
            prev = state.get(op.key)
            state[op.key] = KeyValue(
                op.key,
                op.value,
                prev.create_revision if prev else rev,
                rev,
                prev.version + 1 if prev else 1,
                op.lease,
            )
        else:
            for k in [k for k in state if k == op.key or (op.prefix and k.startswith(op.key))]:
                del state[k]

    def _commit(self, state: dict[bytes, KeyValue]) -> None:
        if state != self.live:
            self.states.append(state)

    def apply(self, cmd: Command) -> str | None:
        """Apply ``cmd``; return the error class name if it is refused."""
        try:
            validate_command(cmd, LIMITS)
            self._apply(cmd)
        except KvError as exc:
            return type(exc).__name__
        return None

    def _check_ops(self, ops: tuple[TxnOp, ...]) -> None:
        for op in ops:
            if isinstance(op, Put) and op.lease and op.lease not in self.leases:
                raise NotFound("lease", "")
            if isinstance(op, Range):
                self.range(op)

    def _apply(self, cmd: Command) -> None:
        match cmd:
            case Put() | DeleteRange():
                self._check_ops((cmd,))
                state = dict(self.live)
                self._write(state, cmd)
                self._commit(state)
            case Range():
                self.range(cmd)
            case Txn():
                ok = all(self._compare(c) for c in cmd.compares)
                branch = cmd.success if ok else cmd.failure
                self._check_ops(branch)
                state = dict(self.live)
                for op in branch:
                    if not isinstance(op, Range):
                        self._write(state, op)
                self._commit(state)
            case LeaseGrant(lease_id=lease_id, ttl=ttl):
                if lease_id in self.leases:
                    raise InvalidArgument("lease_grant.id", "")
                if not lease_id:
                    lease_id = self.next_lease
                    while lease_id in self.leases:
                        lease_id += 1
                self.leases[lease_id] = ttl
                self.next_lease = max(self.next_lease, lease_id + 1)
            case LeaseRevoke(lease_id=lease_id) | LeaseExpire(lease_id=lease_id):
                if lease_id not in self.leases:
                    if isinstance(cmd, LeaseRevoke):
                        raise NotFound("lease", "")
                    return
                del self.leases[lease_id]
                self._commit({k: kv for k, kv in self.live.items() if kv.lease != lease_id})
            case LeaseKeepAlive(lease_id=lease_id):
                if lease_id not in self.leases:
                    raise NotFound("lease", "")
            case LeaseCheckpoint():
                pass
            case Compact(revision=revision):
                if revision > self.revision:
                    raise FutureRevision("compact.revision", "")
                if revision <= self.compacted:
                    raise Compacted("compact.revision", "")
                self.compacted = revision

    def _compare(self, c: Compare) -> bool:
        kv = self.live.get(c.key)
        if c.target is CompareTarget.VALUE:
            if kv is None:
                return False
            a: Any = kv.value
            b: Any = c.value
        else:
            a = (
                0
                if kv is None
                else {
                    CompareTarget.VERSION: kv.version,
                    CompareTarget.CREATE_REVISION: kv.create_revision,
                    CompareTarget.MOD_REVISION: kv.mod_revision,
                }[c.target]
            )
            b = c.number
        return bool(
            {
                CompareOp.EQUAL: a == b,
                CompareOp.NOT_EQUAL: a != b,
                CompareOp.LESS: a < b,
                CompareOp.GREATER: a > b,
            }[c.op]
        )


LIMITS = KvLimits(max_key_bytes=16, max_value_bytes=16, dedup_per_client=4)


def _replay(events: list[Event], state: dict[bytes, KeyValue]) -> dict[bytes, KeyValue]:
    state = dict(state)
    for e in events:
        if e.type is EventType.PUT:
            assert state.get(e.kv.key) == e.prev_kv
            state[e.kv.key] = e.kv
        else:
            assert state.pop(e.kv.key) == e.prev_kv
    return state


def _outcome_of(call: Callable[[], RangeResult]) -> RangeResult | str:
    try:
        return call()
    except KvError as exc:
        return type(exc).__name__


class KvAgainstModel(RuleBasedStateMachine):
    """Stateful test: random commands on the state machine and on :class:`Model` agree."""

    def __init__(self) -> None:
        super().__init__()
        self.kv = KvStateMachine(LIMITS)
        self.model = Model()

    def _step(self, cmd: Command) -> None:
        before = self.kv.revision
        expected_error = self.model.apply(cmd)
        outcome = self.kv.apply(encode_request(cmd))
        assert (outcome.error.kind if outcome.error else None) == expected_error, cmd
        if outcome.error is not None:
            assert outcome.events == ()
            assert self.kv.revision == before
        # The events of this command take the previous state to the new one.
        assert _replay(list(outcome.events), self.model.states[before]) == self.model.live
        assert {e.revision for e in outcome.events} <= {self.kv.revision}

    @rule(cmd=commands)
    def any_command(self, cmd: Command) -> None:
        self._step(cmd)

    @rule(key=keys, value=values, lease=put_leases)
    def put(self, key: bytes, value: bytes, lease: int) -> None:
        self._step(Put(key, value, lease))

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        self._step(Compact(data.draw(st.integers(0, self.kv.revision + 1))))

    @rule(probe=ranges, data=st.data())
    def read(self, probe: Range, data: st.DataObject) -> None:
        revision = data.draw(st.integers(0, self.kv.revision + 1))
        probe = Range(probe.key, probe.prefix, revision, probe.limit)
        want = _outcome_of(lambda: self.model.range(probe))
        got = _outcome_of(
            lambda: self.kv.range(
                probe.key, prefix=probe.prefix, revision=probe.revision, limit=probe.limit
            )
        )
        assert got == want

    @invariant()
    def same_state(self) -> None:
        assert self.kv.revision == self.model.revision
        assert self.kv.compact_revision == self.model.compacted
        assert dict((kv.key, kv) for kv in self.kv.range(b"", prefix=True).kvs) == self.model.live
        assert sorted(i.lease_id for i in self.kv.leases()) == sorted(self.model.leases)
        for info in self.kv.leases():
            bound = {k for k, kv in self.model.live.items() if kv.lease == info.lease_id}
            assert set(info.keys) == bound

    @invariant()
    def watch_history_replays(self) -> None:
        model = self.model
        for start in range(model.compacted + 1, model.revision + 2):
            events = self.kv.events_since(start)
            assert all(e.revision >= start for e in events)
            assert _replay(events, model.states[start - 1]) == model.live
        if model.compacted:
            with pytest.raises(Compacted):
                self.kv.events_since(model.compacted)


KvAgainstModel.TestCase.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
test_state_machine_matches_model = KvAgainstModel.TestCase


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(commands, request_ids), min_size=5, max_size=60), st.data())
def test_replicas_produce_identical_snapshots(
    entries: list[tuple[Command, RequestId | None]], data: st.DataObject
) -> None:
    payloads = [encode_request(c, r) for c, r in entries]
    a, b = KvStateMachine(LIMITS), KvStateMachine(LIMITS)
    cut = data.draw(st.integers(0, len(payloads)))
    for p in payloads[:cut]:
        assert a.apply(p) == b.apply(p)
    # A third replica joins through a snapshot half-way and must end identical.
    c = KvStateMachine.from_snapshot(a.snapshot(), LIMITS)
    assert c.snapshot() == a.snapshot()
    for p in payloads[cut:]:
        oa, ob, oc = a.apply(p), b.apply(p), c.apply(p)
        assert oa == ob == oc
    assert a.snapshot() == b.snapshot() == c.snapshot()
    assert c.range(b"", prefix=True) == a.range(b"", prefix=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(commands, max_size=30))
def test_retried_requests_apply_once(cmds: list[Command]) -> None:
    kv = KvStateMachine(LIMITS)
    for seq, cmd in enumerate(cmds, start=1):
        payload = encode_request(cmd, RequestId(7, seq))
        first = kv.apply(payload)
        snap = kv.snapshot()
        again = kv.apply(payload)
        assert again.replayed
        assert (again.result, again.error) == (first.result, first.error)
        assert again.events == ()
        assert kv.snapshot() == snap  # a replay changes nothing at all

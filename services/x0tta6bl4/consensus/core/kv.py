"""The MVCC key-value state machine that the Raft log drives. Pure: no I/O, no clock.

Guarantees:

- **Deterministic.** The same sequence of :meth:`KvStateMachine.apply` payloads yields the same
  outcomes, events and byte-identical :meth:`KvStateMachine.snapshot` on every replica.
- **All or nothing.** Every check (static limits, lease existence, revisions, dedup) runs
  before the first change; a refused command changes nothing and reports an error naming the
  field. Refusals are outcomes, not exceptions, because replicas must agree on them too.
- **Once per request id.** A command carrying a :class:`RequestId` that was already applied
  returns the recorded outcome (``replayed=True``) and changes nothing.
- **MVCC.** Each command that changes keys advances the revision by exactly one; every change
  yields an :class:`Event` in apply order, for watchers.

Typical use by the apply loop::

    outcome = kv.apply(entry.data)
    hub.publish(outcome.events)
    reply(outcome.unwrap())        # raises the KvError if the command was refused
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .kv_codec import Reader, Writer
from .kv_commands import (
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
    Txn,
    TxnOp,
    decode_request,
    op_field,
    validate_command,
)
from .kv_dedup import DedupTable
from .kv_errors import (
    Compacted,
    DecodeError,
    ErrorResult,
    FutureRevision,
    InvalidArgument,
    KvError,
    NotFound,
)
from .kv_leases import LeaseInfo, LeaseTable
from .kv_mvcc import MvccIndex
from .kv_results import (
    CommandResult,
    DeleteRangeResult,
    LeaseResult,
    PutResult,
    RangeResult,
    RevisionResult,
    TxnResult,
)
from .kv_types import Event, EventType, KeyValue, KvLimits

SNAPSHOT_MAGIC = b"X0KV"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What applying one log entry did.

    Exactly one of ``result`` and ``error`` is set. ``events`` are the changes, in order (empty
    for refusals, reads and replays). ``revision`` is the store revision afterwards.
    """

    result: CommandResult | None
    error: ErrorResult | None
    events: tuple[Event, ...]
    revision: int
    replayed: bool = False

    def unwrap(self) -> CommandResult:
        """The result, or raise the :class:`KvError` the command was refused with."""
        if self.error is not None:
            raise self.error.to_exception()
        assert self.result is not None
        return self.result


class KvStateMachine:
    """Keys with MVCC history, leases and a dedup table; driven by encoded commands."""

    def __init__(self, limits: KvLimits | None = None) -> None:
        self.limits = limits or KvLimits()
        self._mvcc = MvccIndex()
        self._leases = LeaseTable()
        self._dedup = DedupTable(self.limits.dedup_per_client, self.limits.dedup_clients)
        self._events: list[Event] = []

    # -- reads (no state change) ------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The current store revision."""
        return self._mvcc.revision

    @property
    def compact_revision(self) -> int:
        """The oldest revision that can still be read."""
        return self._mvcc.compact_revision

    def range(
        self,
        key: bytes,
        *,
        prefix: bool = False,
        revision: int = 0,
        limit: int = 0,
        start: bytes = b"",
    ) -> RangeResult:
        """Read a key or prefix at ``revision`` (0 = current), only keys at or after
        ``start``; raises :class:`KvError`."""
        op = Range(key, prefix, revision, limit)
        validate_command(op, self.limits)
        return self._range(op, "range", start)

    def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """The version of ``key`` at ``revision`` (0 = current), or None."""
        kvs = self.range(key, revision=revision).kvs
        return kvs[0] if kvs else None

    def events_since(
        self, start_revision: int, key: bytes = b"", *, prefix: bool = True
    ) -> list[Event]:
        """Retained events at revisions ≥ ``start_revision`` for a key or prefix (default: all).

        Raises :class:`Compacted` when ``start_revision`` is at or below the compaction point.
        """
        return self._mvcc.events_since(start_revision, key, prefix)

    def lease(self, lease_id: int) -> LeaseInfo | None:
        """One lease, or None."""
        return self._leases.info(lease_id)

    def leases(self) -> list[LeaseInfo]:
        """All leases by id (the leader feeds these to :class:`LeaseDeadlines`)."""
        return self._leases.all()

    # -- apply ------------------------------------------------------------------------------

    def apply(self, payload: bytes) -> ApplyOutcome:
        """Apply one log entry payload. A bad command is an outcome, never an exception."""
        try:
            request = decode_request(payload)
        except DecodeError as exc:
            return ApplyOutcome(None, exc.to_result(), (), self.revision)
        return self.apply_request(request)

    def apply_request(self, request: Request) -> ApplyOutcome:
        """Apply an already decoded request (same guarantees as :meth:`apply`)."""
        rid = request.request_id
        if rid is not None:
            try:
                DedupTable.validate(rid)
                previous = self._dedup.lookup(rid)
            except KvError as exc:
                return ApplyOutcome(None, exc.to_result(), (), self.revision)
            if previous is not None:
                if isinstance(previous, ErrorResult):
                    return ApplyOutcome(None, previous, (), self.revision, replayed=True)
                return ApplyOutcome(previous, None, (), self.revision, replayed=True)
        self._events = []
        try:
            validate_command(request.command, self.limits)
            result: CommandResult = self._execute(request.command)
        except KvError as exc:
            assert not self._events, "a refused command must not have changed anything"
            error = exc.to_result()
            if rid is not None:
                self._dedup.record(rid, error)
            return ApplyOutcome(None, error, (), self.revision)
        if rid is not None:
            self._dedup.record(rid, result)
        events, self._events = tuple(self._events), []
        return ApplyOutcome(result, None, events, self.revision)

    def _execute(self, cmd: Command) -> CommandResult:
        match cmd:
            case Put():
                self._check_op(cmd, "put")
                with self._mvcc.write_batch():
                    return self._put(cmd)
            case DeleteRange():
                with self._mvcc.write_batch():
                    return self._delete(cmd)
            case Range():
                return self._range(cmd, "range")
            case Txn():
                return self._txn(cmd)
            case LeaseGrant(lease_id=lease_id, ttl=ttl):
                if lease_id and lease_id in self._leases:
                    raise InvalidArgument("lease_grant.id", f"lease {lease_id} already exists")
                lease_id = lease_id or self._leases.choose_id()
                self._leases.grant(lease_id, ttl)
                return LeaseResult(self.revision, lease_id, ttl)
            case LeaseRevoke(lease_id=lease_id):
                self._require_lease(lease_id, "lease_revoke.id")
                self._drop_lease(lease_id)
                return RevisionResult(self.revision)
            case LeaseExpire(lease_id=lease_id):
                if lease_id in self._leases:
                    self._drop_lease(lease_id)
                return RevisionResult(self.revision)
            case LeaseKeepAlive(lease_id=lease_id):
                self._require_lease(lease_id, "lease_keepalive.id")
                self._leases.renew(lease_id)
                return LeaseResult(self.revision, lease_id, self._leases.ttl(lease_id))
            case LeaseCheckpoint(lease_id=lease_id, remaining_ms=remaining_ms):
                self._leases.checkpoint(lease_id, remaining_ms)
                return RevisionResult(self.revision)
            case Compact(revision=revision):
                self._check_compact(revision)
                self._mvcc.compact(revision)
                return RevisionResult(self.revision)

    # -- checks (run before any change) -----------------------------------------------------

    def _require_lease(self, lease_id: int, field: str) -> None:
        if lease_id not in self._leases:
            raise NotFound(field, f"lease {lease_id} not found")

    def _check_op(self, op: TxnOp, field: str) -> None:
        if isinstance(op, Put) and op.lease:
            self._require_lease(op.lease, f"{field}.lease")
        elif isinstance(op, Range) and op.revision:
            self._mvcc.check_revision(op.revision, f"{field}.revision")

    def _check_compact(self, revision: int) -> None:
        if revision > self.revision:
            raise FutureRevision(
                "compact.revision",
                f"revision {revision} is newer than the current revision {self.revision}",
            )
        if revision <= self.compact_revision:
            raise Compacted(
                "compact.revision", f"already compacted at revision {self.compact_revision}"
            )

    # -- changes ----------------------------------------------------------------------------

    def _put(self, op: Put) -> PutResult:
        kv, prev = self._mvcc.put(op.key, op.value, op.lease)
        if prev is not None and prev.lease != op.lease:
            self._leases.detach(prev.lease, op.key)
        self._leases.attach(op.lease, op.key)
        self._events.append(Event(EventType.PUT, kv, prev))
        return PutResult(self._pending_revision(), prev if op.prev_kv else None)

    def _delete(self, op: DeleteRange) -> DeleteRangeResult:
        deleted: list[KeyValue] = []
        for key in self._mvcc.live_keys(op.key, op.prefix):
            prev = self._mvcc.delete(key)
            assert prev is not None
            self._leases.detach(prev.lease, key)
            deleted.append(prev)
            self._emit_delete(key, prev)
        rev = self._pending_revision() if deleted else self.revision
        return DeleteRangeResult(rev, len(deleted), tuple(deleted) if op.prev_kv else ())

    def _emit_delete(self, key: bytes, prev: KeyValue) -> None:
        tomb = KeyValue.tombstone(key, self._pending_revision())
        self._events.append(Event(EventType.DELETE, tomb, prev))

    def _pending_revision(self) -> int:
        return self._mvcc.revision + 1

    def _range(self, op: Range, field: str, start: bytes = b"") -> RangeResult:
        kvs, count, more = self._mvcc.range(
            op.key, op.prefix, op.revision, op.limit, f"{field}.revision", start
        )
        return RangeResult(self.revision, kvs, count, more)

    def _drop_lease(self, lease_id: int) -> None:
        keys = self._leases.remove(lease_id)
        with self._mvcc.write_batch():
            for key in keys:
                prev = self._mvcc.delete(key)
                if prev is not None:
                    self._emit_delete(key, prev)

    def _compare(self, c: Compare) -> bool:
        kv = self._mvcc.get(c.key)
        if c.target is CompareTarget.VALUE:
            if kv is None:
                return False
            actual: bytes | int = kv.value
            expected: bytes | int = c.value
        else:
            expected = c.number
            if kv is None:
                actual = 0
            elif c.target is CompareTarget.VERSION:
                actual = kv.version
            elif c.target is CompareTarget.CREATE_REVISION:
                actual = kv.create_revision
            else:
                actual = kv.mod_revision
        match c.op:
            case CompareOp.EQUAL:
                return actual == expected
            case CompareOp.NOT_EQUAL:
                return actual != expected
            case CompareOp.LESS:
                return actual < expected  # type: ignore[operator]
            case CompareOp.GREATER:
                return actual > expected  # type: ignore[operator]

    def _txn(self, txn: Txn) -> TxnResult:
        succeeded = all(self._compare(c) for c in txn.compares)
        name = "txn.success" if succeeded else "txn.failure"
        branch = txn.success if succeeded else txn.failure
        for i, op in enumerate(branch):
            self._check_op(op, op_field(op, f"{name}[{i}]."))
        responses: list[PutResult | DeleteRangeResult | RangeResult] = []
        with self._mvcc.write_batch():
            for op in branch:
                if isinstance(op, Put):
                    responses.append(self._put(op))
                elif isinstance(op, DeleteRange):
                    responses.append(self._delete(op))
                else:
                    responses.append(self._range(op, name))
        revision = self.revision
        # Like etcd's response headers: every response carries the revision after the txn.
        fixed = tuple(dataclasses.replace(r, revision=revision) for r in responses)
        return TxnResult(revision, succeeded, fixed)

    # -- snapshot ---------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The full state (keys with history, leases, dedup table, revisions) as bytes.

        Deterministic: equal states give equal bytes. Limits are configuration, not state.
        """
        w = Writer()
        w.uint(SNAPSHOT_VERSION)
        self._mvcc.encode_into(w)
        self._leases.encode_into(w)
        self._dedup.encode_into(w)
        return SNAPSHOT_MAGIC + w.getvalue()

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a :meth:`snapshot`; raises :class:`DecodeError`.

        On error the current state is left untouched.
        """
        if not data.startswith(SNAPSHOT_MAGIC):
            raise DecodeError("snapshot", "not a key-value snapshot (bad magic)")
        r = Reader(data[len(SNAPSHOT_MAGIC) :])
        version = r.uint("snapshot.version")
        if version != SNAPSHOT_VERSION:
            raise DecodeError("snapshot.version", f"unsupported snapshot version {version}")
        mvcc = MvccIndex.decode_from(r)
        leases = LeaseTable.decode_from(r)
        dedup = DedupTable(self.limits.dedup_per_client, self.limits.dedup_clients)
        dedup.decode_into(r)
        r.expect_end()
        self._mvcc, self._leases, self._dedup = mvcc, leases, dedup

    @classmethod
    def from_snapshot(cls, data: bytes, limits: KvLimits | None = None) -> KvStateMachine:
        """A new state machine holding the state of ``data``."""
        kv = cls(limits)
        kv.restore(data)
        return kv

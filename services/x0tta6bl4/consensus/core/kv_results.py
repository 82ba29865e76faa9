"""Results of applying commands, and their deterministic encoding.

Results are encoded because the dedup table keeps them (a retried request gets the original
result back) and the dedup table is part of the snapshot. ``revision`` in every result is the
store's revision after the command (like etcd's response header revision).
"""

from __future__ import annotations

from dataclasses import dataclass

from .kv_codec import Reader, Writer
from .kv_errors import DecodeError, ErrorResult
from .kv_types import KeyValue


@dataclass(frozen=True, slots=True)
class PutResult:
    """A put happened at ``revision``; ``prev_kv`` if it was asked for and the key existed."""

    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True, slots=True)
class DeleteRangeResult:
    """``deleted`` keys were removed; ``prev_kvs`` holds them if asked for."""

    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeResult:
    """The keys found (sorted), the total ``count`` matching and whether ``more`` were cut."""

    revision: int
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool = False


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Whether the compares held, and one response per operation of the branch that ran."""

    revision: int
    succeeded: bool
    responses: tuple[PutResult | DeleteRangeResult | RangeResult, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseResult:
    """The lease's id and granted TTL (seconds) after a grant or keep-alive."""

    revision: int
    lease_id: int
    ttl: int


@dataclass(frozen=True, slots=True)
class RevisionResult:
    """Commands with nothing to report but the revision (revoke, expire, checkpoint, compact)."""

    revision: int


CommandResult = (
    PutResult | DeleteRangeResult | RangeResult | TxnResult | LeaseResult | RevisionResult
)
Outcome = CommandResult | ErrorResult

_PUT, _DELETE, _RANGE, _TXN, _LEASE, _REVISION, _ERROR = range(1, 8)


def _opt_kv(w: Writer, kv: KeyValue | None) -> None:
    w.boolean(kv is not None)
    if kv is not None:
        kv.encode_into(w)


def _kvs(w: Writer, kvs: tuple[KeyValue, ...]) -> None:
    w.uint(len(kvs))
    for kv in kvs:
        kv.encode_into(w)


def encode_outcome(w: Writer, outcome: Outcome) -> None:
    """Append ``outcome`` to ``w``."""
    match outcome:
        case PutResult(revision=rev, prev_kv=prev):
            w.uint(_PUT).uint(rev)
            _opt_kv(w, prev)
        case DeleteRangeResult(revision=rev, deleted=deleted, prev_kvs=prev_kvs):
            w.uint(_DELETE).uint(rev).uint(deleted)
            _kvs(w, prev_kvs)
        case RangeResult(revision=rev, kvs=kvs, count=count, more=more):
            w.uint(_RANGE).uint(rev)
            _kvs(w, kvs)
            w.uint(count).boolean(more)
        case TxnResult(revision=rev, succeeded=ok, responses=responses):
            w.uint(_TXN).uint(rev).boolean(ok).uint(len(responses))
            for resp in responses:
                encode_outcome(w, resp)
        case LeaseResult(revision=rev, lease_id=lease_id, ttl=ttl):
            w.uint(_LEASE).uint(rev).uint(lease_id).uint(ttl)
        case RevisionResult(revision=rev):
            w.uint(_REVISION).uint(rev)
        case ErrorResult(kind=kind, field=field, problem=problem):
            w.uint(_ERROR).text(kind).text(field).text(problem)


def _read_opt_kv(r: Reader, field: str) -> KeyValue | None:
    return KeyValue.decode_from(r, field) if r.boolean(field) else None


def _read_kvs(r: Reader, field: str) -> tuple[KeyValue, ...]:
    n = r.count(field, 1 << 30)
    return tuple(KeyValue.decode_from(r, field) for _ in range(n))


def decode_outcome(r: Reader, field: str = "result") -> Outcome:
    """Read an outcome written by :func:`encode_outcome`."""
    tag = r.uint(field)
    if tag == _PUT:
        return PutResult(r.uint(field), _read_opt_kv(r, field))
    if tag == _DELETE:
        return DeleteRangeResult(r.uint(field), r.uint(field), _read_kvs(r, field))
    if tag == _RANGE:
        return RangeResult(r.uint(field), _read_kvs(r, field), r.uint(field), r.boolean(field))
    if tag == _TXN:
        rev = r.uint(field)
        ok = r.boolean(field)
        responses: list[PutResult | DeleteRangeResult | RangeResult] = []
        for _ in range(r.count(field, 1 << 20)):
            resp = decode_outcome(r, field)
            if not isinstance(resp, PutResult | DeleteRangeResult | RangeResult):
                raise DecodeError(field, "a transaction response must be an operation result")
            responses.append(resp)
        return TxnResult(rev, ok, tuple(responses))
    if tag == _LEASE:
        return LeaseResult(r.uint(field), r.uint(field), r.uint(field))
    if tag == _REVISION:
        return RevisionResult(r.uint(field))
    if tag == _ERROR:
        return ErrorResult(r.text(field), r.text(field), r.text(field))
    raise DecodeError(field, f"unknown result tag {tag}")

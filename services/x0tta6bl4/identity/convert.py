"""Between the identity API's protobuf messages and the core's types."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from x0tta6bl4.identity.core.revocations import Revocation
from x0tta6bl4.identity.core.workloads import Selector, Workload, WorkloadRecord
from x0tta6bl4.identity.reconciler import Report
from x0tta6bl4.identity.v1 import identity_pb2 as pb


def timestamp(epoch: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.datetime.fromtimestamp(epoch, dt.UTC))
    return ts


def workload_of(w: pb.Workload) -> Workload:
    """As given: :func:`~x0tta6bl4.identity.core.workloads.check_workload` validates it."""
    return Workload(
        spiffe_id=w.spiffe_id,
        parent_id=w.parent_id,
        selectors=tuple(Selector(s.type, s.value) for s in w.selectors),
        x509_svid_ttl_s=w.x509_svid_ttl_seconds,
        dns_names=tuple(w.dns_names),
        hint=w.hint,
        admin=w.admin,
        downstream=w.downstream,
    )


def workload_pb(w: Workload) -> pb.Workload:
    return pb.Workload(
        spiffe_id=w.spiffe_id,
        parent_id=w.parent_id,
        selectors=[pb.Selector(type=s.type, value=s.value) for s in w.selectors],
        x509_svid_ttl_seconds=w.x509_svid_ttl_s,
        dns_names=list(w.dns_names),
        hint=w.hint,
        admin=w.admin,
        downstream=w.downstream,
    )


def record_pb(r: WorkloadRecord) -> pb.WorkloadRecord:
    return pb.WorkloadRecord(
        workload=workload_pb(r.workload),
        revision=r.revision,
        create_revision=r.create_revision,
        author=r.author,
        updated_at=timestamp(r.updated_at),
    )


def revocation_pb(r: Revocation) -> pb.Revocation:
    out = pb.Revocation(
        spiffe_id=r.spiffe_id,
        reason=r.reason,
        author=r.author,
        revoked_at=timestamp(r.revoked_at),
        revision=r.revision,
    )
    if r.until is not None:
        out.until.CopyFrom(timestamp(r.until))
    return out


def report_pb(r: Report) -> pb.ReconcileReport:
    return pb.ReconcileReport(
        desired=r.desired,
        actual=r.actual,
        created=r.created,
        updated=r.updated,
        deleted=r.deleted,
        errors=r.errors,
        duration_seconds=r.duration_s,
        revision=r.revision,
    )

"""The gRPC servicer of ``x0tta6bl4.policy.v1.PolicyService``: checks each request's fields
(``INVALID_ARGUMENT`` naming the field or the document path), then hands it to the revision
store, the validation pipeline, the sidecar status view or the decision log (wired in app.py).

Activation is validate-then-CAS: a revision is validated first (outside any lock), then the
active pointer moves only if it still is ``expected_active``; a revision that fails
validation never becomes active (``force`` excuses only the control-traffic check)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from x0tta6bl4.clients.errors import Conflict
from x0tta6bl4.clients.errors import NotFound as ClientNotFound
from x0tta6bl4.platform.errors import FailedPrecondition, InvalidArgument, NotFound
from x0tta6bl4.platform.peer import current_caller
from x0tta6bl4.platform.request_fields import INT64_MAX, int_in
from x0tta6bl4.policy.core.policy_set import PolicySet, PolicySetError, parse_policy_set, rule_diff
from x0tta6bl4.policy.store import PolicyRevision, PolicyStore
from x0tta6bl4.policy.v1 import policy_pb2 as pb
from x0tta6bl4.policy.v1 import policy_pb2_grpc

MAX_MESSAGE = 4096
DEFAULT_PAGE = 50
MAX_PAGE = 500
MAX_FIELD = 4096

# Wired in app.py: (policy set, its revision number, force) -> the validation report.
Validate = Callable[[PolicySet, int, bool], Awaitable[pb.ValidationReport]]
# (policy set, revision number, the call's input document) -> the mesh decision object.
Explain = Callable[[PolicySet, int, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
StatusAnswer = Callable[[int, str], Awaitable[list[pb.SidecarStatus]]]
DecisionsAnswer = Callable[[pb.QueryDecisionsRequest], Awaitable[pb.QueryDecisionsResponse]]


def revision_info(rev: PolicyRevision, active: int) -> pb.RevisionInfo:
    r = rev.revision
    info = pb.RevisionInfo(
        number=r.number,
        sha256=r.sha256,
        parent=r.parent,
        author=r.author,
        message=r.message,
        active=r.number == active,
        rule_count=len(rev.policy_set.rules),
        bundle_revision=rev.bundle_revision,
    )
    info.created_at.FromDatetime(r.created_at)
    return info


def _document(raw: bytes) -> PolicySet:
    if not raw:
        raise InvalidArgument("document", "is empty: send a policy-set document (YAML or JSON)")
    try:
        return parse_policy_set(raw)
    except PolicySetError as err:
        raise InvalidArgument("document", str(err)) from None


def _text(field: str, value: str, limit: int = MAX_FIELD) -> str:
    if len(value.encode()) > limit:
        raise InvalidArgument(field, f"is longer than {limit} bytes")
    return value


def _service_of(grpc_service: str) -> str:
    """``consensus`` for ``x0tta6bl4.consensus.v1.KVService``; other APIs need ``service``."""
    parts = grpc_service.split(".")
    if len(parts) >= 3 and parts[0] == "x0tta6bl4":
        return parts[1]
    raise InvalidArgument("service", f"is required for {grpc_service!r} (not a suite API)")


def _refusal(report: pb.ValidationReport) -> str:
    failed = [s for s in report.steps if not s.ok]
    parts = [f"{s.name}: {'; '.join(s.messages[:5]) or 'failed'}" for s in failed]
    return "validation failed (" + " | ".join(parts) + ")"


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(
        self,
        *,
        store: PolicyStore,
        validate: Validate,
        explain: Explain,
        statuses: StatusAnswer,
        decisions: DecisionsAnswer,
        namespace: str,
    ) -> None:
        self._store = store
        self._validate = validate
        self._explain = explain
        self._statuses = statuses
        self._decisions = decisions
        self._namespace = namespace

    async def _get(self, field: str, number: int) -> PolicyRevision:
        try:
            return await self._store.get(number)
        except ClientNotFound:
            raise NotFound(f"{field}: there is no revision {number}") from None

    async def _resolve(self, field: str, number: int) -> PolicyRevision:
        """Revision ``number``, or the active one for 0."""
        int_in(field, number, 0, INT64_MAX)
        if number == 0:
            active = await self._store.active()
            if active is None:
                raise NotFound(f"{field}: no revision is active yet")
            return active
        return await self._get(field, number)

    async def Propose(self, request: pb.ProposeRequest, context: Any) -> pb.ProposeResponse:
        policy_set = _document(request.document)
        message = _text("message", request.message, MAX_MESSAGE)
        rev = await self._store.propose(policy_set, message, current_caller())
        report = await self._validate(policy_set, rev.number, False)
        active = await self._store.active_number()
        return pb.ProposeResponse(revision=revision_info(rev, active), validation=report)

    async def Validate(self, request: pb.ValidateRequest, context: Any) -> pb.ValidateResponse:
        which = request.WhichOneof("candidate")
        if which == "document":
            policy_set, number = _document(request.document), 0
        elif which == "revision":
            rev = await self._resolve("revision", request.revision)
            policy_set, number = rev.policy_set, rev.number
        else:
            raise InvalidArgument("candidate", "give a document or a revision")
        return pb.ValidateResponse(validation=await self._validate(policy_set, number, False))

    async def _validated(self, rev: PolicyRevision, force: bool) -> pb.ValidationReport:
        report = await self._validate(rev.policy_set, rev.number, force)
        if not report.ok:
            raise FailedPrecondition(f"revision {rev.number}: {_refusal(report)}")
        return report

    async def Activate(self, request: pb.ActivateRequest, context: Any) -> pb.ActivateResponse:
        number = int_in("revision", request.revision, 1, INT64_MAX)
        expected = int_in("expected_active", request.expected_active, 0, INT64_MAX)
        rev = await self._get("revision", number)
        report = await self._validated(rev, request.force)
        try:
            await self._store.activate(number, expected=expected)
        except Conflict as err:
            raise FailedPrecondition(f"expected_active: {err.details}") from None
        return pb.ActivateResponse(
            revision=revision_info(rev, number), previous=expected, validation=report
        )

    async def Rollback(self, request: pb.RollbackRequest, context: Any) -> pb.RollbackResponse:
        to = int_in("to_revision", request.to_revision, 1, INT64_MAX)
        expected = int_in("expected_active", request.expected_active, 0, INT64_MAX)
        earlier = await self._get("to_revision", to)
        report = await self._validated(earlier, request.force)
        try:
            rev = await self._store.rollback(to, expected=expected, author=current_caller())
        except Conflict as err:
            raise FailedPrecondition(f"expected_active: {err.details}") from None
        return pb.RollbackResponse(
            revision=revision_info(rev, rev.number), previous=expected, validation=report
        )

    async def Diff(self, request: pb.DiffRequest, context: Any) -> pb.DiffResponse:
        old = await self._resolve("from_revision", request.from_revision)
        new = await self._resolve("to_revision", request.to_revision)
        kinds = {
            "added": pb.RuleChange.KIND_ADDED,
            "removed": pb.RuleChange.KIND_REMOVED,
            "changed": pb.RuleChange.KIND_CHANGED,
        }
        return pb.DiffResponse(
            changes=[
                pb.RuleChange(
                    id=c.rule_id,
                    kind=kinds[c.change],
                    before_json=json.dumps(c.before, sort_keys=True) if c.before else "",
                    after_json=json.dumps(c.after, sort_keys=True) if c.after else "",
                )
                for c in rule_diff(old.policy_set, new.policy_set)
            ]
        )

    async def ListRevisions(
        self, request: pb.ListRevisionsRequest, context: Any
    ) -> pb.ListRevisionsResponse:
        size = int_in("page_size", request.page_size, 0, MAX_PAGE) or DEFAULT_PAGE
        below = 0
        if request.page_token:
            try:
                below = int(request.page_token)
            except ValueError:
                raise InvalidArgument("page_token", "is not a token this service gave") from None
            if below < 2:
                raise InvalidArgument("page_token", "is not a token this service gave")
        revisions = await self._store.newest(below=below, limit=size)
        active = await self._store.active_number()
        last = revisions[-1].number if revisions else 0
        return pb.ListRevisionsResponse(
            revisions=[revision_info(r, active) for r in revisions],
            next_page_token=str(last) if last > 1 else "",
            active=active,
        )

    async def GetRevision(
        self, request: pb.GetRevisionRequest, context: Any
    ) -> pb.GetRevisionResponse:
        rev = await self._resolve("number", request.number)
        active = await self._store.active_number()
        return pb.GetRevisionResponse(
            revision=revision_info(rev, active), document=rev.revision.content.decode()
        )

    async def Status(self, request: pb.StatusRequest, context: Any) -> pb.StatusResponse:
        active = await self._store.active()
        number = active.number if active else 0
        bundle = active.bundle_revision if active else ""
        return pb.StatusResponse(
            active=number,
            active_bundle_revision=bundle,
            sidecars=await self._statuses(number, bundle),
        )

    async def Explain(self, request: pb.ExplainRequest, context: Any) -> pb.ExplainResponse:
        rev = await self._resolve("revision", request.revision)
        for field in ("caller", "grpc_service", "method"):
            if not getattr(request, field):
                raise InvalidArgument(field, "is required")
            _text(field, getattr(request, field))
        when = (
            request.time.ToDatetime(dt.UTC) if request.HasField("time") else dt.datetime.now(dt.UTC)
        )
        call: dict[str, Any] = {
            "caller": request.caller,
            "namespace": _text("namespace", request.namespace) or self._namespace,
            "service": _text("service", request.service) or _service_of(request.grpc_service),
            "grpc_service": request.grpc_service,
            "method": request.method,
            "metadata": {
                _text("metadata", k): _text("metadata", v) for k, v in request.metadata.items()
            },
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if request.source_address:
            call["source_address"] = _text("source_address", request.source_address)
        decision = await self._explain(rev.policy_set, rev.number, call)
        return pb.ExplainResponse(
            allowed=decision.get("allow") is True,
            effect=str(decision.get("effect", "")),
            decided_by=[str(i) for i in decision.get("decided_by", [])],
            audit=[str(i) for i in decision.get("audit", [])],
            dry_run=[
                str(d.get("id", d)) if isinstance(d, dict) else str(d)
                for d in decision.get("dry_run", [])
            ],
            explanation=str(decision.get("explanation", "")),
            decision_json=json.dumps(decision, sort_keys=True),
            revision=rev.number,
        )

    async def QueryDecisions(
        self, request: pb.QueryDecisionsRequest, context: Any
    ) -> pb.QueryDecisionsResponse:
        int_in("limit", request.limit, 0, 1000)
        _text("caller", request.caller)
        _text("method", request.method)
        both = request.HasField("since") and request.HasField("until")
        if both and request.since.ToDatetime() > request.until.ToDatetime():
            raise InvalidArgument("since", "is after until")
        return await self._decisions(request)

    async def Watch(
        self, request: pb.WatchRequest, context: Any
    ) -> AsyncIterator[pb.WatchResponse]:
        current = await self._store.active()
        last = current.number if current else 0
        yield pb.WatchResponse(
            active=last, bundle_revision=current.bundle_revision if current else ""
        )
        async for number in self._store.watch_active():
            if number == last:
                continue
            last = number
            bundle = (await self._store.get(number)).bundle_revision if number else ""
            yield pb.WatchResponse(active=number, bundle_revision=bundle)

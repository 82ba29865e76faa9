"""Validation of a candidate policy set before activation, and Explain, on the real ``opa``.

:func:`validate` lays the candidate out once (policy/layout.py: the sidecar's static files
plus the candidate's bundle, as a sidecar would load them) and runs these steps, the
independent ones concurrently (each ``opa`` run is its own process), reporting each with its
messages and wall time:

``rules``            the engine's publication gate, ``candidate_errors`` of validate.rego, with
                     the candidate ruleset as ``input.ruleset`` (messages name rule id and field)
``check``            ``opa check --strict`` on the layout and the candidate's tests
``build``            ``opa build`` of the bundle directory (with its ``.manifest`` roots)
``test``             ``opa test``: the candidate's tests on the candidate's layout, and the
                     suite's baseline tests (platform/rego/*_test.rego, policy/rego/*_test.rego)
                     on the sidecar's static files with the engine the bundle ships
``control_traffic``  every call of core/control_traffic.py must be allowed by the candidate's
                     ``data.x0tta6bl4.mesh.decision``; a denial refuses the candidate unless
                     ``force`` (then the report is ``forced``)
``shadow``           the recorded decisions re-evaluated: how many flip, for which pairs

The baseline tests run without the candidate's ruleset and modules because they are written
for that layout (mesh_test.rego tests the sidecar before any ruleset has loaded; rules_test
sets its rulesets with ``with``); what the candidate does to the suite's own calls is the
control-traffic step's question. Paths in messages are shown as the operator knows them
(``modules/x.rego:7``, ``tests/x_test.rego:12``). The control-traffic and shadow steps share
one ``opa eval`` over all their inputs (one compilation), so they report the same wall time.

:func:`explain` evaluates one call against a revision in the same layout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x0tta6bl4.policy.core import control_traffic, shadow
from x0tta6bl4.policy.core.control_traffic import ControlCall
from x0tta6bl4.policy.core.policy_set import PolicySet, ruleset_data
from x0tta6bl4.policy.core.shadow import FlippedPair, RecordedDecision
from x0tta6bl4.policy.layout import Layout, with_layout
from x0tta6bl4.policy.opa_tool import Opa, OpaFailed, OpaMessage, TestReport, TestResult

DECISION = "data.x0tta6bl4.mesh.decision"
GATE = "data.x0tta6bl4.policy.rules.candidate_errors"
# The parts of the decision the control-traffic and shadow steps read.
_BRIEF = f'object.filter({DECISION}, ["allow", "effect", "explanation"])'
MAX_MESSAGES = 50
# Inputs per extra opa process in the control-traffic and shadow evaluation (see _evaluate).
EVAL_CHUNK_MIN = 400
# A candidate whose rules or modules may depend on the time has its control traffic checked
# at now and at one instant on each of the next seven (UTC) days, each at another time of day
# (3 h 17 min later each day): a sample that finds a weekday or hour freeze, not a proof.
TIME_SAMPLES = 8
_HOUR_SHIFT_MIN = 197


@dataclass(frozen=True, slots=True)
class ValidationStep:
    name: str  # rules, check, build, test, control_traffic, shadow
    ok: bool
    messages: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ValidationReport:
    ok: bool  # every step passed, or only control_traffic failed and it was forced
    forced: bool  # control_traffic failed and force was given
    steps: tuple[ValidationStep, ...]
    shadow_decisions: int = 0  # recorded decisions re-evaluated
    shadow_skipped: int = 0  # recorded decisions that cannot be re-evaluated (shadow.py)
    flips_to_deny: int = 0
    flips_to_allow: int = 0
    flipped_pairs: tuple[FlippedPair, ...] = field(default_factory=tuple)
    seconds: float = 0.0  # wall time of the whole validation

    def step(self, name: str) -> ValidationStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def failed_steps(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps if not s.ok)


# ── the steps ─────────────────────────────────────────────────────────────────────────────────


async def _timed(name: str, run: Awaitable[tuple[bool, list[str]]]) -> ValidationStep:
    started = time.perf_counter()
    ok, messages = await run
    if len(messages) > MAX_MESSAGES:
        messages = [*messages[:MAX_MESSAGES], f"... and {len(messages) - MAX_MESSAGES} more"]
    return ValidationStep(name, ok, tuple(messages), round(time.perf_counter() - started, 4))


def _failure(layout: Layout, err: OpaFailed) -> list[str]:
    return [layout.show(str(e)) for e in err.errors]


async def _gate(opa: Opa, layout: Layout, ruleset: Mapping[str, Any]) -> tuple[bool, list[str]]:
    try:
        errors = await opa.eval([layout.static, layout.engine], GATE, {"ruleset": ruleset})
    except OpaFailed as err:
        return False, ["the engine's gate did not run: " + m for m in _failure(layout, err)]
    if not isinstance(errors, list):
        return False, [f"the engine's gate gave {errors!r:.200} instead of a list of errors"]
    return not errors, sorted(map(str, errors))


async def _check(opa: Opa, layout: Layout) -> tuple[bool, list[str]]:
    try:
        await opa.check([*layout.sidecar, layout.candidate_tests], strict=True)
    except OpaFailed as err:
        return False, _failure(layout, err)
    return True, []


async def _build(opa: Opa, layout: Layout) -> tuple[bool, list[str]]:
    try:
        bundle = await opa.build(layout.bundle)
    except OpaFailed as err:
        return False, _failure(layout, err)
    return True, [f"the bundle builds ({len(bundle)} bytes)"]


def _test_line(layout: Layout, which: str, result: TestResult) -> str:
    verb = "failed" if result.outcome == "fail" else "errored"
    line = f"{which} test {result.package}.{result.name} ({result.location}) {verb}"
    if result.error:
        line += f": {result.error}"
    if result.output.strip():
        line += f" (printed: {' | '.join(result.output.strip().splitlines())[:500]})"
    return layout.show(line)


def _test_lines(layout: Layout, which: str, report: TestReport) -> list[str]:
    lines = [_test_line(layout, which, r) for r in (*report.failed, *report.errored)]
    skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
    lines.append(f"{which} tests: {len(report.passed)} of {len(report.results)} passed{skipped}")
    return lines


async def _one_test_run(
    opa: Opa, layout: Layout, which: str, paths: list[Path]
) -> tuple[bool, list[str]]:
    try:
        report = await opa.test(paths)
    except OpaFailed as err:
        return False, [f"{which} tests did not run: {m}" for m in _failure(layout, err)]
    return report.ok, _test_lines(layout, which, report)


async def _tests(opa: Opa, layout: Layout) -> tuple[bool, list[str]]:
    runs = [_one_test_run(opa, layout, "baseline", [layout.static, layout.engine,
                                                   layout.baseline_tests])]  # fmt: skip
    if layout.has_tests:
        runs.append(_one_test_run(opa, layout, "candidate", [*layout.sidecar,
                                                             layout.candidate_tests]))  # fmt: skip
    results = await asyncio.gather(*runs)
    messages = [m for _, lines in results for m in lines]
    if not layout.has_tests:
        messages.append("the candidate has no tests of its own")
    return all(ok for ok, _ in results), messages


def _time_dependent(policy_set: PolicySet) -> bool:
    return bool(policy_set.modules) or any(
        isinstance(r.get("when"), Mapping) and "time_windows" in r["when"] for r in policy_set.rules
    )


def _control_instants(policy_set: PolicySet, now: dt.datetime) -> list[dt.datetime]:
    if not _time_dependent(policy_set):
        return [now]
    utc = now.astimezone(dt.UTC)
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    minute = utc.hour * 60 + utc.minute
    return [utc] + [
        midnight + dt.timedelta(days=k, minutes=(minute + k * _HOUR_SHIFT_MIN) % 1440)
        for k in range(1, TIME_SAMPLES)
    ]


def _control_step(
    calls: Sequence[tuple[ControlCall, dt.datetime]],
    answers: Sequence[Any],
    force: bool,
    seconds: float,
) -> ValidationStep:
    denials = _control_messages(calls, answers)
    if not denials:
        instants = len({at for _, at in calls})
        summary = f"{len(calls) // max(1, instants)} calls allowed at {instants} instant(s)"
        return ValidationStep("control_traffic", True, (summary,), seconds)
    if force:
        denials.append("forced: the candidate is accepted although it denies these calls")
    return ValidationStep("control_traffic", False, tuple(denials), seconds)


def _control_messages(
    calls: Sequence[tuple[ControlCall, dt.datetime]], answers: Sequence[Any]
) -> list[str]:
    denied: dict[ControlCall, tuple[dt.datetime, str]] = {}
    for (call, at), answer in zip(calls, answers, strict=True):
        if not (isinstance(answer, dict) and answer.get("allow") is True) and call not in denied:
            why = answer.get("explanation", "") if isinstance(answer, dict) else "no decision"
            denied[call] = (at, str(why))
    return [
        f"denied: {call} ({call.why}) at {at.isoformat()}: {why}"
        for call, (at, why) in sorted(denied.items())
    ]


# ── the public API ────────────────────────────────────────────────────────────────────────────


async def validate(
    candidate: PolicySet,
    *,
    recorded: Sequence[RecordedDecision],
    force: bool,
    opa: str,
    version: int,
    namespace: str = "local",
    now: dt.datetime | None = None,
    top_pairs: int = 20,
    timeout_s: float = 60.0,
) -> ValidationReport:
    """Every validation step of ``candidate`` as revision ``version`` (see the module doc).
    ``recorded``: the latest recorded decisions for the shadow step; ``namespace``: the one
    the suite's control traffic runs in; ``now``: when to evaluate the control traffic."""
    started = time.perf_counter()
    tool = Opa(opa, timeout_s=timeout_s)
    at = now or dt.datetime.now(dt.UTC)
    if at.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    kept, skipped = shadow.split(recorded)
    calls = [
        (c, t) for t in _control_instants(candidate, at) for c in control_traffic.CONTROL_TRAFFIC
    ]
    inputs = [c.input(namespace=namespace, at=t) for c, t in calls] + [d.input for d in kept]

    async def run(layout: Layout) -> ValidationReport:
        gate, check, build, test, (answers, eval_error, eval_seconds) = await asyncio.gather(
            _timed("rules", _gate(tool, layout, ruleset_data(candidate, version))),
            _timed("check", _check(tool, layout)),
            _timed("build", _build(tool, layout)),
            _timed("test", _tests(tool, layout)),
            _evaluate(tool, layout, inputs),
        )
        if eval_error is not None:
            gone = tuple(f"not evaluated: the candidate does not evaluate: {m}" for m in eval_error)
            control = ValidationStep("control_traffic", False, gone, eval_seconds)
            shadow_step = ValidationStep("shadow", False, gone, eval_seconds)
            result = shadow.ShadowResult(skipped=skipped)
        else:
            control = _control_step(calls, answers[: len(calls)], force, eval_seconds)
            allows = [isinstance(a, dict) and a.get("allow") is True for a in answers[len(calls) :]]
            result = shadow.compare(kept, allows, skipped=skipped, top=top_pairs)
            shadow_step = ValidationStep(
                "shadow", True, tuple(_shadow_messages(result)), eval_seconds
            )
        steps = (gate, check, build, test, control, shadow_step)
        others_ok = all(s.ok for s in steps if s.name != "control_traffic")
        forced = force and not control.ok
        return ValidationReport(
            ok=others_ok and (control.ok or forced),
            forced=forced,
            steps=steps,
            shadow_decisions=result.compared,
            shadow_skipped=result.skipped,
            flips_to_deny=result.flips_to_deny,
            flips_to_allow=result.flips_to_allow,
            flipped_pairs=result.flipped_pairs,
            seconds=round(time.perf_counter() - started, 4),
        )

    report: ValidationReport = await with_layout(candidate, version, run)
    return report


async def _evaluate(
    opa: Opa, layout: Layout, inputs: Sequence[Mapping[str, Any]]
) -> tuple[list[Any], list[str] | None, float]:
    """The brief decision for each input. Equal inputs are evaluated once; the distinct ones
    are split over up to one ``opa`` process per CPU (each compiles the layout once)."""
    started = time.perf_counter()
    keys = [json.dumps(i, sort_keys=True, default=str) for i in inputs]
    distinct: dict[str, Mapping[str, Any]] = {}
    for key, doc in zip(keys, inputs, strict=True):
        distinct.setdefault(key, doc)
    unique = list(distinct.values())
    parts = max(1, min(os.cpu_count() or 1, len(unique) // EVAL_CHUNK_MIN))
    size = -(-len(unique) // parts) if unique else 0
    chunks = [unique[k : k + size] for k in range(0, len(unique), size)] if unique else []
    try:
        results = await asyncio.gather(
            *(opa.eval_many(layout.sidecar, _BRIEF, chunk) for chunk in chunks)
        )
    except OpaFailed as err:
        return [], _failure(layout, err), round(time.perf_counter() - started, 4)
    answer = dict(zip(distinct, (a for part in results for a in part), strict=True))
    return [answer[k] for k in keys], None, round(time.perf_counter() - started, 4)


def _shadow_messages(result: shadow.ShadowResult) -> list[str]:
    lines = [
        f"{result.compared} recorded decisions re-evaluated ({result.skipped} not comparable: "
        f"revoked or break-glass): {result.flips_to_deny} allowed -> denied, "
        f"{result.flips_to_allow} denied -> allowed"
    ]
    lines += [shadow.describe(p) for p in result.flipped_pairs]
    if result.pairs_left_out:
        lines.append(f"... and {result.pairs_left_out} more flipped pairs")
    return lines


async def explain(
    policy_set: PolicySet,
    version: int,
    call_input: Mapping[str, Any],
    *,
    opa: str,
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """``data.x0tta6bl4.mesh.decision`` for ``call_input`` as a sidecar running revision
    ``version`` of ``policy_set`` decides it, plus ``matched``: the ids of the rules that
    matched (decided_by, overridden, audit and dry_run, in that order, once each) and
    ``revision``. :class:`OpaFailed` if the revision does not evaluate."""
    if not isinstance(call_input, Mapping):
        raise TypeError(f"call_input must be a mapping, not {type(call_input).__name__}")
    tool = Opa(opa, timeout_s=timeout_s)

    async def run(layout: Layout) -> Any:
        try:
            return await tool.eval(layout.sidecar, DECISION, dict(call_input))
        except OpaFailed as err:
            raise OpaFailed(err.command, [dataclasses.replace(e, file=layout.show(e.file))
                                          for e in err.errors]) from None  # fmt: skip

    decision = await with_layout(policy_set, version, run)
    if not isinstance(decision, dict):
        raise OpaFailed("eval", [OpaMessage(f"{DECISION} is {decision!r:.200}, not an object")])
    matched: list[str] = []
    dry = [d.get("id") for d in decision.get("dry_run", []) if isinstance(d, dict)]
    for rule_id in [*decision.get("decided_by", []), *decision.get("overridden", []),
                    *decision.get("audit", []), *dry]:  # fmt: skip
        if isinstance(rule_id, str) and rule_id not in matched:
            matched.append(rule_id)
    return {**decision, "matched": matched, "revision": version}

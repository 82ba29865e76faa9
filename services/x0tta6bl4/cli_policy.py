"""``x0 policy``: the policy service from the command line, as the operator.

``propose -f rules.yaml -m MSG``, ``validate [-f FILE | REV]``, ``activate REV [--expect N]
[--force]``, ``rollback REV``, ``diff A B``, ``list``, ``get [REV]``, ``status``, ``explain
--caller ID --method SVC/METHOD [--metadata k=v ...] [--source IP] [--revision N]``,
``decisions [--caller ID] [--method M] [--denied|--allowed] [--since ISO] [--limit N]``,
``schema``. ``activate`` and ``rollback`` take the active revision as the expected one unless
``--expect`` says otherwise (the compare-and-set then guards against a concurrent change
since you last looked). Output is a short line per item, or the API's messages as JSON with
``--json``. Exit 3: validation failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.clients.policy import PolicyClient
from x0tta6bl4.policy.v1 import policy_pb2 as pb


def _show(args: argparse.Namespace, message: Message, line: str) -> None:
    print(json.dumps(MessageToDict(message)) if args.json else line)


def _rev_line(r: pb.RevisionInfo) -> str:
    mark = "*" if r.active else " "
    when = r.created_at.ToDatetime(dt.UTC).isoformat(timespec="seconds")
    return f"{mark}{r.number:>5}  {when}  rules={r.rule_count}  by {r.author}  {r.message}"


def _report_lines(v: pb.ValidationReport) -> list[str]:
    lines = [f"validation: {'OK' if v.ok else 'FAILED'}{' (forced)' if v.forced else ''}"]
    for step in v.steps:
        lines.append(f"  {'ok ' if step.ok else 'BAD'} {step.name} ({step.seconds:.2f}s)")
        lines += [f"      {m}" for m in step.messages]
    lines.append(
        f"  shadow: {v.shadow_decisions} recorded decisions, {v.flips_to_deny} would be denied, "
        f"{v.flips_to_allow} would be allowed"
    )
    lines += [
        f"      {'deny->allow' if p.to_allow else 'allow->deny'} x{p.count}  {p.caller} {p.method}"
        for p in v.flipped_pairs
    ]
    return lines


def _print_report(
    args: argparse.Namespace, head: Message, v: pb.ValidationReport, line: str
) -> int:
    if args.json:
        print(json.dumps(MessageToDict(head)))
    else:
        print(line)
        print("\n".join(_report_lines(v)))
    return 0 if v.ok else 3


def _metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--metadata {pair!r}: expected key=value")
        out[key] = value
    return out


async def _expected(c: PolicyClient, given: int | None) -> int:
    return given if given is not None else (await c.revisions(limit=1)).active


async def _run(c: PolicyClient, args: argparse.Namespace) -> int:
    cmd = args.policy_command
    if cmd == "propose":
        out = await c.propose(await asyncio.to_thread(Path(args.file).read_bytes), args.message)
        return _print_report(
            args,
            out,
            out.validation,
            f"proposed revision {out.revision.number} "
            f"({out.revision.rule_count} rules, sha256 {out.revision.sha256[:12]})",
        )
    if cmd == "validate":
        if args.file:
            report = await c.validate(document=await asyncio.to_thread(Path(args.file).read_bytes))
        else:
            report = await c.validate(revision=args.revision or 0)
        return _print_report(args, report, report, "")
    if cmd in ("activate", "rollback"):
        expected = await _expected(c, args.expect)
        if cmd == "activate":
            done: pb.ActivateResponse | pb.RollbackResponse = await c.activate(
                args.revision, expected_active=expected, force=args.force
            )
        else:
            done = await c.rollback(args.revision, expected_active=expected, force=args.force)
        return _print_report(
            args,
            done,
            done.validation,
            f"active: revision {done.revision.number} (was {done.previous})",
        )
    if cmd == "diff":
        kinds = {1: "+", 2: "-", 3: "~"}
        for change in await c.diff(args.a, args.b):
            _show(
                args,
                change,
                f"{kinds.get(change.kind, '?')} {change.id}  "
                f"{change.after_json or change.before_json}",
            )
    elif cmd == "list":
        listing = await c.revisions(limit=args.limit)
        for r in listing.revisions:
            _show(args, r, _rev_line(r))
    elif cmd == "get":
        got = await c.get(args.revision or 0)
        if args.json:
            print(json.dumps(MessageToDict(got)))
        else:
            print(_rev_line(got.revision))
            print(json.dumps(json.loads(got.document), indent=2))
    elif cmd == "status":
        st = await c.status()
        if args.json:
            print(json.dumps(MessageToDict(st)))
        else:
            print(f"active: revision {st.active} (bundle {st.active_bundle_revision})")
            for s in st.sidecars:
                state = "current" if s.current else "BEHIND"
                errors = f"  errors: {'; '.join(s.errors)}" if s.errors else ""
                print(f"  {s.instance:<14} {s.bundle_revision or '-':<20} {state}{errors}")
        return 0 if all(s.current and not s.errors for s in st.sidecars) else 4
    elif cmd == "explain":
        grpc_service, _, method = args.method.lstrip("/").rpartition("/")
        request = pb.ExplainRequest(
            revision=args.revision or 0,
            caller=args.caller,
            service=args.service,
            grpc_service=grpc_service,
            method=method,
            metadata=_metadata(args.metadata),
            source_address=args.source,
        )
        why = await c.explain(request)
        _show(args, why, f"{'ALLOW' if why.allowed else 'DENY'} ({why.effect}) {why.explanation}")
        return 0 if why.allowed else 2
    elif cmd == "decisions":
        query = pb.QueryDecisionsRequest(caller=args.caller, method=args.method, limit=args.limit)
        if args.denied:
            query.result = pb.QueryDecisionsRequest.RESULT_DENIED
        elif args.allowed:
            query.result = pb.QueryDecisionsRequest.RESULT_ALLOWED
        if args.since:
            query.since.FromDatetime(dt.datetime.fromisoformat(args.since))
        for d in (await c.decisions(query)).decisions:
            when = d.time.ToDatetime(dt.UTC).isoformat(timespec="milliseconds")
            verdict = "ALLOW" if d.allowed else "DENY "
            _show(
                args,
                d,
                f"{when} {verdict} {d.caller} {d.grpc_service}/{d.method} "
                f"[{d.effect} {','.join(d.decided_by)}] @{d.instance}",
            )
    return 0


def run(args: argparse.Namespace, state_dir: Path) -> int:
    if args.policy_command == "schema":
        from x0tta6bl4.policy.core.policy_set import schema_text

        print(schema_text())
        return 0
    from x0tta6bl4.devstack.operator import policy_client
    from x0tta6bl4.devstack.plan import SuitePlan

    async def main() -> int:
        async with policy_client(SuitePlan.load(state_dir)) as client:
            return await _run(client, args)

    try:
        return asyncio.run(main())
    except (ClientError, OSError, TimeoutError, ValueError) as err:
        print(f"x0 policy {args.policy_command}: {err}", file=sys.stderr)
        return 1


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``x0 policy ...`` on the CLI's subparsers."""
    top: argparse.ArgumentParser = sub.add_parser(
        "policy", help="propose, validate, activate and roll back policies; status; decisions"
    )
    top.add_argument("--json", action="store_true", help="the API's messages as JSON")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="output as JSON"
    )
    common.add_argument("--state-dir", default=argparse.SUPPRESS, help="suite state directory")
    subparsers = top.add_subparsers(dest="policy_command", required=True)
    add = functools.partial(subparsers.add_parser, parents=[common])
    propose = add("propose", help="store a new revision from a YAML/JSON policy set")
    propose.add_argument("-f", "--file", required=True)
    propose.add_argument("-m", "--message", default="")
    validate = add("validate", help="validate a file or a stored revision (exit 3 if it fails)")
    validate.add_argument("revision", nargs="?", type=int, default=0)
    validate.add_argument("-f", "--file", default="")
    for name, text in (
        ("activate", "make a revision active"),
        ("rollback", "re-activate an earlier revision's content as a new revision"),
    ):
        p = add(name, help=text)
        p.add_argument("revision", type=int)
        p.add_argument(
            "--expect",
            type=int,
            default=None,
            help="the active revision you expect (default: the current one)",
        )
        p.add_argument(
            "--force", action="store_true", help="even if the control-traffic check fails"
        )
    diff = add("diff", help="rule-by-rule changes from revision A to B")
    diff.add_argument("a", type=int)
    diff.add_argument("b", type=int)
    listing = add("list", help="revisions, newest first (* = active)")
    listing.add_argument("--limit", type=int, default=20)
    add("get", help="one revision's document (default: the active one)").add_argument(
        "revision", nargs="?", type=int, default=0
    )
    add("status", help="which revision every sidecar runs (exit 4 if one is behind or failing)")
    explain = add("explain", help="evaluate one call against a revision (exit 2 if denied)")
    explain.add_argument("--caller", required=True, help="the caller's SPIFFE ID")
    explain.add_argument("--method", required=True, help="<grpc service>/<method>")
    explain.add_argument(
        "--service", default="", help="the called service (default: from --method)"
    )
    explain.add_argument("--metadata", action="append", default=[], help="key=value (repeatable)")
    explain.add_argument("--source", default="", help="the caller's IP")
    explain.add_argument("--revision", type=int, default=0)
    decisions = add("decisions", help="recorded decisions, newest first")
    decisions.add_argument("--caller", default="", help="a SPIFFE ID or glob")
    decisions.add_argument("--method", default="", help="<grpc service>/<method> or a method")
    outcome = decisions.add_mutually_exclusive_group()
    outcome.add_argument("--denied", action="store_true")
    outcome.add_argument("--allowed", action="store_true")
    decisions.add_argument("--since", default="", help="ISO 8601 time")
    decisions.add_argument("--limit", type=int, default=50)
    add("schema", help="print the JSON Schema of a policy-set document")
    return top

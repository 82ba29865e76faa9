"""``x0 identity``: the identity service from the command line, as the operator.

``apply -f workload.yaml``, ``list [--prefix P]``, ``get ID``, ``delete ID``, ``reconcile``,
``health``, ``validate cert.pem [--spiffe-id ID] [--trust-domain TD] [--policy NAME]``,
``revoke ID --reason R [--for SECONDS]``, ``lift ID``, ``revocations``. Output is a short
line per item, or the API's messages as JSON with ``--json``. A workload file holds the
fields of ``x0tta6bl4.identity.v1.Workload`` (selectors as ``type:value`` strings)::

    spiffe_id: spiffe://x0tta6bl4.mesh/ns/local/sa/web
    parent_id: spiffe://x0tta6bl4.mesh/spire/agent/join_token/...
    selectors: ["unix:uid:1000"]
    x509_svid_ttl_seconds: 3600
    dns_names: [web.local.svc]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.clients.identity import IdentityClient
from x0tta6bl4.identity.v1 import identity_pb2 as pb

_FIELDS = {
    "spiffe_id",
    "parent_id",
    "selectors",
    "x509_svid_ttl_seconds",
    "dns_names",
    "hint",
    "admin",
    "downstream",
}


def workload_from_file(path: Path) -> pb.Workload:
    """The workload in a YAML/JSON file; ValueError naming what is wrong."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of workload fields")
    unknown = sorted(set(map(str, data)) - _FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(unknown)}")
    selectors = []
    for i, text in enumerate(data.get("selectors") or []):
        kind, sep, value = str(text).partition(":")
        if not sep:
            raise ValueError(f"{path}: selectors[{i}]: expected type:value, got {text!r}")
        selectors.append(pb.Selector(type=kind, value=value))
    return pb.Workload(
        spiffe_id=str(data.get("spiffe_id", "")),
        parent_id=str(data.get("parent_id", "")),
        selectors=selectors,
        x509_svid_ttl_seconds=int(data.get("x509_svid_ttl_seconds", 0)),
        dns_names=[str(d) for d in data.get("dns_names") or []],
        hint=str(data.get("hint", "")),
        admin=bool(data.get("admin", False)),
        downstream=bool(data.get("downstream", False)),
    )


def _show(args: argparse.Namespace, message: Message, line: str) -> None:
    print(json.dumps(MessageToDict(message)) if args.json else line)


def _record_line(r: pb.WorkloadRecord) -> str:
    w = r.workload
    selectors = ",".join(f"{s.type}:{s.value}" for s in w.selectors)
    return f"{w.spiffe_id}  rev={r.revision}  parent={w.parent_id}  selectors={selectors}"


async def _run(c: IdentityClient, args: argparse.Namespace) -> int:
    cmd = args.identity_command
    if cmd == "apply":
        out = await c.apply(workload_from_file(Path(args.file)))
        state = "changed" if out.changed else "unchanged"
        _show(args, out, f"{out.record.workload.spiffe_id} {state} rev={out.record.revision}")
    elif cmd == "list":
        for record in await c.workloads(prefix=args.prefix):
            _show(args, record, _record_line(record))
    elif cmd == "get":
        record = await c.get(args.spiffe_id)
        _show(args, record, _record_line(record))
    elif cmd == "delete":
        print(json.dumps({"revision": await c.delete(args.spiffe_id)}))
    elif cmd == "reconcile":
        report = await c.reconcile()
        _show(
            args,
            report,
            f"desired={report.desired} actual={report.actual} created={len(report.created)} "
            f"updated={len(report.updated)} deleted={len(report.deleted)} "
            f"errors={len(report.errors)} in {report.duration_seconds:.3f}s",
        )
    elif cmd == "health":
        h = await c.health()
        _show(
            args,
            h,
            f"up={h.up} live={h.live} ready={h.ready} agents={len(h.agents)} {h.reason}".rstrip(),
        )
        return 0 if h.up else 4
    elif cmd == "validate":
        v = await c.validate(
            await asyncio.to_thread(Path(args.cert).read_bytes),
            expected_spiffe_id=args.spiffe_id,
            expected_trust_domain=args.trust_domain,
            policy=args.policy,
        )
        if args.json:
            print(json.dumps(MessageToDict(v)))
        else:
            print(f"{'VALID' if v.valid else 'INVALID'} {v.spiffe_id} (policy {v.policy})")
            for check in v.checks:
                result = pb.CheckResult.Name(check.result).removeprefix("CHECK_RESULT_")
                print(f"  {result:9} {check.name}: {check.reason}")
        return 0 if v.valid else 5
    elif cmd == "revoke":
        until = time.time() + args.for_s if args.for_s else None
        ban = await c.revoke(args.spiffe_id, args.reason, until_epoch_s=until)
        _show(args, ban, f"revoked {args.spiffe_id} ({ban.entries_deleted} entries deleted)")
    elif cmd == "lift":
        print(json.dumps({"revision": await c.lift(args.spiffe_id)}))
    else:
        for r in await c.revocations():
            _show(args, r, f"{r.spiffe_id}  {r.reason}  by {r.author}")
    return 0


def run(args: argparse.Namespace, state_dir: Path) -> int:
    from x0tta6bl4.devstack.operator import identity_client
    from x0tta6bl4.devstack.plan import SuitePlan

    async def main() -> int:
        async with identity_client(SuitePlan.load(state_dir)) as client:
            return await _run(client, args)

    try:
        return asyncio.run(main())
    except (ClientError, OSError, TimeoutError, ValueError) as err:
        print(f"x0 identity {args.identity_command}: {err}", file=sys.stderr)
        return 1


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``x0 identity ...`` on the CLI's subparsers."""
    top: argparse.ArgumentParser = sub.add_parser(
        "identity", help="workloads, SPIRE health, certificate checks and bans, as the operator"
    )
    top.add_argument("--json", action="store_true", help="the API's messages as JSON")
    # --json and --state-dir also after the subcommand (x0 identity list --json);
    # SUPPRESS keeps the top parser's value when they are not given there.
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="output as JSON"
    )
    json_flag.add_argument("--state-dir", default=argparse.SUPPRESS, help="suite state directory")
    subparsers = top.add_subparsers(dest="identity_command", required=True)
    add = functools.partial(subparsers.add_parser, parents=[json_flag])
    apply = add("apply", help="create or replace a workload from a YAML file")
    apply.add_argument("-f", "--file", required=True)
    listing = add("list", help="every workload")
    listing.add_argument("--prefix", default="", help="only SPIFFE IDs starting with this")
    for name, text in (("get", "one workload"), ("delete", "remove a workload")):
        add(name, help=text).add_argument("spiffe_id")
    add("reconcile", help="run a reconcile pass now and show what it changed")
    add("health", help="the SPIRE server's health (exit 4 if it is not up)")
    validate = add("validate", help="validate a certificate chain (exit 5 if not)")
    validate.add_argument("cert", help="PEM or DER file, leaf first")
    validate.add_argument("--spiffe-id", default="")
    validate.add_argument("--trust-domain", default="")
    validate.add_argument("--policy", default="")
    revoke = add("revoke", help="ban a SPIFFE ID")
    revoke.add_argument("spiffe_id")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument(
        "--for", dest="for_s", type=float, default=0, help="seconds (0: until lifted)"
    )
    add("lift", help="end a ban").add_argument("spiffe_id")
    add("revocations", help="the bans in force")
    return top

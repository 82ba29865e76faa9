"""The `x0` command.

x0 serve <service>          run one service process (config from X0_* variables)
x0 up [--state-dir DIR]     run the whole local suite under supervisord, wait until ready
x0 status [--json]          every component: address, ready, SPIFFE ID, SVID expiry
x0 whoami <service>         call Diagnostics.WhoAmI over mTLS as the operator
x0 down                     stop everything
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from x0tta6bl4.platform.config import SERVICES

DEFAULT_STATE_DIR = "var/local"


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("X0_SUITE_DIR") or DEFAULT_STATE_DIR).resolve()


def _serve(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"x0tta6bl4.{args.service}.main")
    return int(module.main())


def _up(args: argparse.Namespace) -> int:
    from x0tta6bl4.devstack.plan import SuitePlan
    from x0tta6bl4.devstack.suite import status, up

    plan = SuitePlan(_state_dir(args), port_base=args.port_base, svid_ttl_s=args.svid_ttl)
    try:
        up(plan)
    except (TimeoutError, RuntimeError) as err:
        print(f"x0 up: {err}", file=sys.stderr)
        return 1
    print()
    _print_table(status(plan))
    print(
        f"\nlogs: {plan.logs_dir}    stop: make down\n"
        f"try:  x0 whoami identity    (or: x0 status --json)"
    )
    return 0


def _print_table(rows: Sequence[object]) -> None:
    print(f"{'COMPONENT':<18} {'READY':<6} {'ADDRESS':<52} SPIFFE ID / DETAIL")
    for row in rows:
        r = dataclasses.asdict(row)  # type: ignore[call-overload]
        extra = r["spiffe_id"] + (
            f" (SVID until {r['svid_expires_at']})" if r["svid_expires_at"] else ""
        )
        if not r["ready"] and r["detail"]:
            extra += f"  [{r['detail']}]"
        print(f"{r['name']:<18} {'yes' if r['ready'] else 'NO':<6} {r['address']:<52} {extra}")


def _status(args: argparse.Namespace) -> int:
    from x0tta6bl4.devstack.plan import SuitePlan
    from x0tta6bl4.devstack.suite import status

    try:
        plan = SuitePlan.load(_state_dir(args))
    except FileNotFoundError as err:
        print(f"x0 status: {err}", file=sys.stderr)
        return 1
    rows = status(plan)
    if args.json:
        print(
            json.dumps(
                {
                    "components": [dataclasses.asdict(r) for r in rows],
                    "ready": all(r.ready for r in rows),
                },
                indent=2,
            )
        )
    else:
        _print_table(list(rows))
    return 0 if all(r.ready for r in rows) else 1


def _whoami(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from x0tta6bl4.devstack.operator import whoami
    from x0tta6bl4.devstack.plan import SuitePlan

    try:
        plan = SuitePlan.load(_state_dir(args))
        response = asyncio.run(whoami(plan, plan.instance(args.service)))
    except Exception as err:
        print(f"x0 whoami: {err}", file=sys.stderr)
        return 1
    print(json.dumps(MessageToDict(response), indent=2))
    return 0


def _down(args: argparse.Namespace) -> int:
    from x0tta6bl4.devstack.suite import down

    down(_state_dir(args))
    return 0


def _kv(args: argparse.Namespace) -> int:
    from x0tta6bl4.cli_kv import run

    return run(args, _state_dir(args))


def _identity(args: argparse.Namespace) -> int:
    from x0tta6bl4.cli_identity import run

    return run(args, _state_dir(args))


def _policy(args: argparse.Namespace) -> int:
    from x0tta6bl4.cli_policy import run

    return run(args, _state_dir(args))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="x0", description="x0tta6bl4 control-plane suite")
    sub = top.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one service process")
    serve.add_argument("service", choices=SERVICES)
    serve.set_defaults(run=_serve)
    for name, func, text in (
        ("up", _up, "run the local suite and wait until ready"),
        ("status", _status, "report every component of the local suite"),
        ("down", _down, "stop the local suite"),
        ("whoami", _whoami, "call WhoAmI on a service as the operator"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--state-dir",
            help=f"suite state directory (default {DEFAULT_STATE_DIR} or $X0_SUITE_DIR)",
        )
        cmd.set_defaults(run=func)
        if name == "up":
            cmd.add_argument(
                "--port-base",
                type=int,
                default=int(os.environ.get("X0_PORT_BASE", "17000")),
                help="ports are allocated from here (default 17000)",
            )
            cmd.add_argument(
                "--svid-ttl",
                type=int,
                default=900,
                help="X.509 SVID TTL in seconds for the workloads (default 900)",
            )
        if name == "status":
            cmd.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "whoami":
            cmd.add_argument("service", help="a service (identity, ...) or replica (consensus-2)")
    from x0tta6bl4.cli_kv import add_parser

    kv = add_parser(sub)
    kv.add_argument(
        "--state-dir", help=f"suite state directory (default {DEFAULT_STATE_DIR} or $X0_SUITE_DIR)"
    )
    kv.set_defaults(run=_kv)
    from x0tta6bl4.cli_identity import add_parser as add_identity
    from x0tta6bl4.cli_policy import add_parser as add_policy

    for add, run in ((add_identity, _identity), (add_policy, _policy)):
        group = add(sub)
        group.add_argument(
            "--state-dir",
            help=f"suite state directory (default {DEFAULT_STATE_DIR} or $X0_SUITE_DIR)",
        )
        group.set_defaults(run=run)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "serve":
        from x0tta6bl4.platform.telemetry import configure_logging

        configure_logging("x0", "warning")  # keep stdout for the command's own output
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())

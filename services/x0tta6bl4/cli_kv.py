"""``x0 kv``: the consensus store from the command line, as the operator of the local suite.

``x0 kv put KEY VALUE``, ``x0 kv get KEY``, ``x0 kv range PREFIX``, ``x0 kv del KEY
[--prefix]``, ``x0 kv watch PREFIX [--count N]``. Keys and values are UTF-8 text on the
command line; output is one JSON object per line (values as text when they decode, else
base64 under ``value_b64``). Built on :class:`x0tta6bl4.clients.consensus.ConsensusClient`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

from x0tta6bl4.clients.consensus import ConsensusClient
from x0tta6bl4.clients.consensus_types import Event, KeyValue
from x0tta6bl4.clients.errors import ClientError


def _kv_json(kv: KeyValue) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": kv.key.decode(errors="replace"),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    }
    try:
        out["value"] = kv.value.decode()
    except UnicodeDecodeError:
        out["value_b64"] = base64.b64encode(kv.value).decode()
    if kv.lease:
        out["lease"] = kv.lease
    return out


def _event_json(event: Event) -> dict[str, Any]:
    return {"type": event.type.value, "revision": event.revision, **_kv_json(event.kv)}


async def _run(kv: ConsensusClient, args: argparse.Namespace) -> int:
    if args.kv_command == "put":
        put = await kv.put(args.key.encode(), args.value.encode())
        print(json.dumps({"revision": put.revision}))
    elif args.kv_command == "get":
        got = await kv.get(args.key.encode())
        if got is None:
            print(json.dumps({"key": args.key, "found": False}))
            return 3
        print(json.dumps(_kv_json(got)))
    elif args.kv_command == "range":
        page = await kv.range(args.prefix.encode(), limit=args.limit)
        for item in page.kvs:
            print(json.dumps(_kv_json(item)))
        print(json.dumps({"count": page.count, "more": page.more, "revision": page.revision}))
    elif args.kv_command == "del":
        deleted = await kv.delete(args.key.encode(), prefix=args.prefix)
        print(json.dumps({"deleted": deleted.deleted, "revision": deleted.revision}))
    else:
        seen = 0
        async for event in kv.watch(
            args.prefix.encode(), prefix=True, start_revision=args.start_revision
        ):
            print(json.dumps(_event_json(event)), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0


def run(args: argparse.Namespace, state_dir: Path) -> int:
    from x0tta6bl4.devstack.operator import consensus_client
    from x0tta6bl4.devstack.plan import SuitePlan

    async def main() -> int:
        async with consensus_client(SuitePlan.load(state_dir)) as kv:
            return await _run(kv, args)

    try:
        return asyncio.run(main())
    except ClientError as err:
        print(f"x0 kv {args.kv_command}: {err}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, ValueError) as err:
        print(f"x0 kv {args.kv_command}: {err}", file=sys.stderr)
        return 1


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """``x0 kv ...`` on the CLI's subparsers."""
    kv: argparse.ArgumentParser = sub.add_parser(
        "kv", help="read and write the consensus store as the operator"
    )
    ops = kv.add_subparsers(dest="kv_command", required=True)
    put = ops.add_parser("put", help="set KEY to VALUE")
    put.add_argument("key")
    put.add_argument("value")
    get = ops.add_parser("get", help="KEY's value (exit 3 if absent)")
    get.add_argument("key")
    rng = ops.add_parser("range", help="keys under PREFIX")
    rng.add_argument("prefix")
    rng.add_argument("--limit", type=int, default=0)
    delete = ops.add_parser("del", help="delete KEY (or every key under it with --prefix)")
    delete.add_argument("key")
    delete.add_argument("--prefix", action="store_true")
    watch = ops.add_parser("watch", help="stream changes under PREFIX")
    watch.add_argument("prefix")
    watch.add_argument("--count", type=int, default=0, help="stop after N events")
    watch.add_argument("--start-revision", type=int, default=0)
    return kv

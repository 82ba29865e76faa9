"""Identity reconcile benchmark: passes over 1,000 and 10,000 workloads into a real SPIRE
server, side by side with SPIRE's own bulk create (``spire-server entry create -data``) of
the same entries, in one run.

``make bench-identity`` runs it (``ARGS=--quick``: 1,000 only). Real parts: a SPIRE 1.13.3
server and a 3-member consensus cluster on 127.0.0.1 (``tests/support/mesh.py``). The
identity side is the service's own code in this process: the :class:`Registry` on the
consensus cluster (workloads loaded through it before the clock starts) and the
:class:`Reconciler` holding its lease, through :class:`SpireEntries` over the admin socket.

Per size N:

* ``cli_bulk_create`` (the floor: SPIRE's own client, one batch file) - the N entries created
  by ``spire-server entry create -data``, on a server holding none of them;
* ``cold_pass`` - a reconcile pass that lists SPIRE, plans, and creates all N;
* ``repair_pass`` - 1 % of the entries deleted and 1 % edited behind its back, one pass;
* ``no_change_pass`` - a pass with nothing to do (what the periodic pass costs).

Writes ``bench-results/identity-reconcile.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.mesh import Mesh, consensus_cluster, svid_source  # noqa: E402
from x0tta6bl4.clients.consensus import ConsensusClient  # noqa: E402
from x0tta6bl4.clients.single_actor import SingleActor  # noqa: E402
from x0tta6bl4.devstack.binaries import find  # noqa: E402
from x0tta6bl4.identity.core.reconcile_plan import entry_id, is_owned  # noqa: E402
from x0tta6bl4.identity.core.workloads import Selector, Workload  # noqa: E402
from x0tta6bl4.identity.reconciler import Reconciler  # noqa: E402
from x0tta6bl4.identity.registry import Registry  # noqa: E402
from x0tta6bl4.identity.spire_api import SpireApi  # noqa: E402
from x0tta6bl4.identity.spire_entries import SpireEntries  # noqa: E402
from x0tta6bl4.identity.spire_types import SpireEntry  # noqa: E402

LOAD_CONCURRENCY = 64


def workload(td: str, parent: str, i: int) -> Workload:
    return Workload(
        spiffe_id=f"spiffe://{td}/ns/bench/sa/w{i:05d}",
        parent_id=parent,
        selectors=(Selector("unix", f"uid:{20000 + i}"),),
        x509_svid_ttl_s=900,
        dns_names=(f"w{i:05d}.bench.svc",),
    )


def cli_bulk_create(mesh: Mesh, workloads: list[Workload], work: Path) -> float:
    data = {
        "entries": [
            {
                "spiffe_id": w.spiffe_id,
                "parent_id": w.parent_id,
                "selectors": [{"type": s.type, "value": s.value} for s in w.selectors],
                "x509_svid_ttl": w.x509_svid_ttl_s,
                "dns_names": list(w.dns_names),
            }
            for w in workloads
        ]
    }
    path = work / f"entries-{len(workloads)}.json"
    path.write_text(json.dumps(data))
    argv = [find("spire-server"), "entry", "create", "-data", str(path)]
    argv += ["-socketPath", str(mesh.server.socket_path), "-output", "json"]
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    took = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"spire-server entry create -data failed: {done.stderr[-500:]}")
    return took


async def clear(spire: SpireApi, prefix: str) -> None:
    ids = [e.id for e in await spire.list_entries() if e.spiffe_id.startswith(prefix)]
    await spire.delete_entries(ids)


async def load(registry: Registry, workloads: list[Workload], author: str) -> float:
    gate = asyncio.Semaphore(LOAD_CONCURRENCY)

    async def one(w: Workload) -> None:
        async with gate:
            await registry.apply(w, expected_revision=0, author=author)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(w) for w in workloads))
    return time.perf_counter() - t0


async def measure(sizes: list[int], work: Path) -> list[dict[str, float | int]]:
    mesh = Mesh(work / "mesh")
    try:
        cluster = consensus_cluster(mesh, work / "raft")
        operator = mesh.workload("operator")
        members = [f"127.0.0.1:{p}" for p in cluster.ports.values()]
        td = mesh.trust_domain
        parent = mesh.server.agent_alias("bench-node")
        prefix = f"spiffe://{td}/ns/bench/"
        rows: list[dict[str, float | int]] = []
        async with svid_source(operator) as svids, SpireApi(str(mesh.server.socket_path)) as spire:
            kv = ConsensusClient(svids, members, caller_service="operator", timeout_s=30)
            registry = Registry(kv)
            actor = SingleActor(kv, "identity", "reconciler-bench", f"bench:{os.getpid()}")
            reconciler = Reconciler(registry, SpireEntries(spire), actor, interval_s=3600)
            reconciler.tenure = await actor.acquire()
            loaded = 0
            for n in sizes:
                everything = [workload(td, parent, i) for i in range(n)]
                load_s = await load(registry, everything[loaded:], operator.spiffe_id)
                loaded = n
                print(f"  {n}: workloads in the registry ({load_s:.1f} s)", flush=True)
                await clear(spire, prefix)
                cli_s = await asyncio.to_thread(cli_bulk_create, mesh, everything, work)
                await clear(spire, prefix)
                cold = await reconciler.pass_once()
                assert len(cold.created) == n and not cold.errors, cold.errors[:5]
                one_pct = max(1, n // 100)
                await spire.delete_entries([entry_id(w.spiffe_id) for w in everything[:one_pct]])
                edited = [
                    SpireEntry(
                        id=entry_id(w.spiffe_id),
                        spiffe_id=w.spiffe_id,
                        parent_id=w.parent_id,
                        selectors=(Selector("unix", "uid:1"),),
                        x509_svid_ttl_s=60,
                    )
                    for w in everything[one_pct : 2 * one_pct]
                ]
                await spire.update_entries(edited)
                repair = await reconciler.pass_once()
                assert len(repair.created) == len(repair.updated) == one_pct, repair
                idle = await reconciler.pass_once()
                assert not (idle.created or idle.updated or idle.deleted), idle
                owned = sum(1 for e in await spire.list_entries() if is_owned(e.id))
                assert owned == n, (owned, n)
                rows.append(
                    {
                        "workloads": n,
                        "cli_bulk_create_s": cli_s,
                        "cold_pass_s": cold.duration_s,
                        "repair_pass_s": repair.duration_s,
                        "repaired": 2 * one_pct,
                        "no_change_pass_s": idle.duration_s,
                    }
                )
                print(f"  {n}: done", flush=True)
            await kv.close()
        return rows
    finally:
        mesh.close()


def table(rows: list[dict[str, float | int]]) -> str:
    head = (
        f"{'workloads':>9}  {'spire-server bulk create':>24}  {'identity cold pass':>18}  "
        f"{'ratio':>5}  {'repair pass (2 %)':>17}  {'no-change pass':>14}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = float(r["cold_pass_s"]) / float(r["cli_bulk_create_s"])
        lines.append(
            f"{r['workloads']:>9}  {r['cli_bulk_create_s']:>23.2f}s  {r['cold_pass_s']:>17.2f}s  "
            f"{ratio:>5.2f}  {r['repair_pass_s']:>16.2f}s  {r['no_change_pass_s']:>13.2f}s"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="identity reconcile vs spire-server bulk create")
    parser.add_argument("--quick", action="store_true", help="1,000 workloads only")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench-results" / "identity-reconcile.json"
    )
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10000]
    print(f"identity reconcile bench: sizes {sizes}", flush=True)
    with tempfile.TemporaryDirectory(prefix="x0-bench-identity-") as tmp:
        rows = asyncio.run(measure(sizes, Path(tmp)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"reconcile": rows}, indent=2) + "\n")
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

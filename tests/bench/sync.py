"""Sync benchmark: the x0tta6bl4 CRDT core vs pycrdt (Y-CRDT), same workloads, one run.

``make bench-sync`` (full) or ``make bench-sync ARGS=--quick`` (under 60 s).

Both systems run in this process (memory: in a fresh subprocess each) on identical, seeded
operation streams. The x0tta6bl4 side is the pure core (``x0tta6bl4.sync.core``): a
:class:`Replica` whose top-level keys are the replicated map (as the service's
``Update(key, op)`` API exposes them), each an LWW register; a delete is ``Clear``. The pycrdt side
is a root ``Map`` of a ``Doc``; a delete is ``del``. Workloads:

* ``map_churn`` - N set/delete operations over 1,000 keys (3 sets : 1 delete), each its own
  transaction/event, with the encoded delta of every operation produced inside the timed loop
  (x0tta6bl4: ``encode(event.delta)``; pycrdt: the update of each transaction, from
  ``Doc.observe``) -> ops/s and mean encoded bytes per operation.
* ``counters`` - N increments. x0tta6bl4: a PN-Counter. pycrdt has no counter type, so it gets the
  usual Yjs counter pattern: each replica writes its own running count under its client id in a
  Map (``m[id] = m[id] + 1``) -> ops/s.
* ``merge_diverged`` - two replicas make 10,000 changes each on a shared key space while apart,
  then merge both ways -> seconds and merged changes/s. x0tta6bl4 merges through its own
  anti-entropy messages (digest -> delta batch or snapshot -> ack), each one encoded and decoded
  on the way with the wire codec the sync service puts in its gRPC messages (contexts:
  ``encode_context``; events: ``wire.encode_event``; snapshots: ``wire.encode_snapshot``; the
  protobuf envelope and transport are left out, as pycrdt has none); pycrdt through
  state-vector diffs (its API is bytes: ``get_update(state)`` + ``apply_update``). Both times
  include encoding and decoding; ``update_bytes`` is what crossed the "wire".
* ``memory_after_gc`` - N distinct keys of 32-byte values inserted, 90 % deleted, then GC
  (x0tta6bl4: ``Replica.gc``; pycrdt: Yrs collects deleted content on commit), in a fresh
  subprocess per system -> ``rss_bytes`` (RSS growth over the empty structure),
  ``live_bytes`` (the encoded size of the remaining state) and ``data_bytes`` (the raw bytes of
  the surviving keys and values).
* ``convergence`` of 3 and 5 replicas over loopback after a partition heals. x0tta6bl4: real
  sync service processes over mTLS (SPIRE + OPA, tests/support/mesh.py), each dialling its peers
  through a fault proxy; all links cut, each replica takes the writes through Update, links
  healed; seconds until every replica applied the same events, and the anti-entropy rounds
  (digest exchanges per peer, interval 200 ms; pushes every 50 ms also deliver deltas). pycrdt
  has no network layer, so the benchmark gives it a minimal one: one asyncio TCP server per
  replica on 127.0.0.1, full-mesh anti-entropy rounds (send state vector, receive diff, apply)
  -> seconds and rounds.

Writes ``bench-results/sync.json``; prints a table with ratios vs pycrdt. The exit status is
non-zero only if the peer (pycrdt) failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SYSTEMS = ("x0tta6bl4", "pycrdt")
KEYS = 1000


@dataclass
class Plan:
    churn_ops: int
    counter_ops: int
    diverged: int
    memory_keys: int
    convergence_writes: int
    nested_budget_s: float


# -- workloads as plain operation streams -------------------------------------------------------


def churn_stream(n: int) -> list[tuple[str, str | None]]:
    """(key, value) to set, or (key, None) to delete; 3 sets : 1 delete of the key just set."""
    ops: list[tuple[str, str | None]] = []
    for i in range(n):
        if i % 4 == 3:
            ops.append((f"k{(i - 1) % KEYS}", None))
        else:
            ops.append((f"k{i % KEYS}", f"v{i:014d}"))
    return ops


def diverged_stream(n: int, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    ops: list[tuple[str, str | None]] = []
    live: list[str] = []
    for i in range(n):
        if live and rng.random() < 0.2:
            ops.append((live.pop(rng.randrange(len(live))), None))
        else:
            key = f"k{rng.randrange(n // 2)}"
            ops.append((key, f"{seed}-{i:012d}"))
            live.append(key)
    return ops


# -- x0tta6bl4 ----------------------------------------------------------------------------------


class X0:
    name = "x0tta6bl4"

    def __init__(self) -> None:
        from x0tta6bl4.sync import core
        from x0tta6bl4.sync.core import wire

        self.core = core
        self.wire = wire
        self.lww = core.TypeSpec(core.TypeTag.LWW_REGISTER)
        self.pn = core.TypeSpec(core.TypeTag.PNCOUNTER)

    def replica(self, rid: str, peers: tuple[str, ...] = ()) -> Any:
        return self.core.Replica(rid, peers)

    def apply(self, r: Any, ops: list[tuple[str, str | None]], encode: bool) -> int:
        """Run ``ops``; return the total encoded delta bytes (0 unless ``encode``)."""
        core, lww = self.core, self.lww
        assign, clear, enc = core.Assign, core.Clear, core.encode
        total = 0
        for now, (key, value) in enumerate(ops, start=1):
            if value is None:
                if r.get(key) is None:
                    continue
                ev = r.update(key, clear(), now, lww)
            else:
                ev = r.update(key, assign(value), now, lww)
            if encode:
                total += len(enc(ev.delta))
        return total

    def map_churn(self, ops: list[tuple[str, str | None]]) -> dict[str, Any]:
        r = self.replica("a")
        t0 = time.perf_counter()
        total = self.apply(r, ops, encode=True)
        dt = time.perf_counter() - t0
        return {"ops_per_s": round(len(ops) / dt, 1), "bytes_per_op": round(total / len(ops), 2)}

    def nested_churn(self, ops: list[tuple[str, str | None]], budget_s: float) -> dict[str, Any]:
        """The same churn inside one OR-Map value (``MapUpdate``/``MapRemove``), time-capped."""
        core = self.core
        spec = core.TypeSpec(core.TypeTag.OR_MAP, self.lww)
        r = self.replica("a")
        total = done = 0
        t0 = time.perf_counter()
        for now, (key, value) in enumerate(ops, start=1):
            if value is None:
                op: Any = core.MapRemove(key)
            else:
                op = core.MapUpdate(key, core.Assign(value))
            total += len(core.encode(r.update("m", op, now, spec).delta))
            done += 1
            if done % 64 == 0 and time.perf_counter() - t0 > budget_s:
                break
        dt = time.perf_counter() - t0
        return {
            "ops_per_s": round(done / dt, 1),
            "bytes_per_op": round(total / done, 2),
            "ops": done,
            "capped": done < len(ops),
        }

    def counters(self, n: int) -> dict[str, Any]:
        core = self.core
        r = self.replica("a")
        inc, enc, pn = core.Increment(1), core.encode, self.pn
        total = 0
        t0 = time.perf_counter()
        for now in range(1, n + 1):
            total += len(enc(r.update("c", inc, now, pn).delta))
        dt = time.perf_counter() - t0
        assert core.value_of(r.get("c")) == n
        return {"ops_per_s": round(n / dt, 1), "bytes_per_op": round(total / n, 2)}

    def over_wire(self, msg: Any) -> tuple[Any, int]:
        """``msg`` sent and received as the sync service does: its parts encoded and decoded
        with the core wire codec the gRPC adapter uses (contexts: ``encode_context``; events:
        ``encode_event``; snapshots: ``encode_snapshot``) -> (decoded message, bytes)."""
        core, wire = self.core, self.wire
        if isinstance(msg, core.Digest | core.Ack):
            raw = core.encode_context(msg.applied)
            applied = core.decode_context(raw)
            if isinstance(msg, core.Digest):
                return core.Digest(msg.sender, applied, msg.want_snapshot), len(raw)
            return core.Ack(msg.sender, msg.seq, applied), len(raw)
        if isinstance(msg, core.DeltaBatch):
            events = [wire.encode_event(ev) for ev in msg.events]
            decoded = tuple(wire.decode_event(raw) for raw in events)
            return core.DeltaBatch(msg.sender, msg.seq, decoded), sum(map(len, events))
        raw = wire.encode_snapshot(msg)
        return wire.decode_snapshot(raw), len(raw)

    def merge_diverged(self, a_ops: list[Any], b_ops: list[Any]) -> dict[str, Any]:
        a, b = self.replica("a", ("b",)), self.replica("b", ("a",))
        self.apply(a, a_ops, encode=False)
        self.apply(b, b_ops, encode=False)
        now = len(a_ops) + len(b_ops) + 1
        messages = sent = 0

        def send(msg: Any) -> Any:
            nonlocal sent
            received, size = self.over_wire(msg)
            sent += size
            return received

        t0 = time.perf_counter()
        for dst, src in ((a, b), (b, a)):
            reply = src.on_digest(send(dst.digest()), now)
            while reply is not None:
                messages += 1
                for back in dst.receive(send(reply), now):
                    src.receive(send(back), now)
                reply = src.on_digest(send(dst.digest()), now)
        dt = time.perf_counter() - t0
        merged_keys: list[str] = a.keys()  # Replica.keys(), not a dict
        assert merged_keys == b.keys(), "x0tta6bl4 replicas did not converge (keys)"
        for key in merged_keys:
            assert self.core.value_of(a.get(key)) == self.core.value_of(b.get(key)), key
        changes = len(a_ops) + len(b_ops)
        return {
            "ops_per_s": round(changes / dt, 1),
            "seconds": round(dt, 4),
            "messages": messages,
            "update_bytes": sent,
        }


# -- pycrdt -------------------------------------------------------------------------------------


class PyCrdt:
    name = "pycrdt"

    def __init__(self) -> None:
        import pycrdt

        self.pycrdt = pycrdt

    def doc(self, client_id: int) -> tuple[Any, Any]:
        d = self.pycrdt.Doc(client_id=client_id)
        return d, d.get("m", type=self.pycrdt.Map)

    @staticmethod
    def apply(m: Any, ops: list[tuple[str, str | None]]) -> None:
        for key, value in ops:
            if value is None:
                if key in m:
                    del m[key]
            else:
                m[key] = value

    def map_churn(self, ops: list[tuple[str, str | None]]) -> dict[str, Any]:
        d, m = self.doc(1)
        sizes: list[int] = []
        sub = d.observe(lambda e: sizes.append(len(e.update)))
        t0 = time.perf_counter()
        self.apply(m, ops)
        dt = time.perf_counter() - t0
        d.unobserve(sub)
        return {
            "ops_per_s": round(len(ops) / dt, 1),
            "bytes_per_op": round(sum(sizes) / len(ops), 2),
        }

    def counters(self, n: int) -> dict[str, Any]:
        d, m = self.doc(1)
        sizes: list[int] = []
        sub = d.observe(lambda e: sizes.append(len(e.update)))
        me = str(d.client_id)
        t0 = time.perf_counter()
        for _ in range(n):
            m[me] = m.get(me, 0) + 1
        dt = time.perf_counter() - t0
        d.unobserve(sub)
        assert sum(m.values()) == n
        return {"ops_per_s": round(n / dt, 1), "bytes_per_op": round(sum(sizes) / n, 2)}

    def merge_diverged(self, a_ops: list[Any], b_ops: list[Any]) -> dict[str, Any]:
        (da, ma), (db, mb) = self.doc(1), self.doc(2)
        self.apply(ma, a_ops)
        self.apply(mb, b_ops)
        t0 = time.perf_counter()
        to_b = da.get_update(db.get_state())
        to_a = db.get_update(da.get_state())
        t1 = time.perf_counter()
        db.apply_update(to_b)
        da.apply_update(to_a)
        dt = time.perf_counter() - t0
        assert ma.to_py() == mb.to_py(), "pycrdt docs did not converge"
        changes = len(a_ops) + len(b_ops)
        return {
            "ops_per_s": round(changes / dt, 1),
            "seconds": round(dt, 4),
            "encode_seconds": round(t1 - t0, 4),
            "update_bytes": len(to_a) + len(to_b),
        }


# -- memory (fresh subprocess per system) -------------------------------------------------------


def held_bytes(root: object) -> int:
    """Bytes of every object reachable from ``root`` (each counted once; classes, modules
    and functions left out): the heap a structure holds, which RSS hides behind allocator
    fragmentation. Python objects only: pycrdt's state lives in Rust and is not seen."""
    import types

    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def child_memory(system: str, n: int) -> dict[str, Any]:
    proc = psutil.Process()
    value = "x" * 32
    keys = [f"key-{i:08d}" for i in range(n)]
    doomed = [k for i, k in enumerate(keys) if i % 10 != 0]
    if system == "x0tta6bl4":
        x0 = X0()
        r = x0.replica("a")
        gc.collect()
        base = proc.memory_info().rss
        x0.apply(r, [(k, value) for k in keys], encode=False)
        x0.apply(r, [(k, None) for k in doomed], encode=False)
        report = r.gc(2 * n + 1)
        gc.collect()
        rss = proc.memory_info().rss - base
        retained = r.keys()  # Replica.keys(), not a dict: every key ever written
        live = sum(len(x0.core.encode(r.get(k).value)) for k in retained)
        survivors = [k for k in retained if x0.core.value_of(r.get(k)) is not None]
        extra = {
            "heap_bytes": held_bytes(r),
            "gc_dropped_events": report.dropped_events,
            "log_size": r.log_size,
            "retained_keys": len(retained),
        }
    else:
        p = PyCrdt()
        d, m = p.doc(1)
        gc.collect()
        base = proc.memory_info().rss
        p.apply(m, [(k, value) for k in keys])
        p.apply(m, [(k, None) for k in doomed])
        gc.collect()
        rss = proc.memory_info().rss - base
        live = len(d.get_update())
        survivors = list(m.keys())
        extra = {}  # its tombstones are internal to Yrs (counted in live_bytes)
    data = sum(len(k.encode()) + len(value) for k in survivors)
    return {
        "live_bytes": live,
        "rss_bytes": rss,
        "data_bytes": data,
        "live_keys": len(survivors),
        **extra,
    }


def memory(system: str, n: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-memory", system, "--n", str(n)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory subprocess failed:\n{out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- convergence over loopback ------------------------------------------------------------------


async def x0_convergence(sizes: tuple[int, ...], writes: int) -> dict[str, Any]:
    """``n`` real sync replicas (processes, mTLS, SPIRE, OPA - tests/support/mesh.py), each
    dialling its peers through a fault proxy. All links are cut; each replica takes ``writes``
    changes through its Update API; the links heal; then the clock runs until every replica
    has applied the same events -> seconds since the heal and anti-entropy rounds (the most
    digest exchanges any replica completed with one peer in that time)."""
    import re
    import tempfile

    sys.path.insert(0, str(ROOT))
    from tests.support.faultproxy import FaultNetwork
    from tests.support.mesh import Mesh, client, free_port, svid_source, sync_cluster
    from x0tta6bl4.sync.v1 import sync_pb2, sync_pb2_grpc

    ae_ms = 200
    env = {"X0_SYNC_PUSH_INTERVAL_MS": "50", "X0_SYNC_ANTI_ENTROPY_INTERVAL_MS": str(ae_ms)}
    lww = sync_pb2.CrdtType(kind=sync_pb2.CRDT_KIND_LWW_REGISTER)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="x0-bench-sync-") as tmp:
        mesh = Mesh(Path(tmp) / "mesh")
        net = FaultNetwork()
        try:
            operator = mesh.workload("operator")
            for n in sizes:
                ids = tuple(f"r{i}" for i in range(n))
                ports = {rid: free_port() for rid in ids}
                links = {
                    f"{i}->{j}": net.link(f"{n}:{i}->{j}", ports[j]).port
                    for i in ids
                    for j in ids
                    if i != j
                }
                names = [f"{n}:{name}" for name in links]
                cluster = sync_cluster(
                    mesh, Path(tmp) / f"sync-{n}", ids, env=env, links=links, ports=ports
                )
                net.partition(*names, mode="reset")

                async def rounds(cluster: Any = cluster) -> dict[tuple[str, str], int]:
                    """Completed digest exchanges per (replica, peer), all scraped at once so
                    the reading is taken close to the moment it is asked for."""
                    members = list(cluster.members.items())
                    pages = await asyncio.gather(
                        *(asyncio.to_thread(member.metrics) for _, member in members)
                    )
                    out: dict[tuple[str, str], int] = {}
                    for (rid, _), page in zip(members, pages, strict=True):
                        for m in re.finditer(
                            r'^x0tta6bl4_sync_anti_entropy_rounds_total\{peer="([^"]+)"\} (\S+)',
                            page,
                            re.M,
                        ):
                            out[rid, m.group(1)] = int(float(m.group(2)))
                    return out

                async with contextlib.AsyncExitStack() as stack:
                    svids = await stack.enter_async_context(svid_source(operator))
                    clients = [
                        await stack.enter_async_context(client(svids, cluster.members[rid]))
                        for rid in ids
                    ]

                    async def write(idx: int, c: Any) -> None:
                        rng = random.Random(idx)
                        for w in range(writes):
                            req = sync_pb2.UpdateRequest(
                                key=f"k{rng.randrange(writes)}",
                                type=lww,
                                operation=sync_pb2.Operation(
                                    assign=sync_pb2.Assign(
                                        value=sync_pb2.Scalar(text=f"r{idx}-{w}")
                                    )
                                ),
                            )
                            await c.call(
                                lambda ch, t, req=req: sync_pb2_grpc.SyncServiceStub(ch).Update(
                                    req, timeout=t
                                ),
                                idempotent=False,
                            )

                    await asyncio.gather(*(write(i, c) for i, c in enumerate(clients)))

                    async def applied(clients: list[Any] = clients) -> set[bytes]:
                        async def one(c: Any) -> bytes:
                            st = await c.call(
                                lambda ch, t: sync_pb2_grpc.SyncServiceStub(ch).Stats(
                                    sync_pb2.StatsRequest(), timeout=t
                                ),
                                idempotent=True,
                            )
                            return bytes(st.applied)

                        # All replicas at once: one reading, not one spread over n calls.
                        return set(await asyncio.gather(*(one(c) for c in clients)))

                    start_rounds = await rounds()
                    net.heal(*names)
                    t0 = time.perf_counter()
                    while len(await applied()) != 1:
                        if time.perf_counter() - t0 > 60:
                            raise RuntimeError(f"{n} replicas did not converge in 60 s")
                        await asyncio.sleep(0.01)
                    dt = time.perf_counter() - t0
                    end_rounds = await rounds()
                    # Rounds: the most digest exchanges one replica completed with one peer
                    # between the heal and the moment convergence was observed.
                    done = max(
                        (v - start_rounds.get(k, 0) for k, v in end_rounds.items()), default=0
                    )
                    out[str(n)] = {"seconds": round(dt, 4), "rounds": max(1, done)}
                for member in cluster.members.values():
                    member.process.stop(timeout_s=10)
        finally:
            net.close()
            mesh.close()
    return out


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(struct.pack(">I", len(data)) + data)
    await writer.drain()


async def _recv(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(size)


async def pycrdt_convergence(n: int, writes: int) -> dict[str, Any]:
    """``n`` pycrdt replicas, each behind a TCP server on 127.0.0.1; each writes ``writes``
    changes while partitioned; then full-mesh anti-entropy rounds until all are equal."""
    p = PyCrdt()
    docs = [p.doc(i + 1) for i in range(n)]
    rng = random.Random(n)
    for i, (_, m) in enumerate(docs):
        p.apply(m, [(f"k{rng.randrange(writes)}", f"r{i}-{w}") for w in range(writes)])

    handlers: set[asyncio.Task[Any]] = set()

    async def handle(idx: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while True:
                state = await _recv(reader)  # the puller's state vector
                await _send(writer, docs[idx][0].get_update(state))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the puller hung up
        finally:
            writer.close()

    servers = []
    for idx in range(n):
        server = await asyncio.start_server(lambda r, w, idx=idx: handle(idx, r, w), "127.0.0.1", 0)
        servers.append(server)
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    conns: dict[tuple[int, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    for i in range(n):
        for j in range(n):
            if i != j:
                conns[i, j] = await asyncio.open_connection("127.0.0.1", ports[j])

    async def pull(i: int, j: int) -> bytes:
        reader, writer = conns[i, j]
        await _send(writer, docs[i][0].get_state())
        return await _recv(reader)

    def converged() -> bool:
        first = docs[0][1].to_py()
        return all(m.to_py() == first for _, m in docs[1:])

    rounds = 0
    t0 = time.perf_counter()
    try:
        while not converged():
            rounds += 1
            pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
            updates = await asyncio.gather(*(pull(i, j) for i, j in pairs))
            for (i, _), update in zip(pairs, updates, strict=True):
                docs[i][0].apply_update(update)
            if rounds > 20:
                raise RuntimeError("pycrdt replicas did not converge in 20 rounds")
        dt = time.perf_counter() - t0
    finally:
        for _, writer in conns.values():
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        for server in servers:
            server.close()
            await server.wait_closed()
    return {"seconds": round(dt, 4), "rounds": rounds}


# -- driver -------------------------------------------------------------------------------------


def run_all(
    systems: list[str], plan: Plan, repeats: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Workload by workload, the systems interleaved ``repeats`` times (best run kept), so a
    burst of load on the machine hits both sides alike."""
    churn = churn_stream(plan.churn_ops)
    a_ops, b_ops = diverged_stream(plan.diverged, 1), diverged_stream(plan.diverged, 2)
    impls: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for name in systems:
        try:
            impls[name] = X0() if name == "x0tta6bl4" else PyCrdt()
            results[name] = {"extra": {}}
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {err}"}
            log(f"  {name}: FAILED to load\n{traceback.format_exc()}")

    def step(name: str, label: str, fn: Callable[[], Any]) -> Any:
        gc.collect()
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as err:
            log(f"  {name}: {label} FAILED\n{traceback.format_exc()}")
            return {"error": f"{type(err).__name__}: {err}"}
        log(f"  {name}: {label} {res} ({time.perf_counter() - t0:.1f}s)")
        return res

    def best(label: str, fn: Callable[[Any], Any]) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for rep in range(repeats):
            for name, impl in impls.items():
                res = step(name, f"{label} #{rep + 1}", lambda impl=impl: fn(impl))
                old = kept.get(name)
                better = old is not None and "error" not in old and "error" not in res
                if (
                    old is None
                    or "error" in res
                    or (better and res["ops_per_s"] > old["ops_per_s"])
                ):
                    kept[name] = res  # a failure in any run is kept and reported
        return kept

    for name, res in best("map_churn", lambda impl: impl.map_churn(churn)).items():
        results[name]["map_churn"] = res
    for name, res in best("counters", lambda impl: impl.counters(plan.counter_ops)).items():
        if "bytes_per_op" in res:
            results[name]["extra"]["counter_bytes_per_op"] = res.pop("bytes_per_op")
        results[name]["counters"] = res
    merges = best("merge_diverged", lambda impl: impl.merge_diverged(a_ops, b_ops))
    for name, res in merges.items():
        for k in ("messages", "encode_seconds", "update_bytes"):
            if k in res:
                results[name]["extra"][f"merge_{k}"] = res.pop(k)
        results[name]["merge_diverged"] = res
    if "x0tta6bl4" in impls:
        results["x0tta6bl4"]["extra"]["nested_ormap_churn"] = step(
            "x0tta6bl4",
            "nested_ormap_churn",
            lambda: impls["x0tta6bl4"].nested_churn(churn, plan.nested_budget_s),
        )
    for name in impls:
        mem = step(name, "memory_after_gc", lambda name=name: memory(name, plan.memory_keys))
        for k in [k for k in mem if k not in ("live_bytes", "rss_bytes", "error")]:
            results[name]["extra"][f"memory_{k}"] = mem.pop(k)
        results[name]["memory_after_gc"] = mem
        convergence: dict[str, Any] = {}
        if name == "x0tta6bl4":
            both = step(
                name,
                "convergence 3 and 5",
                lambda: asyncio.run(x0_convergence((3, 5), plan.convergence_writes)),
            )
            for n in (3, 5):
                convergence[str(n)] = both.get(str(n), both) if "error" not in both else both
        for n in (3, 5):
            if name == "x0tta6bl4":
                continue
            else:
                convergence[str(n)] = step(
                    name,
                    f"convergence {n}",
                    lambda n=n: asyncio.run(pycrdt_convergence(n, plan.convergence_writes)),
                )
        results[name]["convergence"] = convergence
    # The key order: map_churn, counters, merge_diverged, memory_after_gc, convergence.
    return results


def _num(results: dict[str, Any], system: str, *path: str) -> float | None:
    node: Any = results.get(system, {})
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return None
        node = node[p]
    return float(node) if isinstance(node, int | float) else None


def _cell(results: dict[str, Any], system: str, *path: str) -> str:
    node: Any = results.get(system, {})
    for p in path:
        if isinstance(node, dict) and "error" in node:
            return "not built" if str(node["error"]).startswith("not built") else "FAILED"
        if not isinstance(node, dict) or p not in node:
            return "-"
        node = node[p]
    if isinstance(node, bool):
        return str(node)
    if isinstance(node, int | float):
        v = float(node)
        return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"
    return "-"


def table(results: dict[str, Any], plan: Plan) -> str:
    rows: list[tuple[str, tuple[str, ...], bool]] = [
        (f"map churn ops/s ({plan.churn_ops:,} ops)", ("map_churn", "ops_per_s"), True),
        ("map churn encoded bytes/op", ("map_churn", "bytes_per_op"), False),
        (f"counter increments/s ({plan.counter_ops:,})", ("counters", "ops_per_s"), True),
        (
            f"merge 2x{plan.diverged:,} diverged, changes/s",
            ("merge_diverged", "ops_per_s"),
            True,
        ),
        ("  merge seconds", ("merge_diverged", "seconds"), False),
        (
            f"memory after GC: RSS growth MiB ({plan.memory_keys:,} keys, 90% deleted)",
            ("memory_after_gc", "rss_bytes"),
            False,
        ),
        ("  encoded live state bytes", ("memory_after_gc", "live_bytes"), False),
        ("  raw live data bytes", ("extra", "memory_data_bytes"), False),
        ("  heap the replica holds, bytes (x0 only)", ("extra", "memory_heap_bytes"), False),
        ("  keys retained (live: 10%)", ("extra", "memory_retained_keys"), False),
        ("convergence 3 replicas s", ("convergence", "3", "seconds"), False),
        ("  rounds", ("convergence", "3", "rounds"), False),
        ("convergence 5 replicas s", ("convergence", "5", "seconds"), False),
        ("  rounds", ("convergence", "5", "rounds"), False),
        ("nested OR-Map churn ops/s (x0 only)", ("extra", "nested_ormap_churn", "ops_per_s"), True),
    ]
    width = 60
    lines = [f"{'':{width}}{'x0tta6bl4':>12}{'pycrdt':>12}{'x0 / pycrdt':>13}"]
    lines.append("-" * len(lines[0]))
    for label, path, _higher in rows:
        cells = []
        for s in SYSTEMS:
            if path[-1] == "rss_bytes":
                v = _num(results, s, *path)
                cells.append(f"{v / 2**20:.1f}" if v is not None else _cell(results, s, *path))
            else:
                cells.append(_cell(results, s, *path))
        a, b = _num(results, "x0tta6bl4", *path), _num(results, "pycrdt", *path)
        ratio = f"{a / b:.2f}x" if a is not None and b else "-"
        lines.append(f"{label:{width}}{cells[0]:>12}{cells[1]:>12}{ratio:>13}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="x0tta6bl4 sync core vs pycrdt")
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument("--systems", type=lambda s: s.split(","), default=list(SYSTEMS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "sync.json")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved runs per workload; the best is kept"
    )
    parser.add_argument("--child-memory", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory, args.n)))
        return 0
    if args.quick:
        plan = Plan(20_000, 20_000, 10_000, 20_000, 500, nested_budget_s=3.0)
    else:
        plan = Plan(100_000, 100_000, 10_000, 100_000, 2_000, nested_budget_s=30.0)
    t0 = time.perf_counter()
    results = run_all(args.systems, plan, args.repeats, lambda s: print(s, flush=True))
    mode = "quick" if args.quick else "full"
    print(
        f"\nsync benchmark ({mode}, {time.perf_counter() - t0:.0f}s): same process, same ops, "
        f"best of {args.repeats} interleaved runs; load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    print(table(results, plan))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")
    peer = results.get("pycrdt", {})

    def failed(node: Any) -> bool:
        if isinstance(node, dict):
            return "error" in node or any(failed(v) for v in node.values())
        return False

    return 1 if "pycrdt" in args.systems and failed(peer) else 0


if __name__ == "__main__":
    sys.exit(main())

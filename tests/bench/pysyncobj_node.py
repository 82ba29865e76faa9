"""One PySyncObj node of the consensus benchmark, with a small gRPC front end.

Each node is its own process: a ``SyncObj`` holding a replicated ``dict`` (with PySyncObj's
``journalFile`` and ``fullDumpFile`` on disk) plus a ``grpc.aio`` server that speaks the same
subset of etcd's v3 API as the benchmark's etcd client (``etcdserverpb.KV/Put``,
``etcdserverpb.KV/Range`` and ``etcdserverpb.Maintenance/Status``, from
``tests/bench/proto/etcd_min.proto``), so one load generator drives both systems:

* ``Put`` calls the replicated ``put`` method with a callback; the RPC completes when PySyncObj
  reports the command committed and applied on this node (``FAIL_REASON.SUCCESS``), or fails with
  ``UNAVAILABLE`` naming the failure reason. A command given to a follower is forwarded to the
  leader by PySyncObj itself.
* ``Range`` with ``serializable=false`` is a *log read*: the replicated ``get`` method goes
  through the Raft log like a write, so it is linearizable (PySyncObj has no ReadIndex or lease
  reads). ``serializable=true`` reads this node's local copy.
* ``Status`` reports this node's member id (1-based) and the member it believes is the leader.

Durability: PySyncObj 0.3.17 appends its journal to an mmap'd file and stores term and vote with
a rename; it never fsyncs log entries before acknowledging (it has no option to), so it runs
with weaker durability than etcd here. That is PySyncObj's limit, not a benchmark setting.

Usage: ``pysyncobj_node.py --id 1 --members 1=127.0.0.1:7001,2=...,3=... --grpc-port 8001
--data-dir DIR``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import grpc
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, replicated

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd_api import pb, pb_grpc
from etcd_frontend import serve_until_signalled


class KVStore(SyncObj):  # type: ignore[misc]
    """A replicated dict of bytes; ``revision`` counts the applied puts."""

    def __init__(self, self_addr: str, partners: list[str], conf: SyncObjConf) -> None:
        self.data: dict[bytes, bytes] = {}
        self.revision = 0
        super().__init__(self_addr, partners, conf)

    @replicated  # type: ignore[misc]
    def put(self, key: bytes, value: bytes) -> int:
        self.data[key] = value
        self.revision += 1
        return self.revision

    @replicated  # type: ignore[misc]
    def get(self, key: bytes) -> tuple[bytes | None, int]:
        return self.data.get(key), self.revision


_FAIL_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}


class Frontend(pb_grpc.KVServicer, pb_grpc.MaintenanceServicer):  # type: ignore[misc]
    def __init__(self, store: KVStore, member_id: int, ids_by_addr: dict[str, int]) -> None:
        self.store = store
        self.member_id = member_id
        self.ids_by_addr = ids_by_addr

    async def _replicated(self, method: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def done(result: Any, err: int) -> None:  # runs on PySyncObj's tick thread
            def resolve() -> None:
                if fut.done():
                    return
                if err == FAIL_REASON.SUCCESS:
                    fut.set_result(result)
                else:
                    fut.set_exception(RuntimeError(_FAIL_NAMES.get(err, f"fail reason {err}")))

            loop.call_soon_threadsafe(resolve)

        method(*args, callback=done)
        return await fut

    def _header(self, revision: int) -> Any:
        return pb.ResponseHeader(
            member_id=self.member_id,
            revision=revision,
            raft_term=self.store.raftCurrentTerm,
        )

    async def Put(self, request: Any, context: Any) -> Any:
        try:
            revision = await self._replicated(self.store.put, request.key, request.value)
        except RuntimeError as err:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"put failed: {err}")
        return pb.PutResponse(header=self._header(revision))

    async def Range(self, request: Any, context: Any) -> Any:
        if request.serializable:
            value, revision = self.store.data.get(request.key), self.store.revision
        else:
            try:
                value, revision = await self._replicated(self.store.get, request.key)
            except RuntimeError as err:
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"read failed: {err}")
        kvs = [] if value is None else [pb.KeyValue(key=request.key, value=value)]
        return pb.RangeResponse(header=self._header(revision), kvs=kvs, count=len(kvs))

    async def Status(self, request: Any, context: Any) -> Any:
        leader = self.store._getLeader()
        leader_id = 0
        if leader is not None:
            leader_id = self.ids_by_addr.get(getattr(leader, "address", str(leader)), 0)
        return pb.StatusResponse(
            header=self._header(self.store.revision),
            version="pysyncobj",
            leader=leader_id,
            raftIndex=self.store.raftCommitIndex,
            raftTerm=self.store.raftCurrentTerm,
        )


async def serve(args: argparse.Namespace) -> None:
    members: dict[int, str] = {}
    for item in args.members.split(","):
        mid, addr = item.split("=", 1)
        members[int(mid)] = addr
    data_dir = Path(args.data_dir)
    conf = SyncObjConf(
        journalFile=str(data_dir / "journal.bin"),
        fullDumpFile=str(data_dir / "dump.bin"),
        dynamicMembershipChange=False,
        # True (PySyncObj's default) holds new entries until the next append period (0.1 s);
        # False sends each entry at once and wakes the tick loop (lower latency).
        appendEntriesUseBatch=args.batch,
    )
    me = members[args.id]
    store = KVStore(me, [a for i, a in sorted(members.items()) if i != args.id], conf)
    frontend = Frontend(store, args.id, {a: i for i, a in members.items()})
    banner = f"pysyncobj node {args.id} raft={me} grpc=127.0.0.1:{args.grpc_port}"
    await serve_until_signalled(frontend, args.grpc_port, banner)
    store.destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--members", required=True, help="1=host:port,2=host:port,...")
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--batch",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="PySyncObj appendEntriesUseBatch (default: off, see docs/benchmarks.md)",
    )
    args = parser.parse_args()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

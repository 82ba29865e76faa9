"""The consensus benchmark's reference floor: a bare ``grpc.aio`` server with an in-memory dict.

One process, plaintext, no replication, no disk, no interceptors - it serves the same subset of
etcd's v3 API as the benchmark's other targets (``KV/Put``, ``KV/Range``,
``Maintenance/Status`` from ``tests/bench/proto/etcd_min.proto``) and does nothing else. It is
not a peer: it bounds what any service built on Python ``grpc.aio`` can reach on this machine
with this load generator, since every request to such a service pays at least this much.

Usage: ``floor_node.py --grpc-port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from etcd_api import pb, pb_grpc
from etcd_frontend import serve_until_signalled


class Floor(pb_grpc.KVServicer, pb_grpc.MaintenanceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.revision = 0

    def _header(self) -> Any:
        return pb.ResponseHeader(member_id=1, revision=self.revision, raft_term=1)

    async def Put(self, request: Any, context: Any) -> Any:
        self.data[request.key] = request.value
        self.revision += 1
        return pb.PutResponse(header=self._header())

    async def Range(self, request: Any, context: Any) -> Any:
        value = self.data.get(request.key)
        kvs = [] if value is None else [pb.KeyValue(key=request.key, value=value)]
        return pb.RangeResponse(header=self._header(), kvs=kvs, count=len(kvs))

    async def Status(self, request: Any, context: Any) -> Any:
        return pb.StatusResponse(
            header=self._header(), version="grpc-floor", leader=1, raftIndex=self.revision
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-port", type=int, required=True)
    port = parser.parse_args().grpc_port
    asyncio.run(serve_until_signalled(Floor(), port, f"grpc floor on 127.0.0.1:{port}"))


if __name__ == "__main__":
    main()

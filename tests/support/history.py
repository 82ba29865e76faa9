"""Recording client histories against a real consensus cluster, for the linearizability
checker (:mod:`tests.support.linearizability`).

Every operation gets an *invoke* and a *complete* position in one global event order (a
counter bumped on the test's event loop, so the order matches real time as the clients saw
it). A write whose RPC failed with UNAVAILABLE or DEADLINE_EXCEEDED has an unknown outcome
(it may have been applied, at any point after its invocation) and is recorded with
``ret=None``; a failed read tells nothing and is left out. Every written value is unique.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from tests.support.linearizability import CheckResult, Op, check_kv
from tests.support.mesh import unary_call
from x0tta6bl4.consensus.v1 import cluster_pb2, cluster_pb2_grpc, kv_pb2, kv_pb2_grpc
from x0tta6bl4.platform.client import MeshClient

UNKNOWN_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def tick(self) -> int:
        return next(self._clock)

    def check(self) -> CheckResult:
        return check_kv(self.ops)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops:
            name = op.kind if op.ret is not None else f"{op.kind}?"
            if op.kind == "cas" and op.ret is not None:
                name = f"cas-{'ok' if op.ok else 'failed'}"
            out[name] = out.get(name, 0) + 1
        return out


@dataclass
class RecordingClient:
    """One logical client (one operation at a time) recording into ``history``.

    ``pick`` chooses the member client to send each operation to (members may be down).
    """

    client_id: int
    history: History
    pick: Callable[[], MeshClient]
    timeout_s: float = 3.0
    _values: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _value(self) -> str:
        return f"c{self.client_id}-{next(self._values)}"

    async def _call(self, rpc: str, request: Any) -> Any:
        return await unary_call(
            self.pick(), kv_pb2_grpc.KVServiceStub, rpc, request, self.timeout_s
        )

    async def put(self, key: str) -> None:
        value = self._value()
        call = self.history.tick()
        try:
            await self._call("Put", kv_pb2.PutRequest(key=key.encode(), value=value.encode()))
        except aio.AioRpcError as err:
            if err.code() not in UNKNOWN_CODES:
                raise
            self.history.ops.append(Op(self.client_id, "put", key, value, call, None))
            return
        self.history.ops.append(Op(self.client_id, "put", key, value, call, self.history.tick()))

    async def get(self, key: str) -> None:
        call = self.history.tick()
        try:
            response = await self._call("Get", kv_pb2.GetRequest(key=key.encode()))
        except aio.AioRpcError as err:
            if err.code() not in UNKNOWN_CODES:
                raise
            return
        ret = self.history.tick()
        value = response.kv.value.decode() if response.found else None
        self.history.ops.append(Op(self.client_id, "get", key, value, call, ret))

    async def cas(self, key: str, expected: str | None) -> None:
        value = self._value()
        compare = (
            kv_pb2.Compare(key=key.encode(), operator=kv_pb2.Compare.OPERATOR_EQUAL, version=0)
            if expected is None
            else kv_pb2.Compare(
                key=key.encode(),
                operator=kv_pb2.Compare.OPERATOR_EQUAL,
                value=expected.encode(),
            )
        )
        request = kv_pb2.TxnRequest(
            compare=[compare],
            success=[kv_pb2.TxnOp(put=kv_pb2.TxnPut(key=key.encode(), value=value.encode()))],
        )
        call = self.history.tick()
        try:
            response = await self._call("Txn", request)
        except aio.AioRpcError as err:
            if err.code() not in UNKNOWN_CODES:
                raise
            self.history.ops.append(
                Op(self.client_id, "cas", key, value, call, None, expected=expected)
            )
            return
        self.history.ops.append(
            Op(
                self.client_id,
                "cas",
                key,
                value,
                call,
                self.history.tick(),
                expected=expected,
                ok=bool(response.succeeded),
            )
        )

    async def random_op(self, rng: random.Random, keys: list[str]) -> None:
        """A put, get or CAS (expecting the value this client last read) on a random key."""
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.35:
            await self.put(key)
        elif roll < 0.75:
            await self.get(key)
        else:
            last = next(
                (
                    op.value
                    for op in reversed(self.history.ops)
                    if op.key == key and op.kind == "get" and op.client == self.client_id
                ),
                None,
            )
            await self.cas(key, last)


@dataclass
class ClusterClients:
    """One mTLS client per member (dialled directly, never through a fault proxy)."""

    by_member: dict[int, MeshClient]
    down: set[int] = field(default_factory=set)

    def alive(self) -> list[int]:
        return [i for i in self.by_member if i not in self.down]

    async def call(self, member: int, stub: Any, rpc: str, request: Any, timeout_s: float) -> Any:
        return await unary_call(self.by_member[member], stub, rpc, request, timeout_s)

    async def status(self, member: int, timeout_s: float = 3) -> Any:
        return await self.call(
            member,
            cluster_pb2_grpc.ClusterServiceStub,
            "Status",
            cluster_pb2.StatusRequest(),
            timeout_s,
        )

    async def put(self, member: int, key: bytes, value: bytes, timeout_s: float = 5) -> Any:
        return await self.call(
            member,
            kv_pb2_grpc.KVServiceStub,
            "Put",
            kv_pb2.PutRequest(key=key, value=value),
            timeout_s,
        )

    async def range(self, member: int, prefix: bytes, *, serializable: bool = False) -> Any:
        return await self.call(
            member,
            kv_pb2_grpc.KVServiceStub,
            "Range",
            kv_pb2.RangeRequest(prefix=prefix, serializable=serializable),
            10,
        )

    async def leaders(self, members: list[int] | None = None) -> dict[int, tuple[int, int]]:
        """(leader_id, term) as each reachable member of ``members`` sees it."""
        seen: dict[int, tuple[int, int]] = {}
        for member in members or self.alive():
            try:
                s = await self.status(member)
            except aio.AioRpcError:
                continue
            seen[member] = (int(s.leader_id), int(s.term))
        return seen

    async def leader(self, timeout_s: float = 15) -> int:
        """The leader that some live member names, waiting out an election in progress
        (under load a heartbeat can be late and a new election start at any moment)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for leader, _term in (await self.leaders()).values():
                if leader and leader not in self.down:
                    return leader
            await asyncio.sleep(0.05)
        raise AssertionError(f"no live member named a leader within {timeout_s}s")

    async def agreed_leader(
        self, members: list[int] | None = None, *, exclude: int = 0, timeout_s: float = 30
    ) -> tuple[int, int]:
        """Wait until every one of ``members`` names the same leader (not ``exclude``)."""
        members = members or self.alive()
        deadline = time.monotonic() + timeout_s
        last: dict[int, tuple[int, int]] = {}
        while time.monotonic() < deadline:
            last = await self.leaders(members)
            views = set(last.values())
            if len(last) == len(members) and len(views) == 1:
                leader, term = views.pop()
                if leader and leader != exclude and leader in members:
                    return leader, term
            await asyncio.sleep(0.1)
        raise AssertionError(f"members {members} did not agree on a leader: {last}")

    async def wait_caught_up(
        self, member: int, leader: int | None = None, timeout_s: float = 30
    ) -> None:
        """Wait until ``member`` follows ``leader`` (by default: whichever live member leads,
        asked anew each round) and has applied everything the leader has committed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                current = leader or await self.leader()
                target = (await self.status(current)).commit_index
                mine = await self.status(member)
                follows = mine.leader_id == leader if leader else bool(mine.leader_id)
                if follows and mine.applied_index >= target:
                    return
            except aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"member {member} did not catch up with leader {leader or '(any)'} in {timeout_s}s"
        )

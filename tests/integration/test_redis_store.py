"""The platform's Redis adapter against a real redis-server: round trips, readiness that follows
the server down and back up on the same port, typed errors for a server that does not answer,
and the command metrics."""

from __future__ import annotations

import dataclasses
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.mesh import eventually
from x0tta6bl4.devstack.binaries import find
from x0tta6bl4.devstack.procs import ManagedProcess, free_port, wait_until
from x0tta6bl4.platform.config import Settings
from x0tta6bl4.platform.health import Readiness
from x0tta6bl4.platform.http_routes import HttpRouter
from x0tta6bl4.platform.redis_store import (
    RedisCommandError,
    RedisStore,
    RedisTimeout,
    RedisUnavailable,
    masked_url,
)
from x0tta6bl4.platform.server import Runtime
from x0tta6bl4.platform.svid import SvidSource
from x0tta6bl4.platform.telemetry import Telemetry

pytestmark = pytest.mark.integration

SERVICE = "redistest"


class RedisServer:
    """redis-server on 127.0.0.1:``port`` without persistence (as ``x0 up`` runs it), in
    ``root``; ``start`` again after ``stop`` reuses the port."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> RedisServer:
        argv = [find("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--dir", str(self.root), "--save", "", "--appendonly", "no"]
        self.process = ManagedProcess("redis", argv, log_path=self.root / "redis.log").start()
        wait_until(self.answers, timeout_s=20, what="redis-server", diagnose=self.process.log_tail)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout_s=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    redis = RedisStore(redis_server.url, service=SERVICE, timeout_s=0.5)
    try:
        yield redis
    finally:
        await redis.close()


def _commands(command: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "x0tta6bl4_redis_commands_total",
        {"service": SERVICE, "command": command, "result": result},
    )
    return value or 0.0


async def test_values_round_trip_and_expire(store: RedisStore) -> None:
    assert await store.get("x0:missing") is None
    assert await store.set("x0:k", "v1")
    assert await store.get("x0:k") == b"v1"
    assert not await store.set("x0:k", "v2", only_if_absent=True)
    assert await store.get("x0:k") == b"v1"
    assert await store.incr("x0:n") == 1
    assert await store.incr("x0:n", 41) == 42
    assert await store.set("x0:short", b"\x00\xff", ttl_s=0.05)

    async def expired() -> bool:
        return await store.get("x0:short") is None

    await eventually(expired, timeout_s=10, what="a key set with ttl_s=0.05 to expire")
    assert await store.expire("x0:k", 60)
    assert not await store.expire("x0:missing", 60)
    assert await store.delete("x0:k", "x0:n", "x0:missing") == 2


async def test_a_batch_runs_its_commands_in_one_transaction(store: RedisStore) -> None:
    replies = await (
        store.batch().incr("x0:bucket", 3).expire("x0:bucket", 30).get("x0:bucket").execute()
    )
    assert replies == [3, True, b"3"]
    with pytest.raises(RedisCommandError, match=r"PIPELINE failed: .*not an integer"):
        await store.batch().set("x0:text", "abc").incr("x0:text").execute()


async def test_commands_are_counted_by_command_and_result(store: RedisStore) -> None:
    before_ok, before_error = _commands("SET", "ok"), _commands("INCRBY", "error")
    await store.set("x0:word", "abc")
    with pytest.raises(RedisCommandError, match="INCRBY failed"):
        await store.incr("x0:word")
    assert _commands("SET", "ok") == before_ok + 1
    assert _commands("INCRBY", "error") == before_error + 1
    duration = REGISTRY.get_sample_value(
        "x0tta6bl4_redis_command_duration_seconds_count", {"service": SERVICE, "command": "SET"}
    )
    assert duration is not None and duration >= 1


async def test_readiness_follows_redis_down_and_back_up_on_the_same_port(
    redis_server: RedisServer, store: RedisStore
) -> None:
    assert await store.set("x0:before", "1")
    ok, detail = await store.ready()
    assert ok, detail

    redis_server.stop()
    ok, detail = await store.ready()
    assert not ok
    assert detail.startswith(f"Redis at {redis_server.url}: PING ")
    with pytest.raises(RedisUnavailable) as caught:
        await store.get("x0:before")
    assert caught.value.command == "GET" and caught.value.url == redis_server.url
    assert _commands("GET", "unavailable") >= 1

    redis_server.start()

    async def ready_again() -> bool:
        return (await store.ready())[0]

    await eventually(ready_again, timeout_s=30, what="readiness after Redis restarted")
    # Nothing persisted: the state is gone, and the store works again without a restart.
    assert await store.get("x0:before") is None
    assert await store.set("x0:after", "2")
    assert await store.get("x0:after") == b"2"


async def test_a_server_that_does_not_answer_gives_a_typed_timeout(
    redis_server: RedisServer, store: RedisStore
) -> None:
    assert await store.set("x0:k", "v")
    assert redis_server.process is not None
    redis_server.process.signal(signal.SIGSTOP)  # keeps its sockets, answers nothing
    try:
        with pytest.raises(RedisTimeout, match=r"GET got no answer within 0\.5s") as caught:
            await store.get("x0:k")
        assert caught.value.url == redis_server.url
        ok, detail = await store.ready()
        assert not ok and "PING got no answer within 0.5s" in detail
    finally:
        redis_server.process.signal(signal.SIGCONT)

    async def answers() -> bool:
        try:
            return await store.get("x0:k") == b"v"
        except RedisTimeout:
            return False

    await eventually(answers, timeout_s=10, what="commands after the server resumed")


async def test_attached_to_a_runtime_it_is_a_readiness_check_closed_on_stop(
    redis_server: RedisServer,
) -> None:
    settings = Settings(service=SERVICE, redis_url=redis_server.url, redis_timeout_s=0.5)
    telemetry = Telemetry(SERVICE)
    readiness = Readiness()
    runtime = Runtime(
        settings,
        SvidSource("/nonexistent"),
        telemetry,
        readiness,
        HttpRouter(SERVICE, telemetry.tracer),
    )
    try:
        assert RedisStore.attach(dataclasses.replace(runtime, settings=Settings(SERVICE))) is None
        store = RedisStore.attach(runtime)
        assert store is not None
        ready, checks = await readiness.evaluate()
        assert ready and checks == {"redis": f"ok: Redis at {redis_server.url} answers"}
        redis_server.stop()
        ready, checks = await readiness.evaluate()
        assert not ready and checks["redis"].startswith(f"not ready: Redis at {redis_server.url}")
        assert len(runtime.teardowns) == 1
        await runtime.teardowns[0]()
    finally:
        telemetry.shutdown(timeout_s=1)


def test_urls_in_errors_have_no_password() -> None:
    assert masked_url("redis://:s3cret@10.0.0.1:6379/2") == "redis://:***@10.0.0.1:6379/2"
    assert masked_url("rediss://app:s3cret@h:6380") == "rediss://app:***@h:6380"
    assert masked_url("unix:///run/redis.sock?password=s3cret") == "unix:///run/redis.sock"
    assert masked_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


async def test_hashes_sorted_sets_and_streams_round_trip(store: RedisStore) -> None:
    assert await store.hset("x0:h", {"a": "1", "b": b"\x00"}) == 2
    assert await store.hset("x0:h", {"a": "2"}) == 0
    assert await store.hgetall("x0:h") == {"a": b"2", "b": b"\x00"}
    assert await store.hgetall("x0:none") == {}

    assert await store.zadd("x0:z", {"old": 1.0, "new": 5.0}) == 2
    assert await store.zrange_by_score("x0:z", 2.0) == ["new"]
    assert await store.zrem_by_score("x0:z", float("-inf"), 2.0) == 1
    assert await store.zrange_by_score("x0:z") == ["new"]

    ids = [await store.xadd("x0:s", {"n": str(i)}) for i in range(5)]
    assert await store.xlen("x0:s") == 5
    assert [f["n"] for _, f in await store.xrange("x0:s")] == [b"0", b"1", b"2", b"3", b"4"]
    newest = await store.xrevrange("x0:s", count=2)
    assert [entry_id for entry_id, _ in newest] == [ids[4], ids[3]]
    assert [i for i, _ in await store.xrevrange("x0:s", f"({ids[3]}", ids[1])] == ids[1:3][::-1]
    assert await store.xtrim("x0:s", minid=ids[1]) == 1  # exact trimming, counted
    assert await store.xtrim("x0:s", maxlen=2) == 2
    assert [i for i, _ in await store.xrange("x0:s")] == ids[3:]
    await store.xadd("x0:s", {"n": "5"}, maxlen=2)
    assert await store.xlen("x0:s") == 2
    with pytest.raises(ValueError, match="exactly one of maxlen and minid"):
        await store.xtrim("x0:s")

    replies = await (
        store.batch()
        .xadd("x0:t", {"n": "a"})
        .xadd("x0:t", {"n": "b"})
        .xtrim("x0:t", maxlen=1)
        .hset("x0:h2", {"k": "v"})
        .hgetall("x0:h2")
        .zadd("x0:z2", {"m": 1.0})
        .zrem_by_score("x0:z2", 0, 2)
        .execute()
    )
    assert isinstance(replies[0], str) and replies[0] < replies[1]
    assert replies[2:] == [1, 1, {"k": b"v"}, 1, 1]
    with pytest.raises(RedisCommandError, match=r"HGETALL failed: .*WRONGTYPE"):
        await store.hgetall("x0:s")

"""Redis for a service's fast shared state, with bounded waits, typed errors, metrics and a
readiness check.

**State in Redis is rebuildable by design.** Redis runs without persistence (``x0 up`` starts
it with ``--save "" --appendonly no``) and a restart empties it. Keep in it only what the
service can lose and rebuild — rate-limit buckets, circuit-breaker state, dedup marks, caches —
and treat a missing key as "start over" (a full bucket, a closed breaker), never as lost data.
What must not be lost lives in consensus or sync.

Connection (from ``X0_REDIS_URL`` and ``X0_REDIS_TIMEOUT_S``):

- socket connect and command timeouts of ``timeout_s``; a command that gets no answer in time
  raises :class:`RedisTimeout` at once (not retried: the command may have run);
- a bounded pool (``max_connections``); waiting for a free connection is bounded by
  ``timeout_s`` too, then :class:`RedisUnavailable`;
- connection errors (refused, reset, closed by a restarting server) retried ``retries`` times
  with exponential backoff and jitter (redis-py's ``Retry``), so a restarted Redis is used
  again without the service noticing. A reply lost to a reset connection can thus apply an
  ``INCR`` twice — acceptable for the rebuildable state above, and the reason there is no
  retry on timeouts.

Every command is counted in ``x0tta6bl4_redis_commands_total{service,command,result}``
(``result``: ok, error, timeout, unavailable) and timed in
``x0tta6bl4_redis_command_duration_seconds{service,command}``. Errors name the command and the
URL (password masked). :meth:`RedisStore.ready` is a readiness check (``PING``).

A service opens it in its ``register`` hook: ``store = RedisStore.attach(runtime)`` (None when
``X0_REDIS_URL`` is empty) adds the "redis" readiness check and closes the pool on stop.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rex
from prometheus_client import Counter, Histogram
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from x0tta6bl4.platform.telemetry import _LATENCY_BUCKETS as LATENCY_BUCKETS

if TYPE_CHECKING:
    from x0tta6bl4.platform.server import Runtime

T = TypeVar("T")
Value = bytes | str | int | float
StreamEntry = tuple[str, dict[str, bytes]]  # (entry id "ms-seq", fields)

REDIS_COMMANDS = Counter(
    "x0tta6bl4_redis_commands",
    "Redis commands sent (a pipeline counts once), by result.",
    ["service", "command", "result"],
)
REDIS_DURATION = Histogram(
    "x0tta6bl4_redis_command_duration_seconds",
    "Time for a Redis command (or pipeline) including connection retries.",
    ["service", "command"],
    buckets=LATENCY_BUCKETS,
)


class RedisStoreError(Exception):
    """A Redis command failed; ``command`` and ``url`` (password masked) say which."""

    def __init__(self, url: str, command: str, problem: str) -> None:
        super().__init__(f"Redis at {url}: {command} {problem}")
        self.url, self.command = url, command


class RedisUnavailable(RedisStoreError):
    """Redis could not be reached (after the retries), or no pooled connection was free."""


class RedisTimeout(RedisStoreError):
    """Redis did not answer within the timeout; the command may or may not have run."""


class RedisCommandError(RedisStoreError):
    """Redis answered with an error (a wrong type, out of memory, a bad argument)."""


def masked_url(url: str) -> str:
    """``url`` without its password and query (``redis://user:***@host:6379/0``)."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:***@{netloc.rpartition('@')[2]}"
    return f"{parts.scheme}://{netloc}{parts.path}"


def _milliseconds(ttl_s: float) -> int:
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, got {ttl_s}")
    return max(1, round(ttl_s * 1000))


class RedisStore:
    """Typed Redis commands on one bounded connection pool (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        timeout_s: float,
        max_connections: int = 16,
        retries: int = 2,
    ) -> None:
        self.url = masked_url(url)
        self.timeout_s = timeout_s
        self._service = service
        retry = Retry(
            ExponentialWithJitterBackoff(cap=min(1.0, timeout_s), base=0.05),
            retries,
            supported_errors=(rex.ConnectionError,),
        )
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=retry,
            client_name=f"x0tta6bl4-{service}",
        )
        self._redis = aioredis.Redis(connection_pool=pool)

    @classmethod
    def attach(cls, runtime: Runtime, **options: Any) -> RedisStore | None:
        """The store of ``X0_REDIS_URL`` for a service's ``register`` hook, with the "redis"
        readiness check added and the pool closed on stop; None when no URL is set.
        ``options`` go to the constructor (``max_connections``, ``retries``)."""
        settings = runtime.settings
        if not settings.redis_url:
            return None
        store = cls(
            settings.redis_url,
            service=settings.service,
            timeout_s=settings.redis_timeout_s,
            **options,
        )
        runtime.readiness.add("redis", store.ready)
        runtime.on_stop(store.close)
        return store

    async def _run(self, command: str, call: Callable[[], Awaitable[T]]) -> T:
        started, result = time.perf_counter(), "ok"
        try:
            return await call()
        except rex.TimeoutError as err:
            result = "timeout"
            raise RedisTimeout(
                self.url, command, f"got no answer within {self.timeout_s}s"
            ) from err
        except rex.ConnectionError as err:
            result = "unavailable"
            raise RedisUnavailable(self.url, command, f"could not be sent: {err}") from err
        except rex.RedisError as err:
            result = "error"
            raise RedisCommandError(self.url, command, f"failed: {err}") from err
        finally:
            REDIS_COMMANDS.labels(self._service, command, result).inc()
            REDIS_DURATION.labels(self._service, command).observe(time.perf_counter() - started)

    async def get(self, key: str) -> bytes | None:
        """The value of ``key``, None if it is not set."""
        value: Any = await self._run("GET", lambda: self._redis.get(key))
        return None if value is None else bytes(value)

    async def set(
        self, key: str, value: Value, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key`` (expiring after ``ttl_s`` seconds, millisecond precision, if given);
        with ``only_if_absent``, only if it is not set. True if it was set."""
        px = None if ttl_s is None else _milliseconds(ttl_s)
        done = await self._run("SET", lambda: self._redis.set(key, value, px=px, nx=only_if_absent))
        return bool(done)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; how many existed."""
        return int(await self._run("DEL", lambda: self._redis.delete(*keys)))

    async def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer at ``key`` (0 if not set); the new value."""
        return int(await self._run("INCRBY", lambda: self._redis.incrby(key, amount)))

    async def expire(self, key: str, ttl_s: float) -> bool:
        """Let ``key`` expire after ``ttl_s`` seconds; False if it is not set."""
        ms = _milliseconds(ttl_s)
        return bool(await self._run("PEXPIRE", lambda: self._redis.pexpire(key, ms)))

    async def hset(self, key: str, fields: Mapping[str, Value]) -> int:
        """Set ``fields`` of the hash at ``key``; how many fields are new."""
        mapping: dict[Any, Any] = dict(fields)
        return int(await self._run("HSET", lambda: self._redis.hset(key, mapping=mapping)))

    async def hgetall(self, key: str) -> dict[str, bytes]:
        """Every field of the hash at ``key`` ({} if it is not set)."""
        reply: Any = await self._run("HGETALL", lambda: self._redis.hgetall(key))
        return _hash(reply)

    async def zadd(self, key: str, members: Mapping[str, float]) -> int:
        """Add ``members`` with their scores to the sorted set at ``key`` (updating the scores
        of members already in it); how many are new."""
        mapping: dict[Any, Any] = dict(members)
        reply: Any = await self._run("ZADD", lambda: self._redis.zadd(key, mapping))
        return int(reply)

    async def zrange_by_score(
        self, key: str, low: float = float("-inf"), high: float = float("inf")
    ) -> list[str]:
        """Members of the sorted set at ``key`` with ``low <= score <= high``, lowest first."""
        reply: Any = await self._run(
            "ZRANGEBYSCORE", lambda: self._redis.zrangebyscore(key, low, high)
        )
        return [bytes(member).decode() for member in reply]

    async def zrem_by_score(self, key: str, low: float, high: float) -> int:
        """Remove the members with ``low <= score <= high``; how many were removed."""
        return int(
            await self._run(
                "ZREMRANGEBYSCORE", lambda: self._redis.zremrangebyscore(key, low, high)
            )
        )

    async def xadd(
        self,
        key: str,
        fields: Mapping[str, Value],
        *,
        maxlen: int | None = None,
        minid: str | None = None,
    ) -> str:
        """Append an entry to the stream at ``key`` (id chosen by Redis, ``"<ms>-<seq>"``),
        trimming it exactly to at most ``maxlen`` entries and/or to ids >= ``minid``; the new
        entry's id. (:meth:`xtrim` does the same trimming and says how much it removed.)"""
        _check_trim(maxlen, minid)
        mapping: dict[Any, Any] = dict(fields)
        reply: Any = await self._run(
            "XADD",
            lambda: self._redis.xadd(key, mapping, maxlen=maxlen, minid=minid, approximate=False),
        )
        return bytes(reply).decode()

    async def xtrim(self, key: str, *, maxlen: int | None = None, minid: str | None = None) -> int:
        """Trim the stream at ``key`` exactly to ``maxlen`` entries or to ids >= ``minid``
        (exactly one of them); how many entries were removed."""
        _check_trim(maxlen, minid, one=True)
        return int(
            await self._run(
                "XTRIM",
                lambda: self._redis.xtrim(key, maxlen=maxlen, minid=minid, approximate=False),
            )
        )

    async def xlen(self, key: str) -> int:
        """How many entries the stream at ``key`` holds (0 if it is not set)."""
        return int(await self._run("XLEN", lambda: self._redis.xlen(key)))

    async def xrange(
        self, key: str, start: str = "-", end: str = "+", *, count: int | None = None
    ) -> list[StreamEntry]:
        """Entries of the stream at ``key`` with ``start <= id <= end`` (``"(id"`` excludes
        it), oldest first, at most ``count``."""
        reply: Any = await self._run(
            "XRANGE", lambda: self._redis.xrange(key, start, end, count=count)
        )
        return _entries(reply)

    async def xrevrange(
        self, key: str, end: str = "+", start: str = "-", *, count: int | None = None
    ) -> list[StreamEntry]:
        """Entries of the stream at ``key`` with ``start <= id <= end`` (``"(id"`` excludes
        it), newest first, at most ``count``."""
        reply: Any = await self._run(
            "XREVRANGE", lambda: self._redis.xrevrange(key, end, start, count=count)
        )
        return _entries(reply)

    def batch(self, *, transaction: bool = True) -> RedisBatch:
        """Commands sent together in one round trip (atomically, as MULTI/EXEC, unless
        ``transaction=False``): queue them on the batch, then ``await batch.execute()``."""
        return RedisBatch(self._redis.pipeline(transaction=transaction), self._run)

    async def ping(self) -> None:
        await self._run("PING", self._redis.ping)

    async def ready(self) -> tuple[bool, str]:
        """A readiness check: does Redis answer PING within the timeout?"""
        try:
            await self.ping()
        except RedisStoreError as err:
            return False, str(err)
        return True, f"Redis at {self.url} answers"

    async def close(self) -> None:
        """Close the pool's connections."""
        await self._redis.aclose(close_connection_pool=True)


class RedisBatch:
    """Commands queued for one round trip; :meth:`execute` returns their replies in order
    (GET → bytes or None, SET/PEXPIRE → bool, XADD → the entry id as str, HGETALL → dict,
    DEL/INCRBY/HSET/ZADD/ZREMRANGEBYSCORE/XTRIM → int)."""

    def __init__(self, pipeline: Any, run: Callable[[str, Callable[[], Awaitable[Any]]], Any]):
        self._pipeline = pipeline
        self._run = run
        self._names: list[str] = []

    def get(self, key: str) -> RedisBatch:
        self._pipeline.get(key)
        self._names.append("GET")
        return self

    def set(self, key: str, value: Value, *, ttl_s: float | None = None) -> RedisBatch:
        self._pipeline.set(key, value, px=None if ttl_s is None else _milliseconds(ttl_s))
        self._names.append("SET")
        return self

    def delete(self, *keys: str) -> RedisBatch:
        self._pipeline.delete(*keys)
        self._names.append("DEL")
        return self

    def incr(self, key: str, amount: int = 1) -> RedisBatch:
        self._pipeline.incrby(key, amount)
        self._names.append("INCRBY")
        return self

    def expire(self, key: str, ttl_s: float) -> RedisBatch:
        self._pipeline.pexpire(key, _milliseconds(ttl_s))
        self._names.append("PEXPIRE")
        return self

    def hset(self, key: str, fields: Mapping[str, Value]) -> RedisBatch:
        self._pipeline.hset(key, mapping=dict(fields))
        self._names.append("HSET")
        return self

    def hgetall(self, key: str) -> RedisBatch:
        self._pipeline.hgetall(key)
        self._names.append("HGETALL")
        return self

    def zadd(self, key: str, members: Mapping[str, float]) -> RedisBatch:
        self._pipeline.zadd(key, dict(members))
        self._names.append("ZADD")
        return self

    def zrem_by_score(self, key: str, low: float, high: float) -> RedisBatch:
        self._pipeline.zremrangebyscore(key, low, high)
        self._names.append("ZREMRANGEBYSCORE")
        return self

    def xadd(
        self,
        key: str,
        fields: Mapping[str, Value],
        *,
        maxlen: int | None = None,
        minid: str | None = None,
    ) -> RedisBatch:
        _check_trim(maxlen, minid)
        self._pipeline.xadd(key, dict(fields), maxlen=maxlen, minid=minid, approximate=False)
        self._names.append("XADD")
        return self

    def xtrim(self, key: str, *, maxlen: int | None = None, minid: str | None = None) -> RedisBatch:
        _check_trim(maxlen, minid, one=True)
        self._pipeline.xtrim(key, maxlen=maxlen, minid=minid, approximate=False)
        self._names.append("XTRIM")
        return self

    async def execute(self) -> list[Any]:
        """Send the queued commands; their replies (a command's error is raised, as
        :class:`RedisCommandError`)."""
        pipeline = self._pipeline
        try:
            replies = await self._run("PIPELINE", pipeline.execute)
        finally:
            await pipeline.reset()
        return [_typed(name, reply) for name, reply in zip(self._names, replies, strict=True)]


def _typed(name: str, reply: Any) -> Any:
    if name == "GET":
        return None if reply is None else bytes(reply)
    if name in ("SET", "PEXPIRE"):
        return bool(reply)
    if name == "XADD":
        return bytes(reply).decode()
    if name == "HGETALL":
        return _hash(reply)
    return int(reply)


def _check_trim(maxlen: int | None, minid: str | None, *, one: bool = False) -> None:
    if maxlen is not None and maxlen < 0:
        raise ValueError(f"maxlen must not be negative, got {maxlen}")
    if one and (maxlen is None) == (minid is None):
        raise ValueError("give exactly one of maxlen and minid")


def _hash(reply: Any) -> dict[str, bytes]:
    return {bytes(k).decode(): bytes(v) for k, v in (reply or {}).items()}


def _entries(reply: Any) -> list[StreamEntry]:
    return [(bytes(entry_id).decode(), _hash(fields)) for entry_id, fields in reply or []]

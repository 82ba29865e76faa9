"""One sync replica at run time: the core :class:`Replica`, its durable store, and the
replication loops that talk to its peers over ``ReplicationService``.

Concurrency: every change of the replica happens under ``lock`` together with the append (and
fsync) of the events it produced, and everything that *sends* events reads the replica under the
same lock. So nothing leaves this process - a client acknowledgement, a batch, an ack, a digest -
before it is durable: a crash can never make this replica mint a dot a peer already saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from typing import Any

import grpc
import structlog
from grpc import aio

from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.config import parse_peer_address
from x0tta6bl4.platform.errors import InvalidArgument, Unavailable
from x0tta6bl4.sync import metrics
from x0tta6bl4.sync.convert import context_arg, invalid
from x0tta6bl4.sync.core import (
    Ack,
    CausalContext,
    DeltaBatch,
    Digest,
    Event,
    InvalidOperation,
    Op,
    Read,
    Replica,
    Snapshot,
    SyncError,
    TypeSpec,
    encode_context,
)
from x0tta6bl4.sync.core.wire import decode_event, decode_snapshot, encode_event, encode_snapshot
from x0tta6bl4.sync.persistence import CorruptStore, Persistence
from x0tta6bl4.sync.settings import SyncSettings
from x0tta6bl4.sync.v1 import replication_pb2, replication_pb2_grpc

log = structlog.get_logger(__name__)

CALL_TIMEOUT_S = 2.0
SNAPSHOT_CHUNK_BYTES = 256 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


def decode_events(raw: Iterable[bytes]) -> tuple[Event, ...]:
    out = []
    for i, data in enumerate(raw):
        try:
            out.append(decode_event(data))
        except InvalidOperation as err:
            raise InvalidArgument(f"events[{i}]", str(err)) from None
    return tuple(out)


class _Watch:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.pending: dict[str, str] = {}  # key -> origin, coalesced
        self.wake = asyncio.Event()

    def offer(self, key: str, origin: str) -> None:
        if key.startswith(self.prefix):
            self.pending[key] = origin
            self.wake.set()


class SyncNode:
    def __init__(self, settings: SyncSettings, client_factory: Callable[[str], MeshClient]):
        self.settings = settings
        self.id = settings.replica_id
        self._client_factory = client_factory
        self.store = Persistence(settings.data_dir)
        self.lock = asyncio.Lock()
        self.replica = Replica(self.id, bootstrapped=not settings.join)
        self.addresses: dict[str, str] = {p: str(a) for p, a in settings.peers.items()}
        self._clients: dict[str, MeshClient] = {}
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_exchange: dict[str, float] = {}
        self.gc_collected = 0
        self.gc_dropped = 0
        self.snapshots_received = 0
        self.restored_events = 0
        self.failed: str | None = None
        self._watches: set[_Watch] = set()

    # -- life ----------------------------------------------------------------------------

    def open(self) -> None:
        """Load the checkpoint and replay the event log (raises CorruptStore)."""
        checkpoint, events, members = self.store.load()
        if checkpoint is not None:
            if checkpoint.replica != self.id:
                raise CorruptStore(
                    f"{self.store.checkpoint_path} belongs to replica {checkpoint.replica!r}, "
                    f"not X0_SYNC_REPLICA_ID={self.id!r}"
                )
            self.replica = Replica.restore(checkpoint, self.replica.config)
        for ev in events:
            self.replica.replay(ev)
        self.restored_events = len(events)
        for peer, addr in members.items():
            self.addresses.setdefault(peer, addr)
        for peer in (*self.replica.retired, *self.replica.departing):
            self.addresses.pop(peer, None)  # left before the restart (even if configured)
        for peer in self.addresses:
            self.replica.join(peer)
        log.info(
            "sync_store_opened",
            replica=self.id,
            checkpoint=checkpoint is not None,
            replayed_events=len(events),
            truncated_tail_bytes=self.store.truncated_tail_bytes,
            keys=self.replica.key_count,
        )

    async def start(self) -> None:
        for peer in list(self.addresses):
            self._start_loop(peer)
        self._spawn(self._gc_loop())
        if self.settings.join:
            self._spawn(self._announce())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_loop(self, peer: str) -> None:
        if peer not in self._loops:
            self._loops[peer] = asyncio.ensure_future(self._peer_loop(peer))

    async def close(self) -> None:
        for task in [*self._loops.values(), *self._tasks]:
            task.cancel()
        for client in self._clients.values():
            await client.close()
        with contextlib.suppress(Exception):
            async with self.lock:
                await asyncio.to_thread(self.store.write_checkpoint, self.replica.checkpoint())
        self.store.close()
        log.info("sync_stopped", keys=self.replica.key_count)

    async def ready(self) -> tuple[bool, str]:
        if self.failed:
            return False, self.failed
        if not self.replica.bootstrapped:
            return False, "joining: waiting for a snapshot from a peer"
        return True, f"replica {self.id}, {self.replica.key_count} keys"

    # -- durable changes -----------------------------------------------------------------

    async def _persist(self, events: list[Event]) -> None:
        """Append ``events``; caller holds the lock. A disk failure stops all writes."""
        if not events:
            return
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.store.append, events)
        except OSError as err:
            raise self._storage_failed(err) from None
        if self.store.logged_since_checkpoint >= self.settings.checkpoint_events:
            await self._checkpoint()
        metrics.LOG_FSYNC_DURATION.observe(time.perf_counter() - t0)

    async def _checkpoint(self) -> None:
        """Write the whole replica as the checkpoint; caller holds the lock."""
        try:
            await asyncio.to_thread(self.store.write_checkpoint, self.replica.checkpoint())
        except OSError as err:
            raise self._storage_failed(err) from None

    def _storage_failed(self, err: OSError) -> Unavailable:
        """Stop taking writes and handing out state: what is in memory may not be on disk, and
        a restart would reuse the dots of events that were never made durable."""
        self.failed = f"storage failed: {err}"
        log.error("sync_storage_failed", error=str(err))
        return Unavailable(f"the change could not be made durable: {err}")

    def _check_writable(self) -> None:
        if self.failed:
            raise Unavailable(self.failed)

    async def update(self, key: str, op: Op, spec: TypeSpec | None) -> tuple[Event, CausalContext]:
        async with self.lock:
            self._check_writable()
            try:
                event = self.replica.update(key, op, now_ms(), spec)
            except InvalidOperation as err:
                if err.field == "replica":
                    raise Unavailable(err.reason) from None
                raise invalid(err) from None
            await self._persist([event])
            context = self.replica.context
        self._notify([event.key], self.id)
        return event, context

    def get(self, key: str) -> Read | None:
        return self.replica.get(key)

    async def apply_batch(self, batch: DeltaBatch) -> Ack:
        async with self.lock:
            self._check_writable()
            before = self.replica.applied
            t0 = time.perf_counter()
            try:
                ack = self.replica.on_batch(batch, now_ms())
            except InvalidOperation as err:
                raise InvalidArgument(err.field, err.reason) from None
            metrics.MERGE_DURATION.observe(time.perf_counter() - t0)
            new: dict[object, Event] = {}
            for ev in batch.events:
                if not before.contains(ev.dot):
                    new.setdefault(ev.dot, ev)
            await self._persist(list(new.values()))
        self.last_exchange[batch.sender] = time.monotonic()
        for ev in new.values():
            self._notify([ev.key], ev.dot.replica)
        return ack

    async def apply_snapshot(self, snap: Snapshot) -> Ack:
        async with self.lock:
            self._check_writable()
            t0 = time.perf_counter()
            retired = len(self.replica.retired)
            try:
                ack = self.replica.on_snapshot(snap, now_ms())
            except InvalidOperation as err:
                raise InvalidArgument(err.field, err.reason) from None
            metrics.MERGE_DURATION.observe(time.perf_counter() - t0)
            await self._checkpoint()
            metrics.REPLICAS_PRUNED.inc(len(self.replica.retired) - retired)  # adopted
            self.snapshots_received += 1
        metrics.SNAPSHOTS_RECEIVED.labels(snap.sender).inc()
        self.last_exchange[snap.sender] = time.monotonic()
        self._notify([*snap.registers, *(key for key, _, _ in snap.entries)], "")
        return ack

    # -- serving peers -------------------------------------------------------------------

    async def on_digest(self, digest: Digest) -> tuple[DeltaBatch | Snapshot | None, Digest]:
        async with self.lock:
            self._check_writable()
            try:
                reply = self.replica.on_digest(digest, now_ms())
            except InvalidOperation as err:
                raise InvalidArgument(err.field, err.reason) from None
            mine = self.replica.digest()
        self.last_exchange[digest.sender] = time.monotonic()
        return reply, mine

    async def on_ack(self, ack: Ack) -> None:
        async with self.lock:
            try:
                self.replica.on_ack(ack, now_ms())
            except InvalidOperation as err:
                raise InvalidArgument(err.field, err.reason) from None

    async def snapshot_bytes(self) -> bytes:
        async with self.lock:
            self._check_writable()
            snap = self.replica.snapshot()
        return encode_snapshot(snap)

    async def join(self, peer: str, address: str) -> list[str]:
        try:
            parse_peer_address(address)
            self.replica.join(peer)
        except (ValueError, InvalidOperation) as err:
            raise InvalidArgument(
                "address" if isinstance(err, ValueError) else "replica_id", str(err)
            ) from None
        self.addresses[peer] = address
        joined = {p: a for p, a in self.addresses.items() if p not in self.settings.peers}
        await asyncio.to_thread(self.store.write_members, joined)
        self._start_loop(peer)
        log.info("sync_peer_joined", peer=peer, address=address)
        return [self.id, *self.replica.members]

    async def leave(self, peer: str) -> None:
        async with self.lock:
            try:
                self.replica.leave(peer)
            except InvalidOperation as err:
                raise InvalidArgument("replica_id", err.reason) from None
            await self._checkpoint()  # the departure survives a restart
        self.addresses.pop(peer, None)
        loop = self._loops.pop(peer, None)
        if loop is not None:
            loop.cancel()
        client = self._clients.pop(peer, None)
        if client is not None:
            await client.close()
        joined = {p: a for p, a in self.addresses.items() if p not in self.settings.peers}
        await asyncio.to_thread(self.store.write_members, joined)
        for m in (metrics.UNACKED_DELTAS, metrics.SECONDS_SINCE_EXCHANGE):
            with contextlib.suppress(KeyError):
                m.remove(peer)
        log.info("sync_peer_left", peer=peer)

    # -- watching ------------------------------------------------------------------------

    def _notify(self, keys: Iterable[str], origin: str) -> None:
        for w in list(self._watches):
            for key in keys:
                w.offer(key, origin)

    async def watch(self, prefix: str) -> AsyncIterator[tuple[str, str, Read | None]]:
        w = _Watch(prefix)
        self._watches.add(w)
        try:
            while True:
                await w.wake.wait()
                w.wake.clear()
                pending, w.pending = w.pending, {}
                for key, origin in pending.items():
                    yield key, origin, self.replica.get(key)
        finally:
            self._watches.discard(w)

    # -- talking to peers ----------------------------------------------------------------

    def _client(self, peer: str) -> MeshClient:
        client = self._clients.get(peer)
        if client is None:
            client = self._client_factory(self.addresses[peer])
            self._clients[peer] = client
        return client

    def _stub(self, channel: aio.Channel) -> replication_pb2_grpc.ReplicationServiceAsyncStub:
        return replication_pb2_grpc.ReplicationServiceStub(channel)

    async def _peer_loop(self, peer: str) -> None:
        push_s = self.settings.push_interval_ms / 1000
        ae_s = self.settings.anti_entropy_interval_ms / 1000
        next_ae = 0.0
        while True:
            try:
                await self.push_once(peer)
                if time.monotonic() >= next_ae:
                    next_ae = time.monotonic() + ae_s
                    await self.anti_entropy_once(peer)
            except asyncio.CancelledError:
                raise
            except aio.AioRpcError as err:
                metrics.EXCHANGE_FAILURES.labels(peer, "rpc").inc()
                # The link is back when a call first succeeds again: exchange digests at once
                # then, instead of up to one anti-entropy interval later.
                next_ae = 0.0
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    # A fresh channel next time: no reconnect back-off carried over from a
                    # partition, so a healed link is used on the next round.
                    stale = self._clients.pop(peer, None)
                    if stale is not None:
                        self._spawn(stale.close())
                log.debug(
                    "sync_exchange_failed", peer=peer, code=err.code().name, details=err.details()
                )
            except Exception:
                metrics.EXCHANGE_FAILURES.labels(peer, "internal").inc()
                log.exception("sync_exchange_error", peer=peer)
            await asyncio.sleep(push_s)

    async def _call(self, peer: str, invoke: Callable[[aio.Channel, float], Any]) -> Any:
        """One attempt of a replication call: the peer loop is the retry (every push
        interval, on a fresh channel after a failure), so a call never sits in a client-side
        back-off while the link is already healed."""
        return await self._client(peer).call(invoke, idempotent=False, timeout_s=CALL_TIMEOUT_S)

    async def push_once(self, peer: str) -> bool:
        """Send one batch of what ``peer`` has not acknowledged; True if one was sent."""
        async with self.lock:
            if self.failed or peer not in self.replica.members:
                return False
            batch = self.replica.push(peer, now_ms())
        if batch is None:
            return False
        await self._send_batch(peer, batch)
        return True

    async def _send_batch(self, peer: str, batch: DeltaBatch) -> None:
        events = [encode_event(ev) for ev in batch.events]
        request = replication_pb2.PushDeltasRequest(sender=self.id, seq=batch.seq, events=events)
        try:
            response = await self._call(
                peer, lambda ch, t: self._stub(ch).PushDeltas(request, timeout=t)
            )
        except aio.AioRpcError:
            # Not delivered (as far as we know): resend on the next push, not a retransmit
            # interval later. A duplicate is harmless (events are deduplicated by dot).
            async with self.lock:
                self.replica.forget_batch(peer, batch.seq)
            raise
        metrics.DELTA_BYTES_SENT.labels(peer).inc(sum(map(len, events)))
        await self.on_ack(Ack(peer, response.seq, context_arg(response.applied, "applied")))
        self.last_exchange[peer] = time.monotonic()

    async def anti_entropy_once(self, peer: str) -> None:
        """One digest exchange with ``peer``, repairing what either side lacks."""
        async with self.lock:
            digest = self.replica.digest()
        request = replication_pb2.ExchangeDigestRequest(
            sender=self.id,
            applied=encode_context(digest.applied),
            want_snapshot=digest.want_snapshot,
        )
        response = await self._call(
            peer, lambda ch, t: self._stub(ch).ExchangeDigest(request, timeout=t)
        )
        if response.snapshot_required:
            await self.fetch_snapshot(peer)
        elif response.events:
            metrics.DELTA_BYTES_RECEIVED.labels(peer).inc(sum(map(len, response.events)))
            ack = await self.apply_batch(
                DeltaBatch(peer, response.seq, decode_events(response.events))
            )
            await self._acknowledge(peer, ack)
        theirs = Digest(peer, context_arg(response.applied, "applied"))
        reply, _ = await self.on_digest(theirs)
        if isinstance(reply, DeltaBatch):
            await self._send_batch(peer, reply)
        self.last_exchange[peer] = time.monotonic()
        metrics.ANTI_ENTROPY_ROUNDS.labels(peer).inc()

    async def _acknowledge(self, peer: str, ack: Ack) -> None:
        request = replication_pb2.AcknowledgeRequest(
            sender=self.id, seq=ack.seq, applied=encode_context(ack.applied)
        )
        await self._call(peer, lambda ch, t: self._stub(ch).Acknowledge(request, timeout=t))

    async def fetch_snapshot(self, peer: str) -> None:
        request = replication_pb2.FetchSnapshotRequest(sender=self.id)
        channel = self._client(peer).channel()
        chunks: list[bytes] = []
        async for part in self._stub(channel).FetchSnapshot(request, timeout=30):
            chunks.append(part.chunk)
            if part.last:
                break
        data = b"".join(chunks)
        metrics.SNAPSHOT_BYTES_RECEIVED.labels(peer).inc(len(data))
        try:
            snap = decode_snapshot(data)
        except SyncError as err:
            raise Unavailable(f"bad snapshot from {peer}: {err}") from None
        if snap.sender != peer:
            raise Unavailable(f"snapshot from {peer} claims to be from {snap.sender}")
        ack = await self.apply_snapshot(snap)
        await self._acknowledge(peer, ack)
        keys = len(snap.registers) + len(snap.entries)
        log.info("sync_snapshot_applied", peer=peer, bytes=len(data), keys=keys)

    async def _announce(self) -> None:
        """A joining replica: tell every configured peer about us until each accepted."""
        address = str(self.settings.advertise_addr)
        pending = set(self.settings.peers)
        request = replication_pb2.JoinRequest(replica_id=self.id, address=address)
        while pending:
            for peer in sorted(pending):
                try:
                    await self._client(peer).call(
                        lambda ch, t: self._stub(ch).Join(request, timeout=t),
                        idempotent=True,
                        timeout_s=CALL_TIMEOUT_S,
                    )
                    pending.discard(peer)
                except aio.AioRpcError as err:
                    log.info("sync_join_retry", peer=peer, code=err.code().name)
            if pending:
                await asyncio.sleep(self.settings.anti_entropy_interval_ms / 1000)

    async def _gc_loop(self) -> None:
        interval = self.settings.anti_entropy_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.gc_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync_gc_failed")

    async def gc_once(self) -> None:
        async with self.lock:
            report = self.replica.gc(now_ms())
            if report.collected_tokens or report.pruned:
                # The collection is a replicated removal event: make it durable before any
                # push can send it. A pruned replica must stay pruned after a restart.
                await self._checkpoint()
            unacked = {p: self.replica.unacked(p) for p in self.replica.members}
        self.gc_collected += report.collected_tokens
        self.gc_dropped += report.dropped_events
        metrics.GC_COLLECTED.inc(report.collected_tokens)
        metrics.GC_DROPPED_EVENTS.inc(report.dropped_events)
        metrics.REPLICAS_PRUNED.inc(len(report.pruned))
        for peer in report.pruned:
            log.info("sync_replica_pruned", peer=peer)
        for peer, n in unacked.items():
            metrics.UNACKED_DELTAS.labels(peer).set(n)
            metrics.SECONDS_SINCE_EXCHANGE.labels(peer).set(self.seconds_since(peer))

    def seconds_since(self, peer: str) -> float:
        at = self.last_exchange.get(peer)
        return -1.0 if at is None else round(time.monotonic() - at, 3)

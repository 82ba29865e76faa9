"""Peer transport: Raft messages to other members over mTLS gRPC (RaftService).

One :class:`PeerLink` per remote member owns an outbound queue and a sender task. ``send``
never blocks the Raft loop: it appends to the queue. The sender drains the queue into one
``Send`` batch per round trip, so a slow or dead peer only fills its own queue (bounded; the
oldest messages are dropped, which Raft tolerates) and never delays the others.

Snapshots travel on a separate stream (``InstallSnapshot``, chunked), so heartbeats and
appends to the same peer keep flowing while a large snapshot is in transfer.

Failures are reported back to the Raft loop (``report_unreachable`` / ``report_snapshot``),
as etcd's transport does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import structlog
from grpc import aio

from x0tta6bl4.consensus.codec import message_to_pb
from x0tta6bl4.consensus.core.messages import Message, MessageType
from x0tta6bl4.consensus.link_rtt import LinkRtt
from x0tta6bl4.consensus.metrics import SEND_FAILURES, SNAPSHOTS
from x0tta6bl4.consensus.storage.snapshot_files import iter_file_chunks, snapshot_name
from x0tta6bl4.consensus.v1 import raft_pb2, raft_pb2_grpc
from x0tta6bl4.platform.client import MeshClient

log = structlog.get_logger(__name__)

MAX_QUEUE = 4096
MAX_BATCH_MESSAGES = 512
MAX_BATCH_BYTES = 4 << 20
SEND_TIMEOUT_S = 2.0
STREAM_MAX_AGE_S = 240.0  # below the server's max connection age: reopen before a GOAWAY
SNAPSHOT_TIMEOUT_S = 300.0

ClientFactory = Callable[[str], MeshClient]
Report = Callable[[int, bool], None]


class PeerLink:
    """Outbound traffic to one member."""

    def __init__(
        self,
        self_id: int,
        peer_id: int,
        client: MeshClient,
        *,
        snap_dir: Path,
        chunk_bytes: int,
        on_unreachable: Callable[[int], None],
        on_snapshot_done: Report,
    ) -> None:
        self.self_id = self_id
        self.peer_id = peer_id
        self.client = client
        self._snap_dir = snap_dir
        self._chunk_bytes = chunk_bytes
        self._on_unreachable = on_unreachable
        self._on_snapshot_done = on_snapshot_done
        self._queue: collections.deque[Message] = collections.deque()
        self._wakeup = asyncio.Event()
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())
        self._snapshot_task: asyncio.Task[None] | None = None
        self.failures = 0

    def send(self, m: Message) -> None:
        if m.type is MessageType.SNAP:
            self._send_snapshot(m)
            return
        if len(self._queue) >= MAX_QUEUE:
            self._queue.popleft()  # the peer is not keeping up: drop the oldest
        self._queue.append(m)
        self._wakeup.set()

    def _batch(self) -> list[Message]:
        batch: list[Message] = []
        size = 0
        while self._queue and len(batch) < MAX_BATCH_MESSAGES:
            m = self._queue[0]
            m_size = 64 + sum(len(e.data) + 24 for e in m.entries)
            if batch and size + m_size > MAX_BATCH_BYTES:
                break
            batch.append(self._queue.popleft())
            size += m_size
        return batch

    async def _send_loop(self) -> None:
        """Keep one client stream to the peer open, fed with batches from the queue; on an
        error, report the peer unreachable, drop what is queued (Raft re-sends what matters),
        back off briefly and open a new stream (on the current SVID's channel)."""
        while True:
            await self._wakeup.wait()
            call: Any = None
            try:
                stub = raft_pb2_grpc.RaftServiceStub(self.client.channel())
                call = stub.Send(self._requests(), timeout=STREAM_MAX_AGE_S + 30)
                await call
            except (aio.AioRpcError, TimeoutError, OSError, RuntimeError) as err:
                if call is not None:
                    call.cancel()
                self.failures += 1
                SEND_FAILURES.labels(str(self.peer_id)).inc()
                if self.failures == 1 or self.failures % 100 == 0:
                    log.info(
                        "raft.send_failed",
                        peer=self.peer_id,
                        failures=self.failures,
                        error=_describe(err),
                    )
                self._on_unreachable(self.peer_id)
                self._queue.clear()
                await asyncio.sleep(min(0.5, 0.02 * self.failures))

    async def _requests(self) -> AsyncIterator[raft_pb2.SendRequest]:
        """The batches of one stream; it ends (and is reopened) after STREAM_MAX_AGE_S, before
        the server's maximum connection age would cut it. One timer per stream, not one per
        idle wait: the queue empties after almost every batch."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wakeup.set()

        timer = asyncio.get_running_loop().call_later(STREAM_MAX_AGE_S, expire)
        try:
            while True:
                if not self._queue:
                    self._wakeup.clear()
                    if expired:
                        return
                    await self._wakeup.wait()
                while self._queue:
                    batch = self._batch()
                    yield raft_pb2.SendRequest(
                        sender=self.self_id,
                        to=self.peer_id,
                        messages=[message_to_pb(m) for m in batch],
                    )
                if self.failures:
                    self.failures = 0
        finally:
            timer.cancel()

    def _send_snapshot(self, m: Message) -> None:
        if self._snapshot_task is not None and not self._snapshot_task.done():
            return  # one transfer at a time; the leader waits for its outcome
        assert m.snapshot is not None
        self._snapshot_task = asyncio.get_running_loop().create_task(self._stream_snapshot(m))

    async def _stream_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        path = self._snap_dir / snapshot_name(m.snapshot.index, m.snapshot.term)
        ok = False
        try:
            size = path.stat().st_size

            async def chunks() -> AsyncIterator[raft_pb2.InstallSnapshotRequest]:
                # One chunk read at a time (in a worker thread): a large snapshot is never
                # held in memory whole, and the stream's flow control paces the reading.
                first = True
                pieces = iter_file_chunks(path, self._chunk_bytes)
                try:
                    while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
                        offset, data = piece
                        request = raft_pb2.InstallSnapshotRequest(offset=offset, data=data)
                        if first:
                            request.sender = m.frm
                            request.to = m.to
                            request.term = m.term
                            request.snapshot_index = m.snapshot.index  # type: ignore[union-attr]
                            request.snapshot_term = m.snapshot.term  # type: ignore[union-attr]
                            request.file_size = size
                            first = False
                        yield request
                finally:
                    pieces.close()

            log.info("raft.snapshot_sending", peer=self.peer_id, index=m.snapshot.index, bytes=size)
            response = await self.client.call(
                lambda ch, t: raft_pb2_grpc.RaftServiceStub(ch).InstallSnapshot(
                    chunks(), timeout=t
                ),
                idempotent=False,
                timeout_s=SNAPSHOT_TIMEOUT_S,
            )
            ok = response.received == size
            SNAPSHOTS.labels("sent").inc()
            log.info("raft.snapshot_sent", peer=self.peer_id, index=m.snapshot.index, ok=ok)
        except (aio.AioRpcError, OSError, RuntimeError) as err:
            log.warning("raft.snapshot_send_failed", peer=self.peer_id, error=_describe(err))
        finally:
            self._on_snapshot_done(self.peer_id, ok)

    async def close(self) -> None:
        self._sender.cancel()
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
        for task in (self._sender, self._snapshot_task):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.client.close()


def _describe(err: BaseException) -> str:
    if isinstance(err, aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return repr(err)


class Transport:
    """All peer links of one member, created on first use from ``resolve(peer_id)``."""

    def __init__(
        self,
        self_id: int,
        *,
        resolve: Callable[[int], str | None],
        client_factory: ClientFactory,
        snap_dir: Path,
        chunk_bytes: int,
        on_unreachable: Callable[[int], None],
        on_snapshot_done: Report,
        link_rtt: LinkRtt,
    ) -> None:
        self.self_id = self_id
        self._link_rtt = link_rtt
        self._resolve = resolve
        self._client_factory = client_factory
        self._snap_dir = snap_dir
        self._chunk_bytes = chunk_bytes
        self._on_unreachable = on_unreachable
        self._on_snapshot_done = on_snapshot_done
        self._links: dict[int, PeerLink] = {}
        self._unknown_logged: set[int] = set()

    def link(self, peer_id: int) -> PeerLink | None:
        link = self._links.get(peer_id)
        if link is not None:
            return link
        address = self._resolve(peer_id)
        if address is None:
            if peer_id not in self._unknown_logged:
                self._unknown_logged.add(peer_id)
                log.warning("raft.peer_address_unknown", peer=peer_id)
            return None
        link = PeerLink(
            self.self_id,
            peer_id,
            self._client_factory(address),
            snap_dir=self._snap_dir,
            chunk_bytes=self._chunk_bytes,
            on_unreachable=self._on_unreachable,
            on_snapshot_done=self._on_snapshot_done,
        )
        self._links[peer_id] = link
        return link

    def send(self, messages: tuple[Message, ...]) -> None:
        for m in messages:
            link = self.link(m.to)
            if link is None:
                self._on_unreachable(m.to)
                if m.type is MessageType.SNAP:
                    self._on_snapshot_done(m.to, False)
                continue
            if m.type is MessageType.HEARTBEAT:
                self._link_rtt.sent(m.to, time.monotonic())
            link.send(m)

    async def remove(self, peer_id: int) -> None:
        link = self._links.pop(peer_id, None)
        if link is not None:
            await link.close()

    async def close(self) -> None:
        for peer_id in list(self._links):
            await self.remove(peer_id)

"""RaftService: the peer-to-peer side of the transport (callable by consensus members only)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from x0tta6bl4.consensus.codec import (
    WireError,
    decode_snapshot_meta,
    encode_outcome_bytes,
    message_from_pb,
)
from x0tta6bl4.consensus.core.messages import Message, MessageType, Snapshot, SnapshotMetadata
from x0tta6bl4.consensus.metrics import SNAPSHOTS
from x0tta6bl4.consensus.runtime import RaftRuntime
from x0tta6bl4.consensus.storage.errors import StorageError
from x0tta6bl4.consensus.storage.snapshot_files import SnapshotReceiver
from x0tta6bl4.consensus.v1 import raft_pb2, raft_pb2_grpc
from x0tta6bl4.platform.errors import FailedPrecondition, InvalidArgument, Unavailable

DEFAULT_FORWARD_TIMEOUT_S = 5.0


class RaftServicer(raft_pb2_grpc.RaftServiceServicer):
    def __init__(self, runtime: RaftRuntime) -> None:
        self._rt = runtime
        self._streams: set[asyncio.Task[Any]] = set()
        self._ending = False

    def end_streams(self) -> None:
        """On drain: end every open Send stream now (peers reconnect elsewhere or wait), so
        that they do not hold the graceful stop for the whole drain timeout."""
        self._ending = True
        for task in self._streams:
            task.cancel()

    def _check_recipient(self, to: int) -> None:
        if to != self._rt.id:
            raise FailedPrecondition(f"this is member {self._rt.id}, not member {to}")

    async def Send(
        self,
        request_iterator: AsyncIterator[raft_pb2.SendRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> raft_pb2.SendResponse:
        batches = 0
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            if self._ending:
                raise asyncio.CancelledError
            async for request in request_iterator:
                self._check_recipient(request.to)
                try:
                    messages = [message_from_pb(m) for m in request.messages]
                except WireError as err:
                    raise InvalidArgument("messages", str(err)) from None
                self._rt.deliver(messages)
                batches += 1
        except asyncio.CancelledError:
            if not self._ending:
                raise  # the caller went away
            # Draining: end the stream with a status rather than a response.
            task.uncancel()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "member shutting down")
        finally:
            self._streams.discard(task)
        return raft_pb2.SendResponse(batches=batches)

    async def InstallSnapshot(
        self,
        request_iterator: AsyncIterator[raft_pb2.InstallSnapshotRequest],
        context: aio.ServicerContext[Any, Any],
    ) -> raft_pb2.InstallSnapshotResponse:
        header: raft_pb2.InstallSnapshotRequest | None = None
        receiver: SnapshotReceiver | None = None
        try:
            async for chunk in request_iterator:
                if header is None:
                    header = chunk
                    self._check_recipient(chunk.to)
                    if not chunk.snapshot_index:
                        raise InvalidArgument("snapshot_index", "the first chunk must carry it")
                    receiver = await asyncio.to_thread(SnapshotReceiver, self._rt.durable.snap_dir)
                assert receiver is not None
                await asyncio.to_thread(receiver.write_chunk, chunk.offset, chunk.data)
            if header is None or receiver is None:
                raise InvalidArgument("data", "no chunks received")
            if receiver.received != header.file_size:
                raise InvalidArgument(
                    "file_size",
                    f"received {receiver.received} bytes, header says {header.file_size}",
                )
            meta = await asyncio.to_thread(receiver.finalize)
        except StorageError as err:
            if receiver is not None:
                receiver.abort()
            raise Unavailable(f"snapshot not installed: {err}") from None
        except BaseException:
            if receiver is not None:
                receiver.abort()
            raise
        if (meta.index, meta.term) != (header.snapshot_index, header.snapshot_term):
            raise InvalidArgument("snapshot_index", "the file does not match the header")
        try:
            conf_state, _ = decode_snapshot_meta(meta.meta)
        except WireError as err:
            raise InvalidArgument("data", str(err)) from None
        SNAPSHOTS.labels("received").inc()
        snapshot = Snapshot(SnapshotMetadata(meta.index, meta.term, conf_state))
        self._rt.deliver(
            [Message(MessageType.SNAP, self._rt.id, header.sender, header.term, snapshot=snapshot)]
        )
        return raft_pb2.InstallSnapshotResponse(received=receiver.received)

    async def Forward(
        self, request: raft_pb2.ForwardRequest, context: aio.ServicerContext[Any, Any]
    ) -> raft_pb2.ForwardResponse:
        if not self._rt.is_leader:
            raise self._rt.not_leader(self._rt.leader_id)
        remaining = context.time_remaining()
        timeout = DEFAULT_FORWARD_TIMEOUT_S if remaining is None else max(0.01, remaining - 0.01)
        outcome = await self._rt.propose_local(request.request, timeout)
        return raft_pb2.ForwardResponse(
            outcome=encode_outcome_bytes(outcome), raft_term=self._rt.node.term
        )

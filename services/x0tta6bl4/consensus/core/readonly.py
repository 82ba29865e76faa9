"""ReadIndex bookkeeping on the leader (Raft dissertation §6.4).

A read request records the leader's commit index at arrival; the leader then proves it is
still the leader by a heartbeat round tagged with the request context. Once a quorum has
acknowledged that context, the request and every request queued before it are released:
each may be served as soon as the serving node has applied up to the recorded index.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadIndexStatus:
    index: int
    context: bytes
    requester: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("_pending", "_queue")

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadIndexStatus] = {}
        self._queue: list[bytes] = []

    def add_request(self, index: int, context: bytes, requester: int, self_id: int) -> bool:
        """Queue a read; False if a request with the same context is already pending."""
        if context in self._pending:
            return False
        self._pending[context] = ReadIndexStatus(index, context, requester, {self_id})
        self._queue.append(context)
        return True

    def recv_ack(self, node_id: int, context: bytes) -> set[int] | None:
        """Record a heartbeat ack; returns the acks of that request, or None if unknown."""
        status = self._pending.get(context)
        if status is None:
            return None
        status.acks.add(node_id)
        return status.acks

    def advance(self, context: bytes) -> list[ReadIndexStatus]:
        """Release the request ``context`` and all requests queued before it."""
        if context not in self._pending:
            return []
        pos = self._queue.index(context)
        released = [self._pending.pop(c) for c in self._queue[: pos + 1]]
        del self._queue[: pos + 1]
        return released

    def last_pending_context(self) -> bytes:
        return self._queue[-1] if self._queue else b""

    def reset(self) -> None:
        self._pending.clear()
        self._queue.clear()

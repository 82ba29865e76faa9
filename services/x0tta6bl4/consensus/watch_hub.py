"""Fan-out of applied changes to Watch streams.

The Raft loop publishes the events of every applied entry, in order, synchronously; each
watcher has its own queue, so a slow stream never delays the loop or other watchers. A
watcher whose queue overflows is closed (its client re-watches from its last revision).
A closed watcher's queue ends with ``None``; ``end_reason`` says why.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from x0tta6bl4.consensus.core.kv_types import Event

MAX_PENDING = 10_000


@dataclass(eq=False)
class Watcher:
    key: bytes
    prefix: bool
    queue: asyncio.Queue[list[Event] | None] = field(default_factory=asyncio.Queue)
    pending: int = 0
    end_reason: str = ""

    def matches(self, key: bytes) -> bool:
        return key.startswith(self.key) if self.prefix else key == self.key


class WatchHub:
    def __init__(self) -> None:
        self._watchers: set[Watcher] = set()
        self._draining = False

    def add(self, key: bytes, prefix: bool) -> Watcher:
        watcher = Watcher(key, prefix)
        if self._draining:
            _end(watcher, "member shutting down")
        else:
            self._watchers.add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        self._watchers.discard(watcher)

    def publish(self, events: tuple[Event, ...]) -> None:
        if not events or not self._watchers:
            return
        for watcher in list(self._watchers):
            matching = [e for e in events if watcher.matches(e.kv.key)]
            if not matching:
                continue
            if watcher.pending + len(matching) > MAX_PENDING:
                self._watchers.discard(watcher)
                _end(watcher, "too slow")
                continue
            watcher.pending += len(matching)
            watcher.queue.put_nowait(matching)

    def close_all(self, reason: str) -> None:
        for watcher in self._watchers:
            _end(watcher, reason)
        self._watchers.clear()

    def drain(self) -> None:
        """On shutdown: end every watch now, and any opened from now on at once."""
        self._draining = True
        self.close_all("member shutting down")


def _end(watcher: Watcher, reason: str) -> None:
    watcher.end_reason = reason
    watcher.queue.put_nowait(None)

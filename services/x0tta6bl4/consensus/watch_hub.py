"""Fan-out of applied changes to Watch streams.

The Raft loop publishes the events of every applied entry, in order, synchronously; each
watcher has its own queue, so a slow stream never delays the loop or other watchers. A
watcher whose queue overflows is closed (its client re-watches from its last revision).
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
    overflowed: bool = False

    def matches(self, key: bytes) -> bool:
        return key.startswith(self.key) if self.prefix else key == self.key


class WatchHub:
    def __init__(self) -> None:
        self._watchers: set[Watcher] = set()

    def __len__(self) -> int:
        return len(self._watchers)

    def add(self, key: bytes, prefix: bool) -> Watcher:
        watcher = Watcher(key, prefix)
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
                watcher.overflowed = True
                self._watchers.discard(watcher)
                watcher.queue.put_nowait(None)
                continue
            watcher.pending += len(matching)
            watcher.queue.put_nowait(matching)

    def close_all(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()

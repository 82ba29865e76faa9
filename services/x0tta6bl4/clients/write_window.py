"""Which request seqs a client may send: never further than the store remembers.

The consensus store remembers the outcomes of the last ``size`` seqs of each client and
refuses a retry of an older one as of unknown outcome. A write that keeps retrying (its member
died, the leader moved) must still be inside that window when its retry lands, however many
later writes finished meanwhile. So seq ``n`` is handed out only once every seq up to
``n - size`` has its answer: then at most ``size - 1`` later seqs can have been recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteWindow:
    """Hands out increasing seqs (from 1), at most ``size`` past the oldest unanswered one."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be positive, got {size}")
        self.size = size
        self._next = 1
        self._open: set[int] = set()
        self._changed = asyncio.Condition()

    def _may_send(self) -> bool:
        return not self._open or self._next - min(self._open) < self.size

    @property
    def in_flight(self) -> int:
        return len(self._open)

    @asynccontextmanager
    async def seq(self) -> AsyncIterator[int]:
        """A seq to send under; it counts as unanswered until the block ends."""
        async with self._changed:
            await self._changed.wait_for(self._may_send)
            seq = self._next
            self._next += 1
            self._open.add(seq)
        try:
            yield seq
        finally:
            async with self._changed:
                self._open.discard(seq)
                self._changed.notify_all()

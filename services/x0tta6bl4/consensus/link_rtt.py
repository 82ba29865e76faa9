"""Round-trip times to the other members, measured from the leader's heartbeats.

Every heartbeat gets exactly one response, and both directions are ordered streams, so the
responses of a peer answer its heartbeats first in, first out: each response is matched with
the oldest unanswered heartbeat, even when the round trip is longer than the heartbeat
interval. A link failure drops what was queued on it, so the peer's unanswered heartbeats are
forgotten then (``reset``); so are all of them when this member stops leading. Samples feed an
exponentially weighted average per peer.
"""

from __future__ import annotations

import collections

ALPHA = 0.2  # weight of a new sample in the average
TIMEOUT_RTTS = 10  # an election timeout below this many round trips is too tight (etcd's rule)
MAX_UNANSWERED = 64  # a peer this far behind is unreachable; its queue is reset


class LinkRtt:
    def __init__(self) -> None:
        self._sent: dict[int, collections.deque[float]] = {}
        self._avg: dict[int, float] = {}

    def sent(self, peer: int, now: float) -> None:
        pending = self._sent.setdefault(peer, collections.deque())
        if len(pending) >= MAX_UNANSWERED:
            pending.clear()  # answers lost: start matching afresh
        pending.append(now)

    def answered(self, peer: int, now: float) -> float | None:
        """Record ``peer``'s heartbeat response; the new average in seconds (None without a
        heartbeat to match)."""
        pending = self._sent.get(peer)
        if not pending:
            return None
        sample = max(0.0, now - pending.popleft())
        prev = self._avg.get(peer)
        avg = sample if prev is None else prev + ALPHA * (sample - prev)
        self._avg[peer] = avg
        return avg

    def get(self, peer: int) -> float | None:
        return self._avg.get(peer)

    def reset(self, peer: int | None = None) -> None:
        """Forget unanswered heartbeats (of ``peer``, or of every peer); averages stay."""
        if peer is None:
            self._sent.clear()
        else:
            self._sent.pop(peer, None)

    def forget(self, peer: int) -> None:
        self._sent.pop(peer, None)
        self._avg.pop(peer, None)


def too_tight(rtt_s: float, election_timeout_ms: float) -> bool:
    """Whether an election timeout is shorter than TIMEOUT_RTTS round trips."""
    return rtt_s * 1000 * TIMEOUT_RTTS > election_timeout_ms

"""Client request dedup: a retried write applies once and gets its original outcome back.

Per client the table keeps the outcomes of the last ``per_client`` sequence numbers. A request
whose seq is at or below the highest forgotten seq of that client is refused with
:class:`StaleRequest` (it may have applied; re-applying it could apply it twice). At most
``max_clients`` clients are remembered; the least recently active one is forgotten first, and
after that its old requests are no longer recognised (document this to clients: keep retries
within a session). Everything is deterministic: "recently" is an apply counter, not a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kv_codec import Reader, Writer
from .kv_commands import RequestId
from .kv_errors import DecodeError, InvalidArgument, StaleRequest
from .kv_results import Outcome, decode_outcome, encode_outcome


@dataclass(slots=True)
class _Client:
    last_active: int
    floor: int = 0  # highest seq whose outcome was forgotten
    outcomes: dict[int, Outcome] = field(default_factory=dict)


class DedupTable:
    """Outcomes of recent client requests, bounded per client and in the number of clients."""

    def __init__(self, per_client: int, max_clients: int) -> None:
        if per_client < 1 or max_clients < 1:
            raise ValueError("dedup bounds must be positive")
        self._per_client = per_client
        self._max_clients = max_clients
        self._clients: dict[int, _Client] = {}
        self._tick = 0

    def __len__(self) -> int:
        return len(self._clients)

    @staticmethod
    def validate(request_id: RequestId) -> None:
        """Client id and seq must be positive 64-bit integers."""
        for name, value in (("client_id", request_id.client_id), ("seq", request_id.seq)):
            if value <= 0 or value >= 1 << 64:
                raise InvalidArgument(f"request_id.{name}", f"must be positive, got {value}")

    def lookup(self, request_id: RequestId) -> Outcome | None:
        """The remembered outcome, None if new; raises :class:`StaleRequest` if forgotten."""
        client = self._clients.get(request_id.client_id)
        if client is None:
            return None
        outcome = client.outcomes.get(request_id.seq)
        if outcome is None and request_id.seq <= client.floor:
            raise StaleRequest(
                "request_id.seq",
                f"seq {request_id.seq} of client {request_id.client_id} is older than the "
                f"{self._per_client} remembered requests; its outcome is unknown",
            )
        return outcome

    def record(self, request_id: RequestId, outcome: Outcome) -> None:
        """Remember ``outcome`` for ``request_id``, evicting the oldest entries beyond bounds."""
        self._tick += 1
        # The table is kept in order of activity (least recent first): re-inserting the
        # client moves it to the end, and the one to forget is the first (no scan).
        client = self._clients.pop(request_id.client_id, None)
        if client is None:
            client = _Client(self._tick)
            if len(self._clients) >= self._max_clients:
                del self._clients[next(iter(self._clients))]
        self._clients[request_id.client_id] = client
        client.last_active = self._tick
        client.outcomes[request_id.seq] = outcome
        while len(client.outcomes) > self._per_client:
            seq = min(client.outcomes)
            del client.outcomes[seq]
            client.floor = max(client.floor, seq)

    def encode_into(self, w: Writer) -> None:
        """Deterministic encoding: tick, then clients by id with outcomes by seq."""
        w.uint(self._tick).uint(len(self._clients))
        for client_id in sorted(self._clients):
            client = self._clients[client_id]
            w.uint(client_id).uint(client.last_active).uint(client.floor)
            w.uint(len(client.outcomes))
            for seq in sorted(client.outcomes):
                w.uint(seq)
                encode_outcome(w, client.outcomes[seq])

    def decode_into(self, r: Reader) -> None:
        """Replace the contents with :meth:`encode_into` output (bounds stay as configured)."""
        clients: dict[int, _Client] = {}
        self._tick = r.uint("snapshot.dedup_tick")
        previous = 0
        for _ in range(r.count("snapshot.dedup_clients", 1 << 40)):
            client_id = r.uint("snapshot.dedup.client_id")
            if client_id <= previous:
                raise DecodeError("snapshot.dedup.client_id", "client ids are not increasing")
            previous = client_id
            client = _Client(r.uint("snapshot.dedup.last_active"), r.uint("snapshot.dedup.floor"))
            for _ in range(r.count("snapshot.dedup.outcomes", 1 << 40)):
                seq = r.uint("snapshot.dedup.seq")
                client.outcomes[seq] = decode_outcome(r, "snapshot.dedup.outcome")
            clients[client_id] = client
        # Back in order of activity, as :meth:`record` keeps it.
        self._clients = dict(sorted(clients.items(), key=lambda item: item[1].last_active))

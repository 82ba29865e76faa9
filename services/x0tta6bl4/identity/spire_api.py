"""A typed async client of the SPIRE Server API (entries, agents, bundles) on the admin socket.

It talks plain gRPC to the server's local admin socket (``unix:///.../api.sock``, the one the
``spire-server`` CLI uses: no TLS, the socket's file permissions are the boundary) with the
subset of SPIRE's API in :mod:`x0tta6bl4.identity.spire`, and hands out only the dataclasses of
:mod:`.spire_types`, never protobuf messages.

Contracts:

- Every call has a deadline (``timeout_s`` for reads, ``write_timeout_s`` for batch writes).
- Reads (list, get) are retried with exponential backoff and jitter on UNAVAILABLE,
  DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED, up to ``read_attempts`` attempts. Batch writes are
  sent once: SPIRE's per-entry results are the authority, and a batch whose call failed (or
  timed out) may have been applied in part, so the caller lists again before deciding.
- A failed call raises :class:`SpireApiError` (a :class:`~x0tta6bl4.clients.errors.
  ClientError`, so a handler passes UNAVAILABLE on to its caller); a missing admin socket is
  UNAVAILABLE naming the path. Each one is counted in ``x0tta6bl4_spire_api_errors_total``.
  Per-entry refusals are results, not errors.
- Batch writes go out in chunks of ``batch_size`` (default :data:`BATCH_SIZE`) and return one
  result per input, in input order. SPIRE 1.13.3 sets no count limit on a batch; what bounds
  one is the server's 4 MiB gRPC message limit, which 50 entries of the largest size the
  identity service allows (32 selectors, 32 DNS names, a 1 KiB hint) stay well inside. Each
  entry of a batch is its own datastore transaction on the server.
- Listing follows page tokens to the end. It is not a snapshot: an entry created or deleted
  while the pages are read may be missing or listed. The order is SPIRE's (unspecified).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import tenacity
from grpc import aio
from prometheus_client import Counter

from x0tta6bl4.clients.errors import ClientError
from x0tta6bl4.identity.spire.server.agent.v1 import agent_pb2, agent_pb2_grpc
from x0tta6bl4.identity.spire.server.bundle.v1 import bundle_pb2, bundle_pb2_grpc
from x0tta6bl4.identity.spire.server.entry.v1 import entry_pb2, entry_pb2_grpc
from x0tta6bl4.identity.spire.types.v1 import bundle_pb2 as bundle_type
from x0tta6bl4.identity.spire.types.v1 import entry_pb2 as entry_type
from x0tta6bl4.identity.spire_types import (
    MUTABLE_FIELDS,
    Agent,
    Bundle,
    DeleteResult,
    EntryResult,
    SpireEntry,
    agent_of,
    bundle_of,
    code_name,
    entry_mask,
    entry_of,
    entry_pb,
    spiffe_id_pb,
)
from x0tta6bl4.platform.client import RETRYABLE, metrics_interceptors

Q = TypeVar("Q")
R = TypeVar("R")

BATCH_SIZE = 50
_MAX_MESSAGE = 64 * 1024 * 1024

API_ERRORS = Counter(
    "x0tta6bl4_spire_api_errors",
    "Failed calls to the SPIRE Server API (after retries), by method and status code.",
    ["method", "code"],
)


class SpireApiError(ClientError):
    """A SPIRE Server API call failed: ``method`` (e.g. ``Entry/ListEntries``), ``code`` (a
    ``grpc.StatusCode``), ``details`` (SPIRE's message); ``str()`` names all three."""

    def __init__(self, method: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(method, code, message)


def _chunks(items: Sequence[R], size: int) -> list[Sequence[R]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _check_count(method: str, batch: Sequence[Any], results: Sequence[Any]) -> None:
    if len(results) != len(batch):
        raise SpireApiError(
            method, grpc.StatusCode.INTERNAL, f"{len(results)} results for a batch of {len(batch)}"
        )


def _entry_results(method: str, batch: Sequence[SpireEntry], results: Any) -> list[EntryResult]:
    _check_count(method, batch, results)
    return [
        EntryResult(
            code_name(r.status.code),
            r.status.message,
            entry_of(r.entry) if r.HasField("entry") else None,
        )
        for r in results
    ]


class SpireApi:
    """The SPIRE Server API on the admin socket at ``socket_path`` (``/path`` or
    ``unix:///path``). Use as ``async with SpireApi(path) as api:`` or call :meth:`close`."""

    def __init__(
        self,
        socket_path: str,
        *,
        timeout_s: float = 5.0,
        write_timeout_s: float = 30.0,
        read_attempts: int = 3,
        batch_size: int = BATCH_SIZE,
        caller: str = "identity",
    ) -> None:
        path = socket_path.removeprefix("unix://").removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError(f"socket_path must be an absolute path, got {socket_path!r}")
        if read_attempts < 1 or batch_size < 1:
            raise ValueError("read_attempts and batch_size must be at least 1")
        self.socket_path = path
        self._timeout_s = timeout_s
        self._write_timeout_s = write_timeout_s
        self._read_attempts = read_attempts
        self._batch_size = batch_size
        self._caller = caller
        self._channel: aio.Channel | None = None

    async def __aenter__(self) -> SpireApi:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
            self._channel = None

    def _ch(self) -> aio.Channel:
        if self._channel is None:
            self._channel = aio.insecure_channel(
                f"unix://{self.socket_path}",
                options=[
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                    ("grpc.max_send_message_length", _MAX_MESSAGE),
                    # Redial a restarted server within a second, not after gRPC's default
                    # backoff of up to two minutes.
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 1000),
                ],
                interceptors=metrics_interceptors(self._caller, "spire-server"),
            )
        return self._channel

    def _error(self, method: str, err: aio.AioRpcError) -> SpireApiError:
        code, details = err.code(), err.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE and not os.path.exists(self.socket_path):
            details = f"admin socket {self.socket_path} does not exist"
        API_ERRORS.labels(method, code.name).inc()
        return SpireApiError(method, code, details)

    async def _read(self, method: str, call: Callable[[float], Awaitable[R]]) -> R:
        """``call(deadline_s)``, retried on transient failures."""
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self._read_attempts),
            wait=tenacity.wait_random_exponential(multiplier=0.1, max=2.0),
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, aio.AioRpcError) and e.code() in RETRYABLE
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await call(self._timeout_s)
        except aio.AioRpcError as err:
            raise self._error(method, err) from None
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _write(self, method: str, rpc: aio.UnaryUnaryMultiCallable[Q, R], request: Q) -> R:
        """One attempt: a batch that failed may have been applied in part."""
        try:
            return await rpc(request, timeout=self._write_timeout_s)
        except aio.AioRpcError as err:
            raise self._error(method, err) from None

    async def _pages(
        self, method: str, page: Callable[[str, float], Awaitable[tuple[list[R], str]]]
    ) -> list[R]:
        items: list[R] = []
        token = ""
        while True:
            got, token = await self._read(method, functools.partial(page, token))
            items.extend(got)
            if not token:
                return items

    # -- entries -------------------------------------------------------------------------------

    async def list_entries(
        self,
        *,
        by_spiffe_id: str | None = None,
        by_parent_id: str | None = None,
        by_hint: str | None = None,
        page_size: int = 500,
    ) -> list[SpireEntry]:
        """Every entry matching all the filters given, read ``page_size`` at a time.
        ``by_hint`` must not be "": SPIRE takes an empty hint filter for no filter at all."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if by_hint == "":
            raise ValueError("by_hint must not be empty (SPIRE would match every entry)")
        flt = entry_pb2.ListEntriesRequest.Filter()
        if by_spiffe_id is not None:
            flt.by_spiffe_id.CopyFrom(spiffe_id_pb(by_spiffe_id))
        if by_parent_id is not None:
            flt.by_parent_id.CopyFrom(spiffe_id_pb(by_parent_id))
        if by_hint is not None:
            flt.by_hint.value = by_hint
        stub = entry_pb2_grpc.EntryStub(self._ch())

        async def page(token: str, deadline_s: float) -> tuple[list[SpireEntry], str]:
            request = entry_pb2.ListEntriesRequest(
                filter=flt, page_size=page_size, page_token=token
            )
            response = await stub.ListEntries(request, timeout=deadline_s)
            return [entry_of(e) for e in response.entries], response.next_page_token

        return await self._pages("Entry/ListEntries", page)

    async def get_entry(self, entry_id: str) -> SpireEntry | None:
        """The entry with this ID, None if there is none."""
        stub = entry_pb2_grpc.EntryStub(self._ch())

        async def call(deadline_s: float) -> entry_type.Entry:
            return await stub.GetEntry(entry_pb2.GetEntryRequest(id=entry_id), timeout=deadline_s)

        try:
            return entry_of(await self._read("Entry/GetEntry", call))
        except SpireApiError as err:
            if err.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def create_entries(self, entries: Sequence[SpireEntry]) -> list[EntryResult]:
        """Create the entries; one result per entry, in order. ALREADY_EXISTS means an entry
        with the same SPIFFE ID, parent ID and selector set exists (whatever its ID and other
        fields): the result carries that entry, unchanged. An ID already taken by an entry
        that is not similar in that sense is refused (INTERNAL, SPIRE's unique constraint)."""
        stub = entry_pb2_grpc.EntryStub(self._ch())
        out: list[EntryResult] = []
        for batch in _chunks(entries, self._batch_size):
            request = entry_pb2.BatchCreateEntryRequest(entries=[entry_pb(e) for e in batch])
            response = await self._write("Entry/BatchCreateEntry", stub.BatchCreateEntry, request)
            out += _entry_results("Entry/BatchCreateEntry", batch, response.results)
        return out

    async def update_entries(
        self, entries: Sequence[SpireEntry], *, mask: Iterable[str] | None = None
    ) -> list[EntryResult]:
        """Update the entries (by ``id``), changing only the ``mask`` fields (names from
        :data:`~.spire_types.MUTABLE_FIELDS`; all of them by default). Fields outside this
        client's model (federates_with, store_svid, the JWT-SVID TTL, expiry) are never
        touched. NOT_FOUND for an ID that is not there."""
        if any(not e.id for e in entries):
            raise ValueError("every entry to update needs its id")
        input_mask = entry_mask(MUTABLE_FIELDS if mask is None else mask)
        stub = entry_pb2_grpc.EntryStub(self._ch())
        out: list[EntryResult] = []
        for batch in _chunks(entries, self._batch_size):
            request = entry_pb2.BatchUpdateEntryRequest(
                entries=[entry_pb(e) for e in batch], input_mask=input_mask
            )
            response = await self._write("Entry/BatchUpdateEntry", stub.BatchUpdateEntry, request)
            out += _entry_results("Entry/BatchUpdateEntry", batch, response.results)
        return out

    async def delete_entries(self, entry_ids: Sequence[str]) -> list[DeleteResult]:
        """Delete the entries; one result per ID, in order (NOT_FOUND for one not there)."""
        stub = entry_pb2_grpc.EntryStub(self._ch())
        out: list[DeleteResult] = []
        for batch in _chunks(entry_ids, self._batch_size):
            request = entry_pb2.BatchDeleteEntryRequest(ids=list(batch))
            response = await self._write("Entry/BatchDeleteEntry", stub.BatchDeleteEntry, request)
            _check_count("Entry/BatchDeleteEntry", batch, response.results)
            out += [
                DeleteResult(r.id or i, code_name(r.status.code), r.status.message)
                for i, r in zip(batch, response.results, strict=True)
            ]
        return out

    # -- agents and bundles --------------------------------------------------------------------

    async def list_agents(self, *, page_size: int = 500) -> list[Agent]:
        """Every attested agent, banned ones included."""
        stub = agent_pb2_grpc.AgentStub(self._ch())

        async def page(token: str, deadline_s: float) -> tuple[list[Agent], str]:
            request = agent_pb2.ListAgentsRequest(page_size=page_size, page_token=token)
            response = await stub.ListAgents(request, timeout=deadline_s)
            return [agent_of(a) for a in response.agents], response.next_page_token

        return await self._pages("Agent/ListAgents", page)

    async def get_bundle(self) -> Bundle:
        """The server's own trust domain bundle."""
        stub = bundle_pb2_grpc.BundleStub(self._ch())

        async def call(deadline_s: float) -> bundle_type.Bundle:
            return await stub.GetBundle(bundle_pb2.GetBundleRequest(), timeout=deadline_s)

        return bundle_of(await self._read("Bundle/GetBundle", call))

    async def list_federated_bundles(self, *, page_size: int = 100) -> list[Bundle]:
        """The bundles of the trust domains this server federates with."""
        stub = bundle_pb2_grpc.BundleStub(self._ch())

        async def page(token: str, deadline_s: float) -> tuple[list[Bundle], str]:
            request = bundle_pb2.ListFederatedBundlesRequest(page_size=page_size, page_token=token)
            response = await stub.ListFederatedBundles(request, timeout=deadline_s)
            return [bundle_of(b) for b in response.bundles], response.next_page_token

        return await self._pages("Bundle/ListFederatedBundles", page)

"""A fault-injecting TCP proxy for system tests: per-link latency, partitions, resets.

Each ``Link`` listens on 127.0.0.1:<port> and forwards to one target. Put a link between every
ordered pair of nodes (node A dials B through link A→B) and the test controls the network:

- ``latency_s``: added one-way delay per chunk, in both directions, order preserved;
- ``partition(mode="drop")``: bytes are swallowed in both directions (a black hole — peers only
  notice through timeouts); ``mode="reset"`` closes every connection and refuses new ones;
- ``heal()``: back to normal (new connections work; swallowed bytes stay lost).

TLS passes through untouched (the proxy never looks at bytes), so mTLS and server-name checks
work as without it. All proxies run on one background event loop thread: ``FaultNetwork``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Link:
    def __init__(self, name: str, target_host: str, target_port: int) -> None:
        self.name = name
        self.target = (target_host, target_port)
        self.latency_s = 0.0
        self.mode = "ok"  # ok | drop | reset
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_all()

    async def _reset_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.mode == "ok":
                    writer.write(data)
                    await writer.drain()
            with contextlib.suppress(Exception):
                writer.write_eof()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if self.mode == "drop":
                    continue  # swallowed
                queue.put_nowait((time.monotonic() + self.latency_s, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


class FaultNetwork:
    """Owns the proxies and the event-loop thread they run on."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="faultnet", daemon=True)
        self._thread.start()
        self.links: dict[str, Link] = {}

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def link(self, name: str, target_port: int, target_host: str = "127.0.0.1") -> Link:
        """A new proxy forwarding to ``target_host:target_port``; dial ``link.port``."""
        link = Link(name, target_host, target_port)
        self._run(link.start())
        self.links[name] = link
        return link

    def set_latency(self, name: str, latency_s: float) -> None:
        self.links[name].latency_s = latency_s

    def partition(self, *names: str, mode: str = "drop") -> None:
        if mode not in ("drop", "reset"):
            raise ValueError(f"mode must be drop or reset, got {mode!r}")
        for name in names:
            link = self.links[name]
            link.mode = mode
            if mode == "reset":
                self._run(link._reset_all())

    def heal(self, *names: str) -> None:
        for name in names or tuple(self.links):
            self.links[name].mode = "ok"

    def close(self) -> None:
        for link in self.links.values():
            self._run(link.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

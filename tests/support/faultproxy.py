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
        self._tasks: set[asyncio.Future[None]] = set()
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
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_writer)),
            asyncio.ensure_future(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            # When either side ends or fails, the connection is over for both (as a dead peer's
            # kernel would reset it): no half-open connection is left hanging.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.mode == "ok":
                    writer.write(data)
                    await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                if not data:  # end of stream, also in drop mode
                    queue.put_nowait((time.monotonic() + self.latency_s, b""))
                    break
                if self.mode == "drop":
                    continue  # swallowed
                queue.put_nowait((time.monotonic() + self.latency_s, data))
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)


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
        """Stop every link and finish every connection task before the loop stops."""

        async def shutdown() -> None:
            for link in self.links.values():
                await link.stop()
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self._run(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

"""Sending raw request bytes on a real channel, whatever the method's streaming kind, and
reducing the answer to its status.

No serializer is set on either side: the bodies go out exactly as generated and answers
come back as bytes (not parsed: only the status is judged). A server-streaming call is read
for at most :data:`STREAM_MESSAGES` messages or :data:`STREAM_WINDOW_S` seconds, then
cancelled by the client; ending it so counts as ``OK``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import grpc
from grpc import aio

from tests.fuzz.apis import Method

STREAM_MESSAGES = 3
STREAM_WINDOW_S = 1.0
UNARY_TIMEOUT_S = 5.0
BAD_CODES = frozenset({"UNKNOWN", "INTERNAL", "DATA_LOSS"})


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The status a call ended with (a ``grpc.StatusCode`` name) and its details."""

    code: str
    details: str = ""
    messages: int = 0

    @property
    def bad(self) -> bool:
        """Whether the status breaks the bad-input contract (no input may cause it)."""
        return self.code in BAD_CODES


async def send(
    channel: aio.Channel, method: Method, messages: tuple[bytes, ...], timeout_s: float
) -> Outcome:
    """Call ``method`` on ``channel`` with ``messages``; the outcome, never an exception for
    a gRPC status (a client-side failure of the harness itself is raised)."""
    try:
        if method.server_streaming:
            return await _streaming_response(channel, method, messages, timeout_s)
        if method.client_streaming:
            call: Any = channel.stream_unary(method.path)(iter(messages), timeout=timeout_s)
        else:
            call = channel.unary_unary(method.path)(messages[0], timeout=timeout_s)
        await call
        return Outcome("OK", messages=1)
    except aio.AioRpcError as err:
        return Outcome(err.code().name, err.details() or "")


async def _streaming_response(
    channel: aio.Channel, method: Method, messages: tuple[bytes, ...], timeout_s: float
) -> Outcome:
    if method.client_streaming:
        call: Any = channel.stream_stream(method.path)(iter(messages), timeout=timeout_s)
    else:
        call = channel.unary_stream(method.path)(messages[0], timeout=timeout_s)
    received = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + min(STREAM_WINDOW_S, timeout_s)
    try:
        while received < STREAM_MESSAGES:
            left = until - loop.time()
            if left <= 0:
                break
            try:
                answer = await asyncio.wait_for(call.read(), left)
            except TimeoutError:
                break
            if answer is aio.EOF:
                code = await call.code()
                if code != grpc.StatusCode.OK:
                    return Outcome(code.name, await call.details() or "", received)
                return Outcome("OK", messages=received)
            received += 1
    finally:
        call.cancel()
    return Outcome("OK", messages=received)

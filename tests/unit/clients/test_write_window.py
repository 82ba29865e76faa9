"""The write window: a seq is never handed out further than the store remembers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from x0tta6bl4.clients.write_window import WriteWindow


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_seqs_increase_from_one() -> None:
    window = WriteWindow(4)
    got = []
    for _ in range(3):
        async with window.seq() as seq:
            got.append(seq)
    assert got == [1, 2, 3]
    assert window.in_flight == 0


async def test_one_stuck_write_holds_back_seqs_beyond_the_window() -> None:
    window = WriteWindow(4)
    async with contextlib.AsyncExitStack() as stuck:
        first = await stuck.enter_async_context(window.seq())
        assert first == 1
        # later writes come and go while seq 1 keeps retrying ...
        for expected in (2, 3, 4):
            async with window.seq() as seq:
                assert seq == expected
        # ... but seq 5 would let seq 1's outcome be forgotten: it waits
        fifth = window.seq()
        waiting = asyncio.ensure_future(fifth.__aenter__())
        await _settle()
        assert not waiting.done()
    # seq 1 answered: seq 5 may go
    assert await asyncio.wait_for(waiting, 5) == 5
    await fifth.__aexit__(None, None, None)
    assert window.in_flight == 0


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window size must be positive"):
        WriteWindow(0)

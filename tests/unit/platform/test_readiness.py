"""Readiness checks run concurrently, each bounded; a failing one names itself."""

from __future__ import annotations

import asyncio

from x0tta6bl4.platform.health import Readiness


async def test_checks_run_at_the_same_time() -> None:
    # each check can only finish once the other has started: run one after the other,
    # both would time out
    a, b = asyncio.Event(), asyncio.Event()

    async def first() -> tuple[bool, str]:
        a.set()
        await b.wait()
        return True, "first"

    async def second() -> tuple[bool, str]:
        b.set()
        await a.wait()
        return True, ""

    readiness = Readiness()
    readiness.add("first", first)
    readiness.add("second", second)
    assert await readiness.evaluate() == (True, {"first": "ok: first", "second": "ok"})


async def test_a_failing_check_is_named_and_the_others_still_answer() -> None:
    async def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    async def fine() -> tuple[bool, str]:
        return True, ""

    readiness = Readiness()
    readiness.add("broken", broken)
    readiness.add("fine", fine)
    ready, results = await readiness.evaluate()
    assert not ready
    assert results == {"broken": "not ready: check failed: RuntimeError('boom')", "fine": "ok"}

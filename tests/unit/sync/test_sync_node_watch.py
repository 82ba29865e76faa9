"""The sync node's Watch streams the keys a full-state transfer brings, whatever form they
travel in (registers as rows, other values as entries), and only those under its prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.crdt_specs import AW, LWW
from x0tta6bl4.platform.client import MeshClient
from x0tta6bl4.platform.config import parse_peer_address
from x0tta6bl4.sync.core import Add, Assign, Replica, value_of
from x0tta6bl4.sync.node import SyncNode
from x0tta6bl4.sync.settings import SyncSettings


def _no_dial(address: str) -> MeshClient:
    raise AssertionError(f"the node dialled {address}")


async def test_a_watch_streams_the_keys_a_snapshot_brings(tmp_path: Path) -> None:
    # ``a`` is a configured member; the node is never started, so it dials nobody.
    node = SyncNode(SyncSettings("b", {"a": parse_peer_address("127.0.0.1:9")}, tmp_path), _no_dial)
    node.open()
    source = Replica("a", ["b"])
    source.update("w/register", Assign("r"), 1, LWW)
    source.update("w/set", Add("x"), 2, AW)
    source.update("other/register", Assign("o"), 3, LWW)
    snap = source.snapshot()
    assert set(snap.registers) == {"w/register", "other/register"}  # rows and an entry

    stream = node.watch("w/")
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the watch is registered before the snapshot arrives
    try:
        await node.apply_snapshot(snap)
        seen: dict[str, Any] = {}
        for pending in (first, anext(stream)):
            key, origin, read = await asyncio.wait_for(pending, 5)
            assert origin == "" and read is not None  # not a write of any one replica
            seen[key] = value_of(read)
        assert seen == {"w/register": "r", "w/set": ("x",)}
    finally:
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await stream.aclose()
        await node.close()

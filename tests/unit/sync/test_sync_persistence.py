"""The sync replica's durable store: resume from checkpoint + log, torn tails, corruption."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.crdt_specs import AW
from x0tta6bl4.sync.core import Add, Replica, value_of
from x0tta6bl4.sync.persistence import CorruptStore, Persistence


def _reopen(d: Path) -> Replica:
    store = Persistence(d)
    cp, events, _ = store.load()
    r = Replica.restore(cp) if cp is not None else Replica("a", ["b"])
    for ev in events:
        r.replay(ev)
    store.close()
    return r


def test_checkpoint_plus_log_resume_everything(tmp_path: Path) -> None:
    store = Persistence(tmp_path)
    store.load()
    r = Replica("a", ["b"])
    store.append([r.update("s", Add(n), n + 1, AW if n == 0 else None) for n in range(3)])
    store.write_checkpoint(r.checkpoint())
    assert store.log_path.stat().st_size == 0
    store.append([r.update("s", Add(n), n + 1) for n in range(3, 6)])
    store.close()
    back = _reopen(tmp_path)
    assert value_of(back.get("s")) == tuple(range(6))
    assert back.unacked("b") == 6  # the unacknowledged deltas survived too
    assert back.update("s", Add(9), 1).dot.counter == 7


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    store = Persistence(tmp_path)
    store.load()
    r = Replica("a", ["b"])
    store.append([r.update("s", Add(n), n + 1, AW if n == 0 else None) for n in range(3)])
    store.close()
    size = store.log_path.stat().st_size
    with store.log_path.open("r+b") as f:
        f.truncate(size - 3)  # the last append was cut short by a crash
    back = _reopen(tmp_path)
    assert value_of(back.get("s")) == (0, 1)
    assert store.log_path.stat().st_size < size - 3


def test_corruption_before_the_last_record_refuses_to_start(tmp_path: Path) -> None:
    store = Persistence(tmp_path)
    store.load()
    r = Replica("a", ["b"])
    store.append([r.update("s", Add(n), n + 1, AW if n == 0 else None) for n in range(3)])
    store.close()
    data = bytearray(store.log_path.read_bytes())
    data[12] ^= 0xFF  # inside the first record's payload
    store.log_path.write_bytes(bytes(data))
    with pytest.raises(CorruptStore, match="refusing to start"):
        Persistence(tmp_path).load()


def test_damaged_checkpoint_refuses_to_start(tmp_path: Path) -> None:
    store = Persistence(tmp_path)
    store.load()
    r = Replica("a", ["b"])
    r.update("s", Add(1), 1, AW)
    store.write_checkpoint(r.checkpoint())
    store.close()
    data = bytearray(store.checkpoint_path.read_bytes())
    data[-1] ^= 0xFF
    store.checkpoint_path.write_bytes(bytes(data))
    with pytest.raises(CorruptStore, match="checkpoint"):
        Persistence(tmp_path).load()

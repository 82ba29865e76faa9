"""Snapshots: the state join equals replaying the sender's events, through the wire or not."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.crdt_specs import AW, LWW, MAP, MV, PN
from x0tta6bl4.sync.core import (
    Add,
    Assign,
    Clear,
    DeltaBatch,
    GCounter,
    Increment,
    MapRemove,
    MapUpdate,
    PNCounter,
    Remove,
    Replica,
    Snapshot,
    TypeSpec,
)
from x0tta6bl4.sync.core.causal import CausalContext
from x0tta6bl4.sync.core.codec import encode, encode_context
from x0tta6bl4.sync.core.dotstore import dots
from x0tta6bl4.sync.core.errors import DecodeError
from x0tta6bl4.sync.core.replica import Entries
from x0tta6bl4.sync.core.wire import _SNAPSHOT, _W, decode_snapshot, encode_snapshot

IDS = ("a", "b", "c")
KEYS = st.sampled_from(["k1", "k2", "k3", "kÿ"])  # a non-ASCII key takes the slow checks
VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=4), st.binary(max_size=4))


def _op(spec: TypeSpec, value: Any, remove: bool) -> Any:
    if spec == PN:
        return Increment(1)
    if spec == AW:
        return Remove("x") if remove else Add(value)
    if spec == MAP:
        return MapRemove("f") if remove else MapUpdate("f", Assign(value))
    return Clear() if remove else Assign(value)


STEPS = st.lists(
    st.tuples(
        st.sampled_from(IDS),
        KEYS,
        st.sampled_from([LWW, LWW, LWW, LWW, MV, AW, PN, MAP]),
        VALUES,
        st.booleans(),
        st.sampled_from(IDS),  # then deliver this replica's log to it (and its log back)
    ),
    max_size=40,
)


def _deliver(src: Replica, dst: Replica, now: int) -> None:
    batch = src.push(dst.id, now)
    if batch is not None:
        src.on_ack(dst.on_batch(batch, now))


def _cluster(steps: list[tuple[Any, ...]]) -> dict[str, Replica]:
    rs = {i: Replica(i, [p for p in IDS if p != i]) for i in IDS}
    for now, (rid, key, spec, value, remove, to) in enumerate(steps, start=1):
        r = rs[rid]
        current = r.get(key)
        if current is None:
            r.update(key, _op(spec, value, remove), now, spec)
        else:  # the key's (shown) type here
            r.update(key, _op(current.spec, value, remove), now)
        if to != rid:
            _deliver(r, rs[to], now)
            if remove:
                _deliver(rs[to], r, now)
    return rs


@settings(max_examples=300, deadline=None)
@given(STEPS, st.booleans())
def test_snapshot_join_equals_replaying_the_events(steps: list[Any], wire: bool) -> None:
    """Nothing was collected, so ``b``'s log is its whole history (its own events and those
    it received): joining its state must give what applying all of them gives."""
    rs = _cluster(steps)
    a, b = rs["a"], rs["b"]
    snap = b.snapshot()
    if wire:
        snap = decode_snapshot(encode_snapshot(snap))
        assert snap == b.snapshot()  # the encoding round-trips exactly, entry order included
    by_snapshot = Replica.restore(a.checkpoint())
    by_snapshot.on_snapshot(snap, 0)
    by_events = Replica.restore(a.checkpoint())
    by_events.on_batch(DeltaBatch("b", 0, b.checkpoint().log), 0)
    assert by_snapshot.state() == by_events.state()


def _v1_snapshot(snap: Snapshot, entries: Entries) -> bytes:
    """The version-1 layout (an ``entry`` per key, registers too), as older replicas wrote
    it, of ``snap`` whose every entry is ``entries``."""
    w = _W(_SNAPSHOT, 1)
    w.text(snap.sender)
    w.raw(encode_context(snap.applied))
    w.raw(encode_context(snap.context))
    w.varint(len(entries))
    for key, spec, stored in entries:
        w.text(key)
        if isinstance(stored, GCounter | PNCounter):
            w.raw(encode(stored))
        else:
            w.raw(encode(spec.view(stored, CausalContext.from_dots(dots(stored)))))
    return bytes(w.buf)


@settings(max_examples=100, deadline=None)
@given(STEPS)
def test_version_1_snapshots_are_still_read(steps: list[Any]) -> None:
    b = _cluster(steps)["b"]
    snap = b.snapshot()
    assert decode_snapshot(_v1_snapshot(snap, b.state()[0])) == snap


def _mixed() -> Snapshot:
    """Registers with siblings and every kind of value, among other types (out of order)."""
    rs = _cluster(
        [
            ("a", "k1", LWW, "text", False, "a"),
            ("b", "k1", LWW, b"\x00bytes", False, "b"),  # concurrent with a's: siblings
            ("b", "k2", LWW, -(2**63), False, "a"),
            ("a", "k3", AW, "x", False, "b"),
            ("b", "kÿ", LWW, "vÿ€", False, "b"),
            ("b", "k9", PN, 0, False, "b"),
        ]
    )
    return rs["b"].snapshot()


def test_every_truncation_or_corruption_is_a_decode_error_or_a_snapshot() -> None:
    data = encode_snapshot(_mixed())
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_snapshot(data[:cut])
    for i in range(2, len(data)):
        for flip in (0x01, 0x80, 0xFF):
            corrupt = bytearray(data)
            corrupt[i] ^= flip
            with contextlib.suppress(DecodeError):  # or a (different) snapshot
                decode_snapshot(bytes(corrupt))

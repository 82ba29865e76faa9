"""Lattice laws, inflation, delta and codec properties for every CRDT type."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_strategies import KITS, Universe, read, universes

from x0tta6bl4.sync.core import DecodeError, decode, decode_context, encode, encode_context
from x0tta6bl4.sync.core.dotstore import join, join_at

KIT_NAMES = sorted(KITS)
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pick(data: st.DataObject, u: Universe, n: int) -> list[Any]:
    pool = u.pool()
    return [pool[data.draw(st.integers(0, len(pool) - 1))] for _ in range(n)]


@pytest.mark.parametrize("kit", KIT_NAMES)
@SETTINGS
@given(data=st.data())
def test_merge_is_commutative_associative_idempotent(kit: str, data: st.DataObject) -> None:
    u = data.draw(universes(KITS[kit]))
    a, b, c = _pick(data, u, 3)
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    # The same laws observed through the user-visible value, not just structural equality.
    assert read(a.merge(b)) == read(b.merge(a))


@pytest.mark.parametrize("kit", KIT_NAMES)
@SETTINGS
@given(data=st.data())
def test_leq_is_the_order_of_merge(kit: str, data: st.DataObject) -> None:
    """``leq`` is defined structurally; it must agree with ``a <= b  <=>  a | b == b``."""
    u = data.draw(universes(KITS[kit]))
    a, b = _pick(data, u, 2)
    j = a.merge(b)
    assert a.leq(j) and b.leq(j)
    assert a.leq(b) == (j == b)


@pytest.mark.parametrize("kit", KIT_NAMES)
@SETTINGS
@given(data=st.data())
def test_mutators_inflate_and_deltas_stand_for_their_state(kit: str, data: st.DataObject) -> None:
    u = data.draw(universes(KITS[kit]))
    assert u.mutations, "every generated history starts with a mutation"
    for m in u.mutations:
        assert m.before.leq(m.after), m.op
        assert m.after == m.before.merge(m.delta), m.op
        assert m.delta.leq(m.after), m.op
        if m.always_changes:
            assert not m.after.leq(m.before), f"{m.op} did not strictly inflate"
        elif m.after != m.before:
            assert not m.after.leq(m.before), m.op
    # Any replica that has seen x can take the delta instead of x' = x | delta.
    m = u.mutations[data.draw(st.integers(0, len(u.mutations) - 1))]
    (z,) = _pick(data, u, 1)
    y = m.before.merge(z)
    assert y.merge(m.delta) == y.merge(m.after)
    # Merging the delta before the state it came from (out of order) converges too.
    assert z.merge(m.delta).merge(m.before) == z.merge(m.after)


@pytest.mark.parametrize("kit", [k for k in KIT_NAMES if k.startswith("or_map")])
@SETTINGS
@given(data=st.data())
def test_confined_join_of_a_map_delta_equals_the_full_join(kit: str, data: st.DataObject) -> None:
    """Replicas join a map delta only along its key path; that must equal the full join at
    any replica state, not just at the state the delta was made from."""
    u = data.draw(universes(KITS[kit]))
    for m in u.mutations:
        assert m.path, m.op
        (z,) = _pick(data, u, 1)
        full = join(z.store, z.cc, m.delta.store, m.delta.cc)
        assert join_at(z.store, z.cc, m.delta.store, m.delta.cc, m.path) == full, m.op


@pytest.mark.parametrize("kit", KIT_NAMES)
@SETTINGS
@given(data=st.data())
def test_encoding_round_trips_and_is_canonical(kit: str, data: st.DataObject) -> None:
    u = data.draw(universes(KITS[kit]))
    for s in u.pool():
        b = encode(s)
        back = decode(b)
        assert back == s
        assert read(back) == read(s)
        assert encode(back) == b


@pytest.mark.parametrize("kit", KIT_NAMES)
@SETTINGS
@given(data=st.data())
def test_corrupted_encodings_raise_decode_error_only(kit: str, data: st.DataObject) -> None:
    u = data.draw(universes(KITS[kit]))
    (s,) = _pick(data, u, 1)
    b = bytearray(encode(s))
    mode = data.draw(st.sampled_from(["truncate", "flip", "insert", "append"]))
    pos = data.draw(st.integers(0, len(b) - 1))
    if mode == "truncate":
        b = b[:pos]
    elif mode == "flip":
        b[pos] ^= data.draw(st.integers(1, 255))
    elif mode == "insert":
        b.insert(pos, data.draw(st.integers(0, 255)))
    else:
        b += data.draw(st.binary(min_size=1, max_size=4))
    try:
        v = decode(bytes(b))
    except DecodeError as e:
        assert e.field and e.reason
        return
    # A mutation can land on another valid encoding; then it must be a coherent value.
    assert decode(encode(v)) == v


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_raises_decode_error_only(blob: bytes) -> None:
    try:
        v = decode(blob)
    except DecodeError:
        return
    assert decode(encode(v)) == v


@settings(max_examples=300, deadline=None)
@given(tag=st.integers(1, 9), body=st.binary(max_size=48))
def test_garbage_with_a_valid_header_raises_decode_error_only(tag: int, body: bytes) -> None:
    """Most random blobs die at the version byte; this drives the body parsers instead."""
    nested = b"\x07" if tag == 9 else b""
    try:
        v = decode(bytes([1, tag]) + nested + body)
    except DecodeError:
        return
    assert decode(encode(v)) == v


def _representative_states() -> list[Any]:
    """One small but structurally complete state per type: entries from two replicas, a
    superseded entry, a removal, and a dot cloud (a merge of a later delta without its past)."""
    from x0tta6bl4.sync.core import (
        HLC,
        AWSet,
        DWFlag,
        EWFlag,
        GCounter,
        LWWRegister,
        MVRegister,
        ORMap,
        PNCounter,
        RWSet,
        TypeSpec,
        TypeTag,
    )

    h = HLC(1_700_000_000_000, 3, "a")
    g = GCounter().increment("a", 300)[0].merge(GCounter().increment("b", 1)[0])
    pn = PNCounter().increment("a", 5)[0].decrement("b", 2)[0]
    lww = LWWRegister().assign("x", h)[0].merge(LWWRegister().assign(-7, HLC(5, 0, "b"))[0])
    mv0, _ = MVRegister().assign(b"\x00\xff", "a")
    mv1, d = mv0.assign("y", "a")
    mv = MVRegister().assign(1, "b")[0].merge(d)  # cloud: a2 without a1
    ew = EWFlag().enable("a")[0].merge(EWFlag().enable("b")[0].disable()[0])
    dw = DWFlag().enable("a")[0].merge(DWFlag().disable("b")[0])
    aw = AWSet().add("x", "a")[0].add(3, "a")[0].remove("x")[0].merge(AWSet().add(b"z", "b")[0])
    rw = RWSet().add("x", "a")[0].remove("y", "a")[0].merge(RWSet().add("y", "b")[0])
    m = ORMap(TypeSpec(TypeTag.RW_SET)).update("k", lambda v: v.add("e", "a"))[0]
    m = m.update("j", lambda v: v.remove("e", "b"))[0].remove("k")[0]
    nested = ORMap(TypeSpec(TypeTag.OR_MAP, TypeSpec(TypeTag.LWW_REGISTER))).update(
        "svc", lambda v: v.update("port", lambda r: r.assign(8080, h))
    )[0]
    return [g, pn, lww, mv1, mv, ew, dw, aw, rw, m, nested]


def test_every_single_byte_corruption_and_truncation_is_a_decode_error_or_valid() -> None:
    """Exhaustive, not sampled: every position x every byte value, and every prefix."""
    valid = 0
    for state in _representative_states():
        blob = encode(state)
        assert decode(blob) == state
        variants = [blob[:i] for i in range(len(blob))]
        for i in range(len(blob)):
            variants += [blob[:i] + bytes([v]) + blob[i + 1 :] for v in range(256) if v != blob[i]]
        for b in variants:
            try:
                value = decode(b)
            except DecodeError as e:
                assert e.field
                continue
            assert decode(encode(value)) == value  # landed on another valid encoding
            valid += 1
    assert valid > 0, "some corruptions are valid values (e.g. another counter); none checked?"


@pytest.mark.parametrize("kit", [k for k in KIT_NAMES if "counter" not in k])
@SETTINGS
@given(data=st.data())
def test_client_contexts_round_trip(kit: str, data: st.DataObject) -> None:
    u = data.draw(universes(KITS[kit]))
    for s in u.pool():
        assert decode_context(encode_context(s.cc)) == s.cc


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40))
def test_malformed_client_context_is_a_decode_error_naming_the_context(blob: bytes) -> None:
    try:
        cc = decode_context(bytes([1, 0x40]) + blob)
    except DecodeError as e:
        assert e.field.startswith("context"), e.field
        return
    assert decode_context(encode_context(cc)) == cc

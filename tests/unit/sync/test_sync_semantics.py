"""Concrete conflict-resolution scenarios, causality helpers, validation and encoded sizes."""

from __future__ import annotations

import pytest

from x0tta6bl4.sync.core import (
    HLC,
    AWSet,
    CausalContext,
    Dot,
    DottedVersionVector,
    DWFlag,
    EWFlag,
    GCounter,
    Increment,
    InvalidOperation,
    Limits,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    RWSet,
    Scalar,
    Shape,
    Strategy,
    TypeSpec,
    TypeTag,
    VersionVector,
    apply_op,
    decode,
    encode,
    spec_for,
)

T0 = 1_764_237_000_000


# -- hybrid logical clock ---------------------------------------------------------------------


def test_hlc_is_monotonic_when_the_physical_clock_stalls_or_goes_back() -> None:
    h = HLC.zero("a").now(T0)
    assert (h.wall_ms, h.logical) == (T0, 0)
    h2 = h.now(T0 - 5_000)  # physical clock jumped back
    assert h2 > h and (h2.wall_ms, h2.logical) == (T0, 1)
    assert h2.now(T0 + 1) == HLC(T0 + 1, 0, "a")


def test_hlc_receive_moves_past_the_remote_timestamp() -> None:
    local = HLC.zero("a").now(T0)
    remote = HLC(T0 + 10, 4, "b")
    r = local.receive(remote, T0 + 1)
    assert r > remote and r.replica == "a" and (r.wall_ms, r.logical) == (T0 + 10, 5)
    assert local.receive(HLC(T0 - 3, 9, "b"), T0 + 20) == HLC(T0 + 20, 0, "a")


def test_hlc_rejects_a_remote_clock_too_far_ahead_when_asked_to() -> None:
    with pytest.raises(InvalidOperation) as e:
        HLC.zero("a").receive(HLC(T0 + 60_000, 0, "b"), T0, max_drift_ms=1_000)
    assert e.value.field == "hlc.wall_ms"


def test_hlc_orders_equal_times_by_replica() -> None:
    assert HLC(T0, 0, "a") < HLC(T0, 0, "b") < HLC(T0, 1, "a")


# -- causality --------------------------------------------------------------------------------


def test_causal_context_compacts_its_cloud() -> None:
    cc = CausalContext.from_dots([Dot("a", 1), Dot("a", 3), Dot("b", 2)])
    assert cc.vv == VersionVector({"a": 1}) and cc.cloud == {Dot("a", 3), Dot("b", 2)}
    cc = cc.add(Dot("a", 2)).add(Dot("b", 1))
    assert cc.vv == VersionVector({"a": 3, "b": 2}) and not cc.cloud
    assert cc.next_dot("a") == Dot("a", 4)
    assert CausalContext.from_dots([Dot("a", 5)]).next_dot("a") == Dot("a", 6)


def test_causal_context_order_and_difference() -> None:
    small = CausalContext.from_dots([Dot("a", 1), Dot("a", 3)])
    big = CausalContext(VersionVector({"a": 3}))
    assert small.leq(big) and not big.leq(small)
    assert list(big.dots_not_in(small)) == [Dot("a", 2)]
    assert small.union(big) == big


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ({"a": -1}, "version_vector[a]"),
        ({"": 1}, "version_vector.replica"),
        ({"a": 1.5}, "version_vector[a]"),
        ({"a": 2**63}, "version_vector[a]"),
    ],
)
def test_malformed_version_vectors_are_rejected(entries: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidOperation) as e:
        VersionVector(entries)  # type: ignore[arg-type]
    assert e.value.field == field


def test_malformed_cloud_dot_is_rejected() -> None:
    with pytest.raises(InvalidOperation) as e:
        CausalContext(cloud=[Dot("a", 0)])
    assert e.value.field == "causal_context.cloud"


def test_dotted_version_vectors_order_events() -> None:
    x = DottedVersionVector.checked(Dot("a", 2), VersionVector({"a": 1}))
    y = DottedVersionVector.checked(Dot("b", 1), VersionVector({"a": 2}))
    z = DottedVersionVector.checked(Dot("c", 1), VersionVector({"a": 1}))
    assert y.descends(x) and not x.descends(y)
    assert x.concurrent(z) and z.concurrent(x) and not y.concurrent(x)
    assert x.context().contains(Dot("a", 2))
    with pytest.raises(InvalidOperation):
        DottedVersionVector.checked(Dot("a", 1), VersionVector({"a": 1}))


# -- registers --------------------------------------------------------------------------------


def test_mv_register_keeps_concurrent_writes_as_siblings() -> None:
    a, _ = MVRegister().assign("base", "a")
    b = a
    a, _ = a.assign("from-a", "a")
    b, _ = b.assign("from-b", "b")
    m = a.merge(b)
    assert sorted(map(str, m.values)) == ["from-a", "from-b"]
    # A write without context supersedes both (the writer saw both).
    m2, d = m.assign("resolved", "c")
    assert m2.values == ["resolved"] and a.merge(d).merge(b).values == ["resolved"]


def test_mv_register_write_with_client_context_supersedes_exactly_what_was_read() -> None:
    r, _ = MVRegister().assign("v1", "a")
    seen = r.context()  # what a client read at replica a
    r = r.merge(MVRegister().assign("concurrent", "b")[0])
    r2, _ = r.assign("v2", "a", context=seen)
    assert sorted(map(str, r2.values)) == ["concurrent", "v2"]  # the unseen sibling survives
    r3, _ = r2.assign("v3", "a", context=r2.context())
    assert r3.values == ["v3"]


def test_lww_register_resolves_by_hlc_then_replica_regardless_of_merge_order() -> None:
    base = LWWRegister()
    a, _ = base.assign("a-late", HLC(T0 + 5, 0, "a"))
    b, _ = base.assign("b-early", HLC(T0, 7, "b"))
    c, _ = base.assign("c-tie", HLC(T0 + 5, 0, "c"))
    for m in (a.merge(b).merge(c), c.merge(b).merge(a), b.merge(c.merge(a))):
        assert m.value == "c-tie" and m.timestamp == HLC(T0 + 5, 0, "c")


def test_lww_register_write_after_seeing_a_future_clock_wins_over_it() -> None:
    """A replica whose physical clock lags still writes "later" once it saw the other write."""
    fast = HLC.zero("fast").now(T0 + 60_000)
    r, _ = LWWRegister().assign("from-fast", fast)
    slow = HLC.zero("slow").now(T0).receive(fast, T0)
    r2, _ = r.assign("from-slow-after-reading", slow.now(T0 + 1))
    assert r2.value == "from-slow-after-reading"
    assert len(r2.store) == 1  # the observed sibling was superseded, not kept


# -- flags and sets ---------------------------------------------------------------------------


def test_enable_wins_and_disable_wins_flags() -> None:
    ew, _ = EWFlag().enable("a")
    ew_a, _ = ew.disable()
    ew_b, _ = ew.enable("b")
    assert ew_a.merge(ew_b).value is True and ew_a.value is False

    dw, _ = DWFlag().enable("a")
    dw_a, _ = dw.disable("a")
    dw_b, _ = dw.enable("b")
    assert dw_a.merge(dw_b).value is False and dw_b.value is True
    dw_c, _ = dw_a.merge(dw_b).enable("c")  # a later enable (it saw the disable) turns it on
    assert dw_c.value is True and len(dw_c.store) == 1


def test_add_wins_set_concurrent_add_survives_remove() -> None:
    s, _ = AWSet().add("x", "a")
    removed, _ = s.remove("x")
    readded, _ = s.add("x", "b")
    assert "x" in removed.merge(readded) and "x" not in removed
    assert removed.merge(s).elements == []  # the removal is not undone by the older state
    assert len(removed.store) == 0 and not removed.cc.cloud  # no tombstone left behind


def test_remove_wins_set_concurrent_remove_beats_add() -> None:
    s, _ = RWSet().add("x", "a")
    removed, _ = s.remove("x", "a")
    readded, _ = s.add("x", "b")
    assert "x" not in removed.merge(readded)
    later, _ = removed.merge(readded).add("x", "c")
    assert "x" in later and later.elements == ["x"]


def test_aw_set_sequential_model() -> None:
    s, model = AWSet(), set[Scalar]()
    steps: list[tuple[str, Scalar]] = [
        ("add", 1),
        ("add", "x"),
        ("remove", 1),
        ("add", 1),
        ("add", b"z"),
        ("remove", "x"),
        ("remove", "nope"),
    ]
    for i, (op, e) in enumerate(steps):
        s, _ = s.add(e, "a") if op == "add" else s.remove(e)
        (model.add if op == "add" else model.discard)(e)
        assert set(s.elements) == model, i
    assert sum(len(v) for _, v in s.store.items()) == len(model)  # one dot per live element


# -- maps -------------------------------------------------------------------------------------


LWW = TypeSpec(TypeTag.LWW_REGISTER)


def test_or_map_remove_does_not_resurrect_but_keeps_a_concurrent_update() -> None:
    m, _ = ORMap(TypeSpec(TypeTag.AW_SET)).update("k", lambda s: s.add("old", "a"))
    stale = m
    removed, _ = m.remove("k")
    assert "k" not in removed and removed.merge(stale) == removed

    concurrent, _ = stale.update("k", lambda s: s.add("new", "b"))
    merged = removed.merge(concurrent)
    nested = merged.get("k")
    assert isinstance(nested, AWSet) and nested.elements == ["new"]  # "old" stays removed


def test_or_map_nested_maps_and_remove_with_client_context() -> None:
    spec = TypeSpec(TypeTag.OR_MAP, TypeSpec(TypeTag.MV_REGISTER))
    m, _ = ORMap(spec).update(
        "svc", lambda inner: inner.update("port", lambda r: r.assign(80, "a"))
    )
    seen = m.context()
    other, _ = m.update("svc", lambda inner: inner.update("host", lambda r: r.assign("h", "b")))
    m2, _ = other.remove("svc", context=seen)  # only what the client saw goes
    inner = m2.get("svc")
    assert isinstance(inner, ORMap) and inner.keys() == ["host"]


def test_or_map_rejects_non_causal_values_and_mismatched_mutators() -> None:
    with pytest.raises(InvalidOperation) as e:
        TypeSpec(TypeTag.OR_MAP, TypeSpec(TypeTag.PNCOUNTER))
    assert e.value.field == "type.value"
    with pytest.raises(InvalidOperation):
        ORMap(LWW).update("k", lambda r: MVRegister().assign("v", "a"))


# -- registry and validation -------------------------------------------------------------------


def test_strategy_registry_maps_each_strategy_to_a_type() -> None:
    assert spec_for(Shape.REGISTER, Strategy.LWW).tag is TypeTag.LWW_REGISTER
    assert spec_for(Shape.REGISTER, Strategy.MULTI_VALUE).tag is TypeTag.MV_REGISTER
    assert spec_for(Shape.SET, Strategy.ADD_WINS).tag is TypeTag.AW_SET
    assert spec_for(Shape.SET, Strategy.REMOVE_WINS).tag is TypeTag.RW_SET
    assert spec_for(Shape.FLAG, Strategy.ADD_WINS).tag is TypeTag.EW_FLAG
    assert spec_for(Shape.FLAG, Strategy.REMOVE_WINS).tag is TypeTag.DW_FLAG
    assert spec_for(Shape.COUNTER, None).tag is TypeTag.PNCOUNTER
    m = spec_for(Shape.MAP, Strategy.ADD_WINS, spec_for(Shape.REGISTER, Strategy.LWW))
    assert m == TypeSpec(TypeTag.OR_MAP, LWW)
    with pytest.raises(InvalidOperation) as e:
        spec_for(Shape.REGISTER, Strategy.ADD_WINS)
    assert e.value.field == "strategy"


def test_type_mismatch_unknown_type_and_oversize_values_name_the_field() -> None:
    h = HLC.zero("a").now(T0)
    with pytest.raises(InvalidOperation) as e:
        apply_op(LWWRegister(), Increment(1), "a", h)
    assert e.value.field == "op" and "increment" in e.value.reason
    with pytest.raises(InvalidOperation) as e:
        TypeSpec(99)  # type: ignore[arg-type]
    assert e.value.field == "type"
    with pytest.raises(InvalidOperation) as e:
        MVRegister().assign(b"x" * 65, "a", limits=Limits(max_value_bytes=64))
    assert e.value.field == "value"
    with pytest.raises(InvalidOperation) as e:
        MVRegister().assign(True, "a")  # bool is an int to the type checker, not to us
    assert e.value.field == "value"
    with pytest.raises(InvalidOperation) as e:
        MVRegister().assign("v", "a", context="a:1")  # type: ignore[arg-type]
    assert e.value.field == "context"
    with pytest.raises(InvalidOperation) as e:
        GCounter().increment("a", 0)
    assert e.value.field == "amount"
    with pytest.raises(InvalidOperation) as e:
        PNCounter().decrement("", 1)
    assert e.value.field == "replica"
    with pytest.raises(InvalidOperation) as e:
        ORMap(LWW).update("k" * 600, lambda r: r.assign("v", h))
    assert e.value.field == "key"


# -- encoded size -----------------------------------------------------------------------------


def test_typical_or_map_set_and_delete_deltas_fit_in_40_bytes() -> None:
    """Issue target: <= 40 encoded bytes per map operation delta.

    Typical: replica id "r1", key "user:1042", an 8-byte value, a current-epoch HLC, and the
    key already present (so the set supersedes one earlier dot).
    """
    m = ORMap(LWW)
    clock = HLC.zero("r1").now(T0)
    m, _ = m.update("user:1042", lambda r: r.assign("v-000001", clock))
    clock = clock.now(T0 + 1)
    m, set_delta = m.update("user:1042", lambda r: r.assign("v-000002", clock))
    _, del_delta = m.remove("user:1042")
    set_bytes, del_bytes = len(encode(set_delta)), len(encode(del_delta))
    assert decode(encode(set_delta)) == set_delta and decode(encode(del_delta)) == del_delta
    assert set_bytes <= 40, f"set delta encodes in {set_bytes} bytes (> 40)"
    assert del_bytes <= 40, f"delete delta encodes in {del_bytes} bytes (> 40)"
    print(f"or_map<lww> set delta: {set_bytes} B, delete delta: {del_bytes} B")

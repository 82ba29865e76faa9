"""The replication protocol core: buffers, acks, digests, snapshots, GC, validation."""

from __future__ import annotations

import pytest

from tests.support.crdt_specs import AW, DW, MAP_AW, MV, PN, RW
from x0tta6bl4.sync.core import (
    Ack,
    Add,
    Assign,
    DeltaBatch,
    Digest,
    Disable,
    Enable,
    Increment,
    InvalidOperation,
    MapRemove,
    MapUpdate,
    MVRegister,
    Remove,
    Replica,
    ReplicaConfig,
    Snapshot,
    TypeSpec,
    TypeTag,
    decode_context,
    encode_context,
    value_of,
)

T0 = 1_000_000


def cluster(*ids: str, **cfg: int) -> dict[str, Replica]:
    config = ReplicaConfig(**cfg)  # type: ignore[arg-type]
    return {i: Replica(i, [p for p in ids if p != i], config=config) for i in ids}


def deliver(src: Replica, dst: Replica, now: int = T0) -> None:
    """One push from ``src`` to ``dst`` and the ack back."""
    b = src.push(dst.id, now)
    if b is not None:
        src.on_ack(dst.on_batch(b, now))


def sync_all(rs: dict[str, Replica], now: int = T0) -> None:
    for a in rs.values():
        for b in rs.values():
            if a is not b:
                reply = b.on_digest(a.digest(), now)
                if reply is not None:
                    a.receive(reply, now)


def same(rs: dict[str, Replica]) -> bool:
    states = [r.state() for r in rs.values()]
    return all(s == states[0] for s in states)


def test_push_ack_drains_the_peer_buffer() -> None:
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    a.update("s", Add("x"), T0, AW)
    a.update("n", Increment(3), T0, PN)
    assert a.unacked("b") == 2
    deliver(a, b)
    assert a.unacked("b") == 0 and value_of(b.get("s")) == ("x",) and value_of(b.get("n")) == 3
    assert a.push("b", T0) is None and b.push("a", T0) is None  # nothing echoed back


def test_lost_batch_is_resent_after_the_retransmit_timeout_only() -> None:
    rs = cluster("a", "b", retransmit_ms=500)
    a, b = rs["a"], rs["b"]
    a.update("s", Add("x"), T0, AW)
    lost = a.push("b", T0)
    assert lost is not None
    assert a.push("b", T0 + 100) is None  # still in flight
    again = a.push("b", T0 + 600)
    assert again is not None and again.seq != lost.seq and again.events == lost.events
    a.on_ack(b.on_batch(again, T0 + 600))
    ack_dup = b.on_batch(lost, T0 + 700)  # the "lost" one shows up late: a harmless duplicate
    a.on_ack(ack_dup)
    assert value_of(b.get("s")) == ("x",) and a.unacked("b") == 0


def test_digest_answers_with_exactly_the_missing_events() -> None:
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    for i in range(3):
        a.update("s", Add(i), T0, AW)
    deliver(a, b)
    a.update("s", Add(99), T0, AW)
    reply = a.on_digest(b.digest(), T0)
    assert isinstance(reply, DeltaBatch) and [e.dot.counter for e in reply.events] == [4]
    b.receive(reply, T0)
    assert a.on_digest(b.digest(), T0) is None
    assert same(rs)


def test_digest_falls_back_to_a_snapshot_when_the_log_was_collected() -> None:
    rs = cluster("a", "b", "c")
    a, b, c = rs["a"], rs["b"], rs["c"]
    a.update("s", Add("x"), T0, AW)
    deliver(a, b)
    deliver(a, c)
    a.gc(T0)
    assert a.log_size == 0
    c2 = Replica("d", ["a", "b", "c"], bootstrapped=False)
    a.join("d")
    with pytest.raises(InvalidOperation) as e:
        c2.update("s", Add("y"), T0, AW)
    assert e.value.field == "replica"
    reply = a.on_digest(c2.digest(), T0)
    assert isinstance(reply, Snapshot)
    a.on_ack(c2.receive(reply, T0)[0])  # type: ignore[arg-type]
    assert c2.bootstrapped and value_of(c2.get("s")) == ("x",)
    c2.update("s", Add("y"), T0, AW)


def test_log_is_kept_until_every_member_acked_and_leave_unblocks_it() -> None:
    rs = cluster("a", "b", "c")
    a, b = rs["a"], rs["b"]
    a.update("s", Add("x"), T0, AW)
    deliver(a, b)
    assert a.gc(T0).dropped_events == 0 and a.log_size == 1  # c has not acked
    a.leave("c")
    report = a.gc(T0)
    assert report.dropped_events == 1 and a.log_size == 0 and report.stable.get("a") == 1
    with pytest.raises(InvalidOperation) as e:
        a.push("c", T0)
    assert e.value.field == "sender"


def test_removed_element_never_returns_via_a_late_old_delta_after_gc() -> None:
    rs = cluster("a", "b", "c")
    a, b, c = rs["a"], rs["b"], rs["c"]
    a.update("s", Add("x"), T0, AW)
    a.update("m", MapUpdate("k", Add("x")), T0, MAP_AW)
    old_batch = a.push("c", T0)  # captured in flight, delivered much later
    old_snapshot = a.snapshot()
    assert old_batch is not None
    deliver(a, b)
    b.update("s", Remove("x"), T0, AW)
    b.update("m", MapRemove("k"), T0, MAP_AW)
    for _ in range(2):
        sync_all(rs)
        for r in rs.values():
            r.gc(T0)
    assert all(r.log_size == 0 for r in rs.values()), "everything is stable, logs collected"
    for r in (b, c):  # both the original target and a replica that already had it
        r.on_batch(old_batch, T0 + 10)
        r.on_snapshot(old_snapshot, T0 + 10)
        # Emptied keys are collected (absent); the old delta and snapshot recreate nothing.
        assert r.get("s") is None and r.get("m") is None, r.id
    assert a.get("s") is None and same(rs)


def test_remove_wins_tokens_survive_until_concurrent_adds_are_delivered() -> None:
    rs = cluster("a", "b", "c")
    a, b, c = rs["a"], rs["b"], rs["c"]
    a.update("s", Add("x"), T0, RW)
    sync_all(rs)
    a.update("s", Remove("x"), T0, RW)
    b.update("s", Add("x"), T0, RW)  # concurrent with the remove, kept from c for now
    concurrent = b.push("c", T0)
    assert concurrent is not None
    for r in (a, c):  # everyone else exchanges everything except b's add to c
        for s in (a, b, c):
            if r is not s and not (s is b and r is c):
                reply = r.on_digest(s.digest(), T0)
                if reply is not None:
                    s.receive(reply, T0)
    for _ in range(4):
        for r in rs.values():
            r.gc(T0)
    assert value_of(c.get("s")) == () and c.get("s") is not None, "c still holds the token"
    c.on_batch(concurrent, T0)
    for _ in range(5):
        sync_all(rs)
        for r in rs.values():
            r.gc(T0)
    for r in rs.values():
        # Remove won and its tokens are gone; the emptied key itself is collected too.
        assert r.get("s") is None and r.keys() == [], "remove won, tokens gone"
    for r in rs.values():
        assert r.strongly_stable.get("a") >= 2 and r.strongly_stable.get("b") >= 1
    assert same(rs)


def test_dw_flag_tokens_are_collected_once_strongly_stable() -> None:
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    a.update("f", Enable(), T0, DW)
    a.update("f", Disable(), T0, DW)
    collected = 0
    for _ in range(4):
        sync_all(rs)
        collected += sum(r.gc(T0).collected_tokens for r in rs.values())
    # One disable token (it superseded the enable), collected once, by one replica.
    assert collected == 1 and same(rs)
    # Disabled with no tokens left is the flag's bottom: the key is collected (absent).
    assert b.get("f") is None and a.get("f") is None


def test_get_returns_a_context_that_scopes_the_next_write() -> None:
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    a.update("r", Assign("v1"), T0, MV)
    sync_all(rs)
    read = b.get("r")
    assert read is not None
    a.update("r", Assign("from-a"), T0)  # b's client has not seen this one
    sync_all(rs)
    token = encode_context(read.context)  # what Get hands to the client, and it hands back
    b.update("r", Assign("from-b", decode_context(token)), T0)
    sync_all(rs)
    value = a.get("r")
    assert value is not None and isinstance(value.value, MVRegister)
    assert sorted(map(str, value.value.values)) == ["from-a", "from-b"]


def test_invalid_updates_apply_nothing() -> None:
    rs = cluster("a", "b")
    a = rs["a"]
    a.update("r", Assign("v"), T0, MV)
    before, clock, log = a.state(), a.clock, a.log_size
    bad = [
        ("r", Increment(1), None, "op"),
        ("r", Add("x"), AW, "type"),
        ("new", Add("x"), None, "type"),
        ("", Add("x"), AW, "key"),
        ("m", MapUpdate("k", Increment(1)), MAP_AW, "map['k'].op"),
        ("r", Assign(b"x" * (64 * 1024 + 1)), None, "value"),
        ("r", Assign("v", "not-a-context"), None, "context"),  # type: ignore[arg-type]
    ]
    for key, op, spec, field in bad:
        with pytest.raises(InvalidOperation) as e:
            a.update(key, op, T0 + 5, spec)  # type: ignore[arg-type]
        assert e.value.field == field, (key, op)
        assert a.state() == before and a.clock == clock and a.log_size == log


def test_a_batch_with_one_bad_event_is_rejected_whole() -> None:
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    a.update("s", Add("x"), T0, AW)
    a.update("s", Add("y"), T0, AW)
    good = a.push("b", T0)
    assert good is not None
    broken = DeltaBatch("a", 9, (good.events[0], "garbage"))  # type: ignore[arg-type]
    before = b.state()
    with pytest.raises(InvalidOperation) as e:
        b.on_batch(broken, T0)
    assert e.value.field == "events[1]" and b.state() == before
    with pytest.raises(InvalidOperation) as e:
        b.on_batch(DeltaBatch("mallory", 1, good.events), T0)
    assert e.value.field == "sender"


def test_concurrent_creation_with_different_types_converges() -> None:
    rs = cluster("a", "b")
    rs["a"].update("k", Add("x"), T0, AW)
    rs["b"].update("k", Assign("v"), T0, MV)
    sync_all(rs)
    assert same(rs)
    read = rs["a"].get("k")
    assert read is not None and read.spec == AW  # the greater type tag wins on both


def test_type_conflict_resolution_does_not_depend_on_delivery_order() -> None:
    """Key "k" is created concurrently as an add-wins set (the winning, greater type tag) and
    as an enable-wins flag. x sees F1 S1 S2 F2, y sees F1 F2 S1 S2, where S2 empties the set.
    Each type's value is kept and joined on its own and a read shows the greatest non-empty
    one, so once S2 empties the set, both show the flag - whatever the delivery order."""
    assert TypeTag.AW_SET > TypeTag.EW_FLAG
    sets, flags = Replica("p", ["x", "y"]), Replica("q", ["x", "y"])
    s1 = sets.update("k", Add("e"), T0, AW)
    s2 = sets.update("k", Remove("e"), T0)
    f1 = flags.update("k", Enable(), T0, TypeSpec(TypeTag.EW_FLAG))
    f2 = flags.update("k", Enable(), T0)
    states = []
    for name, events in {"x": [f1, s1, s2, f2], "y": [f1, f2, s1, s2]}.items():
        r = Replica(name, ["p", "q"])
        for i, ev in enumerate(events):
            r.on_batch(DeltaBatch(ev.dot.replica, i + 1, (ev,)), T0)
        read = r.get("k")
        assert read is not None and read.spec == TypeSpec(TypeTag.EW_FLAG), name
        assert value_of(read) is True, name
        states.append(r.state())
    assert states[0] == states[1]


def test_ack_and_digest_from_unknown_senders_are_rejected() -> None:
    a = Replica("a", ["b"])
    with pytest.raises(InvalidOperation):
        a.on_ack(Ack("z", 1, a.applied))
    with pytest.raises(InvalidOperation):
        a.on_digest(Digest("z", a.applied), T0)


def test_events_delivered_in_reverse_still_supersede_what_they_saw() -> None:
    """Regression: dedup must use applied events, not the data context.

    e3 supersedes e2 which supersedes e1. Delivered e3, e1, e2: after e3 the data context
    already holds e2's dot (as superseded), yet e2 must still be joined to drop e1.
    """
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    events = [a.update("r", Assign(f"v{i}"), T0, MV) for i in (1, 2, 3)]
    for seq, i in enumerate((2, 0, 1), start=1):
        b.on_batch(DeltaBatch("a", seq, (events[i],)), T0)
    assert value_of(b.get("r")) == ("v3",)
    assert b.state() == a.state()


def test_emptied_keys_leave_no_entry_and_removed_values_never_come_back() -> None:
    """A delete-heavy workload keeps only live keys (no per-key residue), and a stale copy of
    a removed value - an old batch, an old snapshot - recreates nothing anywhere."""
    rs = cluster("a", "b")
    a, b = rs["a"], rs["b"]
    for i in range(50):
        a.update(f"k{i}", Add("v"), T0, AW)
    stale_batch = a.push("b", T0)
    stale_snapshot = a.snapshot()
    assert stale_batch is not None
    sync_all(rs)
    for i in range(50):
        if i % 10:
            b.update(f"k{i}", Remove("v"), T0)
    for _ in range(3):
        sync_all(rs)
        for r in rs.values():
            r.gc(T0)
    live = [f"k{i}" for i in range(50) if i % 10 == 0]
    for r in rs.values():
        assert r.keys() == sorted(live) and len(r.state()[0]) == len(live)
    b.on_batch(stale_batch, T0 + 1)
    b.on_snapshot(stale_snapshot, T0 + 1)
    assert b.keys() == sorted(live)
    sync_all(rs)
    assert same(rs)


def test_removed_key_recreated_with_another_type_converges() -> None:
    """Once a key is emptied it can be created again with any type; a replica that has not
    seen the removal yet still converges with one that has."""
    rs = cluster("a", "b", "c")
    a, b, c = rs["a"], rs["b"], rs["c"]
    a.update("k", Add("x"), T0, AW)
    sync_all(rs)
    a.update("k", Remove("x"), T0)
    deliver(a, b)  # c has not seen the removal
    flag = b.update("k", Enable(), T0, TypeSpec(TypeTag.EW_FLAG))  # lesser than AW_SET
    c.on_batch(DeltaBatch("b", 99, (flag,)), T0)  # c: the old set and the new flag
    assert value_of(c.get("k")) == ("x",)  # the set still shows at c: it is not removed there
    sync_all(rs)
    for r in rs.values():
        read = r.get("k")
        assert read is not None and read.spec == TypeSpec(TypeTag.EW_FLAG), r.id
        assert value_of(read) is True
    assert same(rs)


@pytest.mark.parametrize("seed", range(30))
def test_concurrent_type_conflicts_with_removals_converge_in_any_order(seed: int) -> None:
    """Three writers create, fill and empty one key concurrently under different types;
    every delivery order yields the same state and the same read."""
    import random

    rng = random.Random(seed)
    ops = {
        "p": (AW, [Add("x"), Add("y"), Remove("x"), Remove("y")]),
        "q": (TypeSpec(TypeTag.EW_FLAG), [Enable(), Disable()]),
        "r": (MV, [Assign("v1"), Assign("v2")]),
    }
    events = []
    for wid, (spec, writes) in ops.items():
        w = Replica(wid, ["x", "y", "z"])
        n = rng.randrange(1, len(writes) + 1)
        for i, op in enumerate(writes[:n]):
            events.append(w.update("k", op, T0 + i, spec if i == 0 else None))
    states, reads = [], []
    for name in ("x", "y", "z"):
        r = Replica(name, ["p", "q", "r"])
        order = list(events)
        rng.shuffle(order)
        for i, ev in enumerate(order):
            r.on_batch(DeltaBatch(ev.dot.replica, i + 1, (ev,)), T0)
        states.append(r.state())
        got = r.get("k")
        reads.append(None if got is None else (got.spec, value_of(got)))
    assert states[0] == states[1] == states[2]
    assert reads[0] == reads[1] == reads[2]

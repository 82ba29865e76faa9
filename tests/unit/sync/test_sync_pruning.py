"""Pruning a departed replica from every context once its events are settled (``leave`` +
``gc``): when it happens, what the replicas show afterwards, and replays from before it."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.crdt_specs import AW, LWW, MAP, RW
from x0tta6bl4.sync.core import (
    Add,
    Assign,
    CausalContext,
    Clear,
    DeltaBatch,
    Event,
    InvalidOperation,
    MapRemove,
    MapUpdate,
    Remove,
    Replica,
    Snapshot,
    value_of,
)
from x0tta6bl4.sync.core.bytes_io import ByteWriter
from x0tta6bl4.sync.core.codec import encode_context
from x0tta6bl4.sync.core.wire import (
    decode_checkpoint,
    decode_snapshot,
    encode_checkpoint,
    encode_snapshot,
)

T0 = 1_000_000
STAYING = ("a", "b", "c")


def cluster() -> dict[str, Replica]:
    ids = (*STAYING, "r")
    return {i: Replica(i, [p for p in ids if p != i]) for i in ids}


def exchange(src: Replica, dst: Replica, now: int = T0) -> None:
    """``src`` sends its digest to ``dst``; the answer and the ack go back."""
    reply = dst.on_digest(src.digest(), now)
    if reply is not None:
        for back in src.receive(reply, now):
            dst.receive(back, now)


def rounds(rs: dict[str, Replica], n: int = 4, ids: tuple[str, ...] = STAYING) -> list[str]:
    """``n`` rounds of everyone exchanging digests with everyone, then GC; what was pruned."""
    pruned = []
    for _ in range(n):
        for a in ids:
            for b in ids:
                if a != b and b in rs[a].members:
                    exchange(rs[a], rs[b])
        for i in ids:
            pruned += rs[i].gc(T0).pruned
    return pruned


def depart(rs: dict[str, Replica], ids: tuple[str, ...] = STAYING) -> None:
    """``r`` stops; every remaining replica is told it left."""
    for i in ids:
        rs[i].leave("r")


def mentions(r: Replica, rid: str = "r") -> list[str]:
    """Where ``rid`` still appears in what replica ``r`` shows or sends."""
    _, cc, applied = r.state()
    cp = r.checkpoint()
    views = {
        "digest": r.digest().applied,
        "context": cc,
        "applied": applied,
        "snapshot": r.snapshot().context,
        **{f"get({k})": read.context for k in r.keys() if (read := r.get(k))},  # noqa: SIM118
        **{f"acked[{p}]": acked for p, acked, _ in cp.peers},
        **{f"reported[{p}]": reported for p, _, reported in cp.peers},
        "cut": CausalContext(cp.cut.stable.merge(cp.cut.candidate).merge(cp.cut.frontier)),
    }
    found = [name for name, ctx in views.items() if ctx.mentions(rid)]
    found += [f"log {ev.dot}" for ev in cp.log if ev.dot.replica == rid]
    return found


def written_by_r(rs: dict[str, Replica]) -> None:
    """``r`` writes a register, adds to sets and a map; everyone gets all of it."""
    r = rs["r"]
    r.update("reg", Assign("from-r"), T0, LWW)
    r.update("s", Add("x"), T0, AW)
    r.update("s", Add("kept"), T0, AW)
    r.update("rw", Add("t"), T0, RW)
    r.update("rw", Remove("t"), T0, RW)
    r.update("m", MapUpdate("k", Assign(1)), T0, MAP)
    rounds(rs, 1, ids=(*STAYING, "r"))


def test_pruning_waits_until_every_member_has_the_departed_replicas_events() -> None:
    rs = cluster()
    a, b = rs["a"], rs["b"]
    written_by_r(rs)
    late = rs["r"].update("s", Add("late"), T0, AW)  # r's last write reaches b only
    b.on_batch(DeltaBatch("r", 99, (late,)), T0)
    depart(rs)
    assert a.departing == ["r"] and a.retired == []
    # a's view from before the leave: every member had all of r that a has. Not enough: the
    # members must report again after the leave (b has r's last write, a does not).
    assert a.gc(T0).pruned == () and "digest" in mentions(a)
    for _ in range(3):
        exchange(a, b)  # b tells a what it applied (and a gets nothing from c)
        assert a.gc(T0).pruned == ()
    assert value_of(a.get("s")) == ("kept", "late", "x")
    assert sorted(rounds(rs)) == ["r", "r", "r"]
    for i in STAYING:
        assert rs[i].retired == ["r"] and rs[i].departing == []
        assert mentions(rs[i]) == [], i
        assert value_of(rs[i].get("s")) == ("kept", "late", "x")
        assert value_of(rs[i].get("reg")) == "from-r"  # r's dots still in values: readable
        assert rs[i].get("rw") is None  # r's remove-wins token was collected


def test_a_member_that_never_reports_blocks_pruning() -> None:
    rs = cluster()
    written_by_r(rs)
    depart(rs)
    assert rounds(rs, ids=("a", "b")) == []  # c silent: a and b keep r's entries
    assert "digest" in mentions(rs["a"])
    rounds(rs)
    assert all(rs[i].retired == ["r"] and mentions(rs[i]) == [] for i in STAYING)


def test_replayed_batches_and_snapshots_from_before_the_prune_change_nothing() -> None:
    rs = cluster()
    a, b, c = rs["a"], rs["b"], rs["c"]
    written_by_r(rs)
    r_events = rs["r"].checkpoint().log
    old_snapshot = c.snapshot()  # c holds "x" and mentions r
    old_wire = encode_snapshot(old_snapshot)
    b.update("s", Remove("x"), T0)
    b.update("m", MapRemove("k"), T0)
    depart(rs)
    rounds(rs)
    assert all(rs[i].retired == ["r"] for i in STAYING)
    before = a.state()
    a.on_batch(DeltaBatch("c", 77, r_events), T0)  # r's events relayed again by c
    a.on_snapshot(old_snapshot, T0)  # a snapshot c sent before the prune
    a.on_snapshot(decode_snapshot(old_wire), T0)
    assert a.state() == before
    assert value_of(a.get("s")) == ("kept",) and a.get("m") is None
    assert mentions(a) == []
    with pytest.raises(InvalidOperation):  # r itself is no member any more
        a.on_batch(DeltaBatch("r", 5, r_events), T0)


def test_an_old_snapshot_missing_a_write_of_r_does_not_remove_it_after_the_prune() -> None:
    rs = cluster()
    a, c = rs["a"], rs["c"]
    stale = c.snapshot()  # before c had anything of r: no dot of r in its context
    written_by_r(rs)
    depart(rs)
    rounds(rs)
    a.on_snapshot(stale, T0)
    assert value_of(a.get("reg")) == "from-r" and value_of(a.get("s")) == ("kept", "x")


def test_a_register_written_by_r_can_be_cleared_everywhere_after_the_prune() -> None:
    rs = cluster()
    written_by_r(rs)
    depart(rs)
    rounds(rs)
    a, b = rs["a"], rs["b"]
    read = a.get("reg")
    assert read is not None and not read.context.mentions("r")
    a.update("reg", Clear(read.context), T0)  # the context of a read after the prune
    s = b.get("s")
    assert s is not None
    b.update("s", Remove("kept", s.context), T0)
    rounds(rs, 2)
    for i in STAYING:
        assert rs[i].get("reg") is None, i
        assert value_of(rs[i].get("s")) == ("x",), i
        assert mentions(rs[i]) == [], i


def test_a_context_read_before_the_prune_still_scopes_a_write() -> None:
    rs = cluster()
    a = rs["a"]
    written_by_r(rs)
    read = a.get("s")  # names r's dots so far; not r's second add of "x" below
    assert read is not None and read.context.mentions("r")
    rs["r"].update("s", Add("x"), T0)
    rounds(rs, 1, ids=(*STAYING, "r"))
    depart(rs)
    rounds(rs)
    a.update("s", Remove("x", read.context), T0)
    assert value_of(a.get("s")) == ("kept", "x")  # the unseen add wins
    a.update("s", Remove("x"), T0)  # no context: removes what is there
    assert value_of(a.get("s")) == ("kept",)


def test_a_member_that_was_not_told_learns_the_retirement_from_a_snapshot() -> None:
    rs = cluster()
    a, b = rs["a"], rs["b"]
    written_by_r(rs)
    depart(rs, ids=("a",))  # the operator has told a only, so far
    for _ in range(4):
        if rounds(rs, 1):
            break
    assert a.retired == ["r"] and b.retired == [] and "digest" in mentions(b)
    reply = a.on_digest(b.digest(), T0)  # b still lists r: a teaches it with its state
    assert isinstance(reply, Snapshot) and reply.retired == frozenset({"r"})
    b.on_snapshot(decode_snapshot(encode_snapshot(reply)), T0)
    assert b.retired == ["r"] and mentions(b) == []
    assert a.on_digest(b.digest(), T0) is None and b.on_digest(a.digest(), T0) is None
    assert a.state() == b.state()


def test_an_unpruned_members_snapshot_does_not_bring_r_back() -> None:
    rs = cluster()
    a, b = rs["a"], rs["b"]
    written_by_r(rs)
    depart(rs, ids=("a",))
    rounds(rs)
    a.on_snapshot(b.snapshot(), T0)  # b has not pruned: its state names r's dots
    assert mentions(a) == [] and a.retired == ["r"]
    assert value_of(a.get("reg")) == "from-r"


def test_retired_ids_cannot_rejoin_and_leave_of_unknown_ids_is_a_no_op() -> None:
    rs = cluster()
    written_by_r(rs)
    depart(rs)
    rounds(rs)
    with pytest.raises(InvalidOperation) as e:
        rs["a"].join("r")
    assert e.value.field == "peer"
    rs["a"].leave("typo")
    assert rs["a"].departing == [] and rs["a"].retired == ["r"]


def test_restart_keeps_the_retired_and_departing_replicas() -> None:
    rs = cluster()
    written_by_r(rs)
    depart(rs)
    rounds(rs)
    a = rs["a"]
    a.leave("c")  # c departs next, not settled yet
    restored = Replica.restore(decode_checkpoint(encode_checkpoint(a.checkpoint())))
    assert restored.retired == ["r"] and restored.departing == ["c"]
    assert restored.checkpoint() == a.checkpoint()
    assert mentions(restored) == []
    restored.on_batch(DeltaBatch("b", 1, rs["r"].checkpoint().log), T0)  # still dropped
    assert mentions(restored) == [] and restored.state() == a.state()


def test_checkpoints_and_snapshots_of_versions_2_and_3_are_still_read() -> None:
    """Before version 4, a state had no rows: every register was an entry."""
    rs = cluster()
    written_by_r(rs)
    a = rs["a"]
    every_entry, _, _ = a.state()
    snap = a.snapshot()
    assert snap.registers  # kept as rows, so written as version 4
    old_snapshot = dataclasses.replace(snap, entries=every_entry, registers={})
    data = encode_snapshot(old_snapshot)
    assert data[0] == 2 and decode_snapshot(data) == snap  # nothing retired: still version 2
    cp = a.checkpoint()
    v4 = encode_checkpoint(dataclasses.replace(cp, entries=every_entry, registers={}))
    header = ByteWriter()  # the fields before the block of rows, which versions 2 and 3 lack
    header.text(cp.replica)
    header.buf.append(1)
    header.raw(encode_context(cp.applied))
    header.raw(encode_context(cp.context))
    header.varint(cp.clock.wall_ms)
    header.varint(cp.clock.logical)
    header.text(cp.clock.replica)
    at = 2 + len(header.buf)
    assert v4[0] == 4 and v4[at] == 0  # no rows
    v3 = bytes([3]) + v4[1:at] + v4[at + 1 :]
    assert v3.endswith(b"\x00\x00")  # no retired, no departing replica
    assert decode_checkpoint(v3) == cp
    v2 = bytes([2]) + v3[1:-2]  # version 2 ended after the cut's members
    assert decode_checkpoint(v2) == cp


def test_events_of_a_retired_replica_in_a_restored_log_are_not_replayed() -> None:
    rs = cluster()
    written_by_r(rs)
    r_events: tuple[Event, ...] = rs["r"].checkpoint().log
    depart(rs)
    rounds(rs)
    a = Replica.restore(rs["a"].checkpoint())
    assert not any(a.replay(ev) for ev in r_events)
    assert mentions(a) == []


def test_no_pruning_while_a_member_still_lacks_events_of_the_departed_replica() -> None:
    rs = cluster()
    a = rs["a"]
    rs["r"].update("s", Add("only-a-has-it"), T0, AW)
    exchange(a, rs["r"])  # r's write reached a only
    depart(rs)
    for _ in range(4):
        for i in ("b", "c"):
            a.on_digest(rs[i].digest(), T0)  # b and c report; a's answers get lost
        assert a.gc(T0).pruned == () and a.departing == ["r"]
    rounds(rs)
    assert all(rs[i].retired == ["r"] for i in STAYING)
    assert all(value_of(rs[i].get("s")) == ("only-a-has-it",) for i in STAYING)

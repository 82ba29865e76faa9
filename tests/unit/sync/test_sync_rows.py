"""Registers kept as rows: the same join as dot functions, and the replica's two forms of state.

A replica keeps the LWW register of a key holding no other type as a flat row
(``dotstore.Row``) instead of an entry. Rows must join exactly as the dot functions they stand
for, and a key must move between the two forms (siblings, shadows, removal) without its value,
its reads or the state a snapshot carries changing.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.crdt_specs import AW, LWW
from x0tta6bl4.sync.core import Add, Assign, Clear, Replica, value_of
from x0tta6bl4.sync.core.causal import CausalContext, Dot
from x0tta6bl4.sync.core.dotstore import (
    ROW_FIELDS,
    DotFun,
    filter_row,
    fun_of,
    join_fun,
    join_rows,
    row_of,
)
from x0tta6bl4.sync.core.wire import (
    decode_checkpoint,
    decode_snapshot,
    encode_checkpoint,
    encode_snapshot,
)

DOTS = st.builds(Dot, st.sampled_from(["a", "b", "c"]), st.integers(1, 4))


def _fun(dots: set[Dot]) -> DotFun:
    return DotFun({d: (d.counter * 10, 0, f"{d.replica}{d.counter}") for d in dots})


@st.composite
def pairs(draw: st.DrawFn) -> tuple[DotFun, CausalContext, DotFun, CausalContext]:
    """Two dot functions over a few shared dots (so they overlap, nest and differ), each
    with a context drawn from the same dots."""
    base = sorted(draw(st.sets(DOTS, min_size=1, max_size=5)))
    some = st.sets(st.sampled_from(base), min_size=1, max_size=3)
    seen = st.lists(st.sampled_from(base), max_size=6).map(CausalContext.from_dots)
    return _fun(draw(some)), draw(seen), _fun(draw(some)), draw(seen)


@settings(max_examples=1000, deadline=None)
@given(pairs())
def test_rows_join_as_the_dot_functions_they_stand_for(
    case: tuple[DotFun, CausalContext, DotFun, CausalContext],
) -> None:
    a, ca, b, cb = case
    ra, rb = row_of(a), row_of(b)
    assert fun_of(ra) == a
    joined = join_rows(ra, ca, rb, cb)
    expected = join_fun(a, ca, b, cb)
    assert (fun_of(joined) if joined else DotFun()) == expected
    if joined:
        assert joined == row_of(expected)  # canonical: equal dot functions, equal rows
    kept = join_fun(a, ca, DotFun(), cb)
    assert filter_row(ra, cb) == (row_of(kept) if len(kept) else ())


def _write(r: Replica, key: str, value: str, now: int) -> None:
    r.update(key, Assign(value), now, LWW)


def _exchange(x: Replica, y: Replica, now: int) -> None:
    """Full states both ways, through the wire encoding."""
    y.on_snapshot(decode_snapshot(encode_snapshot(x.snapshot())), now)
    x.on_snapshot(decode_snapshot(encode_snapshot(y.snapshot())), now)


def test_concurrent_writes_become_siblings_and_a_later_write_collapses_them() -> None:
    a, b = Replica("a", ["b"]), Replica("b", ["a"])
    _write(a, "k", "from-a", 1)
    _write(b, "k", "from-b", 2)
    _exchange(a, b, 3)
    snap = a.snapshot()
    assert len(snap.registers["k"]) == 2 * ROW_FIELDS  # two siblings, still a row
    assert a.state() == b.state()
    assert value_of(a.get("k")) == value_of(b.get("k")) == "from-b"  # the later HLC
    _write(a, "k", "last", 4)
    assert len(a.snapshot().registers["k"]) == ROW_FIELDS
    _exchange(a, b, 5)
    assert value_of(b.get("k")) == "last" and a.state() == b.state()


def test_a_key_holding_two_types_is_kept_as_entries_and_back_as_a_row_once_it_has_one() -> None:
    a, b = Replica("a", ["b"]), Replica("b", ["a"])
    _write(a, "k", "reg", 1)
    b.update("k", Add("x"), 2, AW)  # concurrently, another type
    _exchange(a, b, 3)
    for r in (a, b):
        snap = r.snapshot()
        assert "k" not in snap.registers  # a shadowed register is an entry
        assert {spec for key, spec, _ in snap.entries if key == "k"} == {LWW, AW}
    assert a.state() == b.state() and value_of(a.get("k")) == value_of(b.get("k"))
    # Removing the shown type leaves the register alone on the key: a row again.
    shown = a.get("k")
    assert shown is not None
    a.update("k", Clear(shown.context), 4, shown.spec)
    _exchange(a, b, 5)
    assert a.state() == b.state()
    left = a.get("k")
    assert left is not None and left.spec != shown.spec
    assert ("k" in a.snapshot().registers) == (left.spec == LWW)


def test_a_removed_register_is_gone_from_the_rows_and_stays_gone() -> None:
    a, b = Replica("a", ["b"]), Replica("b", ["a"])
    _write(a, "k", "v", 1)
    _exchange(a, b, 2)
    read = b.get("k")
    assert read is not None
    b.update("k", Clear(read.context), 3, LWW)
    assert "k" not in b.snapshot().registers and b.get("k") is None
    _exchange(a, b, 4)
    assert a.get("k") is None and b.get("k") is None and a.key_count == b.key_count == 0


def test_rows_survive_a_checkpoint_and_a_restore() -> None:
    a, b = Replica("a", ["b"]), Replica("b", ["a"])
    for n in range(20):
        _write(a if n % 2 else b, f"k{n % 7}", f"v{n}", n + 1)
    _exchange(a, b, 30)
    cp = a.checkpoint()
    assert cp.registers and decode_checkpoint(encode_checkpoint(cp)) == cp
    restored = Replica.restore(decode_checkpoint(encode_checkpoint(cp)))
    assert restored.state() == a.state() and restored.keys() == a.keys()

"""Hypothesis strategies for the sync CRDT property tests.

States are generated as *reachable* states: a random history of mutations on three replicas,
interleaved with merges, is executed and every intermediate state and every delta is kept.
Properties are then checked over arbitrary picks from that universe, which is what replicas can
actually hold (arbitrary structures could violate dot uniqueness, which no replica can produce).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from x0tta6bl4.sync.core import (
    HLC,
    AWSet,
    CausalContext,
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
    plain_value,
)

REPLICAS = ("a", "b", "c")
ELEMENTS = st.sampled_from(["x", "y", "z", 7, b"\x00b"])
KEYS = st.sampled_from(["k1", "k2", "k3"])
VALUES = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=6), st.binary(max_size=6))

State = Any
# An op gets (state, replica, clock, earlier states) and returns (new_state, delta).
OpFn = Callable[[State, str, HLC, list[State]], tuple[State, State]]


@dataclass(frozen=True)
class Op:
    name: str
    fn: OpFn
    always_changes: bool  # the op must produce a strictly greater state
    path: tuple[str, ...] = ()  # the nested map keys the delta is confined to


def _ctx(earlier: list[State], pick: int | None) -> CausalContext | None:
    if pick is None or not earlier:
        return None
    return earlier[pick % len(earlier)].cc  # type: ignore[no-any-return]


def _ctx_pick() -> st.SearchStrategy[int | None]:
    return st.one_of(st.none(), st.integers(0, 1000))


def gcounter_ops() -> st.SearchStrategy[Op]:
    return st.builds(
        lambda n: Op("inc", lambda s, r, h, e: s.increment(r, n), True), st.integers(1, 5)
    )


def pncounter_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(
            lambda n: Op("inc", lambda s, r, h, e: s.increment(r, n), True), st.integers(1, 5)
        ),
        st.builds(
            lambda n: Op("dec", lambda s, r, h, e: s.decrement(r, n), True), st.integers(1, 5)
        ),
    )


def lww_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(
            lambda v, c: Op("assign", lambda s, r, h, e: s.assign(v, h, _ctx(e, c)), True),
            VALUES,
            _ctx_pick(),
        ),
        st.builds(
            lambda c: Op("clear", lambda s, r, h, e: s.clear(_ctx(e, c)), False), _ctx_pick()
        ),
    )


def mv_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(
            lambda v, c: Op("assign", lambda s, r, h, e: s.assign(v, r, _ctx(e, c)), True),
            VALUES,
            _ctx_pick(),
        ),
        st.builds(
            lambda c: Op("clear", lambda s, r, h, e: s.clear(_ctx(e, c)), False), _ctx_pick()
        ),
    )


def ew_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(
            lambda c: Op("enable", lambda s, r, h, e: s.enable(r, _ctx(e, c)), True), _ctx_pick()
        ),
        st.builds(
            lambda c: Op("disable", lambda s, r, h, e: s.disable(_ctx(e, c)), False), _ctx_pick()
        ),
    )


def dw_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.just(Op("enable", lambda s, r, h, e: s.enable(r), True)),
        st.just(Op("disable", lambda s, r, h, e: s.disable(r), True)),
    )


def aw_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(lambda x: Op("add", lambda s, r, h, e: s.add(x, r), True), ELEMENTS),
        st.builds(
            lambda x, c: Op("remove", lambda s, r, h, e: s.remove(x, _ctx(e, c)), False),
            ELEMENTS,
            _ctx_pick(),
        ),
        st.just(Op("clear", lambda s, r, h, e: s.clear(), False)),
    )


def rw_ops() -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(lambda x: Op("add", lambda s, r, h, e: s.add(x, r), True), ELEMENTS),
        st.builds(lambda x: Op("remove", lambda s, r, h, e: s.remove(x, r), True), ELEMENTS),
    )


def map_ops(inner: st.SearchStrategy[Op]) -> st.SearchStrategy[Op]:
    def update(k: str, op: Op) -> Op:
        return Op(
            f"update[{k}].{op.name}",
            lambda s, r, h, e: s.update(k, lambda v: op.fn(v, r, h, e)),
            op.always_changes,
            (k, *op.path),
        )

    return st.one_of(
        st.builds(update, KEYS, inner),
        st.builds(
            lambda k, c: Op(
                f"remove[{k}]", lambda s, r, h, e: s.remove(k, _ctx(e, c)), False, (k,)
            ),
            KEYS,
            _ctx_pick(),
        ),
    )


@dataclass(frozen=True)
class Kit:
    name: str
    bottom: Callable[[], State]
    ops: st.SearchStrategy[Op]


AW_MAP_VALUE = TypeSpec(TypeTag.AW_SET)
LWW_MAP_VALUE = TypeSpec(TypeTag.LWW_REGISTER)
RW_MAP_VALUE = TypeSpec(TypeTag.RW_SET)
NESTED_MAP_VALUE = TypeSpec(TypeTag.OR_MAP, TypeSpec(TypeTag.MV_REGISTER))

KITS: dict[str, Kit] = {
    "gcounter": Kit("gcounter", GCounter, gcounter_ops()),
    "pncounter": Kit("pncounter", PNCounter, pncounter_ops()),
    "lww_register": Kit("lww_register", LWWRegister, lww_ops()),
    "mv_register": Kit("mv_register", MVRegister, mv_ops()),
    "ew_flag": Kit("ew_flag", EWFlag, ew_ops()),
    "dw_flag": Kit("dw_flag", DWFlag, dw_ops()),
    "aw_set": Kit("aw_set", AWSet, aw_ops()),
    "rw_set": Kit("rw_set", RWSet, rw_ops()),
    "or_map<aw_set>": Kit("or_map<aw_set>", lambda: ORMap(AW_MAP_VALUE), map_ops(aw_ops())),
    "or_map<lww>": Kit("or_map<lww>", lambda: ORMap(LWW_MAP_VALUE), map_ops(lww_ops())),
    "or_map<rw_set>": Kit("or_map<rw_set>", lambda: ORMap(RW_MAP_VALUE), map_ops(rw_ops())),
    "or_map<or_map<mv>>": Kit(
        "or_map<or_map<mv>>", lambda: ORMap(NESTED_MAP_VALUE), map_ops(map_ops(mv_ops()))
    ),
}


@dataclass
class Mutation:
    op: str
    before: State
    after: State
    delta: State
    always_changes: bool
    path: tuple[str, ...]


@dataclass
class Universe:
    kit: Kit
    states: list[State] = field(default_factory=list)
    mutations: list[Mutation] = field(default_factory=list)

    def pool(self) -> list[State]:
        """Every reachable state plus every delta (deltas are states of the same lattice)."""
        return self.states + [m.delta for m in self.mutations]


def _step(n_ops: st.SearchStrategy[Op]) -> st.SearchStrategy[tuple[Any, ...]]:
    rep = st.integers(0, len(REPLICAS) - 1)
    return st.one_of(
        st.tuples(st.just("op"), rep, n_ops),
        st.tuples(st.just("op"), rep, n_ops),
        st.tuples(st.just("merge"), rep, rep),
    )


@st.composite
def universes(draw: st.DrawFn, kit: Kit, max_steps: int = 14) -> Universe:
    first = ("op", draw(st.integers(0, len(REPLICAS) - 1)), draw(kit.ops))
    steps = [first, *draw(st.lists(_step(kit.ops), max_size=max_steps))]
    u = Universe(kit)
    reps = [kit.bottom() for _ in REPLICAS]
    clocks = [HLC.zero(r) for r in REPLICAS]
    u.states.extend(reps)
    now = 1_700_000_000_000
    for step in steps:
        now += draw(st.integers(0, 2))  # equal physical times exercise the logical part
        if step[0] == "op":
            _, i, op = step
            clocks[i] = clocks[i].now(now)
            before = reps[i]
            after, delta = op.fn(before, REPLICAS[i], clocks[i], u.states)
            u.mutations.append(Mutation(op.name, before, after, delta, op.always_changes, op.path))
            reps[i] = after
        else:
            _, i, j = step
            reps[i] = reps[i].merge(reps[j])
        u.states.append(reps[i])
    return u


def read(state: State) -> Hashable:
    """The user-visible value of a state."""
    return plain_value(state)

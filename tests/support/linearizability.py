"""A small linearizability checker for key/value register histories (Wing-Gong with Lowe's
memoisation, the algorithm behind Knossos/Porcupine).

A history is a list of :class:`Op`: ``call`` and ``ret`` are positions in one global event
order (``ret is None`` for an operation whose outcome is unknown: a write that may or may not
have taken effect at any point after its call). Keys are independent registers, so the
history is checked one key at a time (P-compositionality). Writes are assumed to write
distinct values, which the simulator and :mod:`tests.support.history` guarantee.

Operations on one register:

- ``put(value)``: the register becomes ``value``;
- ``get() -> value`` (``None``: the key is absent);
- ``cas(expected -> value)``: compare-and-swap; ``ok=True`` means it swapped (the register held
  ``expected``), ``ok=False`` that it did not (the register held something else) — a failed
  CAS is a read that observed "not ``expected``". An unknown CAS (``ret is None``) took effect
  at most once, and only if the register held ``expected`` at that point.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

INF = float("inf")
KINDS = ("put", "get", "cas")


@dataclass(frozen=True, slots=True)
class Op:
    client: int
    kind: str  # "put" | "get" | "cas"
    key: str
    value: str | None  # value written, or value read (None = key absent)
    call: int
    ret: int | None  # None: never acknowledged (indeterminate write)
    expected: str | None = None  # cas: the value compared with (None = key absent)
    ok: bool | None = None  # cas: whether it swapped (None when ret is None)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown op kind {self.kind!r}")
        if self.ret is not None and self.ret <= self.call:
            raise ValueError(f"op returns ({self.ret}) before it is called ({self.call})")
        if self.kind == "get" and self.ret is None:
            raise ValueError("an unacknowledged read tells nothing; leave it out")
        if self.kind == "cas" and self.ret is not None and self.ok is None:
            raise ValueError("an acknowledged cas must say whether it swapped (ok)")

    def describe(self) -> str:
        if self.kind == "cas":
            outcome = {True: "ok", False: "failed", None: "?"}[self.ok]
            return f"cas({self.expected!r}->{self.value!r}) {outcome}"
        return f"{self.kind}({self.value!r})"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str | None = None
    detail: str = ""


def _step(op: Op, state: str | None) -> tuple[bool, str | None]:
    """Can ``op`` take effect in ``state``, and the state after it."""
    if op.kind == "put":
        return True, op.value
    if op.kind == "get":
        return op.value == state, state
    if op.ok is None:  # unknown cas: if it takes effect at all, it swapped
        return state == op.expected, op.value
    if op.ok:
        return state == op.expected, op.value
    return state != op.expected, state


def check_register(ops: list[Op], initial: str | None = None, budget: int = 2_000_000) -> bool:
    """Is this single-register history linearizable? (depth-first search with memoisation)

    Ops are indexed in call order, so the ops that may be linearized next are a run of the
    not-yet-linearized ones starting at the first of them: each step looks at those, not at
    the whole history."""
    n = len(ops)
    if n == 0:
        return True
    ops = sorted(ops, key=lambda o: o.call)
    calls = [op.call for op in ops]
    rets = [INF if op.ret is None else float(op.ret) for op in ops]
    by_ret = sorted(range(n), key=rets.__getitem__)
    required = 0
    for i, op in enumerate(ops):
        if op.ret is not None:
            required |= 1 << i
    seen: set[tuple[int, str | None]] = set()
    stack: list[tuple[int, str | None]] = [(0, initial)]
    steps = 0
    while stack:
        done, state = stack.pop()
        if done & required == required:
            return True
        if (done, state) in seen:
            continue
        seen.add((done, state))
        steps += 1
        if steps > budget:
            raise RuntimeError("linearizability search budget exhausted")
        # An op may be linearized next iff it was called before every remaining op returned.
        min_ret = next(rets[i] for i in by_ret if not done >> i & 1)
        i = (~done & (done + 1)).bit_length() - 1  # the first op not linearized yet
        while i < n and calls[i] <= min_ret:
            if not done >> i & 1:
                possible, after = _step(ops[i], state)
                if possible:
                    stack.append((done | 1 << i, after))
            i += 1
    return False


def _check_pruned_first(ops: list[Op]) -> bool:
    """Unknown-outcome writes nobody observed widen the search a lot (each may take effect at
    any later point); first try without them (leaving them out is always a legal choice, so
    success then is conclusive), and only on failure search with everything."""
    observed = {op.value for op in ops if op.kind == "get"}
    observed |= {op.expected for op in ops if op.kind == "cas"}
    pruned = [op for op in ops if op.ret is not None or op.value in observed]
    if len(pruned) < len(ops) and check_register(pruned):
        return True
    return check_register(ops)


def check_kv(history: Iterable[Op]) -> CheckResult:
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in history:
        by_key[op.key].append(op)
    for key in sorted(by_key):
        ops = sorted(by_key[key], key=lambda o: o.call)
        if not _check_pruned_first(ops):
            lines = "\n".join(
                f"  client {o.client} {o.describe()} [{o.call}, {o.ret}]" for o in ops
            )
            return CheckResult(False, key, f"history of key {key!r} is not linearizable:\n{lines}")
    return CheckResult(True)
